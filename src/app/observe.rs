//! Request metrics for both client listeners: requests in flight, time to the response head, time
//! to the end of the response body, bytes in and out, and the count by operation and status class.
//!
//! Each request's one log line is written when it ends, so it carries the bytes sent.
//! The duration ends when the response body has been sent (or the client went away), not when the
//! handler returns its head: a large GET is mostly body. The in-flight gauge covers the same span.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use prometheus_client::metrics::counter::Counter;

use crate::metrics::{Front, FrontLabels, OperationLabels, RequestLabels};

/// What the request's log line says besides the counts (names only; never a query, header or secret).
pub struct RequestRecord {
    pub id: String,
    pub peer: std::net::SocketAddr,
    pub method: http::Method,
    /// The path with any data-subject segment redacted and control characters escaped.
    pub path: String,
    pub front: Front,
    pub operation: &'static str,
    pub tenant: Option<String>,
    pub bucket: Option<String>,
    pub status: u16,
}

/// One request being served, from its head to the end of its response body. When it ends (the
/// response body finished or the client went away) it records the metrics and writes the
/// request's one log line.
pub struct InFlight {
    record: RequestRecord,
    started: Instant,
    bytes_in: Arc<AtomicU64>,
    bytes_out: u64,
}

impl InFlight {
    /// Starts counting a request; `record`'s operation, tenant, bucket and status are filled in later.
    pub fn start(record: RequestRecord) -> Self {
        crate::metrics::get().in_flight.get_or_create(&FrontLabels { front: record.front }).inc();
        Self { record, started: Instant::now(), bytes_in: Arc::new(AtomicU64::new(0)), bytes_out: 0 }
    }

    /// The request body, its bytes counted for this request and in `bytes_in`.
    pub fn request_body<B>(&self, body: B) -> CountedBody<B> {
        let total = crate::metrics::get().bytes_in.get_or_create(&FrontLabels { front: self.record.front }).clone();
        CountedBody { inner: body, total, sink: Sink::In(Arc::clone(&self.bytes_in)) }
    }

    /// Records the response head (status, time to first byte) and wraps its body, which ends the
    /// request when it ends or is dropped.
    pub fn respond(
        mut self,
        operation: &'static str,
        tenant: Option<String>,
        bucket: Option<String>,
        response: hyper::Response<s3s::Body>,
    ) -> hyper::Response<s3s::Body> {
        let front = self.record.front;
        self.record.operation = operation;
        self.record.tenant = tenant;
        self.record.bucket = bucket;
        self.record.status = response.status().as_u16();
        let m = crate::metrics::get();
        let op = OperationLabels { front, operation };
        m.time_to_first_byte.get_or_create(&op).observe(self.started.elapsed().as_secs_f64());
        let status_class = crate::metrics::status_class(response.status());
        m.requests.get_or_create(&RequestLabels { front, operation, status_class }).inc();
        let (parts, body) = response.into_parts();
        let total = m.bytes_out.get_or_create(&FrontLabels { front }).clone();
        let counted = CountedBody { inner: body, total, sink: Sink::Out(Some(Box::new(self))) };
        hyper::Response::from_parts(parts, s3s::Body::http_body(counted))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let r = &self.record;
        let m = crate::metrics::get();
        m.in_flight.get_or_create(&FrontLabels { front: r.front }).dec();
        let op = OperationLabels { front: r.front, operation: r.operation };
        let elapsed = self.started.elapsed();
        m.request_duration.get_or_create(&op).observe(elapsed.as_secs_f64());
        let ms = format!("{:.1}", elapsed.as_secs_f64() * 1000.0);
        tracing::info!(
            request_id = %r.id,
            peer = %r.peer,
            tenant = r.tenant.as_deref().unwrap_or("-"),
            bucket = r.bucket.as_deref().unwrap_or("-"),
            op = r.operation,
            method = %r.method,
            path = %r.path,
            status = r.status,
            ms = %ms,
            bytes_in = self.bytes_in.load(Ordering::Relaxed),
            bytes_out = self.bytes_out,
            "request"
        );
    }
}

/// Where a [`CountedBody`]'s bytes go.
enum Sink {
    /// A request body: the request's shared count (its log line) and `bytes_in`.
    In(Arc<AtomicU64>),
    /// A response body: the request itself, ended (dropped) when the body ends. Boxed: the record is
    /// large and most of a body's life is spent polling, not ending.
    Out(Option<Box<InFlight>>),
}

/// A body whose data bytes are counted (see [`Sink`]).
pub struct CountedBody<B> {
    inner: B,
    /// The front's `bytes_in` or `bytes_out` counter, looked up once per body rather than per frame.
    total: Counter,
    sink: Sink,
}

impl<B> Body for CountedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = u64::try_from(data.len()).unwrap_or(u64::MAX);
                    this.total.inc_by(n);
                    match &mut this.sink {
                        Sink::In(count) => {
                            count.fetch_add(n, Ordering::Relaxed);
                        }
                        Sink::Out(Some(request)) => request.bytes_out = request.bytes_out.saturating_add(n),
                        Sink::Out(None) => {}
                    }
                }
            }
            Poll::Ready(None | Some(Err(_))) => {
                if let Sink::Out(request) = &mut this.sink {
                    *request = None;
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
