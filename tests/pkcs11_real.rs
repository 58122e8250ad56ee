//! The `pkcs11` root-key provider against a real SoftHSM2 token made by tests/softhsm.sh.
//!
//! One token directory serves the whole test binary: SoftHSM2 reads `SOFTHSM2_CONF` once, when the
//! module is initialised, and that happens once per process. Each test uses its own tenant names so the
//! tests can share the token and run in parallel.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use blobseal::core::keys::pkcs11::{Pkcs11Provider, Pkcs11Settings};
use blobseal::core::keys::{DataKey, KeyError, KeyProvider, WrapContext};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "blobseal";
/// A second token that no test ever logs in to with the right PIN: PKCS#11 login state is per
/// process and token, so a wrong PIN on a token another test is logged in to would not be checked.
const PIN_TOKEN: &str = "blobseal-pin";

/// Makes the token directory once (failing loudly if the script fails) and points SoftHSM2 at it.
fn token_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        remove_stale_dirs(&base);
        let dir = base.join(format!("softhsm-{}", std::process::id()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/softhsm.sh");
        let out = Command::new("bash").arg(&script).arg(&dir).output().unwrap();
        assert!(
            out.status.success(),
            "tests/softhsm.sh failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let conf = stdout.lines().find_map(|l| l.strip_prefix("SOFTHSM2_CONF=")).unwrap().to_owned();
        assert!(Path::new(&conf).is_file(), "{conf} missing");
        let init = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", PIN_TOKEN, "--pin", "1234", "--so-pin", "5678"])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .unwrap();
        assert!(init.status.success(), "second token: {}", String::from_utf8_lossy(&init.stderr));
        // SoftHSM2 has no other way to find its config; this runs before any provider opens the module.
        #[allow(clippy::disallowed_methods)]
        std::env::set_var("SOFTHSM2_CONF", &conf);
        dir
    })
}

/// Removes token directories of earlier runs whose process is gone (each run keeps its own).
fn remove_stale_dirs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("softhsm-") {
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn settings(token: &str, pin: &str) -> Pkcs11Settings {
    token_dir();
    Pkcs11Settings { module: MODULE.into(), token_label: token.into(), pin: pin.into() }
}

fn provider() -> Pkcs11Provider {
    Pkcs11Provider::open(settings(TOKEN, "1234")).unwrap()
}

fn cx<'a>(tenant: &'a str, key_id: &'a str) -> WrapContext<'a> {
    WrapContext { tenant, key_id }
}

#[tokio::test]
async fn root_ids_count_up_per_tenant() {
    let p = provider();
    assert_eq!(p.kind(), "pkcs11");
    assert_eq!(p.create_root("a").await.unwrap(), "pkcs11:a:1");
    assert_eq!(p.create_root("b").await.unwrap(), "pkcs11:b:1");
    assert_eq!(p.create_root("a").await.unwrap(), "pkcs11:a:2");
    // A tenant whose name extends another's gets its own numbering.
    assert_eq!(p.create_root("a:b").await.unwrap(), "pkcs11:a:b:1");
    // A second provider on the same token sees the same objects.
    assert_eq!(provider().create_root("b").await.unwrap(), "pkcs11:b:2");
}

#[tokio::test]
async fn wrap_round_trips_and_is_bound_to_tenant_root_and_key_id() {
    let p = provider();
    let root = p.create_root("rt").await.unwrap();
    let root2 = p.create_root("rt").await.unwrap();
    let other = p.create_root("rt-other").await.unwrap();
    let key = DataKey::generate().unwrap();
    let here = cx("rt", "tenant:1");

    let blob = p.wrap(&root, &key, &here).await.unwrap();
    assert_eq!(blob.len(), 12 + 32 + 16);
    assert_ne!(p.wrap(&root, &key, &here).await.unwrap(), blob, "each wrap draws a fresh IV");
    assert_eq!(p.unwrap(&root, &blob, &here).await.unwrap().as_bytes(), key.as_bytes());

    let refused = [
        // another lifetime key id
        p.unwrap(&root, &blob, &cx("rt", "tenant:2")).await,
        // another tenant's context
        p.unwrap(&root, &blob, &cx("rt-other", "tenant:1")).await,
        // another tenant's root and context
        p.unwrap(&other, &blob, &cx("rt-other", "tenant:1")).await,
        // another root of the same tenant
        p.unwrap(&root2, &blob, &here).await,
        // truncated, extended
        p.unwrap(&root, &blob[..blob.len() - 1], &here).await,
        p.unwrap(&root, &[blob.as_slice(), &[0]].concat(), &here).await,
    ];
    for (i, r) in refused.into_iter().enumerate() {
        assert!(matches!(r, Err(KeyError::Unwrap)), "case {i}: {r:?}");
    }
    for at in [0, 11, 12, 43, 44, blob.len() - 1] {
        let mut bad = blob.clone();
        bad[at] ^= 0x01;
        let r = p.unwrap(&root, &bad, &here).await;
        assert!(matches!(r, Err(KeyError::Unwrap)), "flip at {at}: {r:?}");
    }
    // Wrapping under another tenant's root is refused before the token is used.
    let r = p.wrap(&other, &key, &here).await;
    assert!(matches!(r, Err(KeyError::UnknownKey(_))), "{r:?}");
    // The session still works after all those failures.
    assert_eq!(p.unwrap(&root, &blob, &here).await.unwrap().as_bytes(), key.as_bytes());
}

#[tokio::test]
async fn concurrent_calls_share_the_session() {
    let p = std::sync::Arc::new(provider());
    let root = p.create_root("busy").await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (p, root) = (p.clone(), root.clone());
        tasks.push(tokio::spawn(async move {
            let key_id = format!("subject:{i}");
            let key = DataKey::generate().unwrap();
            let blob = p.wrap(&root, &key, &cx("busy", &key_id)).await.unwrap();
            let back = p.unwrap(&root, &blob, &cx("busy", &key_id)).await.unwrap();
            assert_eq!(back.as_bytes(), key.as_bytes());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn destroyed_root_is_unknown_and_its_id_is_not_reused() {
    let p = provider();
    let root = p.create_root("gone").await.unwrap();
    let key = DataKey::generate().unwrap();
    let here = cx("gone", "tenant:1");
    let blob = p.wrap(&root, &key, &here).await.unwrap();

    let r = p.destroy("someone-else", &root).await;
    assert!(matches!(r, Err(KeyError::UnknownKey(_))), "{r:?}");
    let d = p.destroy("gone", &root).await.unwrap();
    assert_eq!(d.root_id, "pkcs11:gone:1");
    assert_eq!(d.detail, "destroyed on token blobseal");

    let r = p.unwrap(&root, &blob, &here).await;
    assert!(matches!(r, Err(KeyError::UnknownKey(ref id)) if id == "pkcs11:gone:1"), "{r:?}");
    let r = p.wrap(&root, &key, &here).await;
    assert!(matches!(r, Err(KeyError::UnknownKey(_))), "{r:?}");
    let r = p.destroy("gone", &root).await;
    assert!(matches!(r, Err(KeyError::UnknownKey(_))), "{r:?}");
    assert_eq!(p.create_root("gone").await.unwrap(), "pkcs11:gone:2");
}

#[tokio::test]
async fn malformed_root_ids_are_unknown() {
    let p = provider();
    let key = DataKey::generate().unwrap();
    for id in ["pkcs11:none:1", "pkcs11:none:0", "local:none:1", "pkcs11:none"] {
        let r = p.wrap(id, &key, &cx("none", "tenant:1")).await;
        assert!(matches!(r, Err(KeyError::UnknownKey(_))), "{id}: {r:?}");
    }
}

#[test]
fn wrong_pin_missing_token_or_module_is_unavailable() {
    let cases = [
        // checked by C_Login (nobody is logged in to this token yet)
        settings(PIN_TOKEN, "0000"),
        // checked against the session other tests share (or by C_Login if this test runs first)
        settings(TOKEN, "0000"),
        settings("no-such-token", "1234"),
        Pkcs11Settings { module: "/nonexistent/libpkcs11.so".into(), token_label: TOKEN.into(), pin: "1234".into() },
    ];
    for s in cases {
        let what = format!("{s:?}");
        match Pkcs11Provider::open(s) {
            Err(KeyError::Unavailable(why)) => {
                assert!(!why.contains("0000") && !why.contains("1234"), "PIN in {why:?}");
                eprintln!("{what}: {why}");
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    // The right PIN on the same token works, and Debug never shows it.
    let p = Pkcs11Provider::open(settings(PIN_TOKEN, "1234")).unwrap();
    let shown = format!("{p:?}");
    assert!(shown.contains(PIN_TOKEN) && !shown.contains("1234"), "{shown}");
}
