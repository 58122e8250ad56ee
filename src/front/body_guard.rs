//! A request body that must keep moving: [`ProgressGuard`] fails a body whose client delivers
//! less than a minimum number of bytes per window of time spent waiting for it.
//!
//! Only time spent *waiting for the client* counts (from the moment a read finds nothing until
//! bytes arrive): while blobseal itself is busy (a slow backend applying back-pressure, a key
//! provider call) the clock stops, so a slow backend never fails a client. A client trickling one
//! byte every few seconds holds a temp file, a backend upload and a task; after one window it is gone.
//! Shared by every front end (it knows nothing of S3).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The rule: in every `window` of waiting, at least `min_bytes_per_second × window` bytes (at
/// least one byte when the rate is 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgressRule {
    pub window: Duration,
    pub min_bytes_per_second: u64,
}

impl ProgressRule {
    fn bytes_per_window(&self) -> u64 {
        let secs = self.window.as_secs().max(1);
        self.min_bytes_per_second.saturating_mul(secs).max(1)
    }
}

/// The body was too slow; the request fails and the connection is closed.
#[derive(Debug, thiserror::Error)]
#[error("request body too slow: fewer than {needed} bytes in {window:?} of waiting for the client")]
pub struct BodyTooSlow {
    pub needed: u64,
    pub window: Duration,
}

/// Wraps a request body with a [`ProgressRule`]. Size hints pass through unchanged.
pub struct ProgressGuard<B> {
    inner: B,
    rule: ProgressRule,
    /// Waiting time already spent in the current window (excluding the current wait).
    waited: Duration,
    /// Bytes received in the current window.
    received: u64,
    /// When the current wait for the client began, if it is waiting now.
    waiting_since: Option<Instant>,
    timer: Pin<Box<Sleep>>,
    failed: bool,
    /// Set when the rule failed the body, for whoever answers the request (the body's error
    /// itself travels through the protocol crate and the backend and comes out as something else).
    tripped: Arc<AtomicBool>,
}

impl<B> ProgressGuard<B> {
    pub fn new(inner: B, rule: ProgressRule) -> Self {
        Self {
            inner,
            rule,
            waited: Duration::ZERO,
            received: 0,
            waiting_since: None,
            timer: Box::pin(tokio::time::sleep(rule.window)),
            failed: false,
            tripped: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A flag that turns true once this body was failed for being too slow.
    pub fn tripped(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.tripped)
    }

    /// Closes the window if it is full: `Err` when it held too few bytes, else a fresh window.
    fn roll_window(&mut self, waited_now: Duration, now: Instant) -> Result<Duration, BodyTooSlow> {
        if waited_now < self.rule.window {
            return Ok(waited_now);
        }
        let needed = self.rule.bytes_per_window();
        if self.received < needed {
            return Err(BodyTooSlow { needed, window: self.rule.window });
        }
        self.waited = Duration::ZERO;
        self.received = 0;
        if self.waiting_since.is_some() {
            self.waiting_since = Some(now);
        }
        Ok(Duration::ZERO)
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<B> Body for ProgressGuard<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let now = Instant::now();
                if let Some(since) = this.waiting_since.take() {
                    this.waited = this.waited.saturating_add(now.saturating_duration_since(since));
                }
                if let Some(data) = frame.data_ref() {
                    this.received = this.received.saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
                }
                match this.roll_window(this.waited, now) {
                    Ok(w) => this.waited = w,
                    Err(e) => return this.fail(e),
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let now = Instant::now();
                let since = *this.waiting_since.get_or_insert(now);
                let waited_now = this.waited.saturating_add(now.saturating_duration_since(since));
                let waited_now = match this.roll_window(waited_now, now) {
                    Ok(w) => w,
                    Err(e) => return this.fail(e),
                };
                // Wake when the window would be full; the check above then runs again.
                let left = this.rule.window.saturating_sub(waited_now);
                this.timer.as_mut().reset(now + left);
                if this.timer.as_mut().poll(cx).is_ready() {
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> ProgressGuard<B> {
    fn fail(&mut self, e: BodyTooSlow) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.failed = true;
        self.tripped.store(true, Ordering::Relaxed);
        crate::metrics::get().slow_bodies.inc();
        tracing::warn!(error = %e, "request body too slow: failing the request");
        Poll::Ready(Some(Err(Box::new(e))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt as _, StreamBody};

    type Chunks = futures::channel::mpsc::UnboundedReceiver<Result<Frame<Bytes>, std::io::Error>>;

    type Feed = futures::channel::mpsc::UnboundedSender<Result<Frame<Bytes>, std::io::Error>>;

    fn guarded(rule: ProgressRule) -> (Feed, ProgressGuard<StreamBody<Chunks>>) {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        (tx, ProgressGuard::new(StreamBody::new(rx), rule))
    }

    const RULE: ProgressRule = ProgressRule { window: Duration::from_secs(10), min_bytes_per_second: 100 };

    #[tokio::test(start_paused = true)]
    async fn a_trickle_fails_after_one_window() {
        let (tx, mut body) = guarded(RULE);
        let feeder = tokio::spawn(async move {
            for _ in 0..100 {
                if tx.unbounded_send(Ok(Frame::data(Bytes::from_static(b"x")))).is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
        let started = Instant::now();
        let mut got = 0;
        let err = loop {
            match body.frame().await {
                Some(Ok(_)) => got += 1,
                Some(Err(e)) => break e,
                None => panic!("body ended"),
            }
        };
        assert!(err.to_string().contains("too slow"), "{err}");
        assert!(started.elapsed() <= Duration::from_secs(16), "{:?}", started.elapsed());
        assert!(got <= 3, "{got}");
        feeder.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_fails_after_one_window() {
        let (_tx, mut body) = guarded(ProgressRule { window: Duration::from_secs(10), min_bytes_per_second: 0 });
        let started = Instant::now();
        assert!(body.frame().await.is_some_and(|f| f.is_err()));
        assert_eq!(started.elapsed().as_secs(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_slow_client_is_never_cut() {
        // 200 B/s (twice the minimum) for 10 windows.
        let (tx, body) = guarded(RULE);
        tokio::spawn(async move {
            for _ in 0..100 {
                let _ = tx.unbounded_send(Ok(Frame::data(Bytes::from(vec![0u8; 200]))));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(all.len(), 20_000);
    }

    #[tokio::test(start_paused = true)]
    async fn time_blobseal_spends_elsewhere_does_not_count() {
        // The client sent everything at once; blobseal reads it slowly (back-pressure): no failure.
        let (tx, mut body) = guarded(RULE);
        for _ in 0..5 {
            tx.unbounded_send(Ok(Frame::data(Bytes::from_static(b"abc")))).unwrap();
        }
        drop(tx);
        let mut n = 0;
        while let Some(frame) = body.frame().await {
            frame.unwrap();
            n += 1;
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        assert_eq!(n, 5);
    }
}
