//! `BlobService` over the in-memory backend and a real local keyring: the core's own contract,
//! without any protocol in the way.

use super::*;
use crate::backend::{Backend, PutOptions};
use crate::core::test_support::{body, fixture, read};

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test]
async fn put_get_ranges_and_sizes() {
    let f = fixture();
    f.svc.create_bucket(&f.alpha, "x", None).await.unwrap();
    let plain = data(200_000);
    let req = PutRequest { metadata: [("k".to_owned(), "v".to_owned())].into(), ..PutRequest::default() };
    let put = f.svc.put_object(&f.alpha, "x", "o", body(&plain), plain.len() as u64, req).await.unwrap();
    let got = f.svc.get_object(&f.alpha, "x", "o", None, None, None).await.unwrap();
    assert_eq!(got.info.etag, put.etag);
    assert_eq!(got.info.metadata.get("k").map(String::as_str), Some("v"));
    assert_eq!(read(got.body).await.unwrap(), plain);
    for (r, want) in [
        (RangeRequest::FromTo(65_530, 65_545), 65_530..65_546),
        (RangeRequest::From(199_990), 199_990..200_000),
        (RangeRequest::Suffix(5), 199_995..200_000),
        (RangeRequest::FromTo(10, 10_000_000), 10..200_000),
    ] {
        let got = f.svc.get_object(&f.alpha, "x", "o", None, Some(r), None).await.unwrap();
        assert_eq!(got.range, Some(want.clone()));
        assert_eq!(read(got.body).await.unwrap(), plain[want.start as usize..want.end as usize]);
    }
    let err = f.svc.get_object(&f.alpha, "x", "o", None, Some(RangeRequest::From(200_000)), None).await.err();
    assert!(matches!(err, Some(CoreError::RangeNotSatisfiable { size: 200_000 })));
    let page = f.svc.list_objects(&f.alpha, "x", ListOptions { max_keys: 10, ..Default::default() }).await.unwrap();
    assert_eq!(page.objects.len(), 1);
    assert_eq!(page.objects[0].size, 200_000);
    assert_eq!(page.objects[0].etag, put.etag);
}

#[tokio::test]
async fn copies_rewrap_and_moved_ciphertext_is_refused() {
    let f = fixture();
    f.svc.create_bucket(&f.alpha, "x", None).await.unwrap();
    let plain = data(70_000);
    f.svc.put_object(&f.alpha, "x", "a", body(&plain), 70_000, PutRequest::default()).await.unwrap();
    let src = CopySource { bucket: "x", key: "a", version_id: None };
    f.svc.copy_object(&f.alpha, src, "x", "b", None, false).await.unwrap();
    assert_eq!(read(f.svc.get_object(&f.alpha, "x", "b", None, None, None).await.unwrap().body).await.unwrap(), plain);
    // Raw copy at the backend (ciphertext + envelope) to another key: the wrap no longer opens.
    let raw = f.backend.head("alpha-x", "a", None).await.unwrap();
    let opts = PutOptions { metadata: raw.metadata.clone(), ..PutOptions::default() };
    f.backend.copy("alpha-x", "a", None, "alpha-x", "moved", opts.clone()).await.unwrap();
    let err = f.svc.get_object(&f.alpha, "x", "moved", None, None, None).await.err();
    assert!(matches!(err, Some(CoreError::Integrity(_))), "{err:?}");
    // ... and to another tenant's bucket under the same key: refused as well.
    f.backend.create_bucket("bb").await.unwrap();
    f.backend.copy("alpha-x", "a", None, "bb", "a", opts).await.unwrap();
    // Beta has no key named like alpha's yet: the key is missing for it.
    let err = f.svc.head_object(&f.beta, "b", "a", None).await.err();
    assert!(matches!(err, Some(CoreError::KeyDestroyed(_))), "{err:?}");
    // Once beta has its own `tenant:1`, that key does not open alpha's data key.
    f.svc.put_object(&f.beta, "b", "own", body(b"beta"), 4, PutRequest::default()).await.unwrap();
    let err = f.svc.head_object(&f.beta, "b", "a", None).await.err();
    assert!(matches!(err, Some(CoreError::Integrity(_))), "{err:?}");
}

#[tokio::test]
async fn short_body_leaves_no_object_and_reserved_metadata_is_refused() {
    let f = fixture();
    f.svc.create_bucket(&f.alpha, "x", None).await.unwrap();
    let err = f.svc.put_object(&f.alpha, "x", "o", body(&data(100)), 101, PutRequest::default()).await;
    assert!(err.is_err());
    assert!(matches!(f.svc.head_object(&f.alpha, "x", "o", None).await, Err(CoreError::Backend(_))));
    let req =
        PutRequest { metadata: [("blobseal-envelope".to_owned(), "x".to_owned())].into(), ..PutRequest::default() };
    let err = f.svc.put_object(&f.alpha, "x", "o", body(b"hi"), 2, req).await;
    assert!(matches!(err, Err(CoreError::InvalidRequest(_))));
}

#[tokio::test]
async fn tenants_see_only_their_buckets() {
    let f = fixture();
    f.svc.create_bucket(&f.alpha, "x", None).await.unwrap();
    f.svc.create_bucket(&f.beta, "b", None).await.unwrap();
    let names = |v: Vec<crate::backend::BucketInfo>| v.into_iter().map(|b| b.name).collect::<Vec<_>>();
    assert_eq!(names(f.svc.list_buckets(&f.alpha).await.unwrap()), ["x"]);
    assert_eq!(names(f.svc.list_buckets(&f.beta).await.unwrap()), ["b"]);
    assert!(f.svc.head_bucket(&f.beta, "x").await.is_err());
}

#[tokio::test]
async fn an_unreachable_key_provider_fails_writes_closed_and_stores_nothing() {
    let f = fixture();
    f.svc.create_bucket(&f.alpha, "x", None).await.unwrap();
    f.provider.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let err = f.svc.put_object(&f.alpha, "x", "a", body(b"secret"), 6, PutRequest::default()).await.err();
    assert!(matches!(err, Some(CoreError::Key(crate::core::keys::KeyError::Unavailable(_)))), "{err:?}");
    let listed = f.backend.list("alpha-x", Default::default()).await.unwrap();
    assert!(listed.objects.is_empty(), "nothing may be stored under no key or another key");
    // Back up: the same write succeeds and reads back.
    f.provider.down.store(false, std::sync::atomic::Ordering::SeqCst);
    f.svc.put_object(&f.alpha, "x", "a", body(b"secret"), 6, PutRequest::default()).await.unwrap();
    let got = f.svc.get_object(&f.alpha, "x", "a", None, None, None).await.unwrap();
    assert_eq!(read(got.body).await.unwrap(), b"secret");
}

#[tokio::test]
async fn subjects_get_their_own_keys() {
    let f = fixture();
    f.svc.create_bucket(&f.alpha, "x", None).await.unwrap();
    let ann = PutRequest { metadata: [("data-subject".to_owned(), "ann".to_owned())].into(), ..PutRequest::default() };
    f.svc.put_object(&f.alpha, "x", "by-header", body(b"a"), 1, ann).await.unwrap();
    f.svc.put_object(&f.alpha, "x", "customers/ann/call.wav", body(b"b"), 1, PutRequest::default()).await.unwrap();
    f.svc.put_object(&f.alpha, "x", "logs/1", body(b"c"), 1, PutRequest::default()).await.unwrap();
    let id = |k: &str| {
        let backend = f.backend.clone();
        let k = k.to_owned();
        async move { crate::core::rekey::stored_key_id(&backend.head("alpha-x", &k, None).await.unwrap()).unwrap() }
    };
    let ann_key = crate::core::keys::chain::subject_key_id("alpha", "ann");
    assert_eq!(id("by-header").await, ann_key);
    assert_eq!(id("customers/ann/call.wav").await, ann_key);
    assert_eq!(id("logs/1").await, "tenant:1");
    let long = PutRequest { metadata: [("data-subject".to_owned(), "x".repeat(1025))].into(), ..PutRequest::default() };
    let err = f.svc.put_object(&f.alpha, "x", "long", body(b"d"), 1, long).await.err();
    assert!(matches!(err, Some(CoreError::InvalidRequest(_))), "{err:?}");
    let names: Vec<String> = f.svc.list_buckets(&f.alpha).await.unwrap().into_iter().map(|b| b.name).collect();
    assert_eq!(names, vec!["x".to_owned()]);
}

#[tokio::test]
async fn bucket_names_are_one_namespace_across_tenants() {
    let f = fixture();
    f.svc.create_bucket(&f.alpha, "shared-name", None).await.unwrap();
    // Beta's own namespace has no such bucket, but alpha holds the name: AccessDenied, as S3 answers for
    // another account's bucket; and beta cannot create it.
    let err = f.svc.head_bucket(&f.beta, "shared-name").await.unwrap_err();
    assert!(matches!(err, CoreError::Backend(crate::backend::BackendError::NoSuchBucket)), "{err:?}");
    let err = f.svc.explain_missing_bucket(&f.beta, &["shared-name"], err).await;
    assert!(matches!(err, CoreError::BucketNotOwned(_)), "{err:?}");
    let err = f.svc.create_bucket(&f.beta, "shared-name", None).await.unwrap_err();
    assert!(matches!(err, CoreError::BucketTaken(_)), "{err:?}");
    // A name nobody holds stays NoSuchBucket.
    let err = f.svc.head_bucket(&f.beta, "free-name").await.unwrap_err();
    let err = f.svc.explain_missing_bucket(&f.beta, &["free-name"], err).await;
    assert!(matches!(err, CoreError::Backend(crate::backend::BackendError::NoSuchBucket)), "{err:?}");
}

#[tokio::test]
async fn residency_refuses_places_outside_the_rule_and_undeclared_ones() {
    use crate::core::policy::residency::{Allow, ResidencyPolicy};
    let f = crate::core::test_support::fixture_custom(Default::default(), |t| {
        if t.name == "alpha" {
            t.residency = ResidencyPolicy { tenant: "alpha".into(), allow: vec![Allow::parse("EEA").unwrap()] };
        }
    });
    // The memory backend declares no region: an EEA-only tenant may not use it (fail closed).
    let err = f.svc.create_bucket(&f.alpha, "x", None).await.unwrap_err();
    assert!(
        matches!(&err, CoreError::Residency(m) if m.contains("residency allow [EEA]") && m.contains("not declared")),
        "{err:?}"
    );
    let err = f.svc.create_bucket(&f.alpha, "y", Some("us-east-1")).await.unwrap_err();
    assert!(matches!(&err, CoreError::Residency(_)), "{err:?}");
    // An unrestricted tenant: a LocationConstraint must still be where the bucket goes.
    let err = f.svc.create_bucket(&f.beta, "z", Some("eu-west-3")).await.unwrap_err();
    assert!(matches!(&err, CoreError::LocationConstraint(_)), "{err:?}");
    f.svc.create_bucket(&f.beta, "z", None).await.unwrap();
}

/// A geo-redundant backend (an Azure GRS account) keeps data in its region's pair too: a placement
/// is allowed only if both regions are.
#[tokio::test]
async fn residency_counts_a_geo_redundant_copy() {
    use crate::backend::memory::MemoryBackend;
    use crate::core::keys::cache::CacheSettings;
    use crate::core::keys::test_provider::TestProvider;
    use crate::core::policy::residency::{Allow, ResidencyPolicy};
    use crate::core::tenant::{Tenant, TenantDirectory};

    let service = |copy: Option<&str>| {
        let backend = Arc::new(MemoryBackend::new());
        let mut d = TenantDirectory::new();
        d.add_backend("az", backend.clone());
        let residency = ResidencyPolicy { tenant: "nl".into(), allow: vec![Allow::parse("NL").unwrap()] };
        d.add_tenant(
            Tenant { name: "nl".into(), default_backend: "az".into(), residency, ..Tenant::default() },
            ["NLKEY".to_owned()],
        );
        let chain = crate::core::test_support::keychain(
            backend,
            Arc::new(TestProvider::default()),
            &["nl"],
            CacheSettings::default(),
        );
        let regions = [("az".to_owned(), "westeurope".to_owned())].into();
        let copies = copy.map(|c| ("az".to_owned(), c.to_owned())).into_iter().collect();
        BlobService::new(d, Arc::new(chain), regions).with_copy_regions(copies)
    };
    let lrs = service(None);
    let tenant = lrs.directory().tenant("nl").unwrap();
    lrs.create_bucket(&tenant, "x", None).await.unwrap();
    let grs = service(Some("northeurope"));
    let err = grs.create_bucket(&tenant, "x", None).await.unwrap_err();
    assert!(
        matches!(&err, CoreError::Residency(m) if m.contains("backend az's geo-redundant copy in northeurope (IE: EU EEA)")),
        "{err:?}"
    );
}
