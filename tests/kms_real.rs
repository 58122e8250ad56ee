//! The `aws-kms` root-key provider against a real `moto_server` (KMS and S3 on one port, any
//! credentials, region us-east-1). Each test starts its own server; a missing `moto_server` fails
//! loudly (tests/common/servers.rs).
//!
//! Run: `cargo test --test kms_real`.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kms::types::KeyState;
use blobseal::core::keys::aws_kms::{AwsKms, AwsKmsSettings};
use blobseal::core::keys::{DataKey, KeyError, KeyProvider, WrapContext};
use common::servers::{MotoServer, Server};

const REGION: &str = "us-east-1";

fn settings(endpoint: &str) -> AwsKmsSettings {
    AwsKmsSettings {
        endpoint: Some(endpoint.to_owned()),
        region: REGION.into(),
        access_key_id: "testing".into(),
        secret_access_key: "testing-secret".into(),
        deletion_window_days: 7,
    }
}

fn provider(server: &Server) -> AwsKms {
    AwsKms::new(settings(&server.endpoint)).unwrap_or_else(|e| panic!("building the provider: {e}"))
}

/// A plain SDK client on the same server, to look at what the provider left in KMS.
fn raw_client(server: &Server) -> aws_sdk_kms::Client {
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("testing", "testing-secret", None, None, "test"))
        .endpoint_url(&server.endpoint)
        .build();
    aws_sdk_kms::Client::from_conf(conf)
}

fn cx<'a>(tenant: &'a str, key_id: &'a str) -> WrapContext<'a> {
    WrapContext { tenant, key_id }
}

#[tokio::test]
async fn roots_are_tagged_kms_keys_and_wraps_round_trip_per_tenant() {
    let server = MotoServer::start();
    let kms = provider(&server);
    assert_eq!(kms.kind(), "aws-kms");

    let root_a = kms.create_root("acme").await.unwrap();
    let root_b = kms.create_root("globex").await.unwrap();
    assert!(root_a.starts_with("arn:aws:kms:us-east-1:") && root_a.contains(":key/"), "{root_a}");
    assert_ne!(root_a, root_b);

    // The key KMS holds is what the brief asks for: symmetric, encrypt/decrypt, described and tagged.
    let raw = raw_client(&server);
    let meta = raw.describe_key().key_id(&root_a).send().await.unwrap();
    let meta = meta.key_metadata().unwrap();
    assert_eq!(meta.description(), Some("blobseal root key for tenant acme"));
    assert_eq!(meta.key_usage().map(|u| u.as_str()), Some("ENCRYPT_DECRYPT"));
    assert_eq!(meta.key_state(), Some(&KeyState::Enabled));
    let tags = raw.list_resource_tags().key_id(&root_b).send().await.unwrap();
    let tags: Vec<(&str, &str)> = tags.tags().iter().map(|t| (t.tag_key(), t.tag_value())).collect();
    assert_eq!(tags, vec![("blobseal:tenant", "globex")]);

    let key_a = DataKey::generate().unwrap();
    let key_b = DataKey::generate().unwrap();
    let blob_a = kms.wrap(&root_a, &key_a, &cx("acme", "tenant:1")).await.unwrap();
    let blob_b = kms.wrap(&root_b, &key_b, &cx("globex", "tenant:1")).await.unwrap();
    assert!(!blob_a.windows(32).any(|w| w == key_a.as_bytes()), "the wrapped blob contains the key");

    let back_a = kms.unwrap(&root_a, &blob_a, &cx("acme", "tenant:1")).await.unwrap();
    let back_b = kms.unwrap(&root_b, &blob_b, &cx("globex", "tenant:1")).await.unwrap();
    assert_eq!(back_a.as_bytes(), key_a.as_bytes());
    assert_eq!(back_b.as_bytes(), key_b.as_bytes());

    // A second provider (another replica: empty owner cache) unwraps the same blob.
    let other_replica = provider(&server);
    let again = other_replica.unwrap(&root_a, &blob_a, &cx("acme", "tenant:1")).await.unwrap();
    assert_eq!(again.as_bytes(), key_a.as_bytes());
}

#[tokio::test]
async fn another_context_or_a_tampered_blob_does_not_unwrap() {
    let server = MotoServer::start();
    let kms = provider(&server);
    let root_a = kms.create_root("acme").await.unwrap();
    let root_b = kms.create_root("globex").await.unwrap();
    let key = DataKey::generate().unwrap();
    let blob = kms.wrap(&root_a, &key, &cx("acme", "tenant:1")).await.unwrap();

    // Another tenant naming acme's root is refused before KMS is asked (the root is not theirs).
    let err = kms.unwrap(&root_a, &blob, &cx("globex", "tenant:1")).await.unwrap_err();
    assert!(matches!(err, KeyError::Unwrap), "{err:?}");
    // Another tenant with its own root and acme's blob: KMS refuses (the blob is not under that key).
    // Real KMS says IncorrectKeyException (→ Unwrap); moto 5.2 says AccessDeniedException, which
    // the provider cannot tell from a permissions problem (→ Unavailable). Either way: no key.
    let err = kms.unwrap(&root_b, &blob, &cx("globex", "tenant:1")).await.unwrap_err();
    assert!(matches!(err, KeyError::Unwrap | KeyError::Unavailable(_)), "{err:?}");
    // Same tenant and root, another lifetime key id: KMS's encryption context check refuses it.
    let err = kms.unwrap(&root_a, &blob, &cx("acme", "tenant:2")).await.unwrap_err();
    assert!(matches!(err, KeyError::Unwrap), "{err:?}");
    // Wrapping under another tenant's root is refused too.
    let err = kms.wrap(&root_a, &key, &cx("globex", "tenant:1")).await.unwrap_err();
    assert!(matches!(err, KeyError::UnknownKey(_)), "{err:?}");

    // Flip the last byte (inside the GCM tag of the blob): authentication fails.
    let mut tampered = blob.clone();
    if let Some(last) = tampered.last_mut() {
        *last ^= 0x01;
    }
    let err = kms.unwrap(&root_a, &tampered, &cx("acme", "tenant:1")).await.unwrap_err();
    assert!(matches!(err, KeyError::Unwrap), "{err:?}");
    // Truncated and garbage blobs fail the same way, never with a panic.
    let err = kms.unwrap(&root_a, &blob[..blob.len() - 1], &cx("acme", "tenant:1")).await.unwrap_err();
    assert!(matches!(err, KeyError::Unwrap), "{err:?}");
    let err = kms.unwrap(&root_a, b"not a blob", &cx("acme", "tenant:1")).await.unwrap_err();
    assert!(matches!(err, KeyError::Unwrap), "{err:?}");

    // The untouched blob still opens.
    let back = kms.unwrap(&root_a, &blob, &cx("acme", "tenant:1")).await.unwrap();
    assert_eq!(back.as_bytes(), key.as_bytes());
}

#[tokio::test]
async fn destroy_disables_and_schedules_deletion() {
    let server = MotoServer::start();
    let kms = provider(&server);
    let root = kms.create_root("acme").await.unwrap();
    let other = kms.create_root("globex").await.unwrap();
    let key = DataKey::generate().unwrap();
    kms.wrap(&root, &key, &cx("acme", "tenant:1")).await.unwrap();

    // A tenant cannot destroy another tenant's root.
    let err = kms.destroy("globex", &root).await.unwrap_err();
    assert!(matches!(err, KeyError::UnknownKey(_)), "{err:?}");

    let done = kms.destroy("acme", &root).await.unwrap();
    assert_eq!(done.root_id, root);
    assert!(done.detail.starts_with("disabled 20"), "{}", done.detail);
    assert!(done.detail.contains("; deletion scheduled for 20"), "{}", done.detail);
    assert!(done.detail.ends_with('Z'), "{}", done.detail);

    let raw = raw_client(&server);
    let meta = raw.describe_key().key_id(&root).send().await.unwrap();
    let meta = meta.key_metadata().unwrap();
    assert_eq!(meta.key_state(), Some(&KeyState::PendingDeletion));
    // 7 days from now (moto's clock is ours): between 6 and 8 days ahead.
    let due = meta.deletion_date().unwrap().secs();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((6 * 86_400..8 * 86_400).contains(&(due - now)), "deletion in {} s", due - now);
    // The other tenant's root is untouched.
    let meta = raw.describe_key().key_id(&other).send().await.unwrap();
    assert_eq!(meta.key_metadata().unwrap().key_state(), Some(&KeyState::Enabled));

    // moto 5.2 keeps serving Encrypt/Decrypt for a key pending deletion (FACTS.md: even a disabled
    // key decrypts), so a refusal cannot be proven against it; the PendingDeletion state checked
    // above is what moto can prove. Real KMS answers KMSInvalidStateException, which maps to
    // `Destroyed` (unit-tested in aws_kms.rs, `classify_follows_the_table`).

    // Destroying again is idempotent: it reports the scheduled deletion again.
    let again = kms.destroy("acme", &root).await.unwrap();
    assert!(again.detail.starts_with("already disabled; deletion scheduled for 20"), "{}", again.detail);
    let first_date = done.detail.rsplit(' ').next().unwrap();
    assert!(again.detail.ends_with(first_date), "{} vs {}", again.detail, done.detail);
}

#[tokio::test]
async fn unknown_root_is_not_usable() {
    let server = MotoServer::start();
    let kms = provider(&server);
    let missing = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000";
    let key = DataKey::generate().unwrap();
    let err = kms.wrap(missing, &key, &cx("acme", "tenant:1")).await.unwrap_err();
    assert!(matches!(&err, KeyError::Destroyed(m) if m.contains(missing)), "{err:?}");
    let err = kms.unwrap(missing, b"blob", &cx("acme", "tenant:1")).await.unwrap_err();
    assert!(matches!(err, KeyError::Destroyed(_)), "{err:?}");
}

#[tokio::test]
async fn an_unreachable_kms_is_unavailable_within_seconds() {
    let server = MotoServer::start();
    let kms = provider(&server);
    let root = kms.create_root("acme").await.unwrap();
    let key = DataKey::generate().unwrap();
    let blob = kms.wrap(&root, &key, &cx("acme", "tenant:1")).await.unwrap();
    let endpoint = server.endpoint.clone();
    // Kills and reaps moto: nothing listens on the port any more.
    drop(server);

    let limit = Duration::from_secs(15);
    let started = Instant::now();
    let err = kms.wrap(&root, &key, &cx("acme", "tenant:1")).await.unwrap_err();
    assert!(matches!(err, KeyError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < limit, "wrap took {:?}", started.elapsed());

    let started = Instant::now();
    let err = kms.unwrap(&root, &blob, &cx("acme", "tenant:1")).await.unwrap_err();
    assert!(matches!(err, KeyError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < limit, "unwrap took {:?}", started.elapsed());

    let started = Instant::now();
    let err = kms.destroy("acme", &root).await.unwrap_err();
    assert!(matches!(err, KeyError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < limit, "destroy took {:?}", started.elapsed());

    // A fresh provider (no cached owner) fails the same way, and says nothing secret.
    let fresh = AwsKms::new(settings(&endpoint)).unwrap();
    let started = Instant::now();
    let err = fresh.create_root("acme").await.unwrap_err();
    assert!(started.elapsed() < limit, "create_root took {:?}", started.elapsed());
    match err {
        KeyError::Unavailable(m) => assert!(!m.contains("testing-secret"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_kms_that_never_answers_times_out() {
    // The kernel completes the TCP handshake for a bound listener that never accepts: the request
    // is sent and no answer ever comes, like a hung KMS endpoint (not a refused connection).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let kms = AwsKms::new(settings(&endpoint)).unwrap();

    let started = Instant::now();
    let err = kms.create_root("acme").await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(&err, KeyError::Unavailable(m) if m.contains("timed out")), "{err:?}");
    // The operation timeout is 10 s; allow scheduling slack but not a hang.
    assert!(took >= Duration::from_secs(4) && took < Duration::from_secs(15), "create_root took {took:?}");
    drop(silent);
}
