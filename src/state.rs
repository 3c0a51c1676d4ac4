//! What every request and connection shares: the room hub, the store, the message writer, the
//! signing key and the shutdown signal. Cloning is one refcount: every connection holds a
//! clone for its whole life, so its size is part of every idle connection's memory.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use axum_extra::extract::cookie::Key;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::Broker;
use crate::rooms::hub::Hub;
use crate::rooms::writer::Writer;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }

    /// Signals shutdown and asks every connection to close (1012, after answering what it has
    /// in flight). Connections learn of it through their mailbox rather than each waiting on
    /// the token: a waiter per idle connection would be part of its memory.
    pub fn stop_sessions(&self) {
        self.shutdown.cancel();
        self.hub
            .connections
            .close_all(crate::protocol::close::SERVICE_RESTART);
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub hub: Arc<Hub>,
    pub store: Arc<dyn Store>,
    pub broker: Arc<dyn Broker>,
    pub writer: Writer,
    pub key: Key,
    pub idle_timeout: Duration,
    /// How long a connection with data waiting may write nothing before it is cut (4001).
    pub stall_timeout: Duration,
    /// How long a graceful stop waits for in-flight sends before closing connections.
    pub shutdown_timeout: Duration,
    /// Cancelled when the server starts shutting down; sessions close with 1012.
    pub shutdown: CancellationToken,
    /// Every WebSocket session, so shutdown can wait for them to finish.
    pub sessions: TaskTracker,
    /// Rate-limit buckets, shared by every connection and request.
    pub limits: Arc<crate::limits::Limits>,
    /// Connections watching the admin view (`admin_watch`).
    pub admin_watchers: crate::admin::watch::Watchers,
}

impl FromRef<AppState> for Key {
    fn from_ref(state: &AppState) -> Self {
        state.key.clone()
    }
}
