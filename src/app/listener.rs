//! The accept loop and the per-connection bounds: how many connections, how long a client may
//! take to send its headers (or sit idle between requests), and how long a response write may
//! stall. The per-request bounds (the body's progress) are a layer in `front::body_guard`.
//!
//! hyper serves HTTP/1.1 only: every S3 client speaks it, and HTTP/2's idle connections and
//! streams would need bounds of their own that nothing here needs.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;

use super::tls::TlsSource;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

/// The connection bounds (translated from the config's `limits:` in `app`).
#[derive(Clone, Copy, Debug)]
pub struct ConnectionPolicy {
    pub max_connections: usize,
    /// Header read timeout, which hyper also applies to the idle time before the next request.
    pub header_timeout: Duration,
    pub write_timeout: Duration,
    /// How long open connections may take to finish after shutdown began.
    pub shutdown_timeout: Duration,
}

/// The longest pause after a failing `accept` (descriptors exhausted, ...): retrying at once
/// would spin a core and flood the log.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// At most one log line per this interval for a repeating accept failure or a full house.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Accepts connections on `listener` and serves each with `handler` until `shutdown` resolves,
/// then waits up to `policy.shutdown_timeout` for open ones.
///
/// With `tls`, each connection first completes a TLS handshake (within the header timeout) with
/// the certificate current at its accept.
pub async fn serve<H, F>(
    listener: TcpListener,
    policy: ConnectionPolicy,
    tls: Option<Arc<TlsSource>>,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(hyper::Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = hyper::Response<s3s::Body>> + Send + 'static,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(policy.max_connections));
    let mut accept_log = RateLimitedLog::default();
    let mut full_log = RateLimitedLog::default();
    let mut backoff = Duration::ZERO;
    tokio::pin!(shutdown);
    loop {
        // A slot first: at the limit, new connections wait in the kernel's listen backlog.
        let permit = match Arc::clone(&slots).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if let Some(suppressed) = full_log.ready() {
                    tracing::warn!(
                        max_connections = policy.max_connections,
                        suppressed,
                        "connection limit reached: new connections wait in the listen backlog"
                    );
                }
                tokio::select! {
                    p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => { backoff = Duration::ZERO; conn }
                Err(e) => {
                    backoff = (backoff * 2).clamp(Duration::from_millis(5), MAX_ACCEPT_BACKOFF);
                    if let Some(suppressed) = accept_log.ready() {
                        tracing::warn!(error = %e, suppressed, backoff_ms = backoff.as_millis(), "accept failed; backing off");
                    }
                    drop(permit);
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = &mut shutdown => break,
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small requests (4 KiB objects, HEADs) otherwise stall on delayed ACKs.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let handler = handler.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let response = handler(req, peer);
            async move { Ok::<_, std::convert::Infallible>(response.await) }
        });
        let watcher = graceful.watcher();
        let tls = tls.as_ref().map(|t| tokio_rustls::TlsAcceptor::from(t.config()));
        tokio::spawn(async move {
            let result = match tls {
                None => {
                    serve_connection(
                        TokioIo::new(WriteStallGuard::new(stream, policy.write_timeout)),
                        policy,
                        service,
                        watcher,
                    )
                    .await
                }
                Some(acceptor) => match tokio::time::timeout(policy.header_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let io = TokioIo::new(WriteStallGuard::new(stream, policy.write_timeout));
                        serve_connection(io, policy, service, watcher).await
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "tls handshake failed");
                        Ok(())
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "tls handshake timed out");
                        Ok(())
                    }
                },
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(policy.shutdown_timeout) => {
            tracing::warn!(timeout_s = policy.shutdown_timeout.as_secs(), "connections still open at shutdown; stopping anyway");
        }
    }
}

/// Serves HTTP/1.1 on one connection until it closes or a graceful shutdown ends it.
async fn serve_connection<IO, S>(
    io: IO,
    policy: ConnectionPolicy,
    service: S,
    watcher: hyper_util::server::graceful::Watcher,
) -> Result<(), hyper::Error>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = s3s::Body> + Send + 'static,
    S::Future: Send + 'static,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(policy.header_timeout)
        .serve_connection(io, service);
    watcher.watch(conn).await
}

/// Lets one line through per [`LOG_EVERY`] and counts the ones held back.
#[derive(Default)]
struct RateLimitedLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    /// `Some(count of suppressed lines since the last one)` when a line may be written now.
    fn ready(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|t| now.saturating_duration_since(t) < LOG_EVERY) {
            self.suppressed = self.suppressed.saturating_add(1);
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// A TCP stream whose writes fail with `TimedOut` after `limit` without progress: a client that
/// stopped reading its response (or reads one byte a minute) cannot hold a connection, a task
/// and an open object forever.
pub struct WriteStallGuard<S> {
    inner: S,
    limit: Duration,
    /// Running while a write is pending; reset on progress.
    stall: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteStallGuard<S> {
    pub fn new(inner: S, limit: Duration) -> Self {
        Self { inner, limit, stall: None }
    }

    fn on_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let limit = self.limit;
        let timer = self.stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                tracing::debug!(limit_s = limit.as_secs(), "response write stalled; closing the connection");
                Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "client stopped reading"))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteStallGuard<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteStallGuard<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => self.on_pending(cx).map(Err),
            done => {
                self.stall = None;
                done
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.on_pending(cx).map(Err),
            done => {
                self.stall = None;
                done
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.on_pending(cx).map(Err),
            done => {
                self.stall = None;
                done
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn rate_limited_log_counts_what_it_holds_back() {
        let mut log = RateLimitedLog::default();
        assert_eq!(log.ready(), Some(0));
        for _ in 0..1000 {
            assert_eq!(log.ready(), None);
        }
        tokio::time::advance(LOG_EVERY).await;
        assert_eq!(log.ready(), Some(1000));
        assert_eq!(log.ready(), None);
    }
}
