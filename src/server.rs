//! Building and running a server: `build` binds and opens storage, `port` tells the bound port,
//! `run` serves until the given future resolves, then shuts down in order.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::local::LocalBroker;
use crate::broker::redis::RedisBroker;
use crate::broker::{Broker, BrokerError};
use crate::config::Config;
use crate::http::Edge;
use crate::http::serve::{ServeOptions, serve};
use crate::http::tls::{self, TlsError};
use crate::identity::{self, KeyError};
use crate::rooms::hub::Hub;
use crate::rooms::writer::Writer;
use crate::state::{AppState, Shared};
use crate::store::advisory::AdvisoryLocks;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{PublishOrder, Store, StoreError};

/// How long shutdown waits for sessions beyond the shutdown timeout (their in-flight sends
/// answered) for their goodbyes.
const GOODBYE_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open storage: {0}")]
    Store(#[from] StoreError),
    #[error("cannot load the session secret: {0}")]
    Key(#[from] KeyError),
    #[error("cannot reach Redis: {0}")]
    Broker(#[from] BrokerError),
    #[error("{0}")]
    Config(&'static str),
    #[error("cannot load the session secret: {0}")]
    Secret(String),
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("cannot prepare the data folder {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot start the message writer's thread: {0}")]
    Thread(std::io::Error),
    #[error(transparent)]
    Metrics(#[from] crate::telemetry::metrics::InstallError),
}

/// Kernel send buffer per connection (the kernel doubles it for bookkeeping): room for a
/// burst of a few hundred chat frames.
const SEND_BUFFER: usize = 128 * 1024;

/// Connections the kernel may hold for us before we accept them. tokio's default (128) drops
/// SYNs during a burst of joins, and each dropped SYN costs its client a 1 s retransmit.
const LISTEN_BACKLOG: u32 = 4096;

/// Applied to every accepted socket.
fn tune(tcp: &TcpStream) {
    // Chat frames are small and latency-bound: without TCP_NODELAY, Nagle's algorithm and
    // delayed ACKs hold them back by up to 40 ms.
    if let Err(error) = tcp.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY");
    }
    // A fixed, modest send buffer: the kernel would otherwise autotune it up to 4 MiB
    // per socket, and a stalled reader's backlog would pile up there, unbounded by us
    // and invisible to the outbox whose cut-off (4001) is the documented policy.
    if let Err(error) = socket2::SockRef::from(tcp).set_send_buffer_size(SEND_BUFFER) {
        tracing::debug!(%error, "cannot set SO_SNDBUF");
    }
}

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // A restarted server must be able to take its port back at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The data folder holds the database and the signing key: readable by confab's user only.
/// The database file is created here, before SQLite opens it, because SQLite gives its WAL
/// and shared-memory files the database file's permissions. Files of an older install are
/// tightened too.
fn prepare_data_dir(dir: &std::path::Path) -> std::io::Result<()> {
    identity::create_private_dir(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let private = |path: &std::path::Path, mode: u32| -> std::io::Result<()> {
            let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
            if current & 0o077 != 0 {
                tracing::info!(path = %path.display(), "making private ({mode:o})");
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            }
            Ok(())
        };
        private(dir, 0o700)?;
        let database = dir.join("confab.db");
        identity::open_private_file(&database)?;
        for name in ["confab.db", "confab.db-wal", "confab.db-shm", "secret.key"] {
            match private(&dir.join(name), 0o600) {
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
    }
    Ok(())
}

/// How often the metrics recorder folds recorded histogram samples into its buckets when
/// nobody scrapes: without it, an unscraped server's samples would only pile up.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// The `--metrics-addr` listener, bound at build time so a bad address fails the start.
struct MetricsListener {
    listener: TcpListener,
    addr: SocketAddr,
    handle: metrics_exporter_prometheus::PrometheusHandle,
}

pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    metrics: Option<MetricsListener>,
    state: AppState,
    writer_task: JoinHandle<()>,
    edge: Arc<Edge>,
    options: ServeOptions,
    /// `--retention-days`, if set: the background purge runs while the server serves.
    retention_days: Option<u32>,
}

impl Server {
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
            _ => None,
        };
        let configured_secret = config.load_secret().map_err(StartError::Secret)?;
        let (store, order): (Arc<dyn Store>, Option<Arc<dyn PublishOrder>>) =
            match &config.database_url {
                Some(url) => (
                    Arc::new(PostgresStore::connect(url).await?),
                    Some(Arc::new(AdvisoryLocks::connect(url).await?)),
                ),
                None => {
                    prepare_data_dir(&config.data_dir).map_err(|source| StartError::DataDir {
                        path: config.data_dir.display().to_string(),
                        source,
                    })?;
                    (Arc::new(SqliteStore::open(&config.data_dir).await?), None)
                }
            };
        let secret = match configured_secret {
            Some(secret) => Some(secret),
            None => store.shared_secret(&identity::random_secret()).await?,
        };
        let key = identity::load_or_create_key(secret.as_deref(), &config.data_dir)?;
        let (hub, broker): (Arc<Hub>, Arc<dyn Broker>) = match &config.redis_url {
            Some(url) => {
                if config.database_url.is_none() {
                    return Err(StartError::Config(
                        "--redis-url needs --database-url: the nodes of a cluster must share storage",
                    ));
                }
                let hub = Arc::new(Hub::default());
                let broker =
                    RedisBroker::start(url, &config.redis_prefix, hub.clone(), store.clone())
                        .await?;
                (hub, Arc::new(broker))
            }
            None => {
                let hub = Arc::new(Hub::default());
                (hub.clone(), Arc::new(LocalBroker::new(hub)))
            }
        };
        if let Some(announcer) = broker.presence_out() {
            hub.announce_to(announcer);
        }
        hub.limit_rooms_per_user(config.max_rooms_per_user as usize);
        let (writer, writer_task) = Writer::spawn_bounded(
            store.clone(),
            broker.clone(),
            order,
            config.writer_queue as usize,
        )
        .map_err(StartError::Thread)?;
        let listener = listen(config.addr).map_err(|source| StartError::Bind {
            addr: config.addr,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.addr,
            source,
        })?;
        let metrics = match config.metrics_addr {
            Some(metrics_addr) => {
                let handle = crate::telemetry::metrics::install()?;
                let bind = |source| StartError::Bind {
                    addr: metrics_addr,
                    source,
                };
                let listener = TcpListener::bind(metrics_addr).await.map_err(bind)?;
                let addr = listener.local_addr().map_err(bind)?;
                Some(MetricsListener {
                    listener,
                    addr,
                    handle,
                })
            }
            None => None,
        };
        let state = AppState::new(Shared {
            hub,
            store,
            broker,
            writer,
            key,
            idle_timeout: config.idle_timeout(),
            stall_timeout: config.stall_timeout(),
            shutdown_timeout: config.shutdown_timeout(),
            shutdown: CancellationToken::new(),
            sessions: TaskTracker::new(),
            limits: crate::limits::Limits::new(&config),
            admin_watchers: crate::admin::watch::Watchers::default(),
        });
        let options = ServeOptions {
            header_timeout: config.header_timeout(),
            body_timeout: config.body_timeout(),
            tls,
            tune: Arc::new(tune),
        };
        Ok(Self {
            listener,
            addr,
            metrics,
            state,
            writer_task,
            edge: Arc::new(Edge::new(&config)),
            options,
            retention_days: config.retention_days,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Where `GET /metrics` is served (`--metrics-addr`, with the port bound), if anywhere.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|metrics| metrics.addr)
    }

    /// Serves until `signal` resolves; then stops accepting, closes every session with 1001,
    /// stores everything already accepted, and releases the database.
    pub async fn run(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Self {
            listener,
            addr,
            metrics,
            state,
            writer_task,
            edge,
            options,
            retention_days,
        } = self;
        let lobby = tokio::spawn({
            let (hub, store, shutdown) = (
                state.hub.clone(),
                state.store.clone(),
                state.shutdown.clone(),
            );
            async move {
                let public = |rooms| {
                    let (hub, store) = (hub.clone(), store.clone());
                    async move { hub.access.public_only(store.as_ref(), rooms).await }
                };
                hub.lobby
                    .run(|room| hub.online(room), public, shutdown)
                    .await;
            }
        });
        let presence = tokio::spawn(state.hub.clone().run_presence(state.shutdown.clone()));
        let sampler = tokio::spawn(crate::telemetry::stats::run_sampler(state.shutdown.clone()));
        let admin_feed = tokio::spawn(crate::admin::watch::run(
            state.clone(),
            state.shutdown.clone(),
        ));
        let retention = retention_days.map(|days| {
            tokio::spawn(crate::ops::retention::run(
                state.store.clone(),
                days,
                state.shutdown.clone(),
            ))
        });
        // Metrics outlive the public listener: a drain is worth watching. Stopped last.
        let metrics_stop = CancellationToken::new();
        let metrics_task = metrics.map(|metrics| {
            tracing::info!("metrics on http://{}/metrics", metrics.addr);
            tokio::spawn(serve_metrics(metrics, state.clone(), metrics_stop.clone()))
        });
        let app = crate::http::router(state.clone(), edge, crate::ws::router());
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!("confab serving on {scheme}://{addr}/");
        let stopping = state.clone();
        tokio::spawn(async move {
            signal.await;
            tracing::info!("shutting down");
            stopping.stop_sessions();
        });
        serve(listener, app, options, state.shutdown.clone()).await;
        state.stop_sessions();
        state.sessions.close();
        let drain = state.shutdown_timeout + GOODBYE_GRACE;
        if tokio::time::timeout(drain, state.sessions.wait())
            .await
            .is_err()
        {
            tracing::warn!("some sessions did not finish within {drain:?}");
        }
        state.writer.stop().await;
        let _ = writer_task.await;
        state.broker.stop().await;
        let _ = lobby.await;
        let _ = presence.await;
        let _ = sampler.await;
        let _ = admin_feed.await;
        if let Some(retention) = retention {
            let _ = retention.await;
        }
        state.store.close().await;
        metrics_stop.cancel();
        if let Some(task) = metrics_task {
            let _ = task.await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Serves `GET /metrics` on the metrics listener until `stop`, keeping the recorder's
/// histograms folded meanwhile.
async fn serve_metrics(metrics: MetricsListener, state: AppState, stop: CancellationToken) {
    let handle = metrics.handle.clone();
    let upkeep = {
        let stop = stop.clone();
        async move {
            let mut every = tokio::time::interval(METRICS_UPKEEP);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = every.tick() => handle.run_upkeep(),
                }
            }
        }
    };
    let app = crate::http::metrics::router(state, metrics.handle);
    let served = axum::serve(metrics.listener, app).with_graceful_shutdown(stop.cancelled_owned());
    let (served, ()) = tokio::join!(served, upkeep);
    if let Err(error) = served {
        tracing::error!(%error, "the metrics listener failed");
    }
}
