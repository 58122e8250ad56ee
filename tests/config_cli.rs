//! Runs the built `blobseal` binary: version, check-config on the shipped configs and on broken
//! ones, and the embedded default's first/second start. Environment variables are set on the
//! child process only (after `env_clear`, so the caller's environment cannot change results).
// Test helpers may unwrap: a failure here is a test failure, not a production panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_blobseal");

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_clear().envs(env.iter().copied());
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn version_comes_from_cargo() {
    let out = run(&["--version"], &[]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).trim(), format!("blobseal {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn shipped_configs_check_ok_without_printing_secrets() {
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("aws-store-secret"), "aws-store-secret-value\n").unwrap();
    std::fs::write(secrets.path().join("clinic-secret"), "clinic-secret-value\n").unwrap();
    let secrets_dir = secrets.path().to_str().unwrap();
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "config/blobseal.yaml",
            vec![
                ("EU_STORE_KEY_ID", "AKIDEU"),
                ("EU_STORE_SECRET", "eu-secret-value"),
                ("ACME_SECRET", "acme-secret-value"),
                ("GLOBEX_SECRET", "globex-secret-value"),
                ("BLOBSEAL_MASTER_KEY", "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="),
            ],
        ),
        ("config/examples/fs.yaml", vec![("ALICE_SECRET", "alice-secret-value"), ("BOB_SECRET", "bob-secret-value")]),
        (
            "config/examples/s3-moto.yaml",
            vec![("MOTO_KEY_ID", "test"), ("MOTO_SECRET", "moto-secret-value"), ("DEV_SECRET", "dev-secret-value")],
        ),
        (
            "config/examples/kms-moto.yaml",
            vec![
                ("MOTO_KEY_ID", "test"),
                ("MOTO_SECRET", "moto-secret-value"),
                ("CLINIC_SECRET", "clinic-secret-value"),
                ("LAB_SECRET", "lab-secret-value"),
                ("BLOBSEAL_MASTER_KEY", "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="),
            ],
        ),
        (
            "config/examples/s3.yaml",
            vec![
                ("AWS_STORE_KEY_ID", "AKIDAWS"),
                ("SECRETS_DIR", secrets_dir),
                ("BLOBSEAL_MASTER_KEY", "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="),
            ],
        ),
    ];
    for (file, env) in cases {
        let path = repo(file);
        let out = run(&["check-config", path.to_str().unwrap()], &env);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{file}: {stderr}");
        assert!(stdout.contains("tenants (") && stdout.trim_end().ends_with("OK"), "{file}: {stdout}");
        let master_key = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
        for secret in ["secret-value", "aws-store-secret-value", "clinic-secret-value", master_key] {
            assert!(!stdout.contains(secret) && !stderr.contains(secret), "{file} printed a secret: {stdout}");
        }
    }
}

#[test]
fn broken_configs_exit_2_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, body: &str, env: &[(&str, &str)]| {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        let out = run(&["check-config", path.to_str().unwrap()], env);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out.stdout));
        (path.display().to_string(), text(&out.stderr))
    };
    let head = "key_provider: { kind: local, keyring: k.json, master_key_file: m.key }\nbackends:\n  - name: d\n    kind: fs\n";

    let (path, stderr) = check("unknown.yaml", &format!("{head}    colour: red\ntenants: []\n"), &[]);
    assert!(stderr.starts_with(&format!("{path}:5:5: ")) && stderr.contains("colour"), "{stderr}");

    let (path, stderr) = check("indent.yaml", &format!("{head}  path: x\ntenants: []\n"), &[]);
    assert!(stderr.starts_with(&format!("{path}:5:3: ")), "{stderr}");

    // Several semantic problems: all reported, one per line, in file order.
    let body = format!(
        "{head}    path: ./d\ntenants:\n  - name: t\n    default_backend: nowhere\n    access_keys:\n      \
         - id: KEY1\n        secret_env: T_SECRET\nlisten: ${{NOT_SET}}\n"
    );
    let (path, stderr) = check("semantic.yaml", &body, &[]);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(lines[0].starts_with(&format!("{path}:8:22: ")) && lines[0].contains("nowhere"), "{stderr}");
    assert!(lines[1].starts_with(&format!("{path}:11:21: ")) && lines[1].contains("T_SECRET"), "{stderr}");
    assert!(lines[2].starts_with(&format!("{path}:12:9: ")) && lines[2].contains("NOT_SET"), "{stderr}");

    let out = run(&["check-config", "/nonexistent/blobseal.yaml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/blobseal.yaml"));
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `serve` with the embedded default, waits for the "listening on" log line, kills it,
/// and returns (stdout, stderr up to that line).
fn start_embedded(data: &Path) -> (String, String) {
    let port = free_port().to_string();
    let mut child = Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("BLOBSEAL_DATA_DIR", data)
        .env("BLOBSEAL_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let listening = loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains("listening on") {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    assert!(listening, "server did not log `listening on`; stderr:\n{seen}\nstdout:\n{stdout}");
    (stdout, seen)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn embedded_default_prints_generated_credentials_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (stdout, _) = start_embedded(&data);

    let creds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("credentials.json")).unwrap()).unwrap();
    let id = creds["access_key_id"].as_str().unwrap();
    let secret = creds["secret_access_key"].as_str().unwrap();
    assert_eq!((id.len(), secret.len()), (20, 40));
    assert!(stdout.contains(&format!("access key id:     {id}")), "{stdout}");
    assert!(stdout.contains(&format!("secret access key: {secret}")), "{stdout}");
    assert!(stdout.contains("aws --endpoint-url http://127.0.0.1:"), "{stdout}");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("credentials.json")), 0o600);
    assert_eq!(mode(&data.join("keyring.json")), 0o600);

    let (stdout2, stderr2) = start_embedded(&data);
    assert!(!stdout2.contains(secret) && !stderr2.contains(secret), "secret printed again:\n{stdout2}\n{stderr2}");
    assert!(!stdout2.contains("new credentials"), "{stdout2}");
    assert!(stderr2.contains(id) && stderr2.contains("credentials.json"), "{stderr2}");
}

/// The environment config/examples/policy.yaml and the broken variants need (values are fake).
const POLICY_ENV: &[(&str, &str)] = &[
    ("AWS_STORE_KEY_ID", "AKIDAWS"),
    ("AWS_STORE_SECRET", "aws-store-secret-value"),
    ("LON_STORE_KEY_ID", "AKIDLON"),
    ("LON_STORE_SECRET", "lon-store-secret-value"),
    ("ACME_SECRET", "acme-secret-value"),
    ("BRIT_SECRET", "brit-secret-value"),
    ("BLOBSEAL_MASTER_KEY", "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="),
];

#[test]
fn policy_example_checks_ok_and_prints_the_effective_policy() {
    let path = repo("config/examples/policy.yaml");
    let out = run(&["check-config", path.to_str().unwrap()], POLICY_ENV);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.trim_end().ends_with("OK"), "{stdout}");
    for (_, value) in POLICY_ENV.iter().filter(|(name, _)| !name.ends_with("KEY_ID")) {
        assert!(!stdout.contains(value) && !stderr.contains(value), "printed a secret: {stdout}{stderr}");
    }
    let lines: Vec<&str> = stdout.lines().collect();
    // Each tenant's block, in order: the rule, every place with its verdict, retention, backups.
    let acme = [
        "    residency: allow [EEA]",
        "      default backend fra in eu-central-1 (DE: EU, EEA): ok",
        "      backend fra (bucket calls) in eu-central-1 (DE: EU, EEA): ok",
        "      key store backend fra in eu-central-1 (DE: EU, EEA): ok",
        "      key provider kms-fra in eu-central-1 (DE: EU, EEA): ok",
        "      backup target par/acme-backup in eu-west-3 (FR: EU, EEA): ok",
        "    retention: default 35d; rules: call-records (prefix calls/) 28d; recordings (content type audio/*) 180d; \
         logs (tags class=log) 35d; db-backups (prefix backups/) 35d; legal (bucket legal-*) keep; \
         exports (key exports/**, metadata purpose=export) 7d, client may shorten; deadline-day keys on",
        "    backups: par/acme-backup",
    ];
    let brit = [
        "    residency: allow [UK]",
        "      default backend lon in eu-west-2 (GB: UK, adequacy): ok",
        // Routed to an on-premises region the config adds to the table.
        "      backend lon-archive (bucket archive) in dc-london-1 (GB: UK, adequacy): ok",
        "      key store backend lon in eu-west-2 (GB: UK, adequacy): ok",
        "      key provider ring-lon in eu-west-2 (GB: UK, adequacy): ok",
        "    retention: default 90d; rules: call-records (prefix calls/) 28d; recordings (content type audio/*) 180d; \
         archive (bucket archive) 2192d",
        "    backups: none",
    ];
    for block in [&acme[..], &brit[..]] {
        let start =
            lines.iter().position(|l| *l == block[0]).unwrap_or_else(|| panic!("no {:?} in {stdout}", block[0]));
        assert_eq!(lines.get(start..start + block.len()), Some(block), "{stdout}");
    }
    assert!(lines.contains(&"residency: drift check every 300 s"), "{stdout}");
    assert!(lines.contains(&"sweeper: every 3600 s, at most 50 deletions/s"), "{stdout}");
}

#[test]
fn summary_of_an_unrestricted_config_says_so() {
    let path = repo("config/examples/fs.yaml");
    let out =
        run(&["check-config", path.to_str().unwrap()], &[("ALICE_SECRET", "a-secret"), ("BOB_SECRET", "b-secret")]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    for want in [
        "residency: drift check only at start",
        "sweeper: not scheduled in process (run `blobseal sweep`), at most 50 deletions/s",
        "    residency: unrestricted",
        // No declared region: listed, and fine because nothing restricts the tenant.
        "      default backend disk: region not declared: ok",
        "    retention: default keep; rules: none",
        "    backups: none",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in\n{stdout}");
    }
}

/// Every file in config/examples/broken/ with the one diagnostic check-config must give for it.
const BROKEN: &[(&str, &str)] = &[
    ("bad-duration.yaml", "20:57: \"28x\": unit must be h, d or w (or `keep`)"),
    (
        "eea-backup-in-us.yaml",
        "25:20: residency: tenant acme: residency allow [EEA] does not allow backup target virginia/acme-backup \
         in us-east-1 (US: US)",
    ),
    (
        "fs-without-region.yaml",
        "26:47: residency: tenant acme: residency allow [EEA] does not allow backend archive (bucket archive), \
         whose location is not declared (give it a `region:`)",
    ),
    ("prefix-and-key.yaml", "21:55: give `key` (a glob) or `prefix`, not both"),
    (
        "uk-key-in-frankfurt.yaml",
        "20:19: residency: tenant brit: residency allow [UK] does not allow key provider kms-fra in eu-central-1 \
         (DE: EU EEA)",
    ),
    ("unknown-backup-backend.yaml", "22:20: unknown backend \"pars\" (defined: fra, par)"),
    (
        "unknown-jurisdiction.yaml",
        "17:26: \"EEEA\" is neither a jurisdiction (EU, EEA, UK, CH, US, adequacy) nor a country code",
    ),
];

#[test]
fn broken_policy_examples_exit_2_with_exact_positions() {
    let dir = repo("config/examples/broken");
    let mut files: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    files.sort();
    let listed: Vec<&str> = BROKEN.iter().map(|(f, _)| *f).collect();
    assert_eq!(files, listed, "every broken example needs its expected diagnostic here");
    for (file, want) in BROKEN {
        // Run from the directory so the diagnostic names the file as an operator would type it.
        let out = Command::new(BIN)
            .args(["check-config", file])
            .current_dir(&dir)
            .env_clear()
            .envs(POLICY_ENV.iter().copied())
            .output()
            .unwrap();
        let want = format!("{file}:{want}");
        assert_eq!(out.status.code(), Some(2), "{file}: {}", text(&out.stdout));
        assert_eq!(text(&out.stderr), format!("{want}\n"), "{file}");
        assert!(out.stdout.is_empty(), "{file}: {}", text(&out.stdout));
        // The file's header comment quotes the same line, so what ops read is what they get.
        let body = std::fs::read_to_string(dir.join(file)).unwrap();
        assert!(body.lines().any(|l| l == format!("#   {want}")), "{file}: header comment is stale");
    }
}

/// A UK-only tenant on an azure backend: its declared region, and the paired region a geo-redundant
/// account copies to, are checked like an s3 or fs backend's region, with the same positions.
#[test]
fn check_config_checks_azure_residency_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    // Azurite's published development key: base64, and a secret nowhere.
    let key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
    let env = [("AZ_KEY", key), ("BRIT_SECRET", "brit-secret-value")];
    let config = |region: &str, redundancy: &str, allow: &str| {
        format!(
            "key_provider: {{ kind: local, keyring: k.json, master_key_file: m.key, region: uksouth }}\n\
             backends:\n\
             \x20 - name: az-uk\n\
             \x20   kind: azure\n\
             \x20   endpoint: https://acct.blob.core.windows.net\n\
             \x20   account: acct\n\
             \x20   region: {region}\n\
             \x20   redundancy: {redundancy}\n\
             \x20   credentials: {{ account_key_env: AZ_KEY }}\n\
             tenants:\n\
             \x20 - name: brit\n\
             \x20   default_backend: az-uk\n\
             \x20   access_keys:\n\
             \x20     - {{ id: BRITKEY1, secret_env: BRIT_SECRET }}\n\
             \x20   residency: {{ allow: [{allow}] }}\n"
        )
    };
    let check = |name: &str, body: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        let out = run(&["check-config", path.to_str().unwrap()], &env);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(!stdout.contains(key) && !stderr.contains(key), "{name} printed the account key");
        (path.display().to_string(), out.status.code(), stdout, stderr)
    };

    for redundancy in ["lrs", "grs"] {
        let (_, code, stdout, stderr) = check("uk.yaml", config("uksouth", redundancy, "UK"));
        assert_eq!(code, Some(0), "{redundancy}: {stderr}");
        assert!(stdout.contains("      default backend az-uk in uksouth (GB: UK, adequacy): ok\n"), "{stdout}");
        let copy = "      default backend az-uk's grs copy in ukwest (GB: UK, adequacy): ok\n";
        assert_eq!(stdout.contains(copy), redundancy == "grs", "{stdout}");
    }

    let (path, code, stdout, stderr) = check("west.yaml", config("westeurope", "lrs", "UK"));
    assert_eq!(code, Some(2), "{stdout}");
    assert_eq!(
        stderr,
        format!(
            "{path}:12:22: residency: tenant brit: residency allow [UK] does not allow default backend az-uk in \
             westeurope (NL: EU EEA)\n"
        )
    );

    // EU only: westeurope with its copy in northeurope passes; uksouth's copy in ukwest is named.
    let eu_keys = |body: String| body.replace("region: uksouth }", "region: westeurope }");
    let (_, code, _, stderr) = check("eu-west.yaml", eu_keys(config("westeurope", "grs", "EU")));
    assert_eq!(code, Some(0), "{stderr}");
    let (path, code, _, stderr) = check("eu-uk.yaml", eu_keys(config("uksouth", "grs", "EU")));
    assert_eq!(code, Some(2));
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines.iter().all(|l| l.starts_with(&format!("{path}:12:22: "))), "{stderr}");
    assert!(
        lines[1].ends_with("does not allow default backend az-uk's grs copy in ukwest (GB: UK adequacy)"),
        "{stderr}"
    );

    // Geo-redundancy where Azure publishes no pair is refused at the redundancy.
    let (path, code, _, stderr) = check(
        "poland.yaml",
        config("polandcentral", "grs", "EU").replace("region: uksouth }", "region: polandcentral }"),
    );
    assert_eq!(code, Some(2));
    assert!(stderr.starts_with(&format!("{path}:8:17: redundancy grs copies the data")), "{stderr}");
}
