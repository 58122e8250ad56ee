//! Tests of YAML → Settings validation: each error with its exact `line:col`. Azure backends in
//! `tests/azure.rs`, the Azure front end's settings in `tests/azure_front.rs`.

use std::collections::HashMap;

use super::*;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| map.get(k).cloned()
}

fn std_env() -> impl Fn(&str) -> Option<String> {
    env_of(&[
        ("ACME_SECRET", "acme-secret-value"),
        ("S3_ID", "AKIDS3"),
        ("S3_SECRET", "s3-secret"),
        ("PORT", "9100"),
        ("MASTER", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
    ])
}

/// A valid two-backend, two-tenant document; tests derive broken variants from it by line.
const GOOD: &str = "\
listen: 127.0.0.1:${PORT}
virtual_host_domain: s3.blobseal.local
key_provider: { kind: local, keyring: ./data/keyring.json, master_key_env: MASTER }
backends:
  - name: eu-store
    kind: s3
    endpoint: http://127.0.0.1:5000
    region: eu-central-1
    force_path_style: true
    credentials:
      access_key_id_env: S3_ID
      secret_access_key_env: S3_SECRET
  - name: local
    kind: fs
    path: ./data/objects
tenants:
  - name: acme
    default_backend: eu-store
    bucket_prefix: acme-
    access_keys:
      - id: ACMEKEY1
        secret_env: ACME_SECRET
  - name: globex
    default_backend: eu-store
    bucket_prefix: globex-
    access_keys:
      - id: GLOBEXKEY1
        secret_env: ACME_SECRET
buckets:
  - { tenant: acme, bucket: calls, backend: eu-store, backend_bucket: acme-calls-prod }
  - { tenant: globex, bucket: logs, backend: local }
";

/// `GOOD` with line `n` (1-based) replaced by `with` (which may hold several lines or none).
fn edit(n: usize, with: &str) -> String {
    let mut lines: Vec<String> = GOOD.lines().map(str::to_owned).collect();
    lines[n - 1] = with.to_owned();
    lines.retain(|l| !l.is_empty());
    lines.join("\n") + "\n"
}

fn errors(text: &str) -> Vec<String> {
    errors_env(text, &std_env())
}

fn errors_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    match parse_str(text, "c.yaml", env) {
        Ok(s) => panic!("expected errors, got {s:?}"),
        Err(e) => e.lines(),
    }
}

/// Asserts exactly one error, at `pos` ("line:col"), containing `needle`.
fn one_error(text: &str, pos: &str, needle: &str) {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].starts_with(&format!("c.yaml:{pos}: ")), "{errs:#?}");
    assert!(errs[0].contains(needle), "{errs:#?}");
}

#[test]
fn good_config_validates() {
    let s = parse_str(GOOD, "c.yaml", &std_env()).unwrap();
    assert_eq!(s.listen.to_string(), "127.0.0.1:9100");
    assert_eq!(s.virtual_host_domain.as_deref(), Some("s3.blobseal.local"));
    assert_eq!(s.source, "c.yaml");
    assert_eq!(s.backends.len(), 2);
    match &s.backends[0].kind {
        BackendKind::S3 { endpoint, region, access_key_id, secret_access_key, force_path_style } => {
            assert_eq!(endpoint.as_deref(), Some("http://127.0.0.1:5000"));
            assert_eq!(region, "eu-central-1");
            assert_eq!(access_key_id, "AKIDS3");
            assert_eq!(secret_access_key.expose(), "s3-secret");
            assert!(*force_path_style);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&s.backends[1].kind, BackendKind::Fs { root, .. } if root.to_str() == Some("./data/objects")));
    assert_eq!(s.tenants[0].access_keys[0].secret.expose(), "acme-secret-value");
    assert_eq!(s.tenants[1].bucket_prefix, "globex-");
    assert_eq!(
        s.buckets,
        vec![
            BucketRoute {
                tenant: "acme".into(),
                bucket: "calls".into(),
                backend: "eu-store".into(),
                backend_bucket: "acme-calls-prod".into(),
                backups: Vec::new(),
            },
            BucketRoute {
                tenant: "globex".into(),
                bucket: "logs".into(),
                backend: "local".into(),
                backend_bucket: "globex-logs".into(),
                backups: Vec::new(),
            },
        ]
    );
    let summary = s.summary();
    let debug = format!("{s:?}");
    for secret in ["acme-secret-value", "s3-secret"] {
        assert!(!summary.contains(secret) && !debug.contains(secret), "secret leaked");
    }
    assert!(summary.contains("acme/calls -> eu-store/acme-calls-prod"), "{summary}");
}

#[test]
fn listen_and_domain_errors() {
    one_error(&edit(1, "listen: localhost"), "1:9", "invalid listen address");
    one_error(&edit(1, "listen: ${NOPE}"), "1:9", "NOPE is not set");
    one_error(&edit(2, "virtual_host_domain: S3.Example"), "2:22", "virtual_host_domain");
    let s = parse_str(&edit(1, ""), "c.yaml", &std_env()).unwrap();
    assert_eq!(s.listen.to_string(), "127.0.0.1:9000");
}

#[test]
fn key_provider_errors() {
    one_error(&edit(3, "key_provider: { kind: kms, keyring: x }"), "3:23", "unknown key provider kind");
    one_error(&edit(3, "key_provider: { kind: local, master_key_env: MASTER }"), "3:15", "keyring");
    one_error(&edit(3, "key_provider: { kind: local, keyring: k }"), "3:15", "master_key_env");
    one_error(
        &edit(3, "key_provider: { kind: local, keyring: k, master_key_env: NOPE }"),
        "3:58",
        "NOPE (master_key_env) is not set",
    );
    one_error(
        &edit(3, "key_provider: { kind: local, keyring: k, master_key_env: MASTER, module: /m.so }"),
        "3:74",
        "only valid",
    );
    one_error(
        &edit(3, "key_provider: { kind: aws-kms, region: eu-west-1, deletion_window_days: 3, credentials: { access_key_id: a, secret_access_key_env: S3_SECRET } }"),
        "3:73",
        "7..=30",
    );
    one_error(&edit(3, "key_provider: { kind: pkcs11, module: /m.so, token_label: t }"), "3:15", "pin_env");
    let s = parse_str(
        &edit(3, "key_provider: { kind: aws-kms, region: eu-west-1, credentials: { access_key_id: a, secret_access_key_env: S3_SECRET } }"),
        "c.yaml",
        &std_env(),
    )
    .unwrap();
    assert_eq!(s.key_providers[0].name, "default");
    assert!(matches!(&s.key_providers[0].settings, KeyProviderSettings::AwsKms { deletion_window_days: 7, .. }));
    assert!(s.tenants.iter().all(|t| t.key_provider == "default"));
}

#[test]
fn several_providers_tenant_keys_and_subjects() {
    let text = GOOD.replace(
        "key_provider: { kind: local, keyring: ./data/keyring.json, master_key_env: MASTER }\n",
        "key_providers:\n  - { name: ring, kind: local, keyring: k.json, master_key_file: m.key }\n  - { name: hsm, kind: pkcs11, module: /m.so, token_label: t, pin_env: S3_SECRET }\nkey_cache: { ttl_seconds: 5, max_entries: 7 }\n",
    );
    // Two providers and tenants that do not say which: one error per tenant.
    let err = parse_str(&text, "c.yaml", &std_env()).unwrap_err().to_string();
    assert!(err.contains("tenant acme needs `key_provider:`") && err.contains("tenant globex needs"), "{err}");
    let text = text
        .replace("    bucket_prefix: acme-\n", "    bucket_prefix: acme-\n    key_provider: hsm\n    key_store: { backend: local, bucket: acme-keys }\n    data_subjects:\n      - header: x-amz-meta-Data-Subject\n      - key_pattern: \"customers/{subject}/**\"\n")
        .replace("  - name: globex\n", "  - name: globex\n    key_provider: ring\n");
    let s = parse_str(&text, "c.yaml", &std_env()).unwrap();
    assert_eq!(s.key_cache, KeyCacheSettings { ttl: std::time::Duration::from_secs(5), max_entries: 7 });
    let acme = &s.tenants[0];
    assert_eq!(acme.key_provider, "hsm");
    assert_eq!(
        acme.key_store,
        KeyStoreSettings {
            backend: "local".into(),
            bucket: "acme-keys".into(),
            audit_bucket: "acme-blobseal-audit".into()
        }
    );
    assert_eq!(
        acme.data_subjects,
        vec![
            DataSubjectRule::Metadata("data-subject".into()),
            DataSubjectRule::KeyPattern("customers/{subject}/**".into())
        ]
    );
    let globex = &s.tenants[1];
    assert_eq!(globex.key_store.bucket, format!("{}{DEFAULT_KEY_STORE_BUCKET}", globex.bucket_prefix));
    assert_eq!(globex.key_store.backend, globex.default_backend);
    assert!(globex.data_subjects.is_empty());
    let summary = s.summary();
    assert!(
        summary
            .contains("keys: provider hsm, key store local/acme-keys, data subjects: header x-amz-meta-data-subject"),
        "{summary}"
    );
    assert!(!summary.contains("s3-secret"), "{summary}");

    let bad = text.replace("      - header: x-amz-meta-Data-Subject\n", "      - header: X-Subject\n");
    let err = parse_str(&bad, "c.yaml", &std_env()).unwrap_err().to_string();
    assert!(err.contains("must be a user-metadata header"), "{err}");
    let bad = text.replace("customers/{subject}/**", "customers/**/{subject}");
    let err = parse_str(&bad, "c.yaml", &std_env()).unwrap_err().to_string();
    assert!(err.contains("`**` may only be the last segment"), "{err}");
    let bad = text.replace("key_provider: ring", "key_provider: nope");
    let err = parse_str(&bad, "c.yaml", &std_env()).unwrap_err().to_string();
    assert!(err.contains("unknown key provider \"nope\" (defined: ring, hsm)"), "{err}");
}

#[test]
fn backend_errors() {
    one_error(&edit(6, "    kind: gcs"), "6:11", "unknown backend kind \"gcs\" (supported: fs, s3, azure)");
    one_error(&edit(8, ""), "5:5", "needs `region:`");
    one_error(&edit(8, "    region: EU"), "8:13", "invalid region");
    one_error(&edit(7, "    endpoint: ftp://x"), "7:15", "invalid endpoint");
    one_error(&edit(15, ""), "13:5", "fs backend needs `path");
    one_error(&edit(15, "    path: x\n    force_path_style: true"), "16:23", "only valid for s3");
    // An fs backend may declare its region (for residency); it must be a region name.
    one_error(&edit(15, "    path: x\n    region: Frankfurt"), "16:13", "invalid region");
    one_error(&edit(7, "    path: y\n    endpoint: http://127.0.0.1:5000"), "7:11", "only valid for fs");
    let errs = errors(&edit(13, "  - name: eu-store"));
    assert!(errs[0].starts_with("c.yaml:13:11: duplicate backend name \"eu-store\" (first at line 5)"), "{errs:#?}");
    assert!(errs[1].starts_with("c.yaml:31:46: unknown backend \"local\" (defined: eu-store)"), "{errs:#?}");
    let errs = errors(&edit(13, "  - name: bad:name"));
    assert!(errs[0].starts_with("c.yaml:13:11: invalid backend name \"bad:name\""), "{errs:#?}");
}

#[test]
fn credential_errors() {
    one_error(&edit(11, "      access_key_id_env: MISSING_ID"), "11:26", "MISSING_ID (access_key_id_env) is not set");
    one_error(&edit(11, "      access_key_id: LITERALID\n      access_key_id_env: S3_ID"), "12:26", "exactly one");
    one_error(&edit(11, ""), "11:7", "missing access_key_id");
    one_error(&edit(12, ""), "11:7", "missing secret");
    one_error(&edit(12, "      secret_access_key: inline"), "12:7", "unknown field `secret_access_key`");
    one_error(&edit(12, "      secret_access_key_file: /nonexistent/secret"), "12:31", "cannot read secret file");
    let errs = errors_env(
        GOOD,
        &env_of(&[("ACME_SECRET", ""), ("S3_ID", "a"), ("S3_SECRET", "b"), ("PORT", "1"), ("MASTER", "m")]),
    );
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[0].starts_with("c.yaml:22:21: ") && errs[0].contains("ACME_SECRET (secret_env) is empty"),
        "{errs:#?}"
    );
}

#[test]
fn secret_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s");
    std::fs::write(&f, "from-file\n").unwrap();
    let text = edit(12, &format!("      secret_access_key_file: {}", f.display()));
    let s = parse_str(&text, "c.yaml", &std_env()).unwrap();
    assert!(
        matches!(&s.backends[0].kind, BackendKind::S3 { secret_access_key, .. } if secret_access_key.expose() == "from-file")
    );
    std::fs::write(&f, "\n").unwrap();
    one_error(&text, "12:31", "is empty");
}

#[test]
fn tenant_errors() {
    one_error(
        &edit(18, "    default_backend: nowhere"),
        "18:22",
        "unknown backend \"nowhere\" (defined: eu-store, local)",
    );
    // The renamed tenant's routes now name an unknown tenant too: both are reported.
    let errs = errors(&edit(23, "  - name: acme"));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].starts_with("c.yaml:23:11: duplicate tenant name \"acme\" (first at line 17)"), "{errs:#?}");
    assert!(errs[1].starts_with("c.yaml:31:15: unknown tenant \"globex\" (defined: acme)"), "{errs:#?}");
    one_error(&edit(27, "      - id: ACMEKEY1"), "27:13", "duplicate access key id \"ACMEKEY1\" (first at line 21)");
    one_error(&edit(22, "        secret: inline"), "22:9", "unknown field `secret`");
    one_error(&edit(22, "        secret_env: ACME_SECRET\n        secret_file: /x"), "23:22", "exactly one");
    one_error(&edit(22, ""), "21:9", "missing secret");
    let no_keys =
        GOOD.replace("access_keys:\n      - id: ACMEKEY1\n        secret_env: ACME_SECRET\n", "access_keys: []\n");
    one_error(&no_keys, "20:18", "at least one access key");
    one_error(&edit(19, "    bucket_prefix: Acme_"), "19:20", "invalid bucket_prefix");
}

#[test]
fn prefix_overlaps_on_shared_backend() {
    one_error(
        &edit(25, "    bucket_prefix: acme-x"),
        "25:20",
        "overlaps bucket_prefix \"acme-\" of tenant \"acme\" (line 19)",
    );
    // No prefix at all overlaps everything.
    one_error(&edit(25, ""), "23:5", "overlaps");
}

#[test]
fn shared_prefix_ok_on_separate_backends() {
    let text = edit(24, "    default_backend: local").replace("globex-", "acme-");
    assert!(parse_str(&text, "c.yaml", &std_env()).is_ok());
}

#[test]
fn route_errors() {
    let r = |s: &str| edit(30, s);
    one_error(&r("  - { tenant: nobody, bucket: calls, backend: eu-store }"), "30:15", "unknown tenant \"nobody\"");
    one_error(&r("  - { tenant: acme, bucket: calls, backend: nope }"), "30:45", "unknown backend \"nope\"");
    one_error(&r("  - { tenant: acme, bucket: Calls, backend: eu-store }"), "30:29", "invalid bucket");
    one_error(
        &edit(31, "  - { tenant: acme, bucket: calls, backend: local }"),
        "31:29",
        "duplicate route for bucket \"calls\" (first at line 30)",
    );
    one_error(
        &r("  - { tenant: globex, bucket: xyz, backend: eu-store, backend_bucket: acme-stolen }"),
        "30:71",
        "lies in tenant \"acme\"'s bucket_prefix",
    );
    one_error(
        &edit(31, "  - { tenant: acme, bucket: other, backend: eu-store, backend_bucket: acme-calls-prod }"),
        "31:71",
        "already routed",
    );
}

#[test]
fn many_errors_are_all_reported_in_order() {
    let text = GOOD
        .replace("listen: 127.0.0.1:${PORT}", "listen: nope")
        .replace("region: eu-central-1", "region: ${UNSET_REGION}")
        .replace(
            "default_backend: eu-store\n    bucket_prefix: globex-",
            "default_backend: mars\n    bucket_prefix: globex-",
        );
    let errs = errors(&text);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(errs[0].starts_with("c.yaml:1:9: "), "{errs:#?}");
    assert!(errs[1].starts_with("c.yaml:8:13: ") && errs[1].contains("UNSET_REGION"), "{errs:#?}");
    assert!(errs[2].starts_with("c.yaml:24:22: ") && errs[2].contains("mars"), "{errs:#?}");
}

#[test]
fn syntax_error_has_position() {
    one_error(&edit(5, "  - name: eu-store\n   kind: s3"), "5:5", "missing field `kind`");
    // A key dedented out of its list item ends the item early; serde-saphyr reports the item.
    one_error(&edit(19, "  bucket_prefix: acme-"), "18:5", "missing field `access_keys`");
}

#[test]
fn bucket_routes_may_name_their_own_backup_targets() {
    let text = GOOD.replace(
        "  - { tenant: acme, bucket: calls, backend: eu-store, backend_bucket: acme-calls-prod }",
        "  - { tenant: acme, bucket: calls, backend: eu-store, backend_bucket: acme-calls-prod,\n      backups: [{ backend: local, bucket: acme-calls-copy }] }",
    );
    assert_ne!(text, GOOD, "the GOOD config changed: update this test");
    let s = parse_str(&text, "c.yaml", &std_env()).unwrap();
    assert_eq!(s.buckets[0].backups, vec![BackupTarget { backend: "local".into(), bucket: "acme-calls-copy".into() }]);
    let bad = text.replace("backend: local, bucket: acme-calls-copy", "backend: nope, bucket: acme-calls-copy");
    let err = parse_str(&bad, "c.yaml", &std_env()).unwrap_err().to_string();
    assert!(err.contains("unknown backend \"nope\""), "{err}");
}

#[test]
fn connection_limits_operations_and_presign_rules() {
    let s = parse_str(GOOD, "c.yaml", &std_env()).unwrap();
    assert_eq!(s.limits, ConnectionLimits::default());
    assert_eq!(s.operations, crate::config::OperationsSettings::default());
    assert_eq!(s.tenants[0].presign, PresignSettings::default());

    let text = edit(
        2,
        "virtual_host_domain: s3.blobseal.local\n\
         limits: { max_connections: 64, header_timeout_seconds: 5, body_timeout_seconds: 30, \
         body_min_bytes_per_second: 0, write_timeout_seconds: 9 }\n\
         admin_listen: 127.0.0.1:9901\n\
         log_format: json\n\
         log_level: \"warn,blobseal=debug\"\n\
         tls: { cert_file: /tls/tls.crt, key_file: /tls/tls.key, client_ca_file: /tls/ca.crt }\n\
         shutdown: { drain_delay_seconds: 5, timeout_seconds: 20 }",
    );
    let text = text.replacen(
        "    bucket_prefix: acme-\n",
        "    bucket_prefix: acme-\n    max_presign_seconds: 3600\n    sigv2_presigned_urls: false\n",
        1,
    );
    let s = parse_str(&text, "c.yaml", &std_env()).unwrap();
    assert_eq!(s.limits.max_connections, 64);
    assert_eq!(s.limits.header_timeout, std::time::Duration::from_secs(5));
    assert_eq!(s.limits.body_timeout, std::time::Duration::from_secs(30));
    assert_eq!(s.limits.body_min_bytes_per_second, 0);
    assert_eq!(s.limits.write_timeout, std::time::Duration::from_secs(9));
    assert_eq!(s.operations.admin_listen, Some("127.0.0.1:9901".parse().unwrap()));
    assert_eq!(s.operations.log_format, crate::config::LogFormat::Json);
    assert_eq!(s.operations.log_level.as_deref(), Some("warn,blobseal=debug"));
    let tls = s.operations.tls.clone().unwrap();
    assert_eq!(tls.client_ca_file.as_deref(), Some(std::path::Path::new("/tls/ca.crt")));
    assert_eq!(s.operations.shutdown.drain_delay, std::time::Duration::from_secs(5));
    assert_eq!(s.operations.shutdown.timeout, std::time::Duration::from_secs(20));
    assert_eq!(s.tenants[0].presign, PresignSettings { max_seconds: 3600, sigv2: false });
    assert_eq!(s.tenants[1].presign, PresignSettings::default());

    one_error(&edit(2, "limits: { max_connections: 0 }"), "2:28", "max_connections must be between 1");
    one_error(
        &edit(2, "limits: { header_timeout_seconds: 7200 }"),
        "2:35",
        "header_timeout_seconds must be between 1 and 3600",
    );
    one_error(&edit(2, "metrics_on_s3_port: loopback"), "2:21", "admin_listen");
    one_error(&edit(2, "admin_listen: 9901"), "2:15", "admin_listen");
    one_error(&edit(2, "log_format: yaml"), "2:13", "json or text");
    one_error(&edit(2, "log_level: \"blobseal=loud\""), "2:12", "invalid log_level");
    one_error(&edit(2, "shutdown: { drain_delay_seconds: 900 }"), "2:34", "between 0 and 300");
    one_error(&edit(2, "tls: { cert_file: a.crt }"), "2:8", "key_file");
    one_error(
        &GOOD.replacen("    bucket_prefix: acme-\n", "    bucket_prefix: acme-\n    max_presign_seconds: 604801\n", 1),
        "20:26",
        "7 days",
    );
    one_error(&edit(2, "limits: { idle: 3 }"), "2:11", "idle");
}

mod azure;
mod azure_front;
