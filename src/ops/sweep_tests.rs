//! The sweeper against the in-memory backend: per-version deadlines, delete markers, backups, locks,
//! dry runs and idempotence. (Against real moto: tests/clients/test_policy_*.py.)

use std::time::Duration as StdDuration;

use time::{Duration, OffsetDateTime};

use super::*;
use crate::backend::{Backend, ListVersionsOptions, LockState};
use crate::core::keys::cache::CacheSettings;
use crate::core::policy::retention::{ClientOverride, Keep, Pattern, RetentionPolicy, RetentionRule};
use crate::core::service::PutRequest;
use crate::core::tenant::BackupTarget;
use crate::core::test_support::{body, fixture_custom, Fixture};

fn world() -> (Fixture, Ops) {
    let f = fixture_custom(CacheSettings { ttl: StdDuration::from_millis(200), max_entries: 100 }, |t| {
        t.retention = RetentionPolicy {
            rules: vec![RetentionRule {
                name: "calls".into(),
                bucket: None,
                key: Some(Pattern::parse("calls/**").unwrap()),
                prefix: None,
                content_type: None,
                metadata: Default::default(),
                tags: Default::default(),
                keep: Keep::parse("28d").unwrap(),
                client_override: ClientOverride::Never,
            }],
            default: Keep::parse("35d").unwrap(),
            default_override: ClientOverride::Never,
            period_keys: t.name == "beta",
        };
        if t.name == "alpha" {
            t.backups = vec![BackupTarget { backend: "mem".into(), bucket: "alpha-backup".into() }];
        }
    });
    let ops = Ops::new(f.svc.clone());
    (f, ops)
}

async fn put(f: &Fixture, key: &str, data: &[u8]) {
    f.svc.put_object(&f.alpha, "x", key, body(data), data.len() as u64, PutRequest::default()).await.unwrap();
}

async fn versions(f: &Fixture, bucket: &str) -> Vec<(String, bool)> {
    let page =
        f.backend.list_versions(bucket, ListVersionsOptions { max_keys: 1000, ..Default::default() }).await.unwrap();
    page.versions.into_iter().map(|v| (v.meta.key, v.is_delete_marker)).collect()
}

fn request(now: OffsetDateTime, dry_run: bool) -> SweepRequest {
    SweepRequest {
        tenant: Some("alpha".into()),
        dry_run,
        now,
        max_deletes_per_second: 10_000,
        holder: "test".into(),
        stop: None,
        shard: None,
    }
}

#[tokio::test]
async fn deletes_exactly_what_expired_with_versions_markers_and_backups() {
    let (f, ops) = world();
    f.svc.create_bucket(&f.alpha, "x", None).await.unwrap();
    f.svc.put_versioning(&f.alpha, "x", true).await.unwrap();
    put(&f, "calls/1.json", b"v1").await;
    put(&f, "calls/1.json", b"v2").await;
    f.svc.delete_object(&f.alpha, "x", "calls/1.json", None).await.unwrap(); // a delete marker
    put(&f, "calls/2.json", b"c2").await;
    put(&f, "logs/a.log", b"log").await;
    // The backup target (unversioned) holds the latest copy of each key.
    assert_eq!(versions(&f, "alpha-backup").await.len(), 3, "every write was copied to the backup target");

    // 30 days on: calls (28d) expired, logs (35d) not.
    let later = OffsetDateTime::now_utc() + Duration::days(30);
    let mut dry = Vec::new();
    let s = sweep(&ops, &request(later, true), &mut dry).await.unwrap();
    assert_eq!((s.versions_deleted, s.delete_markers_deleted), (0, 0));
    assert_eq!(versions(&f, "alpha-x").await.len(), 5, "a dry run deletes nothing");
    let dry = String::from_utf8(dry).unwrap();
    assert!(dry.lines().all(|l| l.contains("\"would-delete\"")), "{dry}");

    let mut report = Vec::new();
    let s = sweep(&ops, &request(later, false), &mut report).await.unwrap();
    assert_eq!(s.versions_deleted, 3 + 2, "three primary versions and the two backup copies");
    assert_eq!(s.delete_markers_deleted, 1);
    assert_eq!(s.not_due, 2, "logs/a.log and its backup copy");
    let left: Vec<String> = versions(&f, "alpha-x").await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(left, vec!["logs/a.log".to_owned()]);
    let backup_left: Vec<String> = versions(&f, "alpha-backup").await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(backup_left, vec!["x/logs/a.log".to_owned()]);
    let report = String::from_utf8(report).unwrap();
    assert_eq!(report.lines().count(), 4, "two keys, primary and backup each: {report}");
    assert!(report.contains("\"location\":\"backup:mem/alpha-backup\""), "{report}");

    // Again: nothing left to do.
    let mut again = Vec::new();
    let s = sweep(&ops, &request(later, false), &mut again).await.unwrap();
    assert_eq!((s.versions_deleted, s.delete_markers_deleted), (0, 0));
    assert!(again.is_empty());
}

#[tokio::test]
async fn locked_versions_are_kept_and_reported() {
    let (f, ops) = world();
    f.backend
        .create_bucket_with("alpha-x", crate::backend::CreateBucketOptions { object_lock: true, ..Default::default() })
        .await
        .unwrap();
    put(&f, "calls/held.json", b"held").await;
    let vid = f.backend.head("alpha-x", "calls/held.json", None).await.unwrap().meta.version_id;
    f.backend
        .set_lock("alpha-x", "calls/held.json", vid.as_deref(), LockState { legal_hold: true, ..Default::default() })
        .unwrap();
    let later = OffsetDateTime::now_utc() + Duration::days(30);
    let mut report = Vec::new();
    let s = sweep(&ops, &request(later, false), &mut report).await.unwrap();
    assert_eq!(s.kept_locked, 1);
    let report = String::from_utf8(report).unwrap();
    assert!(report.contains("\"result\":\"kept-locked\"") && report.contains("\"legal_hold\":true"), "{report}");
    assert_eq!(versions(&f, "alpha-x").await.len(), 1);
}

#[tokio::test]
async fn a_held_lease_makes_another_sweeper_skip_the_tenant() {
    let (f, ops) = world();
    f.svc.create_bucket(&f.alpha, "x", None).await.unwrap();
    assert!(super::super::lease::take(&ops, JOB, "alpha", "other", None).await.unwrap());
    let mut report = Vec::new();
    let s = sweep(&ops, &request(OffsetDateTime::now_utc(), false), &mut report).await.unwrap();
    assert_eq!(s.leased_elsewhere, vec!["alpha".to_owned()]);
    // Another shard's lease does not hold this one back.
    let sharded =
        SweepRequest { shard: Some(Shard { index: 1, count: 2 }), ..request(OffsetDateTime::now_utc(), false) };
    let s = sweep(&ops, &sharded, &mut report).await.unwrap();
    assert!(s.leased_elsewhere.is_empty(), "a shard has its own lease");
    assert!(super::super::lease::take(&ops, JOB, "alpha", "other", Some(Shard { index: 1, count: 2 })).await.unwrap());
    let s = sweep(&ops, &sharded, &mut report).await.unwrap();
    assert_eq!(s.leased_elsewhere, vec!["alpha".to_owned()]);
    super::super::lease::release(&ops, JOB, "alpha", "other", None).await;
    let s = sweep(&ops, &request(OffsetDateTime::now_utc(), false), &mut report).await.unwrap();
    assert!(s.leased_elsewhere.is_empty());
}

#[tokio::test]
async fn deadline_day_keys_make_unreachable_copies_unreadable_once_the_day_passed() {
    let (f, ops) = world();
    // beta binds objects to a key per deadline day (see `world`).
    f.svc.create_bucket(&f.beta, "y", None).await.unwrap();
    let put_beta = |key: &'static str| {
        let svc = f.svc.clone();
        let beta = f.beta.clone();
        async move { svc.put_object(&beta, "y", key, body(b"data"), 4, PutRequest::default()).await.unwrap() }
    };
    let out = put_beta("calls/1.json").await;
    put_beta("logs/a.log").await;
    let day = out.delete_after.as_deref().unwrap()[..10].to_owned();
    let raw = f.backend.head("beta-y", "calls/1.json", None).await.unwrap();
    let kek = crate::core::rekey::stored_key_id(&raw).unwrap();
    assert_eq!(kek, format!("tenant:1+period:{day}"));
    // A copy nobody will delete (a tape): the raw object and its metadata.
    let got = f.backend.get("beta-y", "calls/1.json", Default::default()).await.unwrap();
    let tape = crate::core::test_support::read(got.body).await.unwrap();

    let later = OffsetDateTime::now_utc() + Duration::days(30);
    let mut report = Vec::new();
    let req = SweepRequest { tenant: Some("beta".into()), ..request(later, false) };
    let s = sweep(&ops, &req, &mut report).await.unwrap();
    assert_eq!(s.period_keys, vec![format!("beta/period:{day}")], "{}", String::from_utf8_lossy(&report));
    // The tape, put back: its day's key is gone, so it opens nowhere.
    let opts = crate::backend::PutOptions { metadata: raw.metadata.clone(), ..Default::default() };
    f.backend.put("beta-y", "calls/1.json", body(&tape), tape.len() as u64, opts).await.unwrap();
    let err = f.svc.get_object(&f.beta, "y", "calls/1.json", None, None, None).await.err();
    assert!(matches!(&err, Some(CoreError::KeyDestroyed(m)) if m.contains("deadline day")), "{err:?}");
    // The 35-day object's day is still ahead: untouched and readable.
    assert!(f.svc.get_object(&f.beta, "y", "logs/a.log", None, None, None).await.is_ok());
}

#[test]
fn shards_split_the_key_space_exactly() {
    assert!(Shard::parse("4/4").is_err() && Shard::parse("1/0").is_err() && Shard::parse("x").is_err());
    let shards: Vec<Shard> = (0..3).map(|i| Shard::parse(&format!("{i}/3")).unwrap()).collect();
    let mut sizes = [0u32; 3];
    for n in 0..3000 {
        let key = format!("calls/{n}.wav");
        let owners: Vec<usize> = (0..3).filter(|&i| shards[i].owns(&key)).collect();
        assert_eq!(owners.len(), 1, "{key} owned by {owners:?}");
        sizes[owners[0]] += 1;
    }
    assert!(sizes.iter().all(|&s| s > 800), "uneven split {sizes:?}");
}

#[tokio::test]
async fn an_interrupted_sweep_resumes_after_its_checkpoint_and_then_starts_over() {
    let (f, ops) = world();
    f.svc.create_bucket(&f.alpha, "x", None).await.unwrap();
    for i in 0..10 {
        put(&f, &format!("calls/{i:02}.json"), b"c").await;
    }
    // As if a previous run had stopped after calls/04.json.
    let store = &ops.keys().tenant("alpha").unwrap().store;
    let c = Checkpoint { location: "x".into(), after: "calls/04.json".into() };
    store.put(&checkpoint_key("alpha", None), &c, false).await.unwrap();
    let later = OffsetDateTime::now_utc() + Duration::days(30);
    let mut report = Vec::new();
    let s = sweep(&ops, &request(later, false), &mut report).await.unwrap();
    assert!(s.resumed && s.line(0.0).contains("resumed"), "{}", s.line(0.0));
    let left: Vec<String> = versions(&f, "alpha-x").await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(left, (0..5).map(|i| format!("calls/{i:02}.json")).collect::<Vec<_>>(), "only keys after it");
    assert!(store.get::<Checkpoint>(&checkpoint_key("alpha", None)).await.unwrap().is_none(), "done: removed");
    // The next run starts from the beginning.
    let s = sweep(&ops, &request(later, false), &mut report).await.unwrap();
    assert!(!s.resumed);
    assert!(versions(&f, "alpha-x").await.is_empty());
    // A checkpoint is saved every CHECKPOINT_EVERY keys and when a run is stopped.
    for i in 0..(CHECKPOINT_EVERY + 5) {
        put(&f, &format!("calls/{i:04}.json"), b"c").await;
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut req = request(later, false);
    req.stop = Some(std::sync::Arc::clone(&stop));
    struct StopAfter(std::sync::Arc<std::sync::atomic::AtomicBool>, usize);
    impl std::io::Write for StopAfter {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.1 += b.iter().filter(|c| **c == b'\n').count();
            if self.1 >= 60 {
                self.0.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut out = StopAfter(std::sync::Arc::clone(&stop), 0);
    let s = sweep(&ops, &req, &mut out).await.unwrap();
    assert!(s.stopped);
    let saved = store.get::<Checkpoint>(&checkpoint_key("alpha", None)).await.unwrap().expect("saved at the stop");
    assert_eq!(saved.location, "x");
    assert!(versions(&f, "alpha-x").await.iter().all(|(k, _)| k.as_str() > saved.after.as_str()), "{saved:?}");
}
