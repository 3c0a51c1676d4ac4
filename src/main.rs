//! The `confab` binary: parse options, set up logging, run the server until Ctrl-C or SIGTERM.

use anyhow::Context;
use clap::Parser;
use confab::config::Command;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = confab::Config::parse();
    confab::telemetry::logs::init(config.log_format, &config.log)
        .context("invalid --log filter")?;
    match &config.command {
        Some(Command::Admin { action }) => {
            let said = confab::accounts::admin::run(&config, action)
                .await
                .context("admin command failed")?;
            println!("{said}");
            return Ok(());
        }
        Some(Command::Backup { path }) => {
            anyhow::ensure!(
                config.database_url.is_none(),
                "backup copies the SQLite database; for PostgreSQL use pg_dump (docs/operations.md)"
            );
            let bytes =
                confab::ops::backup::backup(&config.data_dir, path).context("backup failed")?;
            println!("backed up to {} ({bytes} bytes)", path.display());
            return Ok(());
        }
        Some(Command::Restore { path }) => {
            anyhow::ensure!(
                config.database_url.is_none(),
                "restore replaces the SQLite database; for PostgreSQL use pg_restore (docs/operations.md)"
            );
            confab::ops::backup::restore(&config.data_dir, path).context("restore failed")?;
            println!(
                "restored {} into {}",
                path.display(),
                config.data_dir.display()
            );
            return Ok(());
        }
        Some(Command::Export { room, out }) => {
            let room = confab::domain::RoomName::parse(room)
                .map_err(|_| anyhow::anyhow!("{room:?} is not a valid room name"))?;
            let source = match &config.database_url {
                Some(url) => confab::ops::export::Source::Postgres(
                    confab::store::postgres::PostgresStore::connect(url)
                        .await
                        .context("cannot open the database")?,
                ),
                None => confab::ops::export::Source::Sqlite(
                    confab::store::sqlite::SqliteReader::open(&config.data_dir)
                        .await
                        .context("cannot open the data folder's database")?,
                ),
            };
            let written = match out {
                Some(path) => {
                    let file = std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    let mut file = std::io::BufWriter::new(file);
                    let written = confab::ops::export::export(&source, &room, &mut file).await;
                    if written.is_ok() {
                        file.into_inner()
                            .map_err(std::io::IntoInnerError::into_error)
                            .and_then(|f| f.sync_all())
                            .context("cannot write the export")?;
                    }
                    written
                }
                None => {
                    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
                    confab::ops::export::export(&source, &room, &mut stdout).await
                }
            };
            source.close().await;
            let written = written.context("export failed")?;
            // To stderr: stdout may be the export itself.
            eprintln!("exported {written} messages of {room}");
            return Ok(());
        }
        None => {}
    }
    let server = confab::Server::build(config)
        .await
        .context("cannot start confab")?;
    server
        .run(shutdown_signal())
        .await
        .context("server failed")?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
