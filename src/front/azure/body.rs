//! A request body as a core `ByteStream` of exactly its declared length, checked on the way through:
//! transactional `Content-MD5` and `x-ms-content-crc64` are verified when the last byte arrives, before
//! it is passed on (so a mismatch fails the write and nothing becomes visible), and the plaintext's MD5
//! can be computed for the blob's stored `Content-MD5`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use md5::Digest as _;

use crate::backend::ByteStream;

/// What the body is checked against.
#[derive(Debug, Clone, Copy, Default)]
pub struct Checks {
    pub md5: Option<[u8; 16]>,
    pub crc64: Option<u64>,
    /// Compute the MD5 even without an expected one (for the blob's stored MD5).
    pub compute_md5: bool,
    /// Compute the CRC-64 even without an expected one (Put Block answers with it).
    pub compute_crc64: bool,
}

/// Why a body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    Md5,
    Crc64,
    Length,
}

#[derive(Debug, Default)]
struct State {
    mismatch: Option<Mismatch>,
    md5: Option<[u8; 16]>,
    crc64: Option<u64>,
}

/// The outcome of the checks, readable once the write returned.
#[derive(Debug, Clone, Default)]
pub struct Verdict(Arc<Mutex<State>>);

impl Verdict {
    pub fn mismatch(&self) -> Option<Mismatch> {
        self.0.lock().map(|s| s.mismatch).unwrap_or(None)
    }

    /// The MD5 of the whole body, once all of it went through (with `compute_md5` or an expected MD5).
    pub fn md5(&self) -> Option<[u8; 16]> {
        self.0.lock().map(|s| s.md5).unwrap_or(None)
    }

    /// The CRC-64/NVME of the whole body, once all of it went through (with `compute_crc64` or an expected one).
    pub fn crc64(&self) -> Option<u64> {
        self.0.lock().map(|s| s.crc64).unwrap_or(None)
    }

    fn set(&self, f: impl FnOnce(&mut State)) {
        if let Ok(mut s) = self.0.lock() {
            f(&mut s);
        }
    }
}

struct Checked<S> {
    inner: S,
    remaining: u64,
    md5: Option<md5::Md5>,
    crc64: Option<crc64fast_nvme::Digest>,
    checks: Checks,
    verdict: Verdict,
    done: bool,
}

impl<S> Checked<S> {
    fn fail(&mut self, why: Mismatch) -> Poll<Option<std::io::Result<Bytes>>> {
        self.done = true;
        self.verdict.set(|s| s.mismatch = Some(why));
        let text = match why {
            Mismatch::Md5 => "Content-MD5 mismatch",
            Mismatch::Crc64 => "x-ms-content-crc64 mismatch",
            Mismatch::Length => "body length differs from Content-Length",
        };
        Poll::Ready(Some(Err(std::io::Error::new(std::io::ErrorKind::InvalidData, text))))
    }

    /// Checks the digests once every byte arrived.
    fn finish(&mut self) -> Result<(), Mismatch> {
        if let Some(h) = self.md5.take() {
            let got: [u8; 16] = h.finalize().into();
            if self.checks.md5.is_some_and(|want| want != got) {
                return Err(Mismatch::Md5);
            }
            self.verdict.set(|s| s.md5 = Some(got));
        }
        if let Some(c) = self.crc64.take() {
            let got = c.sum64();
            if self.checks.crc64.is_some_and(|want| want != got) {
                return Err(Mismatch::Crc64);
            }
            self.verdict.set(|s| s.crc64 = Some(got));
        }
        Ok(())
    }
}

impl<S, E> Stream for Checked<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                Poll::Ready(Some(Err(std::io::Error::other(e.to_string()))))
            }
            Poll::Ready(Some(Ok(chunk))) => {
                let n = chunk.len() as u64;
                if n > self.remaining {
                    return self.fail(Mismatch::Length);
                }
                self.remaining -= n;
                if let Some(h) = self.md5.as_mut() {
                    h.update(&chunk);
                }
                if let Some(c) = self.crc64.as_mut() {
                    c.write(&chunk);
                }
                if self.remaining == 0 {
                    if let Err(why) = self.finish() {
                        return self.fail(why);
                    }
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => {
                self.done = true;
                if self.remaining > 0 {
                    return self.fail(Mismatch::Length);
                }
                // An empty body: the digests are checked here.
                match self.finish() {
                    Ok(()) => Poll::Ready(None),
                    Err(why) => self.fail(why),
                }
            }
        }
    }
}

/// `body` as exactly `len` checked bytes.
pub fn checked<S, E>(body: S, len: u64, checks: Checks) -> (ByteStream, Verdict)
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send + 'static,
    E: std::fmt::Display + 'static,
{
    let verdict = Verdict::default();
    let stream = Checked {
        inner: body,
        remaining: len,
        md5: (checks.md5.is_some() || checks.compute_md5).then(md5::Md5::new),
        crc64: (checks.crc64.is_some() || checks.compute_crc64).then(crc64fast_nvme::Digest::new),
        checks,
        verdict: verdict.clone(),
        done: false,
    };
    (Box::pin(stream), verdict)
}

/// The MD5 and CRC-64 of an empty body: what a zero-length write is checked against up front (the
/// sealer never polls an empty body).
pub fn check_empty(checks: &Checks) -> Result<(), Mismatch> {
    let empty_md5: [u8; 16] = md5::Md5::new().finalize().into();
    if checks.md5.is_some_and(|m| m != empty_md5) {
        return Err(Mismatch::Md5);
    }
    if checks.crc64.is_some_and(|c| c != 0) {
        return Err(Mismatch::Crc64);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt as _;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send {
        futures::stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>())
    }

    async fn drain(s: ByteStream) -> Result<Vec<u8>, std::io::Error> {
        let parts: Vec<Bytes> = futures::TryStreamExt::try_collect(s).await?;
        Ok(parts.concat())
    }

    #[tokio::test]
    async fn passes_good_bodies_and_computes_md5() {
        let want: [u8; 16] = md5::Md5::digest(b"hello world").into();
        let mut crc = crc64fast_nvme::Digest::new();
        crc.write(b"hello world");
        let checks = Checks { md5: Some(want), crc64: Some(crc.sum64()), ..Checks::default() };
        let (s, v) = checked(chunks(&[b"hello ", b"world"]), 11, checks);
        assert_eq!(drain(s).await.unwrap(), b"hello world");
        assert_eq!((v.mismatch(), v.md5(), v.crc64()), (None, Some(want), Some(crc.sum64())));
        let (s, v) = checked(chunks(&[b"hello ", b"world"]), 11, Checks { compute_crc64: true, ..Checks::default() });
        assert_eq!(drain(s).await.unwrap(), b"hello world");
        assert_eq!((v.md5(), v.crc64()), (None, Some(crc.sum64())));
    }

    #[tokio::test]
    async fn refuses_before_the_last_byte_goes_on() {
        let checks = Checks { md5: Some([0; 16]), ..Checks::default() };
        let (mut s, v) = checked(chunks(&[b"abc", b"def"]), 6, checks);
        assert_eq!(s.next().await.unwrap().unwrap(), Bytes::from_static(b"abc"));
        assert!(s.next().await.unwrap().is_err(), "the last chunk is replaced by the error");
        assert!(s.next().await.is_none());
        assert_eq!(v.mismatch(), Some(Mismatch::Md5));
        let (s, v) = checked(chunks(&[b"abc"]), 6, Checks::default());
        assert!(drain(s).await.is_err());
        assert_eq!(v.mismatch(), Some(Mismatch::Length));
        let (s, v) = checked(chunks(&[b"abcdefg"]), 6, Checks::default());
        assert!(drain(s).await.is_err());
        assert_eq!(v.mismatch(), Some(Mismatch::Length));
        let (s, v) = checked(chunks(&[b"abc"]), 3, Checks { crc64: Some(1), ..Checks::default() });
        assert!(drain(s).await.is_err());
        assert_eq!(v.mismatch(), Some(Mismatch::Crc64));
    }

    #[test]
    fn empty_bodies_checked_up_front() {
        assert!(check_empty(&Checks::default()).is_ok());
        let empty: [u8; 16] = md5::Md5::new().finalize().into();
        assert!(check_empty(&Checks { md5: Some(empty), ..Checks::default() }).is_ok());
        assert_eq!(check_empty(&Checks { md5: Some([1; 16]), ..Checks::default() }), Err(Mismatch::Md5));
    }
}
