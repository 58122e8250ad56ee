//! Request and response bodies: our [`ByteStream`] in and out of the SDK, streaming, never buffered.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use http_body::{Frame, SizeHint};

use crate::backend::{BackendError, ByteStream};

/// The upload body: relays the caller's stream and turns a wrong length into a stream error, so
/// the request is aborted before S3 can commit it. `failed` tells `put` the error was the body's.
struct UploadBody {
    // Mutex only to make the body `Sync` as the SDK requires; it is reached through `&mut`.
    inner: Mutex<ByteStream>,
    remaining: u64,
    failed: Arc<AtomicBool>,
}

impl UploadBody {
    fn fail(&self, msg: String) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        self.failed.store(true, Ordering::SeqCst);
        Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::InvalidData, msg))))
    }
}

impl http_body::Body for UploadBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let this = self.get_mut();
        let stream = this.inner.get_mut().unwrap_or_else(PoisonError::into_inner);
        match stream.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                let n = chunk.len() as u64;
                if n > this.remaining {
                    return this.fail("body longer than its declared length".into());
                }
                this.remaining -= n;
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Some(Err(e))) => this.fail(format!("body stream failed: {e}")),
            Poll::Ready(None) if this.remaining > 0 => this.fail("body shorter than its declared length".into()),
            Poll::Ready(None) => Poll::Ready(None),
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// Wraps `body` (declared `len` bytes) for an upload request. The returned flag is set if the
/// request failed because of the body itself (stream error or wrong length), so the caller can
/// report [`body_failed`] instead of whatever the SDK made of the aborted request.
///
/// The SDK cannot rebuild this body, so it never retries the request: a stream is consumed once.
pub(super) fn upload_body(body: ByteStream, len: u64) -> (SdkByteStream, Arc<AtomicBool>) {
    let failed = Arc::new(AtomicBool::new(false));
    let upload = UploadBody { inner: Mutex::new(body), remaining: len, failed: failed.clone() };
    (SdkByteStream::from_body_1_x(upload), failed)
}

/// The error for an upload whose body stream failed or did not match its declared length.
pub(super) fn body_failed() -> BackendError {
    BackendError::InvalidRequest("body stream failed or had the wrong length".into())
}

/// Relays the SDK's response body as our [`ByteStream`], chunk by chunk.
pub(super) fn download(body: SdkByteStream) -> ByteStream {
    let s = futures::stream::unfold(body, |mut body| async move {
        let item = body.next().await?;
        Some((item.map_err(io::Error::other), body))
    });
    Box::pin(s) as Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>
}
