//! Envelope throughput against raw AES-256-GCM, on one core.
//!
//! `cargo bench --bench crypto`. The goal is `seal_stream`/`open_stream` ≥ 90 % of raw
//! `seal_in_place_separate_tag` over 64 KiB buffers (the per-segment work the format cannot avoid).

use std::time::Duration;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use blobseal::backend::ByteStream;
use blobseal::core::envelope::{
    ciphertext_len, open_segments, open_stream, plan_range, seal_all, seal_stream, seal_with, Layout, ObjectKeys,
    PartKeys, SealKeys, SegmentKeys,
};
use blobseal::core::keys::DataKey;
use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use futures::StreamExt;

const SEGMENT: usize = 64 * 1024;
const OBJECT: usize = 64 * 1024 * 1024;
/// Input chunk size of the streamed benches: what a hyper body or backend typically hands us.
const CHUNK: usize = 1024 * 1024;

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => panic!("tokio runtime: {e}"),
    }
}

fn object_keys() -> ObjectKeys {
    match ObjectKeys::derive(&DataKey::from_bytes([7; 32]), &[9; 32]) {
        Ok(k) => k,
        Err(e) => panic!("derive: {e}"),
    }
}

/// The input stream: `data` cut into `CHUNK`-sized `Bytes` (zero-copy slices of one buffer).
fn stream_of(data: &Bytes) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> =
        (0..data.len()).step_by(CHUNK).map(|at| Ok(data.slice(at..(at + CHUNK).min(data.len())))).collect();
    Box::pin(futures::stream::iter(chunks))
}

/// Drains a stream, returning the byte count (errors abort the bench).
async fn drain(mut s: ByteStream) -> usize {
    let mut n = 0;
    while let Some(item) = s.next().await {
        match item {
            Ok(b) => n += black_box(b).len(),
            Err(e) => panic!("stream failed: {e}"),
        }
    }
    n
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let plain = Bytes::from((0..OBJECT).map(|i| i as u8).collect::<Vec<u8>>());
    let keys = object_keys();
    let sealed = match seal_all(&keys, &plain) {
        Ok(s) => Bytes::from(s),
        Err(e) => panic!("seal_all: {e}"),
    };
    let plain_len = OBJECT as u64;

    let mut g = c.benchmark_group("aes256gcm_64MiB");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Bytes(plain_len));

    g.bench_function("raw_seal_in_place_64KiB", |b| {
        let key = match UnboundKey::new(&AES_256_GCM, &[7; 32]) {
            Ok(k) => LessSafeKey::new(k),
            Err(e) => panic!("key: {e}"),
        };
        let mut buf = vec![0u8; SEGMENT];
        b.iter(|| {
            for i in 0..(OBJECT / SEGMENT) as u64 {
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&i.to_be_bytes());
                let tag = key.seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf);
                black_box(tag.is_ok());
            }
        })
    });

    g.bench_function("raw_open_64KiB", |b| {
        let key = match UnboundKey::new(&AES_256_GCM, &[7; 32]) {
            Ok(k) => LessSafeKey::new(k),
            Err(e) => panic!("key: {e}"),
        };
        // One sealed segment, opened out of place over and over (in place would destroy it).
        let mut sealed_seg = vec![0u8; SEGMENT];
        let nonce = [0u8; 12];
        let tag =
            match key.seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut sealed_seg) {
                Ok(t) => t,
                Err(e) => panic!("seal: {e}"),
            };
        let mut out = vec![0u8; SEGMENT];
        b.iter(|| {
            for _ in 0..OBJECT / SEGMENT {
                let nonce = Nonce::assume_unique_for_key(nonce);
                let ok = key.open_separate_gather(nonce, Aad::empty(), &sealed_seg, tag.as_ref(), &mut out);
                assert!(ok.is_ok());
            }
        })
    });

    g.bench_function("seal_stream", |b| {
        b.iter(|| {
            let n = rt.block_on(drain(seal_stream(keys.clone(), plain_len, stream_of(&plain))));
            assert_eq!(n as u64, ciphertext_len(plain_len));
        })
    });

    g.bench_function("open_stream", |b| {
        b.iter(|| {
            let plan = match plan_range(plain_len, 0..plain_len) {
                Ok(p) => p,
                Err(e) => panic!("plan: {e}"),
            };
            let n = rt.block_on(drain(open_stream(keys.clone(), plain_len, plan, stream_of(&sealed))));
            assert_eq!(n, OBJECT);
        })
    });
    g.finish();

    // Multipart parts (AES-256-GCM-SIV, FORMAT.md §13): one 64 MiB part, sealed and opened as a stream.
    let part_keys = match PartKeys::derive(&DataKey::from_bytes([7; 32]), &[9; 32]) {
        Ok(k) => k,
        Err(e) => panic!("derive: {e}"),
    };
    let sealed_part = Bytes::from(rt.block_on(async {
        let mut s = seal_with(SealKeys::Part { keys: part_keys.clone(), part_number: 1 }, plain_len, stream_of(&plain));
        let mut out = Vec::new();
        while let Some(Ok(c)) = s.next().await {
            out.extend_from_slice(&c);
        }
        out
    }));
    let layout = match Layout::from_parts(&[(1, plain_len)]) {
        Ok(l) => std::sync::Arc::new(l),
        Err(e) => panic!("layout: {e}"),
    };
    let mut g = c.benchmark_group("aes256gcmsiv_part_64MiB");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Bytes(plain_len));
    g.bench_function("seal_part_stream", |b| {
        b.iter(|| {
            let keys = SealKeys::Part { keys: part_keys.clone(), part_number: 1 };
            let n = rt.block_on(drain(seal_with(keys, plain_len, stream_of(&plain))));
            assert_eq!(n as u64, ciphertext_len(plain_len));
        })
    });
    g.bench_function("open_part_stream", |b| {
        b.iter(|| {
            let segs = SegmentKeys::Parts { keys: part_keys.clone(), layout: layout.clone() };
            let plan = match segs.plan(0..plain_len) {
                Ok(p) => p,
                Err(e) => panic!("plan: {e}"),
            };
            let n = rt.block_on(drain(open_segments(segs, plan, stream_of(&sealed_part))));
            assert_eq!(n, OBJECT);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
