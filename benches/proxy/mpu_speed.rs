//! Part 1b: a 64 MiB object sent as a multipart upload in 8 MiB parts (what the AWS CLI does),
//! then read back whole and by a ranged GET that straddles a part boundary, on every target,
//! interleaved round by round like part 1.

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use crate::client::{get, interleaved};
use crate::multipart::{self, get_range, Plan, PART_SIZE};
use crate::report::{Report, Row};
use crate::{check, Knobs, Target};

/// Length of the ranged GET: 1 MiB, as a reader seeking in a large file might ask.
pub const RANGE_LEN: u64 = 1024 * 1024;
/// Its start: 100 000 bytes before the end of part 1, so it spans two parts and starts off a
/// 64 KiB segment boundary (blobseal must decrypt the segments around both ends).
const RANGE_OFFSET: u64 = PART_SIZE - 100_000;

/// Measures multipart PUT, GET of the multipart object and a ranged GET of it on each target and
/// adds the rows to `report`. `big` is the object; its CRC is checked on the first GET of each
/// target and on every ranged GET. A target whose first (untimed, warm-up) upload fails is left
/// out with a note, so one backend without multipart does not hide the others' figures.
pub async fn run(k: &Knobs, all: &[Target], big: &Bytes, report: &mut Report) -> Result<(), String> {
    let size = big.len() as u64;
    let plan = Plan { size, part_size: PART_SIZE, concurrency: k.mpu_concurrency };
    let mut targets = Vec::new();
    for t in all {
        let body = |off: u64, len: u64| ByteStream::from(big.slice(off as usize..(off + len) as usize));
        match multipart::put_multipart(&t.client, t.bucket, "mpu", plan, body).await {
            Ok(_) => targets.push(t),
            Err(e) => report.notes.push(format!("multipart on {} not measured: {e}", t.label)),
        }
    }
    eprintln!(
        "64 MiB multipart ({} parts of 8 MiB, {} in flight): {} rounds of upload, then of GET, then {} ranged GETs",
        plan.parts().len(),
        plan.concurrency,
        k.big_n,
        k.range_n
    );
    let puts = interleaved(targets.len(), k.big_n, k.budget, |t, _| {
        let tg = targets[t];
        async move {
            multipart::put_multipart(&tg.client, tg.bucket, "mpu", plan, |off, len| {
                ByteStream::from(big.slice(off as usize..(off + len) as usize))
            })
            .await
            .map(drop)
        }
    })
    .await?;
    let big_crc = crc32fast::hash(big);
    let gets = interleaved(targets.len(), k.big_n, k.budget, |t, round| {
        let tg = targets[t];
        async move {
            let (n, crc) = get(&tg.client, tg.bucket, "mpu", round == 0).await?;
            check(tg.label, n, size, crc, big_crc)
        }
    })
    .await?;
    let want =
        big.get(RANGE_OFFSET as usize..(RANGE_OFFSET + RANGE_LEN) as usize).ok_or("object too small for the range")?;
    let range_crc = crc32fast::hash(want);
    let ranges = interleaved(targets.len(), k.range_n, k.budget, |t, _| {
        let tg = targets[t];
        async move {
            let (n, crc) = get_range(&tg.client, tg.bucket, "mpu", RANGE_OFFSET, RANGE_LEN).await?;
            check(tg.label, n, RANGE_LEN, Some(crc), range_crc)
        }
    })
    .await?;
    for (i, t) in targets.iter().enumerate() {
        report.rows.push(Row::new(t.label, "MPU PUT", size, &puts[i]));
        report.rows.push(Row::new(t.label, "MPU GET", size, &gets[i]));
        report.rows.push(Row::new(t.label, "MPU RNG", RANGE_LEN, &ranges[i]));
    }
    Ok(())
}
