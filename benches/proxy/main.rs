//! What blobseal costs in front of an S3 server, measured with one real client (aws-sdk-s3).
//!
//! `bash benches/proxy.sh` (or `cargo bench --bench proxy`). In one run, on loopback:
//! 1. 64 MiB and 4 KiB PUT/GET straight to s3s-fs and through blobseal whose backend is that same
//!    s3s-fs; 64 MiB throughput ratio (goal ≥ 90 %), 4 KiB added latency (goal p50 ≤ 1 ms,
//!    p99 ≤ 5 ms). Targets are interleaved round by round so machine noise hits them alike.
//! 2. blobseal on its filesystem backend (embedded default), 64 MiB PUT/GET MB/s, for reference.
//!
//! 1b. The same 64 MiB object as a multipart upload in 8 MiB parts (the AWS CLI's part size), a GET
//!    of that object and a 1 MiB ranged GET across its first part boundary, on all three targets.
//!    Skipped, with a note in the report, if a target refuses multipart.
//! 3. Peak RSS (`VmHWM`) of a fresh blobseal while a `BLOBSEAL_BENCH_SIZE` object (default 1 GiB)
//!    streams up and down, on each backend (goal ≤ 64 MiB), once as one PUT (at most 5 GiB, S3's
//!    limit) and once as a multipart upload in 8 MiB parts.
//!
//! Knobs (environment): `BLOBSEAL_BIN` (default: the blobseal binary cargo built with this bench),
//! `S3S_FS_BIN` (default `$BLOBSEAL_TEST_CACHE/s3s-fs/bin/s3s-fs`, cache `~/.cache/blobseal-test`),
//! `BLOBSEAL_BENCH_SIZE` (`1GiB`, `10GiB`, `512MiB` or bytes), `BLOBSEAL_BENCH_BIG_N` (5),
//! `BLOBSEAL_BENCH_SMALL_N` (300), `BLOBSEAL_BENCH_RANGE_N` (50), `BLOBSEAL_BENCH_MPU_CONC` (parts in
//! flight, 4), `BLOBSEAL_BENCH_BUDGET_S` (120, per loop), `BLOBSEAL_BENCH_ONLY=memory` (part 3 alone;
//! `benches/memory.sh`), `BLOBSEAL_BENCH_UPLOADS` (`single,multipart`: part 3's upload kinds),
//! `BLOBSEAL_BENCH_KEEP=1` (keep the scratch directory and logs).

mod client;
mod memory;
mod mpu_speed;
mod multipart;
mod procs;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use client::{ensure_bucket, get, interleaved, put, Samples};
use memory::Upload;
use procs::{Server, S3FS_KEY, S3FS_SECRET, TENANT_KEY, TENANT_SECRET};
use report::{Report, Row};

const MIB: u64 = 1024 * 1024;
const BIG: u64 = 64 * MIB;
const SMALL: u64 = 4 * 1024;
const SMALL_WARMUP: usize = 10;

/// The bench's settings, from the environment (see the module doc).
pub struct Knobs {
    blobseal: PathBuf,
    s3s_fs: PathBuf,
    mem_size: u64,
    big_n: usize,
    small_n: usize,
    range_n: usize,
    mpu_concurrency: usize,
    budget: Duration,
    /// Part 3's upload kinds, in order.
    uploads: Vec<Upload>,
    /// `BLOBSEAL_BENCH_ONLY=memory`: skip the throughput and latency part; `=audit`: only the audit
    /// trail's cost (4 KiB on the fs backend, trail off / best-effort / required).
    only: Only,
}

/// Which parts run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Only {
    All,
    Memory,
    Audit,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `10GiB`, `512MiB`, `64KiB`, `1GB` or a plain byte count.
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("bad size {text:?}"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(format!("bad size unit in {text:?}")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("size {text:?} too large"))
}

/// `single,multipart` → the upload kinds of part 3.
fn uploads(text: &str, concurrency: usize) -> Result<Vec<Upload>, String> {
    text.split(',')
        .map(|w| match w.trim() {
            "single" => Ok(Upload::Single),
            "multipart" => Ok(Upload::Multipart { concurrency }),
            other => Err(format!("BLOBSEAL_BENCH_UPLOADS: unknown kind {other:?} (single, multipart)")),
        })
        .collect()
}

fn knobs() -> Result<Knobs, String> {
    let num = |name: &str, default: usize| -> Result<usize, String> {
        env(name).map_or(Ok(default), |v| v.parse().map_err(|_| format!("{name}={v:?} is not a number")))
    };
    let mpu_concurrency = num("BLOBSEAL_BENCH_MPU_CONC", 4)?.max(1);
    let cache = env("BLOBSEAL_TEST_CACHE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".cache/blobseal-test")))
        .unwrap_or_else(|| PathBuf::from("/root/.cache/blobseal-test"));
    Ok(Knobs {
        blobseal: env("BLOBSEAL_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_blobseal")), PathBuf::from),
        s3s_fs: env("S3S_FS_BIN").map_or_else(|| cache.join("s3s-fs/bin/s3s-fs"), PathBuf::from),
        mem_size: env("BLOBSEAL_BENCH_SIZE").map_or(Ok(1 << 30), |v| parse_size(&v))?,
        big_n: num("BLOBSEAL_BENCH_BIG_N", 5)?,
        small_n: num("BLOBSEAL_BENCH_SMALL_N", 300)?,
        range_n: num("BLOBSEAL_BENCH_RANGE_N", 50)?,
        mpu_concurrency,
        budget: Duration::from_secs(num("BLOBSEAL_BENCH_BUDGET_S", 120)? as u64),
        only: match env("BLOBSEAL_BENCH_ONLY").as_deref() {
            None => Only::All,
            Some("memory") => Only::Memory,
            Some("audit") => Only::Audit,
            Some(other) => return Err(format!("BLOBSEAL_BENCH_ONLY={other:?}: \"memory\" or \"audit\"")),
        },
        uploads: uploads(env("BLOBSEAL_BENCH_UPLOADS").as_deref().unwrap_or("single,multipart"), mpu_concurrency)?,
    })
}

/// One thing the client talks to: a label, an S3 client and the bucket it uses there.
pub struct Target {
    pub label: &'static str,
    pub client: Client,
    pub bucket: &'static str,
}

fn main() -> std::process::ExitCode {
    let result = knobs().and_then(|k| {
        // One client thread: the servers under test get the rest of the 2 cores.
        let rt =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("tokio: {e}"))?;
        rt.block_on(run(&k))
    });
    match result {
        Ok(report) => {
            report.print();
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(k: &Knobs) -> Result<Report, String> {
    let tmp = tempfile::Builder::new()
        .prefix("blobseal-bench-")
        // BLOBSEAL_BENCH_KEEP=1 keeps the servers' logs and data for a look afterwards.
        .disable_cleanup(env("BLOBSEAL_BENCH_KEEP").is_some())
        .tempdir()
        .map_err(|e| format!("tempdir: {e}"))?;
    let root = tmp.path();
    eprintln!("blobseal: {}\ns3s-fs:   {}\nscratch:  {}", k.blobseal.display(), k.s3s_fs.display(), root.display());

    let s3fs = procs::start_s3s_fs(&k.s3s_fs, &root.join("s3s-fs"))?;
    let mut report = Report::new(k.blobseal.display().to_string());
    if k.only == Only::Audit {
        audit_overhead(k, root, &mut report).await?;
        return Ok(report);
    }
    if k.only == Only::All {
        speed(k, root, &s3fs, &mut report).await?;
    }

    // Peak RSS: each backend and upload kind on a fresh process so VmHWM covers that transfer only.
    for (i, &upload) in k.uploads.iter().enumerate() {
        let dir = root.join(format!("mem-s3-{i}"));
        let server = procs::start_blobseal_s3(&k.blobseal, &dir, &s3fs.endpoint, "blobseal→s3s-fs")?;
        record_memory(&mut report, memory::run(&server, k.mem_size, upload).await, &server, upload);
        drop(server);
        let dir = root.join(format!("mem-fs-{i}"));
        let server = procs::start_blobseal_fs(&k.blobseal, &dir, "blobseal→fs")?;
        record_memory(&mut report, memory::run(&server, k.mem_size, upload).await, &server, upload);
        drop(server);
        // The fs backend's objects are deleted, but its directory is removed only with the
        // scratch directory: free the disk now, before the next (possibly 10 GiB) transfer.
        if env("BLOBSEAL_BENCH_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    drop(s3fs);
    Ok(report)
}

/// A memory run's row, or a note saying why there is none (multipart may be refused; the other
/// figures are still worth printing).
fn record_memory(report: &mut Report, row: Result<report::MemRow, String>, server: &Server, upload: Upload) {
    match row {
        Ok(row) => report.mem.push(row),
        Err(e) => {
            report.notes.push(format!("memory {} {} not measured: {e}", server.name, upload.label()));
        }
    }
}

/// Parts 1 and 2: 64 MiB throughput and 4 KiB latency on all three targets, interleaved.
async fn speed(k: &Knobs, root: &std::path::Path, s3fs: &Server, report: &mut Report) -> Result<(), String> {
    let via_s3 = procs::start_blobseal_s3(&k.blobseal, &root.join("bs-s3"), &s3fs.endpoint, "blobseal→s3s-fs")?;
    let via_fs = procs::start_blobseal_fs(&k.blobseal, &root.join("bs-fs"), "blobseal→fs")?;
    let targets = [
        Target {
            label: "s3s-fs direct",
            client: client::client(&s3fs.endpoint, S3FS_KEY, S3FS_SECRET),
            bucket: "bench-direct",
        },
        Target {
            label: "blobseal→s3s-fs",
            client: client::client(&via_s3.endpoint, TENANT_KEY, TENANT_SECRET),
            bucket: "bench",
        },
        Target {
            label: "blobseal→fs",
            client: client::client(&via_fs.endpoint, TENANT_KEY, TENANT_SECRET),
            bucket: "bench",
        },
    ];
    for t in &targets {
        ensure_bucket(&t.client, t.bucket).await?;
    }

    // 64 MiB, all three targets.
    eprintln!("64 MiB: {} rounds of PUT, then of GET", k.big_n);
    let big = client::data(BIG as usize, 1);
    let big_crc = crc32fast::hash(&big);
    let puts = interleaved(targets.len(), k.big_n, k.budget, |t, _| {
        let (tg, body) = (&targets[t], big.clone());
        async move { put(&tg.client, tg.bucket, "big", ByteStream::from(body), BIG).await }
    })
    .await?;
    let gets = interleaved(targets.len(), k.big_n, k.budget, |t, round| {
        let tg = &targets[t];
        async move {
            let (n, crc) = get(&tg.client, tg.bucket, "big", round == 0).await?;
            check(tg.label, n, BIG, crc, big_crc)
        }
    })
    .await?;
    for (i, t) in targets.iter().enumerate() {
        report.rows.push(Row::new(t.label, "PUT", BIG, &puts[i]));
        report.rows.push(Row::new(t.label, "GET", BIG, &gets[i]));
    }

    // The same object, multipart. A target that refuses multipart costs only these rows.
    if let Err(e) = mpu_speed::run(k, &targets, &big, report).await {
        report.notes.push(format!("multipart throughput not measured: {e}"));
    }

    // 4 KiB: direct and through blobseal to the same s3s-fs (the fs target for reference).
    eprintln!("4 KiB: {SMALL_WARMUP} warm-up + {} rounds of PUT, then of GET", k.small_n);
    small_rounds(k, &targets, 2, report).await?;
    drop(targets);
    drop((via_s3, via_fs));
    Ok(())
}

/// 4 KiB objects on every target, interleaved: warm-up PUTs, then `small_n` rounds of PUT and as many of
/// GET (each checked against what was PUT). Adds the rows; returns the PUT samples per target.
async fn small_rounds(k: &Knobs, targets: &[Target], seed: u64, report: &mut Report) -> Result<Vec<Samples>, String> {
    let small = client::data(SMALL as usize, seed);
    let small_crc = crc32fast::hash(&small);
    let small_put = |n: usize| {
        let small = &small;
        interleaved(targets.len(), n, k.budget, move |t, round| {
            let (tg, body) = (&targets[t], small.clone());
            async move { put(&tg.client, tg.bucket, &format!("small/{round}"), ByteStream::from(body), SMALL).await }
        })
    };
    small_put(SMALL_WARMUP).await?;
    let puts = small_put(k.small_n).await?;
    let gets = interleaved(targets.len(), puts.first().map_or(0, Samples::len), k.budget, |t, round| {
        let tg = &targets[t];
        async move {
            let (n, crc) = get(&tg.client, tg.bucket, &format!("small/{round}"), true).await?;
            check(tg.label, n, SMALL, crc, small_crc)
        }
    })
    .await?;
    for (i, t) in targets.iter().enumerate() {
        report.rows.push(Row::new(t.label, "PUT", SMALL, &puts[i]));
        report.rows.push(Row::new(t.label, "GET", SMALL, &gets[i]));
    }
    Ok(puts)
}

/// What the audit trail costs: 4 KiB PUT and GET through blobseal on the fs backend with the trail off,
/// best-effort (the default) and required, interleaved round by round.
async fn audit_overhead(k: &Knobs, root: &std::path::Path, report: &mut Report) -> Result<(), String> {
    let modes: [(&'static str, &str); 3] =
        [("fs audit off", "off"), ("fs audit best-effort", "best-effort"), ("fs audit required", "required")];
    let mut servers = Vec::new();
    let mut targets = Vec::new();
    for (label, mode) in modes {
        let dir = root.join(format!("audit-{mode}"));
        let server = procs::start_blobseal_fs_with(&k.blobseal, &dir, label, &[("BLOBSEAL_AUDIT_MODE", mode)])?;
        targets.push(Target {
            label,
            client: client::client(&server.endpoint, TENANT_KEY, TENANT_SECRET),
            bucket: "bench",
        });
        servers.push(server);
    }
    for t in &targets {
        ensure_bucket(&t.client, t.bucket).await?;
    }
    eprintln!("audit: 4 KiB, {SMALL_WARMUP} warm-up + {} rounds of PUT, then of GET", k.small_n);
    let puts = small_rounds(k, &targets, 3, report).await?;
    if let [off, best, required] = puts.as_slice() {
        let p50 = |s: &Samples| s.quantile(0.5);
        let ratio = p50(best) / p50(off);
        report.ratios.push(format!(
            "audit trail, 4 KiB PUT p50: best-effort {ratio:.3}x the same server with the trail off (goal ≤ 1.05x) {}; \
             required {:.3}x (+{:.2} ms: each PUT waits for its segment's durable write)",
            if ratio <= 1.05 { "PASS" } else { "FAIL" },
            p50(required) / p50(off),
            (p50(required) - p50(off)) * 1e3
        ));
    }
    drop(targets);
    drop(servers);
    Ok(())
}

/// `Ok` if a GET returned `want` bytes whose CRC-32 (when computed) is `want_crc`.
pub fn check(label: &str, n: u64, want: u64, crc: Option<u32>, want_crc: u32) -> Result<(), String> {
    if n != want {
        return Err(format!("{label}: GET returned {n} bytes, expected {want}"));
    }
    match crc {
        Some(c) if c != want_crc => Err(format!("{label}: GET returned different bytes than were PUT")),
        _ => Ok(()),
    }
}
