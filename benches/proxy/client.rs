//! The one S3 client every target is measured with (aws-sdk-s3), and the timed operations.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use bytes::Bytes;
use http_body::{Frame, SizeHint};

/// An aws-sdk-s3 client for a loopback endpoint: path style, no CRC trailers (plain bodies, as
/// `WhenRequired` sends them), generous timeouts (a 10 GiB transfer on a loaded box is slow).
pub fn client(endpoint: &str, key: &str, secret: &str) -> Client {
    client_with_read_timeout(endpoint, key, secret, Duration::from_secs(60))
}

/// [`client`] with another read timeout: how long the client waits for a response's next bytes.
/// 60 s is the AWS CLI's and boto3's default; a long CompleteMultipartUpload may need more.
pub fn client_with_read_timeout(endpoint: &str, key: &str, secret: &str, read: Duration) -> Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(key, secret, None, None, "bench"))
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_secs(3)).read_timeout(read).build())
        .build();
    Client::from_conf(conf)
}

/// Deterministic bytes that do not compress (xorshift).
pub fn data(len: usize, seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push((x >> 24) as u8);
    }
    Bytes::from(out)
}

/// An upload body of `remaining` bytes made of one chunk repeated, so a 10 GiB PUT costs the
/// client no memory and no CPU beyond the copy into the socket.
pub struct RepeatBody {
    chunk: Bytes,
    /// Where in `chunk` the next frame starts (non-zero only before the first frame).
    skip: usize,
    remaining: u64,
}

impl RepeatBody {
    /// `len` bytes of `chunk` repeated, from the chunk's start.
    pub fn new(chunk: Bytes, len: u64) -> Self {
        Self::starting_at(chunk, 0, len)
    }

    /// `len` bytes of the endless repetition of `chunk`, from byte `offset` of it: the bytes a
    /// multipart upload's part at `offset` holds when the whole object is `new(chunk, size)`.
    pub fn starting_at(chunk: Bytes, offset: u64, len: u64) -> Self {
        let skip = if chunk.is_empty() { 0 } else { (offset % chunk.len() as u64) as usize };
        Self { chunk, skip, remaining: len }
    }
}

impl http_body::Body for RepeatBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 || this.chunk.is_empty() {
            return Poll::Ready(None);
        }
        let start = std::mem::take(&mut this.skip);
        let n = usize::try_from(this.remaining).unwrap_or(usize::MAX).min(this.chunk.len() - start);
        this.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(this.chunk.slice(start..start + n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// PUTs `body` of `len` bytes with `UNSIGNED-PAYLOAD` (what SDKs send over HTTPS), so the client
/// spends no CPU hashing the payload and the figure is about the servers.
pub async fn put(c: &Client, bucket: &str, key: &str, body: ByteStream, len: u64) -> Result<(), String> {
    let len = i64::try_from(len).map_err(|e| e.to_string())?;
    c.put_object()
        .bucket(bucket)
        .key(key)
        .content_length(len)
        .body(body)
        .customize()
        .disable_payload_signing()
        .send()
        .await
        .map_err(|e| format!("PUT {bucket}/{key}: {}", aws_sdk_s3::error::DisplayErrorContext(e)))?;
    Ok(())
}

/// GETs an object and drains its body; returns its length and, if `crc`, its CRC-32.
pub async fn get(c: &Client, bucket: &str, key: &str, crc: bool) -> Result<(u64, Option<u32>), String> {
    let mut out = c
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| format!("GET {bucket}/{key}: {}", aws_sdk_s3::error::DisplayErrorContext(e)))?;
    let mut n = 0u64;
    let mut hasher = crc.then(crc32fast::Hasher::new);
    while let Some(chunk) = out.body.next().await {
        let chunk = chunk.map_err(|e| format!("GET {bucket}/{key} body: {e}"))?;
        n += chunk.len() as u64;
        if let Some(h) = hasher.as_mut() {
            h.update(&chunk);
        }
    }
    Ok((n, hasher.map(crc32fast::Hasher::finalize)))
}

/// Creates `bucket`, accepting that it already exists.
pub async fn ensure_bucket(c: &Client, bucket: &str) -> Result<(), String> {
    match c.create_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let code = e.as_service_error().and_then(aws_sdk_s3::error::ProvideErrorMetadata::code).map(str::to_owned);
            match code.as_deref() {
                Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists") => Ok(()),
                _ => Err(format!("CreateBucket {bucket}: {}", aws_sdk_s3::error::DisplayErrorContext(e))),
            }
        }
    }
}

/// Deletes an object, ignoring failure (clean-up of large objects only).
pub async fn delete(c: &Client, bucket: &str, key: &str) {
    let _ = c.delete_object().bucket(bucket).key(key).send().await;
}

/// Latencies in seconds, as measured.
#[derive(Default, Debug, Clone)]
pub struct Samples(pub Vec<f64>);

impl Samples {
    /// The `q` quantile (nearest rank), or NaN when empty.
    pub fn quantile(&self, q: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v.get(rank - 1).copied().unwrap_or(f64::NAN)
    }

    pub fn sum(&self) -> f64 {
        self.0.iter().sum()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Runs `op` for each target in turn, `n` rounds (interleaved, so drift on a noisy machine hits
/// every target alike), stopping early once `budget` is spent. Returns per-target latencies.
pub async fn interleaved<F, Fut>(targets: usize, n: usize, budget: Duration, mut op: F) -> Result<Vec<Samples>, String>
where
    F: FnMut(usize, usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut out = vec![Samples::default(); targets];
    let start = Instant::now();
    for round in 0..n {
        if start.elapsed() > budget {
            eprintln!("  budget of {budget:?} spent after {round} of {n} rounds; stopping this loop");
            break;
        }
        for (t, samples) in out.iter_mut().enumerate() {
            let t0 = Instant::now();
            op(t, round).await?;
            samples.0.push(t0.elapsed().as_secs_f64());
        }
    }
    Ok(out)
}
