use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::*;

const MASTER_BYTES: [u8; 32] = [7; 32];

fn master() -> MasterKey {
    MasterKey::from_base64(&BASE64.encode(MASTER_BYTES)).unwrap()
}

fn cx<'a>(tenant: &'a str, key_id: &'a str) -> WrapContext<'a> {
    WrapContext { tenant, key_id }
}

fn keyring_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("keys/keyring.json")
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn keyring_error(r: Result<LocalKeyring, KeyError>) -> String {
    match r {
        Err(KeyError::Keyring(msg)) => msg,
        other => panic!("expected a keyring error, got {:?}", other.map(|_| ())),
    }
}

/// The root key bytes held in memory (tests only).
fn root_bytes(ring: &LocalKeyring, tenant: &str, version: u32) -> [u8; 32] {
    *ring.read_state().ring.tenants[tenant].keys[&version].as_bytes()
}

#[tokio::test]
async fn wrap_unwrap_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let ring = LocalKeyring::open(&keyring_path(&dir), master()).unwrap();
    assert_eq!(ring.kind(), "local");
    let root = ring.create_root("acme").await.unwrap();
    assert_eq!(root, "local:acme:1");
    let key = DataKey::generate().unwrap();
    let blob = ring.wrap(&root, &key, &cx("acme", "acme:1")).await.unwrap();
    assert_eq!(blob.len(), 12 + 32 + 16);
    let back = ring.unwrap(&root, &blob, &cx("acme", "acme:1")).await.unwrap();
    assert_eq!(back.as_bytes(), key.as_bytes());
    assert_ne!(ring.wrap(&root, &key, &cx("acme", "acme:1")).await.unwrap(), blob, "fresh nonce per wrap");
}

#[tokio::test]
async fn unwrap_refuses_other_tenant_context_tamper_and_length() {
    let dir = tempfile::tempdir().unwrap();
    let ring = LocalKeyring::open(&keyring_path(&dir), master()).unwrap();
    let acme = ring.create_root("acme").await.unwrap();
    let beta = ring.create_root("beta").await.unwrap();
    let key = DataKey::generate().unwrap();
    let good = cx("acme", "acme:1");
    let blob = ring.wrap(&acme, &key, &good).await.unwrap();
    let unwrap_err = |r: Result<DataKey, KeyError>| matches!(r, Err(KeyError::Unwrap));

    // A root id of another tenant is refused; so is another tenant's root in its own context.
    assert!(unwrap_err(ring.unwrap(&acme, &blob, &cx("beta", "acme:1")).await));
    assert!(unwrap_err(ring.unwrap(&beta, &blob, &cx("beta", "acme:1")).await));
    // Another lifetime key id in the context.
    assert!(unwrap_err(ring.unwrap(&acme, &blob, &cx("acme", "acme:2")).await));
    for i in 0..blob.len() {
        let mut bad = blob.clone();
        bad[i] ^= 0x80;
        assert!(unwrap_err(ring.unwrap(&acme, &bad, &good).await), "flipped byte {i}");
    }
    assert!(unwrap_err(ring.unwrap(&acme, &blob[..blob.len() - 1], &good).await));
    assert!(unwrap_err(ring.unwrap(&acme, &[blob.as_slice(), &[0]].concat(), &good).await));
    assert!(unwrap_err(ring.unwrap(&acme, &[], &good).await));
    // Malformed or non-canonical ids never reach a key.
    for id in ["acme:1", "local:acme", "local:acme:x", "local:acme:01", "local::1", "kms:acme:1"] {
        assert!(unwrap_err(ring.unwrap(id, &blob, &good).await), "{id}");
        assert!(matches!(ring.wrap(id, &key, &good).await, Err(KeyError::UnknownKey(_))), "{id}");
    }
    // Wrapping under another tenant's root is refused too.
    assert!(matches!(ring.wrap(&beta, &key, &good).await, Err(KeyError::UnknownKey(_))));
    // A version that was never created.
    assert!(matches!(ring.unwrap("local:acme:9", &blob, &good).await, Err(KeyError::UnknownKey(_))));
    // The good blob still opens.
    assert_eq!(ring.unwrap(&acme, &blob, &good).await.unwrap().as_bytes(), key.as_bytes());
}

#[tokio::test]
async fn create_root_numbers_never_reuse_a_destroyed_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = keyring_path(&dir);
    let ring = LocalKeyring::open(&path, master()).unwrap();
    assert!(ring.roots("acme").unwrap().is_empty(), "no tenant is pre-created");
    for n in 1..=3 {
        assert_eq!(ring.create_root("acme").await.unwrap(), format!("local:acme:{n}"));
    }
    assert_eq!(ring.create_root("beta").await.unwrap(), "local:beta:1", "per-tenant numbering");
    ring.destroy("acme", "local:acme:3").await.unwrap();
    assert_eq!(ring.create_root("acme").await.unwrap(), "local:acme:4");
    for n in [1, 2, 4] {
        ring.destroy("acme", &format!("local:acme:{n}")).await.unwrap();
    }
    assert!(ring.roots("acme").unwrap().is_empty());
    drop(ring);
    // The counter is in the file, not in memory.
    let ring = LocalKeyring::open(&path, master()).unwrap();
    assert_eq!(ring.create_root("acme").await.unwrap(), "local:acme:5");
    assert_eq!(ring.roots("acme").unwrap(), ["local:acme:5"]);
    assert_eq!(ring.roots("beta").unwrap(), ["local:beta:1"]);
    assert!(matches!(ring.create_root("").await, Err(KeyError::Keyring(_))));
    assert!(matches!(ring.create_root(&"t".repeat(250)).await, Err(KeyError::Keyring(_))));
}

#[tokio::test]
async fn destroy_then_unwrap_is_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = keyring_path(&dir);
    let ring = LocalKeyring::open(&path, master()).unwrap();
    let root = ring.create_root("acme").await.unwrap();
    let key = DataKey::generate().unwrap();
    let blob = ring.wrap(&root, &key, &cx("acme", "acme:1")).await.unwrap();

    // Another tenant cannot destroy acme's root, and the attempt changes nothing.
    assert!(matches!(ring.destroy("beta", &root).await, Err(KeyError::UnknownKey(_))));
    ring.unwrap(&root, &blob, &cx("acme", "acme:1")).await.unwrap();

    let d = ring.destroy("acme", &root).await.unwrap();
    assert_eq!(d.root_id, root);
    assert_eq!(d.detail, format!("removed from keyring {}", path.display()));
    assert!(
        matches!(ring.unwrap(&root, &blob, &cx("acme", "acme:1")).await, Err(KeyError::UnknownKey(id)) if id == root)
    );
    assert!(matches!(ring.wrap(&root, &key, &cx("acme", "acme:1")).await, Err(KeyError::UnknownKey(_))));
    assert!(matches!(ring.destroy("acme", &root).await, Err(KeyError::UnknownKey(_))), "already destroyed");
    // And it is gone from the file, not just from memory.
    let reopened = LocalKeyring::open(&path, master()).unwrap();
    assert!(matches!(reopened.unwrap(&root, &blob, &cx("acme", "acme:1")).await, Err(KeyError::UnknownKey(_))));
}

#[tokio::test]
async fn two_instances_on_one_file_see_each_others_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = keyring_path(&dir);
    let server = LocalKeyring::open(&path, master()).unwrap();
    let command = LocalKeyring::open(&path, master()).unwrap();
    let key = DataKey::generate().unwrap();
    let c = cx("acme", "acme:1");

    // Created by one, usable by the other without reopening; numbering continues across them.
    let r1 = command.create_root("acme").await.unwrap();
    let blob = server.wrap(&r1, &key, &c).await.unwrap();
    assert_eq!(command.unwrap(&r1, &blob, &c).await.unwrap().as_bytes(), key.as_bytes());
    assert_eq!(server.create_root("acme").await.unwrap(), "local:acme:2");
    assert_eq!(command.create_root("acme").await.unwrap(), "local:acme:3");
    assert_eq!(server.roots("acme").unwrap(), ["local:acme:1", "local:acme:2", "local:acme:3"]);

    // Destroyed by one, refused by the other at once.
    command.destroy("acme", &r1).await.unwrap();
    assert!(matches!(server.unwrap(&r1, &blob, &c).await, Err(KeyError::UnknownKey(_))));

    // Several quick changes (same length, same clock tick) are all noticed.
    let blob2 = server.wrap("local:acme:2", &key, &c).await.unwrap();
    let r4 = command.create_root("acme").await.unwrap();
    command.destroy("acme", &r4).await.unwrap();
    command.destroy("acme", "local:acme:2").await.unwrap();
    assert!(matches!(server.unwrap("local:acme:2", &blob2, &c).await, Err(KeyError::UnknownKey(_))));
    assert_eq!(server.roots("acme").unwrap(), ["local:acme:3"]);
}

#[test]
fn concurrent_creators_get_distinct_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = keyring_path(&dir);
    LocalKeyring::open(&path, master()).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
                let ring = LocalKeyring::open(&path, master()).unwrap();
                (0..5).map(|_| rt.block_on(ring.create_root("acme")).unwrap()).collect::<Vec<_>>()
            })
        })
        .collect();
    let mut ids: Vec<String> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    ids.sort_by_key(|id| parse_root_id(id).unwrap().1);
    let expected: Vec<String> = (1..=20).map(|n| format!("local:acme:{n}")).collect();
    assert_eq!(ids, expected, "no version lost or handed out twice");
    assert_eq!(LocalKeyring::open(&path, master()).unwrap().roots("acme").unwrap(), expected);
}

#[tokio::test]
async fn wrong_master_key_or_modified_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = keyring_path(&dir);
    LocalKeyring::open(&path, master()).unwrap().create_root("acme").await.unwrap();
    let expected = format!("cannot decrypt keyring {}: wrong master key or corrupted file", path.display());
    assert_eq!(keyring_error(LocalKeyring::open(&path, MasterKey::generate().unwrap())), expected);

    let mut sealed: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let mut ct = BASE64.decode(sealed["ciphertext"].as_str().unwrap()).unwrap();
    ct[3] ^= 1;
    sealed["ciphertext"] = BASE64.encode(&ct).into();
    fs::write(&path, serde_json::to_vec(&sealed).unwrap()).unwrap();
    assert_eq!(keyring_error(LocalKeyring::open(&path, master())), expected);

    fs::write(&path, b"not json").unwrap();
    assert!(keyring_error(LocalKeyring::open(&path, master())).contains("not a blobseal keyring"));
    fs::write(&path, br#"{"format":3,"nonce":"","ciphertext":""}"#).unwrap();
    assert!(keyring_error(LocalKeyring::open(&path, master())).contains("unsupported keyring format 3"));
}

#[test]
fn plaintext_format_1_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring.json");
    let v1 =
        format!(r#"{{"format":1,"tenants":{{"acme":{{"current":1,"keys":{{"1":"{}"}}}}}}}}"#, BASE64.encode([9; 32]));
    fs::write(&path, &v1).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let msg = keyring_error(LocalKeyring::open(&path, master()));
    assert!(msg.contains("format 1") && msg.contains("older blobseal") && msg.contains("recreate"), "{msg}");
    assert_eq!(fs::read_to_string(&path).unwrap(), v1, "the old file is left alone");
}

#[tokio::test]
async fn files_are_private_and_a_readable_keyring_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = keyring_path(&dir);
    let ring = LocalKeyring::open(&path, master()).unwrap();
    ring.create_root("acme").await.unwrap();
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&file::lock_path(&path)), 0o600);
    assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 2, "keyring and lock file, no temp files");

    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    assert!(keyring_error(LocalKeyring::open(&path, master())).contains("accessible by group/others"));
    // A running instance refuses to reload it too (the change of mode alone is not reloaded, so touch it).
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    LocalKeyring::open(&path, master()).unwrap().create_root("beta").await.unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    assert!(matches!(ring.roots("beta"), Err(KeyError::Keyring(m)) if m.contains("accessible by group/others")));
}

#[tokio::test]
async fn file_is_sealed_format_2_with_no_key_material_in_the_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = keyring_path(&dir);
    let ring = LocalKeyring::open(&path, master()).unwrap();
    ring.create_root("acme").await.unwrap();
    let first: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    ring.create_root("acme").await.unwrap();
    ring.destroy("acme", "local:acme:1").await.unwrap();
    let raw = fs::read(&path).unwrap();
    let sealed: serde_json::Value = serde_json::from_slice(&raw).unwrap();

    let fields: Vec<&String> = sealed.as_object().unwrap().keys().collect();
    assert_eq!(fields, ["ciphertext", "format", "nonce"]);
    assert_eq!(sealed["format"], 2);
    assert_ne!(sealed["nonce"], first["nonce"], "fresh nonce on every write");
    let key = root_bytes(&ring, "acme", 2);
    for needle in [&key[..], BASE64.encode(key).as_bytes(), hex::encode(key).as_bytes(), b"acme"] {
        assert!(!raw.windows(needle.len()).any(|w| w == needle), "file leaks {needle:?}");
    }

    // Decrypting by the documented recipe gives the documented inner document.
    let nonce = BASE64.decode(sealed["nonce"].as_str().unwrap()).unwrap();
    let mut ct = BASE64.decode(sealed["ciphertext"].as_str().unwrap()).unwrap();
    let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &MASTER_BYTES).unwrap());
    let nonce = Nonce::try_assume_unique_for_key(&nonce).unwrap();
    let plain = aead.open_in_place(nonce, Aad::from(b"blobseal/v1/keyring"), &mut ct).unwrap();
    let inner: serde_json::Value = serde_json::from_slice(plain).unwrap();
    let expected = serde_json::json!({"tenants": {"acme": {"last": 2, "keys": {"2": BASE64.encode(key)}}}});
    assert_eq!(inner, expected);
}

#[tokio::test]
async fn debug_output_has_no_key_material() {
    let dir = tempfile::tempdir().unwrap();
    let ring = LocalKeyring::open(&keyring_path(&dir), master()).unwrap();
    ring.create_root("acme").await.unwrap();
    let key = root_bytes(&ring, "acme", 1);
    let dbg = format!("{ring:?}");
    assert!(dbg.contains("acme") && dbg.contains("keyring.json"), "{dbg}");
    for needle in [BASE64.encode(key), hex::encode(key), format!("{:?}", key), BASE64.encode(MASTER_BYTES)] {
        assert!(!dbg.contains(&needle), "{dbg}");
    }
    assert_eq!(format!("{:?}", master()), "MasterKey(<redacted>)");
}

#[test]
fn master_key_from_base64() {
    let b64 = BASE64.encode(MASTER_BYTES);
    assert_eq!(MasterKey::from_base64(&format!("  {b64}\n")).unwrap().as_bytes(), &MASTER_BYTES);
    for bad in [BASE64.encode([1; 31]), BASE64.encode([1; 33]), "not base64!".into(), String::new()] {
        let err = MasterKey::from_base64(&bad).err().unwrap();
        assert!(matches!(&err, KeyError::Keyring(m) if !m.contains(&bad) || bad.is_empty()), "{err}");
    }
}

#[tokio::test]
async fn master_key_file_is_created_private_then_reused() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("secrets/master.key");
    let first = MasterKey::load_or_create(&key_path).unwrap();
    assert_eq!(mode(&key_path), 0o600);
    assert_eq!(mode(key_path.parent().unwrap()), 0o700);
    let text = fs::read_to_string(&key_path).unwrap();
    assert!(text.ends_with('\n'));
    assert_eq!(MasterKey::from_base64(&text).unwrap().as_bytes(), first.as_bytes());
    assert_eq!(fs::read_dir(key_path.parent().unwrap()).unwrap().count(), 1, "no temp files");

    // The second load returns the same key: a keyring sealed under the first opens with it.
    let ring_path = keyring_path(&dir);
    LocalKeyring::open(&ring_path, first).unwrap().create_root("acme").await.unwrap();
    let again = MasterKey::load_or_create(&key_path).unwrap();
    assert_eq!(LocalKeyring::open(&ring_path, again).unwrap().roots("acme").unwrap(), ["local:acme:1"]);

    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(MasterKey::load_or_create(&key_path), Err(KeyError::Keyring(m)) if m.contains("group/others")));
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(&key_path, "short\n").unwrap();
    assert!(matches!(MasterKey::load_or_create(&key_path), Err(KeyError::Keyring(m)) if m.contains("not base64")));
}

#[test]
fn concurrent_master_key_creation_agrees_on_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("master.key");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let p = key_path.clone();
            std::thread::spawn(move || *MasterKey::load_or_create(&p).unwrap().as_bytes())
        })
        .collect();
    let keys: Vec<[u8; 32]> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(keys.iter().all(|k| k == &keys[0]), "every process uses the key that won");
}

#[test]
fn each_write_moves_mtime_past_the_version_it_replaces() {
    // A reader's stamp must never match a later version, even if the clock has not ticked (or
    // went back) and the inode number is reused: the replacing file's mtime is always later.
    let dir = tempfile::tempdir().unwrap();
    let path = keyring_path(&dir);
    LocalKeyring::open(&path, master()).unwrap();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
    let stamp = file::write(&path, &master(), &file::Ring::default(), Some(later)).unwrap();
    assert!(stamp.mtime() > later);
    assert_eq!(stamp, file::stamp(&path).unwrap());
}
