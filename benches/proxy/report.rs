//! The printed result: one table of measurements, then each goal with its verdict.

use crate::client::Samples;

const MIB: f64 = 1024.0 * 1024.0;

/// One target × operation × object size.
pub struct Row {
    pub target: &'static str,
    pub op: &'static str,
    pub size: u64,
    pub n: usize,
    /// Bytes moved over time spent in the requests, 10^6 bytes per second.
    pub mbs: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Row {
    pub fn new(target: &'static str, op: &'static str, size: u64, s: &Samples) -> Self {
        Self {
            target,
            op,
            size,
            n: s.len(),
            mbs: size as f64 * s.len() as f64 / s.sum() / 1e6,
            p50_ms: s.quantile(0.50) * 1e3,
            p99_ms: s.quantile(0.99) * 1e3,
        }
    }
}

/// One peak-memory run.
pub struct MemRow {
    pub label: String,
    /// How the object went up (`PUT`, `MPU 8MiB`).
    pub upload: &'static str,
    pub size: u64,
    /// `VmRSS` after start-up, before any transfer.
    pub idle_rss: u64,
    /// `VmHWM` after the upload, before the GET.
    pub put_peak: u64,
    /// `VmHWM` after the upload and the GET.
    pub peak: u64,
    /// How long CompleteMultipartUpload took (multipart only; part of the upload time).
    pub complete_s: Option<f64>,
    pub put_mbs: f64,
    pub get_mbs: f64,
    /// blobseal's CPU seconds (user + system) per GiB moved, during the PUT and the GET.
    pub put_cpu: f64,
    pub get_cpu: f64,
}

/// Everything one run measured.
pub struct Report {
    pub binary: String,
    pub rows: Vec<Row>,
    pub mem: Vec<MemRow>,
    /// What was not measured, and why.
    pub notes: Vec<String>,
    /// Measured ratios with their own goal line (the audit trail's cost).
    pub ratios: Vec<String>,
}

fn size_text(size: u64) -> String {
    match size {
        s if s >= 1 << 30 && s % (1 << 30) == 0 => format!("{} GiB", s >> 30),
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{} MiB", s >> 20),
        s if s % 1024 == 0 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

impl Report {
    pub fn new(binary: String) -> Self {
        Self { binary, rows: Vec::new(), mem: Vec::new(), notes: Vec::new(), ratios: Vec::new() }
    }

    fn find(&self, target: &str, op: &str, size: u64) -> Option<&Row> {
        self.rows.iter().find(|r| r.target == target && r.op == op && r.size == size)
    }

    pub fn print(&self) {
        let knobs: Vec<String> = [
            "BLOBSEAL_BENCH_ONLY",
            "BLOBSEAL_BENCH_SIZE",
            "BLOBSEAL_BENCH_BIG_N",
            "BLOBSEAL_BENCH_SMALL_N",
            "BLOBSEAL_BENCH_RANGE_N",
            "BLOBSEAL_BENCH_MPU_CONC",
            "BLOBSEAL_BENCH_UPLOADS",
            "BLOBSEAL_BENCH_BUDGET_S",
        ]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v} ")))
        .collect();
        println!();
        println!("command: {}cargo bench --bench proxy   (binary {})", knobs.concat(), self.binary);
        println!(
            "machine: {} cores, loopback; client aws-sdk-s3 (one thread, UNSIGNED-PAYLOAD, no CRC trailers)",
            cores()
        );
        println!();
        // Empty in the memory-only run (`BLOBSEAL_BENCH_ONLY=memory`).
        if !self.rows.is_empty() {
            println!(
                "{:<18} {:<7} {:>7} {:>4} {:>9} {:>9} {:>9}",
                "target", "op", "size", "n", "MB/s", "p50 ms", "p99 ms"
            );
            for r in &self.rows {
                println!(
                    "{:<18} {:<7} {:>7} {:>4} {:>9.1} {:>9.2} {:>9.2}",
                    r.target,
                    r.op,
                    size_text(r.size),
                    r.n,
                    r.mbs,
                    r.p50_ms,
                    r.p99_ms
                );
            }
            println!();
        }
        println!(
            "{:<16} {:<8} {:>7} {:>10} {:>10} {:>10} {:>8} {:>8} {:>12} {:>10}",
            "peak memory",
            "upload",
            "object",
            "idle RSS",
            "VmHWM up",
            "VmHWM",
            "up MB/s",
            "GET MB/s",
            "CPU s/GiB",
            "Complete s"
        );
        for m in &self.mem {
            println!(
                "{:<16} {:<8} {:>7} {:>6.1} MiB {:>6.1} MiB {:>6.1} MiB {:>8.1} {:>8.1}  {:>5.2}/{:<5.2} {:>10}",
                m.label,
                m.upload,
                size_text(m.size),
                m.idle_rss as f64 / MIB,
                m.put_peak as f64 / MIB,
                m.peak as f64 / MIB,
                m.put_mbs,
                m.get_mbs,
                m.put_cpu,
                m.get_cpu,
                m.complete_s.map_or_else(|| "-".to_owned(), |s| format!("{s:.1}"))
            );
        }
        println!();
        println!("goals (blobseal→s3s-fs against s3s-fs direct, same run):");
        let big = 64 << 20;
        for op in ["PUT", "GET", "MPU PUT", "MPU GET"] {
            if let (Some(d), Some(p)) = (self.find("s3s-fs direct", op, big), self.find("blobseal→s3s-fs", op, big)) {
                let ratio = p.mbs / d.mbs * 100.0;
                println!(
                    "  64 MiB {op:<7} throughput ratio {ratio:6.1} %   (goal ≥ 90 %)      {}",
                    verdict(ratio >= 90.0)
                );
            }
        }
        for op in ["PUT", "GET"] {
            if let (Some(d), Some(p)) = (self.find("s3s-fs direct", op, 4096), self.find("blobseal→s3s-fs", op, 4096))
            {
                let (a50, a99) = (p.p50_ms - d.p50_ms, p.p99_ms - d.p99_ms);
                println!(
                    "  4 KiB {op} added latency p50 {a50:+6.2} ms (goal ≤ 1 ms) {}, p99 {a99:+6.2} ms (goal ≤ 5 ms) {}",
                    verdict(a50 <= 1.0),
                    verdict(a99 <= 5.0)
                );
            }
        }
        for m in &self.mem {
            let peak = m.peak as f64 / MIB;
            println!(
                "  peak RSS {:<16} {:<8} {} up+down {peak:6.1} MiB (goal ≤ 64 MiB)   {}",
                m.label,
                m.upload,
                size_text(m.size),
                verdict(peak <= 64.0)
            );
        }
        self.print_context();
        for ratio in &self.ratios {
            println!("  {ratio}");
        }
        for note in &self.notes {
            println!("  NOT MEASURED: {note}");
        }
        println!("  (added latency = quantile through blobseal minus the same quantile direct;");
        println!("   CPU s/GiB = blobseal's user+system CPU per GiB moved, upload/GET)");
    }

    /// Ratios without a goal: the ranged GET, and blobseal's fs backend against s3s-fs serving
    /// the same disk (both store plain files; blobseal adds its front end and encryption).
    fn print_context(&self) {
        let pairs = [("blobseal→s3s-fs", "MPU RNG", 1 << 20), ("blobseal→fs", "MPU RNG", 1 << 20)];
        let big: u64 = 64 << 20;
        let fs_ops = ["PUT", "GET", "MPU PUT", "MPU GET"].map(|op| ("blobseal→fs", op, big));
        let mut header = false;
        for (target, op, size) in pairs.into_iter().chain(fs_ops) {
            if let (Some(d), Some(p)) = (self.find("s3s-fs direct", op, size), self.find(target, op, size)) {
                if !header {
                    println!("context (no goal; against s3s-fs direct, same run):");
                    header = true;
                }
                println!(
                    "  {target:<16} {op:<7} {:>7} throughput ratio {:6.1} %, p50 {:+7.2} ms",
                    size_text(size),
                    p.mbs / d.mbs * 100.0,
                    p.p50_ms - d.p50_ms
                );
            }
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get)
}
