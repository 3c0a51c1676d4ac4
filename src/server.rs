//! Building and running a server: `build` binds and opens storage, `port` tells the bound port,
//! `run` serves until the given future resolves, then shuts down in order.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::local::LocalBroker;
use crate::broker::redis::RedisBroker;
use crate::broker::{Broker, BrokerError};
use crate::config::Config;
use crate::identity::{self, KeyError};
use crate::rooms::hub::Hub;
use crate::rooms::writer::Writer;
use crate::state::AppState;
use crate::store::advisory::AdvisoryLocks;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{PublishOrder, Store, StoreError};

/// How long shutdown waits for sessions to say goodbye before it stops waiting.
const DRAIN: Duration = Duration::from_secs(5);

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
    #[error("cannot start the message writer's thread: {0}")]
    Thread(std::io::Error),
}

/// Kernel send buffer per connection (the kernel doubles it for bookkeeping): room for a
/// burst of a few hundred chat frames.
const SEND_BUFFER: usize = 128 * 1024;

/// Connections the kernel may hold for us before we accept them. tokio's default (128) drops
/// SYNs during a burst of joins, and each dropped SYN costs its client a 1 s retransmit.
const LISTEN_BACKLOG: u32 = 4096;

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

pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    writer_task: JoinHandle<()>,
}

impl Server {
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let (store, order): (Arc<dyn Store>, Option<Arc<dyn PublishOrder>>) =
            match &config.database_url {
                Some(url) => (
                    Arc::new(PostgresStore::connect(url).await?),
                    Some(Arc::new(AdvisoryLocks::connect(url).await?)),
                ),
                None => (Arc::new(SqliteStore::open(&config.data_dir).await?), None),
            };
        let secret = match &config.secret {
            Some(secret) => Some(secret.clone()),
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
                let (announcer, announcements) = tokio::sync::mpsc::unbounded_channel();
                let hub = Arc::new(Hub::clustered(announcer));
                let broker = RedisBroker::start(
                    url,
                    &config.redis_prefix,
                    hub.clone(),
                    store.clone(),
                    announcements,
                )
                .await?;
                (hub, Arc::new(broker))
            }
            None => {
                let hub = Arc::new(Hub::default());
                (hub.clone(), Arc::new(LocalBroker::new(hub)))
            }
        };
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
        let state = AppState {
            hub,
            store,
            broker,
            writer,
            key,
            idle_timeout: config.idle_timeout(),
            shutdown: CancellationToken::new(),
            sessions: TaskTracker::new(),
        };
        Ok(Self {
            listener,
            addr,
            state,
            writer_task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
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
            state,
            writer_task,
        } = self;
        let lobby = tokio::spawn(state.hub.clone().run_lobby(state.shutdown.clone()));
        let app = crate::http::router(state.clone());
        tracing::info!("confab serving on http://{addr}/");
        let shutdown = state.shutdown.clone();
        // Chat frames are small and latency-bound: without TCP_NODELAY, Nagle's algorithm and
        // delayed ACKs hold them back by up to 40 ms.
        let listener = listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
            // A fixed, modest send buffer: the kernel would otherwise autotune it up to 4 MiB
            // per socket, and a stalled reader's backlog would pile up there, unbounded by us
            // and invisible to the outbox whose cut-off (4001) is the documented policy.
            if let Err(error) = socket2::SockRef::from(&*tcp).set_send_buffer_size(SEND_BUFFER) {
                tracing::debug!(%error, "cannot set SO_SNDBUF");
            }
        });
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                signal.await;
                tracing::info!("shutting down");
                shutdown.cancel();
            })
            .await;
        state.shutdown.cancel();
        state.sessions.close();
        if tokio::time::timeout(DRAIN, state.sessions.wait())
            .await
            .is_err()
        {
            tracing::warn!("some sessions did not finish within {DRAIN:?}");
        }
        state.writer.stop().await;
        let _ = writer_task.await;
        state.broker.stop().await;
        let _ = lobby.await;
        state.store.close().await;
        tracing::info!("stopped");
        served
    }
}
