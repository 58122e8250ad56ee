//! The HTTP client under the Azure pipeline: hyper + rustls (aws-lc), the stack the rest of
//! blobseal already runs on.
//!
//! `azure_core`'s own client is reqwest, which would pull a second HTTP and TLS stack (and ring)
//! into the binary; the pipeline takes any [`HttpClient`], so this one plugs hyper in. Request
//! bodies stream: [`OneShotBody`] hands the pipeline a client's upload as the `SeekableStream` it
//! asks for, without buffering it. Response bodies stream back with an idle timeout.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use azure_core::error::{Error as AzError, ErrorKind as AzErrorKind};
use azure_core::http::headers::{HeaderName, HeaderValue, Headers};
use azure_core::http::{AsyncRawResponse, Body, HttpClient, Request, StatusCode};
use azure_core::stream::SeekableStream;
use bytes::{Bytes, BytesMut};
use futures::io::AsyncRead;
use futures::{AsyncReadExt as _, StreamExt as _};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::backend::ByteStream;

/// A dead endpoint must show up as `Unavailable` in seconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait for response headers once a request without a streamed body is sent, and longest
/// silence inside a response body.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Read size when draining a [`SeekableStream`] that is not ours.
const READ_CHUNK: usize = 64 * 1024;

type HyperBody = BoxBody<Bytes, io::Error>;

/// `azure_core`'s [`HttpClient`] on hyper, for `http` (emulators) and `https` endpoints.
#[derive(Debug)]
pub(super) struct HyperClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, HyperBody>,
}

impl HyperClient {
    pub(super) fn new() -> io::Result<Self> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        // Below Node's (Azurite's) 5 s keep-alive, so a pooled connection is rarely one the server closed.
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(4)).build(https);
        Ok(Self { client })
    }
}

fn io_error(e: impl std::error::Error + Send + Sync + 'static) -> AzError {
    AzError::new(AzErrorKind::Io, e)
}

/// A request body the pipeline can hold: bytes, or a stream read once.
fn request_body(body: &Body) -> (HyperBody, bool) {
    match body {
        Body::Bytes(bytes) => (Full::new(bytes.clone()).map_err(|never| match never {}).boxed(), false),
        Body::SeekableStream(stream) => {
            let reader: Box<dyn SeekableStream> = stream.clone();
            let chunks = futures::stream::unfold(reader, |mut reader| async move {
                let mut buf = BytesMut::zeroed(READ_CHUNK);
                match reader.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        Some((Ok(Frame::data(buf.freeze())), reader))
                    }
                    Err(e) => Some((Err(e), reader)),
                }
            });
            (http_body_util::BodyExt::boxed(StreamBody::new(chunks)), true)
        }
    }
}

#[async_trait]
impl HttpClient for HyperClient {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let (body, streamed) = request_body(request.body());
        let mut builder = hyper::Request::builder().method(request.method().as_str()).uri(request.url().as_str());
        for (name, value) in request.headers().iter() {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let has_length = request.headers().iter().any(|(n, _)| n.as_str() == "content-length");
        if let (false, Some(len)) = (has_length, request.body().len()) {
            builder = builder.header(hyper::header::CONTENT_LENGTH, len);
        }
        let req = builder.body(body).map_err(io_error)?;
        let sent = self.client.request(req);
        // A streamed upload takes as long as the client takes to send it: only bounded requests
        // get a deadline on the whole exchange (the front door bounds the client's pace).
        let response = if streamed {
            sent.await.map_err(io_error)?
        } else {
            tokio::time::timeout(READ_TIMEOUT, sent)
                .await
                .map_err(|_| io_error(io::Error::new(io::ErrorKind::TimedOut, "Azure did not answer in time")))?
                .map_err(io_error)?
        };
        let (parts, body) = response.into_parts();
        let mut headers = Headers::new();
        for (name, value) in &parts.headers {
            if let Ok(value) = value.to_str() {
                headers.insert(HeaderName::from(name.as_str().to_owned()), HeaderValue::from(value.to_owned()));
            }
        }
        let status = StatusCode::from(parts.status.as_u16());
        let stream = futures::stream::unfold(Some(body), |body| async move {
            let mut body = body?;
            loop {
                match tokio::time::timeout(READ_TIMEOUT, body.frame()).await {
                    Err(_) => {
                        let e = io::Error::new(io::ErrorKind::TimedOut, "Azure response body stalled");
                        return Some((Err(io_error(e)), None));
                    }
                    Ok(None) => return None,
                    Ok(Some(Err(e))) => return Some((Err(io_error(e)), None)),
                    Ok(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            return Some((Ok(data), Some(body)));
                        }
                    }
                }
            }
        });
        Ok(AsyncRawResponse::new(status, headers, Box::pin(stream)))
    }
}

/// A client's upload as the `SeekableStream` the pipeline wants, or one piece of it. It can be
/// read once: clones share the one stream, and `reset` after the first byte was taken fails, so
/// a retry of a streamed upload fails instead of sending a truncated body. (The backend's
/// pipeline does not retry; this is the guard if that changes.)
#[derive(Clone)]
pub(super) struct OneShotBody {
    source: Arc<Mutex<Source>>,
    piece: Arc<Mutex<Piece>>,
    len: u64,
}

/// The client stream, shared by the pieces cut from it.
struct Source {
    stream: ByteStream,
    pending: Bytes,
    /// Why the client's body failed, once it has: the upload's fault, not Azure's.
    broken: Option<String>,
    /// The stream has ended (it is never polled again).
    ended: bool,
}

impl Source {
    fn fail(&mut self, why: String) -> io::Error {
        let e = io::Error::new(io::ErrorKind::InvalidData, why.clone());
        self.broken = Some(why);
        e
    }
}

/// How much of the source this piece still owns.
struct Piece {
    remaining: u64,
    started: bool,
    /// The last piece checks that the source ends with it.
    last: bool,
}

impl OneShotBody {
    pub(super) fn new(stream: ByteStream, len: u64) -> Self {
        Self {
            source: Arc::new(Mutex::new(Source { stream, pending: Bytes::new(), broken: None, ended: false })),
            piece: Arc::new(Mutex::new(Piece { remaining: len, started: false, last: true })),
            len,
        }
    }

    /// Why the client's body failed (too short, too long, or broken), if it did.
    pub(super) fn broken(&self) -> Option<String> {
        self.source.lock().ok().and_then(|s| s.broken.clone())
    }

    /// Cuts the body into consecutive pieces of `sizes` bytes, to be read in order.
    pub(super) fn split(self, sizes: &[u64]) -> Vec<OneShotBody> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| OneShotBody {
                source: Arc::clone(&self.source),
                piece: Arc::new(Mutex::new(Piece { remaining: len, started: false, last: i + 1 == sizes.len() })),
                len,
            })
            .collect()
    }
}

impl std::fmt::Debug for OneShotBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneShotBody").field("len", &self.len).finish_non_exhaustive()
    }
}

fn poisoned() -> io::Error {
    io::Error::other("upload body lock poisoned")
}

impl Source {
    /// Makes `pending` non-empty, or reports the end of the client's body (`Ok(false)`).
    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        while self.pending.is_empty() {
            if self.ended {
                return Poll::Ready(Ok(false));
            }
            match self.stream.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => self.ended = true,
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Err(self.fail(format!("the upload body failed: {e}"))))
                }
                Poll::Ready(Some(Ok(bytes))) => self.pending = bytes,
            }
        }
        Poll::Ready(Ok(true))
    }
}

impl AsyncRead for OneShotBody {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut piece = self.piece.lock().map_err(|_| poisoned())?;
        piece.started = true;
        if buf.is_empty() || piece.remaining == 0 {
            return Poll::Ready(Ok(0));
        }
        let mut source = self.source.lock().map_err(|_| poisoned())?;
        match source.fill(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(false)) => {
                // Shorter than promised: an error, so no blob is committed from it.
                return Poll::Ready(Err(source.fail("the upload body ended before its length".into())));
            }
            Poll::Ready(Ok(true)) => {}
        }
        let n = buf.len().min(source.pending.len()).min(usize::try_from(piece.remaining).unwrap_or(usize::MAX));
        if piece.last && n as u64 == piece.remaining {
            // The final bytes go out only once the body is known to end with them: a longer body
            // must fail before the server has a whole blob to commit.
            if source.pending.len() > n {
                return Poll::Ready(Err(source.fail("the upload body is longer than its length".into())));
            }
            let last = source.pending.split_to(n);
            let more = source.fill(cx);
            if !source.pending.is_empty() {
                return Poll::Ready(Err(source.fail("the upload body is longer than its length".into())));
            }
            source.pending = last;
            match more {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(_)) => {}
            }
        }
        let chunk = source.pending.split_to(n);
        buf[..n].copy_from_slice(&chunk);
        piece.remaining -= n as u64;
        Poll::Ready(Ok(n))
    }
}

#[async_trait]
impl SeekableStream for OneShotBody {
    async fn reset(&mut self) -> azure_core::Result<()> {
        let started = self.piece.lock().map(|p| p.started).unwrap_or(true);
        if started {
            return Err(AzError::with_message(AzErrorKind::Io, "a streamed upload cannot be sent twice"));
        }
        Ok(())
    }

    fn len(&self) -> Option<u64> {
        Some(self.len)
    }
}

impl From<OneShotBody> for Body {
    fn from(body: OneShotBody) -> Self {
        Body::SeekableStream(Box::new(body))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_one_shot_body_reads_once_and_refuses_a_second_send() {
        let chunks: Vec<io::Result<Bytes>> = vec![Ok(Bytes::from_static(b"hello ")), Ok(Bytes::from_static(b"world"))];
        let mut body = OneShotBody::new(futures::stream::iter(chunks).boxed(), 11);
        assert!(body.reset().await.is_ok(), "nothing read yet");
        let mut clone = body.clone();
        let mut out = Vec::new();
        clone.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"hello world");
        assert!(body.reset().await.is_err(), "the clone consumed the shared stream");
    }

    #[tokio::test]
    async fn a_broken_upload_surfaces_as_a_read_error() {
        let chunks: Vec<io::Result<Bytes>> = vec![Ok(Bytes::from_static(b"abc")), Err(io::Error::other("client gone"))];
        let mut body = OneShotBody::new(futures::stream::iter(chunks).boxed(), 10);
        let mut out = Vec::new();
        assert!(body.read_to_end(&mut out).await.is_err());
        let short: Vec<io::Result<Bytes>> = vec![Ok(Bytes::from_static(b"abc"))];
        let mut body = OneShotBody::new(futures::stream::iter(short).boxed(), 10);
        assert!(body.read_to_end(&mut Vec::new()).await.is_err(), "a body shorter than its length fails");
    }

    #[tokio::test]
    async fn a_longer_body_fails_before_its_last_byte_is_handed_out() {
        let chunks: Vec<io::Result<Bytes>> = vec![Ok(Bytes::from_static(b"abcd")), Ok(Bytes::from_static(b"ef"))];
        let mut body = OneShotBody::new(futures::stream::iter(chunks).boxed(), 4);
        let mut out = Vec::new();
        assert!(body.read_to_end(&mut out).await.is_err());
        assert!(out.is_empty(), "no byte of the final chunk went out: {out:?}");
        assert!(body.broken().is_some());
    }

    #[tokio::test]
    async fn pieces_read_consecutive_ranges_of_one_stream() {
        let chunks: Vec<io::Result<Bytes>> = vec![Ok(Bytes::from_static(b"abcdefg")), Ok(Bytes::from_static(b"hij"))];
        let pieces = OneShotBody::new(futures::stream::iter(chunks).boxed(), 10).split(&[4, 4, 2]);
        let mut got = Vec::new();
        for mut piece in pieces {
            let mut out = Vec::new();
            piece.read_to_end(&mut out).await.unwrap();
            got.push(String::from_utf8(out).unwrap());
        }
        assert_eq!(got, ["abcd", "efgh", "ij"]);
    }
}
