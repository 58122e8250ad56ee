//! The Azure Blob front end's settings: `azure_listen:`, `azure_domain:` and tenants' `azure_account:`,
//! each invalid value with its `line:col`, and keys kept out of `Debug` and the summary.

use super::*;

/// Two account keys in Azure's format (base64 of 64 bytes); Azurite's published one and a made-up one.
const KEY1: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const KEY2: &str = "a2V5Mi1rZXkyLWtleTIta2V5Mi1rZXkyLWtleTIta2V5Mi1rZXkyLWtleTIta2V5Mi1rZXkyLWtleTItMTIzNA==";

fn azf_env() -> impl Fn(&str) -> Option<String> {
    env_of(&[
        ("ACME_SECRET", "acme-secret-value"),
        ("S3_ID", "AKIDS3"),
        ("S3_SECRET", "s3-secret"),
        ("PORT", "9100"),
        ("MASTER", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ("AZ_KEY1", KEY1),
        ("AZ_KEY2", KEY2),
        // 15 bytes: too short.
        ("AZ_SHORT", "c2hvcnQtc2hvcnQtc2hv"),
        ("AZ_NOT_B64", "%%azure-secret-not-base64%%"),
    ])
}

/// `GOOD` with an Azure listener and domain (lines 3-4) and acme's account with two keys (lines 25-29:
/// `azure_account:`, `name:`, `keys:`, then one key a line). Globex starts at line 30.
fn azf() -> String {
    GOOD.replacen(
        "virtual_host_domain: s3.blobseal.local\n",
        "virtual_host_domain: s3.blobseal.local\nazure_listen: \"127.0.0.1:10000\"\nazure_domain: example.net\n",
        1,
    )
    .replacen(
        "        secret_env: ACME_SECRET\n  - name: globex\n",
        "        secret_env: ACME_SECRET\n    azure_account:\n      name: acmeaccount\n      keys:\n        - key_env: AZ_KEY1\n        - key_env: AZ_KEY2\n  - name: globex\n",
        1,
    )
}

/// `azf()` with line `n` (1-based) replaced by `with` (several lines, or none).
fn azf_edit(n: usize, with: &str) -> String {
    let mut lines: Vec<String> = azf().lines().map(str::to_owned).collect();
    lines[n - 1] = with.to_owned();
    lines.retain(|l| !l.is_empty());
    lines.join("\n") + "\n"
}

fn azf_ok(text: &str) -> Settings {
    parse_str(text, "c.yaml", &azf_env()).unwrap_or_else(|e| panic!("{e}"))
}

/// Asserts exactly one error, at `pos` ("line:col"), containing `needle`; returns it.
fn azf_one_error(text: &str, pos: &str, needle: &str) -> String {
    let errs = errors_env(text, &azf_env());
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].starts_with(&format!("c.yaml:{pos}: ")), "{errs:#?}");
    assert!(errs[0].contains(needle), "{errs:#?}");
    errs[0].clone()
}

#[test]
fn account_with_two_keys_parses() {
    let text = azf();
    assert_eq!(text.lines().nth(24), Some("    azure_account:"), "{text}");
    let s = azf_ok(&text);
    assert_eq!(s.azure_listen, Some("127.0.0.1:10000".parse().unwrap()));
    assert_eq!(s.azure_domain.as_deref(), Some("example.net"));
    let account = s.tenants[0].azure_account.as_ref().unwrap();
    assert_eq!(account.name, "acmeaccount");
    let keys: Vec<&str> = account.keys.iter().map(Secret::expose).collect();
    assert_eq!(keys, [KEY1, KEY2]);
    assert!(s.tenants[1].azure_account.is_none());

    let (debug, summary) = (format!("{s:?}"), s.summary());
    assert!(debug.contains("keys: [<redacted>, <redacted>]"), "{debug}");
    for text in [&debug, &summary] {
        assert!(!text.contains(KEY1) && !text.contains(KEY2), "key leaked:\n{text}");
    }
    assert!(summary.contains("azure listen: 127.0.0.1:10000 (path-style /<account>/..., accounts: acmeaccount)\n"));
    assert!(summary.contains("azure hosts: <account>.blob.example.net\n"), "{summary}");
    assert!(summary.contains("    azure account acmeaccount (2 keys)\n"), "{summary}");

    // One key is enough; a key may come from a file (one trailing newline trimmed).
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("key2");
    std::fs::write(&f, format!("{KEY2}\n")).unwrap();
    let s = azf_ok(&azf_edit(29, &format!("        - key_file: {}", f.display())));
    let keys: Vec<&str> = s.tenants[0].azure_account.as_ref().unwrap().keys.iter().map(Secret::expose).collect();
    assert_eq!(keys, [KEY1, KEY2]);
    let s = azf_ok(&azf_edit(29, ""));
    assert_eq!(s.tenants[0].azure_account.as_ref().unwrap().keys.len(), 1);
    assert!(s.summary().contains("    azure account acmeaccount (1 key)\n"), "{}", s.summary());
    // Flow style, as in tests/clients/azfront.py.
    let flow = azf().replace("        - key_env: AZ_KEY1\n", "        - { key_env: AZ_KEY1 }\n");
    azf_ok(&flow);

    // Without the front end: accounts are allowed (turning it off keeps them), and the summary says so.
    let s = azf_ok(&azf_edit(3, "").replace("azure_domain: example.net\n", ""));
    assert_eq!((s.azure_listen, s.azure_domain.as_deref()), (None, None));
    let summary = s.summary();
    assert!(summary.contains("    azure account acmeaccount (2 keys) (no azure_listen: not served)\n"), "{summary}");
    assert!(!summary.contains("azure listen"), "{summary}");
    // Nothing Azure at all: nothing in the summary.
    let s = parse_str(GOOD, "c.yaml", &azf_env()).unwrap();
    assert!(s.azure_listen.is_none() && s.tenants.iter().all(|t| t.azure_account.is_none()));
    assert!(!s.summary().contains("azure"), "{}", s.summary());
}

#[test]
fn bad_account_name() {
    azf_one_error(&azf_edit(26, "      name: Acme_Account"), "26:13", "invalid azure account name \"Acme_Account\"");
    azf_one_error(&azf_edit(26, "      name: ab"), "26:13", "3 to 24 of a-z 0-9");
    azf_one_error(&azf_edit(26, &format!("      name: {}", "a".repeat(25))), "26:13", "3 to 24");
    azf_one_error(&azf_edit(26, ""), "26:7", "missing field `name`");
}

#[test]
fn duplicate_account_name_across_tenants() {
    let text = azf().replacen(
        "        secret_env: ACME_SECRET\nbuckets:",
        "        secret_env: ACME_SECRET\n    azure_account: { name: acmeaccount, keys: [{ key_env: AZ_KEY2 }] }\nbuckets:",
        1,
    );
    azf_one_error(&text, "36:28", "duplicate azure account name \"acmeaccount\" (first at line 26)");
    // Another name is fine.
    let s = azf_ok(&text.replace("{ name: acmeaccount,", "{ name: globexaccount,"));
    assert_eq!(s.tenants[1].azure_account.as_ref().unwrap().name, "globexaccount");
    assert!(s.summary().contains("accounts: acmeaccount, globexaccount)"), "{}", s.summary());
}

#[test]
fn one_or_two_keys() {
    let three = azf_edit(29, "        - key_env: AZ_KEY2\n        - key_env: AZ_KEY1");
    azf_one_error(&three, "30:11", "at most 2 keys (Azure's key1 and key2), found 3");
    azf_one_error(
        &azf_edit(27, "      keys: []").replace("        - key_env: AZ_KEY1\n        - key_env: AZ_KEY2\n", ""),
        "27:13",
        "needs one or two keys",
    );
    azf_one_error(
        &azf_edit(27, "").replace("        - key_env: AZ_KEY1\n        - key_env: AZ_KEY2\n", ""),
        "26:7",
        "missing field `keys`",
    );
}

#[test]
fn bad_keys() {
    let err = azf_one_error(
        &azf_edit(28, "        - key_env: AZ_NOT_B64"),
        "28:20",
        "not standard base64 of at least 16 bytes",
    );
    assert!(!err.contains("azure-secret"), "the key was quoted: {err}");
    let err = azf_one_error(&azf_edit(29, "        - key_env: AZ_SHORT"), "29:20", "at least 16 bytes");
    assert!(!err.contains("c2hvcnQ"), "the key was quoted: {err}");
    azf_one_error(&azf_edit(28, "        - key_env: AZ_UNSET"), "28:20", "AZ_UNSET (key_env) is not set");
    azf_one_error(&azf_edit(28, "        - key: abc"), "28:11", "unknown field `key`");
    azf_one_error(&azf_edit(28, "        - {}"), "28:11", "missing secret: give key_env or key_file");
    azf_one_error(
        &azf_edit(28, "        - { key_env: AZ_KEY1, key_file: /k }"),
        "28:41",
        "exactly one of key_env or key_file",
    );
    azf_one_error(&azf_edit(28, "        - key_file: /nonexistent/k"), "28:21", "cannot read secret file");
}

#[test]
fn listener_errors() {
    // No tenant has an account.
    let no_account = azf().replace(
        "    azure_account:\n      name: acmeaccount\n      keys:\n        - key_env: AZ_KEY1\n        - key_env: AZ_KEY2\n",
        "",
    );
    azf_one_error(&no_account, "3:15", "azure_listen is set but no tenant has an azure_account");
    // An invalid account is reported once, not also as a missing one.
    azf_one_error(&azf_edit(26, "      name: A"), "26:13", "invalid azure account name");
    // Not the S3 address (listen is 127.0.0.1:${PORT}, PORT=9100), nor one that covers it.
    azf_one_error(&azf_edit(3, "azure_listen: 127.0.0.1:9100"), "3:15", "collides with the S3 listen address");
    azf_one_error(&azf_edit(3, "azure_listen: 0.0.0.0:${PORT}"), "3:15", "collides with the S3 listen address");
    azf_ok(&azf_edit(3, "azure_listen: 0.0.0.0:10000"));
    azf_one_error(&azf_edit(3, "azure_listen: localhost:10000"), "3:15", "invalid azure_listen address");
    azf_one_error(&azf_edit(3, "azure_listen: ${NOPE}"), "3:15", "NOPE is not set");
    azf_one_error(&azf_edit(4, "azure_domain: Example..net"), "4:15", "invalid azure_domain");
}
