//! Part 3: blobseal's peak memory while one large object streams up and down through it, sent as
//! one PUT or as a multipart upload in 8 MiB parts, on a fresh process so `VmHWM` covers that
//! transfer alone.

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use crate::client::{self, delete, ensure_bucket, RepeatBody};
use crate::multipart::{self, Plan, PART_SIZE};
use crate::procs::{self, Server, TENANT_KEY, TENANT_SECRET};
use crate::report::MemRow;

const MIB: u64 = 1024 * 1024;
/// Largest object S3 accepts in one PUT; a bigger single PUT is not something a client can send.
pub const MAX_SINGLE_PUT: u64 = 5 * 1024 * MIB;
/// Chunk of the streamed body (what an SDK typically hands the socket).
const STREAM_CHUNK: usize = MIB as usize;

/// How the object goes up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upload {
    /// One PutObject with a known length (capped at [`MAX_SINGLE_PUT`]).
    Single,
    /// CreateMultipartUpload + 8 MiB UploadParts + Complete, `concurrency` parts in flight.
    Multipart { concurrency: usize },
}

impl Upload {
    /// The label in the report.
    pub fn label(self) -> &'static str {
        match self {
            Upload::Single => "PUT",
            Upload::Multipart { .. } => "MPU 8MiB",
        }
    }
}

/// CRC-32 of `chunk` repeated to `size` bytes (what [`RepeatBody`] sends).
fn repeated_crc(chunk: &[u8], size: u64) -> u32 {
    let mut h = crc32fast::Hasher::new();
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(chunk.len());
        h.update(chunk.get(..n).unwrap_or(chunk));
        left -= n as u64;
    }
    h.finalize()
}

/// A part body: the repeated chunk, starting at `offset` of the object so parts join up into
/// exactly what a single PUT of the same size sends.
fn part_body(chunk: &Bytes, offset: u64, len: u64) -> ByteStream {
    ByteStream::from_body_1_x(RepeatBody::starting_at(chunk.clone(), offset, len))
}

/// Streams `size` bytes up (as `upload` says) and down through `server` and reads its memory and
/// CPU time from `/proc`. Fails if the GET returns other bytes than were sent.
pub async fn run(server: &Server, size: u64, upload: Upload) -> Result<MemRow, String> {
    let size = if upload == Upload::Single { size.min(MAX_SINGLE_PUT) } else { size };
    eprintln!("memory: {} MiB up ({}) and down through {}", size / MIB, upload.label(), server.name);
    // Slower than 20 MB/s on loopback means something is wrong; stop rather than hang.
    let limit = Duration::from_secs(120 + size / 20_000_000);
    // The AWS CLI's 60 s read timeout would end a long CompleteMultipartUpload (blobseal copies
    // the whole object before answering); wait as long as the transfer may take, and report
    // Complete's duration instead.
    let c = client::client_with_read_timeout(&server.endpoint, TENANT_KEY, TENANT_SECRET, limit);
    ensure_bucket(&c, "mem").await?;
    let (_, idle_rss) = procs::memory(server.pid())?;
    let chunk = client::data(STREAM_CHUNK, 3);
    let want_crc = repeated_crc(&chunk, size);

    let cpu0 = procs::cpu_seconds(server.pid())?;
    let t0 = Instant::now();
    let put = async {
        match upload {
            Upload::Single => {
                let body = ByteStream::from_body_1_x(RepeatBody::new(chunk.clone(), size));
                client::put(&c, "mem", "huge", body, size).await.map(|()| None)
            }
            Upload::Multipart { concurrency } => {
                let plan = Plan { size, part_size: PART_SIZE, concurrency };
                multipart::put_multipart(&c, "mem", "huge", plan, |off, len| part_body(&chunk, off, len))
                    .await
                    .map(Some)
            }
        }
    };
    let complete = tokio::time::timeout(limit, put)
        .await
        .map_err(|_| format!("upload of {size} bytes took longer than {limit:?}"))??;
    let put_s = t0.elapsed().as_secs_f64();
    let cpu1 = procs::cpu_seconds(server.pid())?;
    let (put_peak, _) = procs::memory(server.pid())?;

    let t0 = Instant::now();
    let (n, crc) = tokio::time::timeout(limit, client::get(&c, "mem", "huge", true))
        .await
        .map_err(|_| format!("GET of {size} bytes took longer than {limit:?}"))??;
    let get_s = t0.elapsed().as_secs_f64();
    let cpu2 = procs::cpu_seconds(server.pid())?;
    let (peak, _) = procs::memory(server.pid())?;
    delete(&c, "mem", "huge").await;
    if n != size || crc != Some(want_crc) {
        return Err(format!("{}: GET returned {n} bytes (expected {size}) or different bytes", server.name));
    }
    let gib = size as f64 / (1u64 << 30) as f64;
    Ok(MemRow {
        label: server.name.clone(),
        upload: upload.label(),
        size,
        idle_rss,
        put_peak,
        peak,
        complete_s: complete.map(|d| d.as_secs_f64()),
        put_mbs: size as f64 / put_s / 1e6,
        get_mbs: size as f64 / get_s / 1e6,
        put_cpu: (cpu1 - cpu0) / gib,
        get_cpu: (cpu2 - cpu1) / gib,
    })
}
