//! Verifies a request body against the digests the client declared: `Content-MD5` and the
//! `x-amz-checksum-*` headers or aws-chunked trailers, all over the plaintext.
//!
//! s3s checks chunk and trailer *signatures* but not checksum *values*, so blobseal must. The check
//! runs when the body ends and, on a mismatch, turns the end of the stream into an error: the sealer
//! then never emits its final segment and the backend write is aborted, so a corrupt upload never
//! becomes visible. The front end learns why through the shared [`ChecksumVerdict`].

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use base64::Engine as _;
use bytes::Bytes;
use futures::Stream;
use md5::Digest as _;
use s3s::dto::StreamingBlob;
use s3s::TrailingHeaders;
use s3s::{s3_error, S3Result};

/// An algorithm S3 clients may send a checksum for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl Algorithm {
    /// The header (and trailer) name carrying this checksum.
    pub fn header(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "x-amz-checksum-crc32",
            Algorithm::Crc32c => "x-amz-checksum-crc32c",
            Algorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Algorithm::Sha1 => "x-amz-checksum-sha1",
            Algorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    pub fn from_header(name: &str) -> Option<Self> {
        [Self::Crc32, Self::Crc32c, Self::Crc64Nvme, Self::Sha1, Self::Sha256]
            .into_iter()
            .find(|a| a.header().eq_ignore_ascii_case(name.trim()))
    }
}

/// Running state of one checksum algorithm.
enum Hasher {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Crc64Nvme(crc64fast_nvme::Digest),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    fn new(a: Algorithm) -> Self {
        match a {
            Algorithm::Crc32 => Hasher::Crc32(crc32fast::Hasher::new()),
            Algorithm::Crc32c => Hasher::Crc32c(0),
            Algorithm::Crc64Nvme => Hasher::Crc64Nvme(crc64fast_nvme::Digest::new()),
            Algorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc32(h) => h.update(data),
            Hasher::Crc32c(c) => *c = crc32c::crc32c_append(*c, data),
            Hasher::Crc64Nvme(h) => h.write(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }

    /// The checksum, base64 of its big-endian bytes, as S3 prints it.
    fn finish(self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        match self {
            Hasher::Crc32(h) => b64.encode(h.finalize().to_be_bytes()),
            Hasher::Crc32c(c) => b64.encode(c.to_be_bytes()),
            Hasher::Crc64Nvme(h) => b64.encode(h.sum64().to_be_bytes()),
            Hasher::Sha1(h) => b64.encode(h.finalize()),
            Hasher::Sha256(h) => b64.encode(h.finalize()),
        }
    }
}

/// What the client declared about its body.
#[derive(Debug, Default, Clone)]
pub struct Expected {
    /// `Content-MD5`, decoded.
    pub md5: Option<[u8; 16]>,
    /// Checksums given as headers: (algorithm, base64 value).
    pub headers: Vec<(Algorithm, String)>,
    /// The checksum announced in `x-amz-trailer`, to be read from the trailers.
    pub trailer: Option<Algorithm>,
}

impl Expected {
    /// The digests a write declares: `Content-MD5`, the `x-amz-checksum-*` header values (crc32, crc32c,
    /// crc64nvme, sha1, sha256, in that order) and the checksum announced in `x-amz-trailer`.
    pub fn declared(
        content_md5: Option<&str>,
        checksums: [Option<&str>; 5],
        headers: &http::HeaderMap,
    ) -> S3Result<Self> {
        // s3s reads an empty header as absent; S3 refuses an empty Content-MD5, so look at the raw header too.
        let raw_md5 = || headers.get("content-md5").map(|v| v.to_str().unwrap_or_default());
        let md5 = match content_md5.or_else(raw_md5) {
            Some(v) => Some(
                decode_content_md5(v)
                    .ok_or_else(|| s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid."))?,
            ),
            None => None,
        };
        let algs = [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme, Algorithm::Sha1, Algorithm::Sha256];
        let given = algs.into_iter().zip(checksums).filter_map(|(a, v)| v.map(|v| (a, v.trim().to_owned()))).collect();
        let trailer = match headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()) {
            Some(name) => Some(
                Algorithm::from_header(name)
                    .ok_or_else(|| s3_error!(InvalidArgument, "Unsupported x-amz-trailer: {name}"))?,
            ),
            None => None,
        };
        Ok(Expected { md5, headers: given, trailer })
    }
}

impl Mismatch {
    /// The S3 error a client gets for this mismatch.
    pub fn to_s3_error(&self) -> s3s::S3Error {
        match self {
            Mismatch::Md5 => s3_error!(BadDigest, "The Content-MD5 you specified did not match what we received."),
            Mismatch::Checksum(h) => {
                s3_error!(BadDigest, "The {h} you specified did not match the calculated checksum.")
            }
            Mismatch::MissingTrailer(h) => {
                s3_error!(InvalidRequest, "The announced trailing checksum {h} was not sent.")
            }
        }
    }
}

/// Why a body was refused; readable after the body stream failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    Md5,
    Checksum(&'static str),
    /// The trailer announced in `x-amz-trailer` never came.
    MissingTrailer(&'static str),
}

/// Shared slot for the verdict of a [`VerifiedBody`].
#[derive(Debug, Default, Clone)]
pub struct ChecksumVerdict(Arc<Mutex<Option<Mismatch>>>);

impl ChecksumVerdict {
    pub fn mismatch(&self) -> Option<Mismatch> {
        self.0.lock().ok().and_then(|g| g.clone())
    }

    fn set(&self, m: Mismatch) {
        if let Ok(mut g) = self.0.lock() {
            *g = Some(m);
        }
    }
}

/// A request body that verifies the declared digests when it ends.
pub struct VerifiedBody {
    inner: StreamingBlob,
    md5: Option<(md5::Md5, [u8; 16])>,
    hashers: Vec<(Algorithm, Hasher, Option<String>)>,
    trailers: Option<TrailingHeaders>,
    verdict: ChecksumVerdict,
    done: bool,
}

impl VerifiedBody {
    pub fn new(inner: StreamingBlob, expected: Expected, trailers: Option<TrailingHeaders>) -> (Self, ChecksumVerdict) {
        let verdict = ChecksumVerdict::default();
        let mut hashers: Vec<(Algorithm, Hasher, Option<String>)> =
            expected.headers.into_iter().map(|(a, v)| (a, Hasher::new(a), Some(v))).collect();
        if let Some(a) = expected.trailer {
            if !hashers.iter().any(|(h, _, _)| *h == a) {
                hashers.push((a, Hasher::new(a), None));
            }
        }
        let body = Self {
            inner,
            md5: expected.md5.map(|m| (md5::Md5::new(), m)),
            hashers,
            trailers: if expected.trailer.is_some() { trailers } else { None },
            verdict: verdict.clone(),
            done: false,
        };
        (body, verdict)
    }

    /// Checks every digest; called once, at the end of the body.
    fn verify(&mut self) -> Result<(), Mismatch> {
        if let Some((h, want)) = self.md5.take() {
            if h.finalize().as_slice() != want.as_slice() {
                return Err(Mismatch::Md5);
            }
        }
        let trailer_map = self.trailers.as_ref().and_then(TrailingHeaders::take);
        for (alg, hasher, want) in std::mem::take(&mut self.hashers) {
            let got = hasher.finish();
            let want = match want {
                Some(w) => Some(w),
                None => trailer_map
                    .as_ref()
                    .and_then(|m| m.get(alg.header()))
                    .and_then(|v| v.to_str().ok())
                    .map(|s| s.trim().to_owned()),
            };
            match want {
                Some(w) if w == got => {}
                Some(_) => return Err(Mismatch::Checksum(alg.header())),
                None => return Err(Mismatch::MissingTrailer(alg.header())),
            }
        }
        Ok(())
    }
}

impl Stream for VerifiedBody {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                let this = &mut *self;
                if let Some((h, _)) = this.md5.as_mut() {
                    h.update(&chunk);
                }
                for (_, h, _) in this.hashers.iter_mut() {
                    h.update(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                Poll::Ready(Some(Err(io::Error::other(e))))
            }
            Poll::Ready(None) => {
                self.done = true;
                match self.verify() {
                    Ok(()) => Poll::Ready(None),
                    Err(m) => {
                        self.verdict.set(m.clone());
                        Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::InvalidData, format!("{m:?}")))))
                    }
                }
            }
        }
    }
}

/// Decodes a `Content-MD5` header value; `None` if it is not base64 of 16 bytes.
pub fn decode_content_md5(value: &str) -> Option<[u8; 16]> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(value.trim()).ok()?;
    <[u8; 16]>::try_from(bytes.as_slice()).ok()
}

/// `x-amz-decoded-content-length` of an `aws-chunked` body sent without `Content-Length` (boto3 and
/// the AWS CLI over https send `Transfer-Encoding: chunked` with it): the object's length. `None`
/// when absent; a value that is not a length is refused.
pub fn decoded_content_length(headers: &http::HeaderMap) -> S3Result<Option<i64>> {
    let Some(v) = headers.get("x-amz-decoded-content-length") else { return Ok(None) };
    let n = v.to_str().ok().and_then(|t| t.trim().parse::<i64>().ok()).filter(|n| *n >= 0);
    n.map(Some).ok_or_else(|| s3_error!(InvalidArgument, "x-amz-decoded-content-length is not a length"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt as _;

    fn blob(parts: &[&'static [u8]]) -> StreamingBlob {
        let items: Vec<Result<Bytes, io::Error>> = parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        StreamingBlob::wrap(futures::stream::iter(items))
    }

    async fn drain(mut b: VerifiedBody) -> Result<Vec<u8>, io::Error> {
        let mut out = Vec::new();
        while let Some(item) = b.next().await {
            out.extend_from_slice(&item?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn good_and_bad_md5() {
        let md5 = decode_content_md5("XUFAKrxLKna5cZ2REBfFkg==");
        assert!(md5.is_some()); // md5("hello")
        let (b, v) = VerifiedBody::new(blob(&[b"hel", b"lo"]), Expected { md5, ..Default::default() }, None);
        assert_eq!(drain(b).await.ok(), Some(b"hello".to_vec()));
        assert_eq!(v.mismatch(), None);
        let (b, v) = VerifiedBody::new(blob(&[b"hellO"]), Expected { md5, ..Default::default() }, None);
        assert!(drain(b).await.is_err());
        assert_eq!(v.mismatch(), Some(Mismatch::Md5));
    }

    #[tokio::test]
    async fn crc32_and_sha256_headers() {
        // Known values for "hello": CRC32 0x3610a686, SHA-256 2cf24dba...
        let exp = Expected {
            headers: vec![
                (Algorithm::Crc32, "NhCmhg==".into()),
                (Algorithm::Sha256, "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=".into()),
            ],
            ..Default::default()
        };
        let (b, v) = VerifiedBody::new(blob(&[b"hello"]), exp.clone(), None);
        assert!(drain(b).await.is_ok());
        assert_eq!(v.mismatch(), None);
        let (b, v) = VerifiedBody::new(blob(&[b"jello"]), exp, None);
        assert!(drain(b).await.is_err());
        assert_eq!(v.mismatch(), Some(Mismatch::Checksum("x-amz-checksum-crc32")));
    }

    #[tokio::test]
    async fn announced_trailer_that_never_comes_is_refused() {
        let exp = Expected { trailer: Some(Algorithm::Crc32c), ..Default::default() };
        let (b, v) = VerifiedBody::new(blob(&[b"hello"]), exp, None);
        assert!(drain(b).await.is_err());
        assert_eq!(v.mismatch(), Some(Mismatch::MissingTrailer("x-amz-checksum-crc32c")));
    }

    #[test]
    fn content_md5_must_be_16_bytes() {
        assert!(decode_content_md5("AAAA").is_none());
        assert!(decode_content_md5("not base64!").is_none());
    }
}
