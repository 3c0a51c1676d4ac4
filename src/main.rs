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
