//! The accept loop: HTTP/1.1 (with upgrades) over plain TCP or TLS, with the time bounds that
//! keep a stalled client from holding a socket: headers within `--header-timeout` of connecting
//! or of the previous response, the TLS handshake within the same bound, and a body within
//! `--body-timeout` of its headers.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;

use super::edge::Peer;

/// How a listener serves its connections.
#[derive(Clone)]
pub struct ServeOptions {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    /// `Some` to speak TLS on every connection.
    pub tls: Option<TlsAcceptor>,
    /// Applied to every accepted socket before anything is read (TCP_NODELAY, SO_SNDBUF).
    pub tune: Arc<dyn Fn(&TcpStream) + Send + Sync>,
}

/// Serves `app` on `listener` until `shutdown` is cancelled; then stops accepting, lets every
/// HTTP exchange in progress finish, and returns once the last connection is done. Upgraded
/// connections leave hyper's hands at the upgrade: the session that owns them ends them.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    shutdown: CancellationToken,
) {
    let connections = TaskTracker::new();
    // Whether the last accept failed: a failure is logged once, not at every retry.
    let mut failing = false;
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, addr) = match accepted {
            Ok(accepted) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("accepting connections again");
                }
                accepted
            }
            Err(error) if is_per_connection(&error) => continue,
            Err(error) => {
                // Out of file descriptors (EMFILE) and the like: the next accept would fail the
                // same way at once, so give closing connections a moment instead of spinning.
                if !std::mem::replace(&mut failing, true) {
                    tracing::error!(%error, "cannot accept connections; retrying every 100 ms");
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        (options.tune)(&tcp);
        let app = app.clone();
        let options = options.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            match options.tls.clone() {
                // Exactly `TokioIo<TcpStream>`: the WebSocket edge downcasts the upgraded
                // connection to it to reach the socket directly.
                None => {
                    let peer = Peer { addr, tls: false };
                    serve_connection(TokioIo::new(tcp), peer, app, &options, &shutdown).await;
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(options.header_timeout, acceptor.accept(tcp)).await;
                    let stream = match handshake {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(error)) => {
                            tracing::debug!(%error, %addr, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%addr, "TLS handshake timed out");
                            return;
                        }
                    };
                    let peer = Peer { addr, tls: true };
                    serve_connection(TokioIo::new(stream), peer, app, &options, &shutdown).await;
                }
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Errors that concern one connection only (it was reset before we took it): accept again.
fn is_per_connection(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

async fn serve_connection<S>(
    io: TokioIo<S>,
    peer: Peer,
    app: Router,
    options: &ServeOptions,
    shutdown: &CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let body_timeout = options.body_timeout;
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(|body| {
            if http_body::Body::is_end_stream(&body) {
                Body::empty()
            } else {
                Body::new(Deadline::new(body, body_timeout))
            }
        });
        request.extensions_mut().insert(peer);
        let mut app = app.clone();
        async move { Ok::<_, Infallible>(app.call(request).await.unwrap_or_else(|e| match e {})) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout);
    let connection = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, addr = %peer.addr, "connection ended with an error");
    }
}

/// The request body did not arrive within `--body-timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

/// A request body that fails once its deadline passes. The deadline is total, not per read:
/// a client trickling a byte at a time gains nothing. When a handler gives up on a body, hyper
/// closes the connection instead of waiting for the rest.
struct Deadline {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
}

impl Deadline {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
