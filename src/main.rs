//! The `confab` binary: parse options, set up logging, run the server until Ctrl-C or SIGTERM.

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = confab::Config::parse();
    let filter = EnvFilter::try_new(&config.log).context("invalid --log filter")?;
    tracing_subscriber::fmt().with_env_filter(filter).init();
    if let Some(confab::config::Command::Admin { action }) = &config.command {
        let said = confab::accounts::admin::run(&config, action)
            .await
            .context("admin command failed")?;
        println!("{said}");
        return Ok(());
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
