//! The key commands against the in-memory backend and test provider (the real ones run in
//! tests/clients/test_keys_*.py).

use std::time::Duration;

use super::receipt::sha256_hex;
use super::retire::retire;
use super::rewrap::rewrap;
use super::rotate::rotate;
use super::shred::{shred, ShredRequest};
use super::Ops;
use crate::backend::{Backend, PutOptions};
use crate::core::error::CoreError;
use crate::core::keys::cache::CacheSettings;
use crate::core::keys::store::names;
use crate::core::rekey::stored_key_id;
use crate::core::service::PutRequest;
use crate::core::test_support::{body, fixture_with_cache, read, Fixture, KEY_STORE};

fn world() -> (Fixture, Ops) {
    let f = fixture_with_cache(CacheSettings { ttl: Duration::from_millis(100), max_entries: 100 });
    let ops = Ops::new(f.svc.clone());
    (f, ops)
}

async fn put(f: &Fixture, key: &str, subject: Option<&str>, data: &[u8]) {
    let mut req = PutRequest::default();
    if let Some(s) = subject {
        req.metadata.insert("data-subject".into(), s.into());
    }
    f.svc.put_object(&f.alpha, "x", key, body(data), data.len() as u64, req).await.unwrap();
}

async fn get(f: &Fixture, key: &str) -> Result<Vec<u8>, CoreError> {
    let got = f.svc.get_object(&f.alpha, "x", key, None, None, None).await?;
    Ok(read(got.body).await.unwrap())
}

async fn kek(f: &Fixture, key: &str) -> String {
    stored_key_id(&f.backend.head("alpha-x", key, None).await.unwrap()).unwrap()
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(150)).await;
}

#[tokio::test]
async fn rotate_rewrap_resume_retire() {
    let (f, ops) = world();
    f.svc.create_bucket(&f.alpha, "x", None).await.unwrap();
    for i in 0..5 {
        put(&f, &format!("o{i}"), None, format!("plain {i}").as_bytes()).await;
    }
    put(&f, "ann", Some("ann"), b"ann's").await;
    let raw_before = read(f.backend.get("alpha-x", "o0", Default::default()).await.unwrap().body).await.unwrap();

    let r = rotate(&ops, "alpha").await.unwrap();
    assert_eq!((r.root_gen, r.tenant_key.as_str()), (2, "tenant:2"));
    settle().await;
    put(&f, "new", None, b"after rotation").await;
    assert_eq!(kek(&f, "new").await, "tenant:2");
    let refused = retire(&ops, "alpha", true).await;
    assert!(refused.is_err(), "retire must refuse while o0..o4 use tenant:1");

    // Key order: ann (subject key), new (current), o0, o1 | o2, o3, o4.
    let first = rewrap(&ops, "alpha", None, Some(4), None).await.unwrap();
    assert!(first.stopped_at_limit);
    assert_eq!((first.rewrapped, first.already_current, first.subject_keys), (2, 1, 1), "{first:?}");
    let rest = rewrap(&ops, "alpha", None, None, None).await.unwrap();
    // The checkpoint resumes after o1.
    assert_eq!((rest.rewrapped, rest.already_current, rest.subject_keys), (3, 0, 0), "{rest:?}");
    assert!(!rest.stopped_at_limit);
    for i in 0..5 {
        assert_eq!(kek(&f, &format!("o{i}")).await, "tenant:2");
        assert_eq!(get(&f, &format!("o{i}")).await.unwrap(), format!("plain {i}").as_bytes());
    }
    let raw_after = read(f.backend.get("alpha-x", "o0", Default::default()).await.unwrap().body).await.unwrap();
    assert_eq!(raw_before, raw_after, "rewrap rewrote the envelope only");

    let retired = retire(&ops, "alpha", true).await.unwrap();
    assert_eq!(retired.removed_keys, vec!["tenant:1".to_owned()]);
    assert_eq!(retired.destroyed_roots.len(), 1);
    settle().await;
    assert_eq!(get(&f, "o3").await.unwrap(), b"plain 3");
    assert_eq!(get(&f, "ann").await.unwrap(), b"ann's");
    assert_eq!(ops.keys().load_state("alpha").await.unwrap().roots.len(), 1);
}

#[tokio::test]
async fn shredding_a_subject_outlives_a_restored_backup() {
    let (f, ops) = world();
    f.svc.create_bucket(&f.alpha, "x", None).await.unwrap();
    put(&f, "ann", Some("ann"), b"ann's record").await;
    put(&f, "bob", Some("bob"), b"bob's record").await;
    put(&f, "plain", None, b"no subject").await;
    // A backup of everything: the object and the whole key store, bytes and metadata.
    let mut backup = Vec::new();
    for (bucket, key) in [("alpha-x".to_owned(), "ann".to_owned())].into_iter().chain(
        ops.keys()
            .tenant("alpha")
            .unwrap()
            .store
            .list("")
            .await
            .unwrap()
            .into_iter()
            .map(|k| (KEY_STORE.to_owned(), k)),
    ) {
        let got = f.backend.get(&bucket, &key, Default::default()).await.unwrap();
        let meta = got.head.metadata.clone();
        backup.push((bucket, key, read(got.body).await.unwrap(), meta));
    }

    let by = "dpo@example.com".to_owned();
    let req = ShredRequest { tenant: "alpha".into(), subjects: vec!["ann".into()], by: by.clone(), quiet: true };
    let receipt = shred(&ops, &req).await.unwrap();
    assert_eq!(receipt.kind, "subject");
    assert_eq!(receipt.by, by);
    assert_eq!(receipt.destroyed_keys, vec![crate::core::keys::chain::subject_key_id("alpha", "ann")]);
    assert_eq!(receipt.destroyed_roots.len(), 1);
    assert_eq!(receipt.previous_receipt_sha256, None);
    settle().await;
    assert!(matches!(get(&f, "ann").await, Err(CoreError::KeyDestroyed(_))));
    assert_eq!(get(&f, "bob").await.unwrap(), b"bob's record");
    assert_eq!(get(&f, "plain").await.unwrap(), b"no subject");
    let again = f.svc.put_object(
        &f.alpha,
        "x",
        "ann2",
        body(b"x"),
        1,
        PutRequest { metadata: [("data-subject".to_owned(), "ann".to_owned())].into(), ..PutRequest::default() },
    );
    assert!(matches!(again.await, Err(CoreError::WriteRefused(_))));

    // Put the pre-shred copies back wherever they are missing now (ann's object, ann's key record, the old
    // root record): still nothing opens ann's object. (Records that exist are not overwritten: after the
    // root roll an old key-store copy opens nothing, bob's included.)
    for (bucket, key, bytes, metadata) in &backup {
        if bucket == KEY_STORE && f.backend.head(bucket, key, None).await.is_ok() {
            continue;
        }
        let opts = PutOptions { metadata: metadata.clone(), ..PutOptions::default() };
        f.backend.put(bucket, key, body(bytes), bytes.len() as u64, opts).await.unwrap();
    }
    settle().await;
    let err = get(&f, "ann").await.err();
    assert!(matches!(err, Some(CoreError::KeyDestroyed(_))), "{err:?}");

    // A second shred chains to the first receipt.
    let first_bytes = ops.keys().tenant("alpha").unwrap().store.get_raw(&receipt.receipt).await.unwrap().unwrap();
    let req = ShredRequest { tenant: "alpha".into(), subjects: vec!["bob".into()], by, quiet: true };
    let second = shred(&ops, &req).await.unwrap();
    assert_eq!(second.seq, 2);
    assert_eq!(second.previous_receipt_sha256, Some(sha256_hex(&first_bytes)));
    assert_eq!(second.receipt, names::receipt("alpha", 2));
}

#[tokio::test]
async fn shredding_a_tenant_ends_reads_and_writes_but_not_the_other_tenant() {
    let (f, ops) = world();
    f.svc.create_bucket(&f.alpha, "x", None).await.unwrap();
    f.svc.create_bucket(&f.beta, "y", None).await.unwrap();
    put(&f, "a", None, b"alpha data").await;
    f.svc.put_object(&f.beta, "y", "b", body(b"beta data"), 9, PutRequest::default()).await.unwrap();
    let req = ShredRequest { tenant: "alpha".into(), subjects: vec![], by: "ops".into(), quiet: true };
    let receipt = shred(&ops, &req).await.unwrap();
    assert_eq!(receipt.kind, "tenant");
    assert!(receipt.destroyed_keys.contains(&"tenant:1".to_owned()));
    settle().await;
    match get(&f, "a").await {
        Err(CoreError::KeyDestroyed(why)) => assert!(why.contains("shredded"), "{why}"),
        other => panic!("expected KeyDestroyed, got {other:?}"),
    }
    let w = f.svc.put_object(&f.alpha, "x", "c", body(b"c"), 1, PutRequest::default()).await;
    assert!(matches!(w, Err(CoreError::WriteRefused(_))));
    let got = f.svc.get_object(&f.beta, "y", "b", None, None, None).await.unwrap();
    assert_eq!(read(got.body).await.unwrap(), b"beta data");
}

#[tokio::test]
async fn a_held_lease_keeps_a_second_rewrap_or_backup_of_the_same_shard_out() {
    let (f, ops) = world();
    f.svc.create_bucket(&f.alpha, "x", None).await.unwrap();
    put(&f, "o0", None, b"plain").await;
    let shard = Some(crate::ops::sweep::Shard { index: 0, count: 2 });
    // Another process holds the rewrap lease of shard 0/2: a rewrap of that shard refuses, another shard runs.
    assert!(crate::ops::lease::take(&ops, "rewrap", "alpha", "elsewhere", shard).await.unwrap());
    let refused = rewrap(&ops, "alpha", None, None, shard).await.unwrap_err();
    assert!(refused.to_string().contains("another `keys rewrap`"), "{refused}");
    let other = Some(crate::ops::sweep::Shard { index: 1, count: 2 });
    rewrap(&ops, "alpha", None, None, other).await.unwrap();
    // A held backup lease makes the backup skip the tenant and say so; released, it runs.
    assert!(crate::ops::lease::take(&ops, "backup", "alpha", "elsewhere", None).await.unwrap());
    let skipped = crate::ops::backup::backup(&ops, Some("alpha"), None).await.unwrap();
    assert_eq!(skipped.leased_elsewhere, vec!["alpha".to_owned()]);
    crate::ops::lease::release(&ops, "backup", "alpha", "elsewhere", None).await;
    let ran = crate::ops::backup::backup(&ops, Some("alpha"), None).await.unwrap();
    assert!(ran.leased_elsewhere.is_empty(), "{ran:?}");
    // A finished run gives its lease back: the next one takes it.
    assert!(crate::ops::lease::take(&ops, "backup", "alpha", "next", None).await.unwrap());
}
