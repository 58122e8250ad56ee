//! Multipart uploads over the in-memory backend and a real local keyring.

use super::*;
use crate::backend::{Backend, GetOptions, ListOptions};
use crate::core::service::{PartNumber, RangeRequest};
use crate::core::test_support::{body, fixture, read, Fixture};

const MIB: usize = 1 << 20;

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| ((i * 7 + usize::from(seed) * 13) % 251) as u8).collect()
}

impl Fixture {
    async fn bucket(&self) {
        self.svc.create_bucket(&self.alpha, "bkt", None).await.unwrap();
    }

    async fn part(&self, key: &str, id: &str, n: u32, bytes: &[u8]) -> String {
        self.svc.upload_part(&self.alpha, "bkt", key, id, n, body(bytes), bytes.len() as u64).await.unwrap()
    }

    async fn get(&self, key: &str, range: Option<RangeRequest>, part: Option<PartNumber>) -> CoreResult<Vec<u8>> {
        let got = self.svc.get_object(&self.alpha, "bkt", key, None, range, part).await?;
        read(got.body).await.map_err(|e| CoreError::Integrity(e.to_string()))
    }

    /// Uploads `parts` (number, bytes) in reverse order, completes them all, returns the plaintext.
    async fn upload(&self, key: &str, parts: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let id = self.svc.create_upload(&self.alpha, "bkt", key, PutRequest::default()).await.unwrap();
        let mut named = Vec::new();
        for (n, bytes) in parts.iter().rev() {
            named.push((*n, self.part(key, &id, *n, bytes).await));
        }
        named.reverse();
        self.svc.complete_upload(&self.alpha, "bkt", key, &id, &named, false).await.unwrap();
        parts.iter().flat_map(|(_, b)| b.clone()).collect()
    }
}

#[tokio::test]
async fn parts_in_any_order_with_gaps_read_back_exactly_with_ranges_and_part_numbers() {
    let f = fixture();
    f.bucket().await;
    // Off the segment grid on purpose (5_000_000 is not a multiple of 64 KiB), plus a gap (no part 2).
    let parts = vec![(1, data(5 * MIB, 1)), (3, data(5_000_000 + 5 * MIB, 2)), (4, data(12_345, 3))];
    let plain = f.upload("k", &parts).await;
    assert_eq!(f.get("k", None, None).await.unwrap(), plain);
    let info = f.svc.head_object(&f.alpha, "bkt", "k", None).await.unwrap();
    assert_eq!((info.size, info.parts_count), (plain.len() as u64, Some(3)));
    let b = (5 * MIB) as u64;
    for (a, z) in [(b - 3, b + 3), (0, 0), (b + 5_000_000 + b - 1, plain.len() as u64 - 1), (70_000, 2 * b)] {
        let got = f.get("k", Some(RangeRequest::FromTo(a, z)), None).await.unwrap();
        assert_eq!(got, plain[a as usize..=z as usize], "{a}-{z}");
    }
    let tail = f.get("k", Some(RangeRequest::Suffix(100_000)), None).await.unwrap();
    assert_eq!(tail, plain[plain.len() - 100_000..]);
    assert_eq!(f.get("k", None, Some(PartNumber(2))).await.unwrap(), parts[1].1);
    assert!(matches!(f.get("k", None, Some(PartNumber(4))).await, Err(CoreError::InvalidPartNumber)));
    // The listing shows the exact size although the stored size alone cannot tell it.
    let page = f.svc.list_objects(&f.alpha, "bkt", ListOptions { max_keys: 100, ..Default::default() }).await.unwrap();
    let sizes: Vec<_> = page.objects.iter().map(|o| (o.key.as_str(), o.size)).collect();
    assert_eq!(sizes, vec![("k", plain.len() as u64)]);
}

#[tokio::test]
async fn a_retried_part_replaces_the_first_attempt_and_nothing_is_left_hidden() {
    let f = fixture();
    f.bucket().await;
    let id = f.svc.create_upload(&f.alpha, "bkt", "k", PutRequest::default()).await.unwrap();
    f.part("k", &id, 1, &data(5 * MIB, 1)).await;
    let e1 = f.part("k", &id, 1, &data(5 * MIB, 9)).await;
    let e2 = f.part("k", &id, 2, b"tail").await;
    let listed = f.svc.list_parts(&f.alpha, "bkt", "k", &id, None, 1000).await.unwrap();
    let sizes: Vec<_> = listed.parts.iter().map(|p| (p.part_number, p.size, p.etag.clone())).collect();
    assert_eq!(sizes, vec![(1, (5 * MIB) as u64, e1.clone()), (2, 4, e2.clone())]);
    let ups = f.svc.list_uploads(&f.alpha, "bkt", "", None, None, 1000).await.unwrap();
    assert_eq!(
        ups.uploads.iter().map(|u| (u.key.as_str(), u.upload_id.as_str())).collect::<Vec<_>>(),
        [("k", id.as_str())]
    );
    let named = [(1, e1), (2, e2)];
    let first = f.svc.complete_upload(&f.alpha, "bkt", "k", &id, &named, false).await.unwrap();
    // A retried completion (its response lost) succeeds with the same object; another upload's id does not.
    let again = f.svc.complete_upload(&f.alpha, "bkt", "k", &id, &named, false).await.unwrap();
    assert_eq!(again.etag, first.etag);
    let other = f.svc.create_upload(&f.alpha, "bkt", "k", PutRequest::default()).await.unwrap();
    f.svc.abort_upload(&f.alpha, "bkt", "k", &other).await.unwrap();
    assert!(matches!(
        f.svc.complete_upload(&f.alpha, "bkt", "k", &other, &named, false).await,
        Err(CoreError::NoSuchUpload)
    ));
    let mut want = data(5 * MIB, 9);
    want.extend_from_slice(b"tail");
    assert_eq!(f.get("k", None, None).await.unwrap(), want);
    let raw = f.backend.list("alpha-bkt", ListOptions { max_keys: 1000, ..Default::default() }).await.unwrap();
    assert_eq!(raw.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["k"]);
    assert!(matches!(
        f.svc.upload_part(&f.alpha, "bkt", "k", &id, 3, body(b"x"), 1).await,
        Err(CoreError::NoSuchUpload)
    ));
}

#[tokio::test]
async fn completion_rules_are_checked_on_plaintext_sizes() {
    let f = fixture();
    f.bucket().await;
    let id = f.svc.create_upload(&f.alpha, "bkt", "k", PutRequest::default()).await.unwrap();
    let e1 = f.part("k", &id, 1, &data(5 * MIB - 1, 1)).await;
    let e2 = f.part("k", &id, 2, b"x").await;
    let complete = |named: Vec<(u32, String)>| {
        let (svc, alpha, id) = (&f.svc, &f.alpha, id.clone());
        async move { svc.complete_upload(alpha, "bkt", "k", &id, &named, false).await }
    };
    assert!(matches!(
        complete(vec![(1, e1.clone()), (2, e2.clone())]).await,
        Err(CoreError::Backend(BackendError::EntityTooSmall))
    ));
    assert!(matches!(
        complete(vec![(2, e2.clone()), (1, e1.clone())]).await,
        Err(CoreError::Backend(BackendError::InvalidPartOrder))
    ));
    assert!(matches!(complete(vec![(1, "bad".into())]).await, Err(CoreError::Backend(BackendError::InvalidPart(_)))));
    assert!(matches!(complete(vec![(7, e1.clone())]).await, Err(CoreError::Backend(BackendError::InvalidPart(_)))));
    // A single small part is a valid object; the upload survived the refused attempts.
    complete(vec![(2, e2)]).await.unwrap();
    assert_eq!(f.get("k", None, None).await.unwrap(), b"x");
}

#[tokio::test]
async fn upload_ids_only_work_for_their_own_tenant_and_key() {
    let f = fixture();
    f.bucket().await;
    f.svc.create_bucket(&f.beta, "bkt2", None).await.unwrap();
    let id = f.svc.create_upload(&f.alpha, "bkt", "k", PutRequest::default()).await.unwrap();
    let other_key = f.svc.upload_part(&f.alpha, "bkt", "other", &id, 1, body(b"x"), 1).await;
    assert!(matches!(other_key, Err(CoreError::NoSuchUpload)), "{other_key:?}");
    let other_tenant = f.svc.upload_part(&f.beta, "bkt2", "k", &id, 1, body(b"x"), 1).await;
    assert!(matches!(other_tenant, Err(CoreError::NoSuchUpload) | Err(CoreError::Backend(_))), "{other_tenant:?}");
    assert!(matches!(
        f.svc.upload_part(&f.alpha, "bkt", "k", "garbage", 1, body(b"x"), 1).await,
        Err(CoreError::NoSuchUpload)
    ));
    f.svc.abort_upload(&f.alpha, "bkt", "k", &id).await.unwrap();
    assert!(matches!(f.svc.abort_upload(&f.alpha, "bkt", "k", &id).await, Err(CoreError::NoSuchUpload)));
}

/// Rewrites the stored object's bytes, keeping its metadata (what someone with backend access can do).
async fn tamper(f: &Fixture, key: &str, edit: impl FnOnce(&mut Vec<u8>)) {
    let got = f.backend.get("alpha-bkt", key, GetOptions::default()).await.unwrap();
    let meta = got.head.metadata.clone();
    let mut bytes = read(got.body).await.unwrap();
    edit(&mut bytes);
    let opts = PutOptions { metadata: meta, ..Default::default() };
    let len = bytes.len() as u64;
    f.backend.put("alpha-bkt", key, body(&bytes), len, opts).await.unwrap();
}

#[tokio::test]
async fn reordered_dropped_duplicated_swapped_and_truncated_parts_are_refused() {
    let f = fixture();
    f.bucket().await;
    let p = 5 * MIB;
    let c = crate::core::envelope::ciphertext_len(p as u64) as usize;
    let parts: Vec<(u32, Vec<u8>)> = (1..=3).map(|n| (n, data(p, n as u8))).collect();
    f.upload("a", &parts).await;
    f.upload("b", &parts).await;
    let b_bytes = read(f.backend.get("alpha-bkt", "b", GetOptions::default()).await.unwrap().body).await.unwrap();
    type Edit = Box<dyn FnOnce(&mut Vec<u8>)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "reorder",
            Box::new(move |v: &mut Vec<u8>| {
                let (x, y) = v.split_at_mut(c);
                x.swap_with_slice(&mut y[..c]);
            }),
        ),
        ("drop", Box::new(move |v: &mut Vec<u8>| drop(v.drain(c..2 * c)))),
        (
            "duplicate",
            Box::new(move |v: &mut Vec<u8>| {
                let first = v[..c].to_vec();
                v[c..2 * c].copy_from_slice(&first);
            }),
        ),
        ("cross-upload swap", Box::new(move |v: &mut Vec<u8>| v[c..2 * c].copy_from_slice(&b_bytes[c..2 * c]))),
        ("truncate at part boundary", Box::new(move |v: &mut Vec<u8>| v.truncate(2 * c))),
    ];
    for (name, edit) in cases {
        f.upload("a", &parts).await;
        tamper(&f, "a", edit).await;
        assert!(f.get("a", None, None).await.is_err(), "{name}: whole object served");
        let mid = (p + 10) as u64;
        assert!(f.get("a", Some(RangeRequest::FromTo(mid, mid + 10)), None).await.is_err(), "{name}: range served");
    }
}

/// Counts the backend reads behind one client read and checks the bytes they asked for.
#[tokio::test]
async fn ranged_reads_cost_at_most_two_backend_requests_and_only_the_segments_they_need() {
    use crate::backend::memory::Read;
    use crate::core::envelope::{SEGMENT_SIZE, TAG_LEN};
    let f = fixture();
    f.bucket().await;
    // On the segment grid (whole 64 KiB multiples but the last), off the grid, and a single PUT.
    f.upload("grid", &[(1, data(5 * MIB, 1)), (2, data(5 * MIB, 2)), (3, data(1000, 3))]).await;
    f.upload("offgrid", &[(1, data(5 * MIB + 1, 1)), (2, data(5 * MIB + 7, 2)), (3, data(1000, 3))]).await;
    let single = data(3 * MIB, 4);
    f.svc
        .put_object(&f.alpha, "bkt", "single", body(&single), single.len() as u64, PutRequest::default())
        .await
        .unwrap();
    let seg = SEGMENT_SIZE + TAG_LEN;
    let b = (5 * MIB) as u64;
    let cases: Vec<(&str, Option<RangeRequest>, Option<PartNumber>, usize)> = vec![
        ("single", Some(RangeRequest::FromTo(100_000, 100_010)), None, 1),
        ("single", Some(RangeRequest::From(3 * MIB as u64 - 5)), None, 1),
        ("single", Some(RangeRequest::Suffix(10)), None, 2),
        ("single", None, Some(PartNumber(1)), 2),
        ("grid", Some(RangeRequest::FromTo(b - 5, b + 5)), None, 1),
        ("grid", Some(RangeRequest::Suffix(2000)), None, 2),
        ("grid", None, Some(PartNumber(2)), 2),
        ("offgrid", Some(RangeRequest::FromTo(b + 3, b + 9)), None, 2),
        ("offgrid", Some(RangeRequest::FromTo(2 * b + 20, 2 * b + 30)), None, 2),
        ("offgrid", Some(RangeRequest::Suffix(2000)), None, 2),
        ("offgrid", None, Some(PartNumber(3)), 2),
    ];
    for (key, range, part, most) in cases {
        f.backend.take_reads();
        let got = f.get(key, range, part).await.unwrap();
        let reads = f.backend.take_reads();
        assert!(reads.len() <= most, "{key} {range:?} {part:?}: {reads:?}");
        // The bytes fetched for the body: the segments holding the range plus at most one on each side.
        let Some(Read::Get { range: Some(r), .. }) = reads.last() else { panic!("{key}: no ranged GET: {reads:?}") };
        let wanted = got.len() as u64;
        // An open-ended window (`bytes=a-`) is clamped to the stored size by the backend.
        let stored = f.backend.head("alpha-bkt", key, None).await.unwrap().meta.size;
        assert!(
            r.end.min(stored) - r.start <= wanted + 4 * seg,
            "{key} {range:?} {part:?}: fetched {r:?} for {wanted} bytes"
        );
    }
}

#[tokio::test]
async fn hidden_upload_keys_are_not_the_clients() {
    let f = fixture();
    f.bucket().await;
    let hidden = ".blobseal/mpu/k/x";
    f.backend.put("alpha-bkt", hidden, body(b"raw"), 3, crate::backend::PutOptions::default()).await.unwrap();
    assert!(matches!(f.get(hidden, None, None).await, Err(CoreError::Backend(BackendError::NoSuchKey))));
    let head = f.svc.head_object(&f.alpha, "bkt", hidden, None).await;
    assert!(matches!(head, Err(CoreError::Backend(BackendError::NoSuchKey))), "{head:?}");
    assert!(matches!(f.svc.delete_object(&f.alpha, "bkt", hidden, None).await, Err(CoreError::InvalidRequest(_))));
    let put = f.svc.put_object(&f.alpha, "bkt", hidden, body(b"x"), 1, PutRequest::default()).await;
    assert!(matches!(put, Err(CoreError::InvalidRequest(_))));
    let create = f.svc.create_upload(&f.alpha, "bkt", hidden, PutRequest::default()).await;
    assert!(matches!(create, Err(CoreError::InvalidRequest(_))));
    let page = f.svc.list_objects(&f.alpha, "bkt", ListOptions { max_keys: 100, ..Default::default() }).await.unwrap();
    assert!(page.objects.is_empty(), "{:?}", page.objects);
    assert!(f.backend.head("alpha-bkt", hidden, None).await.is_ok(), "the hidden object must be untouched");
}
