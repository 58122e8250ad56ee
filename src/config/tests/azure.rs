//! `kind: azure` backends: a valid block, each invalid field with its `line:col`, secrets kept out
//! of `Debug` and the summary, and residency counting a geo-redundant account's paired region.

use super::*;

/// Azurite's published development key (base64 of 64 bytes), not a secret anywhere.
const AZ_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const AZ_SAS: &str = "sv=2024-08-04&ss=b&srt=sco&sp=rwdlac&se=2030-01-01T00:00:00Z&sig=c2VjcmV0LXNpZw%3D%3D";

fn az_env() -> impl Fn(&str) -> Option<String> {
    env_of(&[
        ("AZ_KEY", AZ_KEY),
        ("AZ_SAS", AZ_SAS),
        ("NOT_B64", "%%secret-but-not-base64%%"),
        ("BRIT_SECRET", "brit-secret-value"),
        ("MASTER", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
    ])
}

/// A UK-only tenant on a geo-redundant azure account in uksouth; tests derive variants by line.
const AZ: &str = "\
key_provider: { kind: local, keyring: k.json, master_key_env: MASTER, region: uksouth }
backends:
  - name: az-uk
    kind: azure
    endpoint: https://acct.blob.core.windows.net
    account: acct
    region: uksouth
    redundancy: grs
    credentials: { account_key_env: AZ_KEY }
tenants:
  - name: brit
    default_backend: az-uk
    access_keys:
      - { id: BRITKEY1, secret_env: BRIT_SECRET }
    residency: { allow: [UK] }
";

/// `AZ` with line `n` (1-based) replaced by `with` (several lines, or none).
fn az_edit(n: usize, with: &str) -> String {
    let mut lines: Vec<String> = AZ.lines().map(str::to_owned).collect();
    lines[n - 1] = with.to_owned();
    lines.retain(|l| !l.is_empty());
    lines.join("\n") + "\n"
}

fn az_ok(text: &str) -> Settings {
    parse_str(text, "c.yaml", &az_env()).unwrap_or_else(|e| panic!("{e}"))
}

fn az_errors(text: &str) -> Vec<String> {
    errors_env(text, &az_env())
}

/// Asserts exactly one error, at `pos` ("line:col"), containing `needle`.
fn az_one_error(text: &str, pos: &str, needle: &str) {
    let errs = az_errors(text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].starts_with(&format!("c.yaml:{pos}: ")), "{errs:#?}");
    assert!(errs[0].contains(needle), "{errs:#?}");
}

#[test]
fn valid_azure_block_parses() {
    let s = az_ok(AZ);
    let b = &s.backends[0];
    match &b.kind {
        BackendKind::Azure { endpoint, account, region, redundancy, credentials: AzureAuth::AccountKey(key) } => {
            assert_eq!(endpoint, "https://acct.blob.core.windows.net");
            assert_eq!((account.as_str(), region.as_str()), ("acct", "uksouth"));
            assert_eq!(*redundancy, AzureRedundancy::Grs);
            assert_eq!(key.expose(), AZ_KEY);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!((b.kind.kind_name(), b.region(), b.secondary_region()), ("azure", Some("uksouth"), Some("ukwest")));
    assert_eq!(
        b.places("default backend az-uk"),
        vec![
            ("default backend az-uk".to_owned(), Some("uksouth")),
            ("default backend az-uk's grs copy".to_owned(), Some("ukwest")),
        ]
    );
    // Redundancy defaults to lrs (no copy elsewhere); any case is accepted.
    let lrs = az_ok(&az_edit(8, ""));
    assert!(matches!(lrs.backends[0].kind, BackendKind::Azure { redundancy: AzureRedundancy::Lrs, .. }));
    assert_eq!(lrs.backends[0].secondary_region(), None);
    assert_eq!(lrs.backends[0].places("b").len(), 1);
    let ragzrs = az_ok(&az_edit(8, "    redundancy: RAGZRS"));
    assert!(matches!(ragzrs.backends[0].kind, BackendKind::Azure { redundancy: AzureRedundancy::RaGzrs, .. }));
    // Azurite: the account is the endpoint's path.
    let azurite = AZ
        .replace("https://acct.blob.core.windows.net", "http://127.0.0.1:10000/devstoreaccount1/")
        .replace("account: acct", "account: devstoreaccount1");
    let s = az_ok(&azurite);
    assert!(matches!(&s.backends[0].kind, BackendKind::Azure { account, .. } if account == "devstoreaccount1"));
    // A custom domain (no account in the host) is the operator's word.
    az_ok(&az_edit(5, "    endpoint: https://blobs.example.com"));
}

#[test]
fn sas_and_key_files_and_secrets_redacted() {
    let s = az_ok(&az_edit(9, "    credentials: { sas_token_env: AZ_SAS }"));
    assert!(
        matches!(&s.backends[0].kind, BackendKind::Azure { credentials: AzureAuth::Sas(t), .. } if t.expose() == AZ_SAS)
    );
    let (debug, summary) = (format!("{s:?}"), s.summary());
    assert!(!debug.contains("sig=") && !summary.contains("sig="), "SAS leaked:\n{debug}\n{summary}");
    assert!(summary.contains(", SAS token\n"), "{summary}");

    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("key");
    std::fs::write(&f, format!("{AZ_KEY}\n")).unwrap();
    let s = az_ok(&az_edit(9, &format!("    credentials: {{ account_key_file: {} }}", f.display())));
    assert!(
        matches!(&s.backends[0].kind, BackendKind::Azure { credentials: AzureAuth::AccountKey(k), .. } if k.expose() == AZ_KEY)
    );
    let (debug, summary) = (format!("{s:?}"), s.summary());
    assert!(debug.contains("AccountKey(<redacted>)"), "{debug}");
    for text in [&debug, &summary] {
        assert!(!text.contains(AZ_KEY) && !text.contains("brit-secret-value"), "secret leaked:\n{text}");
    }
    assert!(
        summary.contains(
            "  az-uk: azure account acct at https://acct.blob.core.windows.net, region uksouth, redundancy grs \
             (copies to ukwest), account key\n"
        ),
        "{summary}"
    );
    assert!(summary.contains("      default backend az-uk in uksouth (GB: UK, adequacy): ok\n"), "{summary}");
    assert!(summary.contains("      default backend az-uk's grs copy in ukwest (GB: UK, adequacy): ok\n"), "{summary}");
}

#[test]
fn endpoint_and_account_errors() {
    az_one_error(&az_edit(5, "    endpoint: ftp://acct.blob.core.windows.net"), "5:15", "expected http:// or https://");
    az_one_error(&az_edit(5, "    endpoint: acct.blob.core.windows.net"), "5:15", "not a URL");
    az_one_error(&az_edit(5, "    endpoint: https://other.blob.core.windows.net"), "5:15", "account \"other\"'s");
    az_one_error(&az_edit(5, "    endpoint: https://acct.blob.core.windows.net/?sv=1"), "5:15", "no query");
    az_one_error(&az_edit(5, "    endpoint: https://u:p@acct.blob.core.windows.net"), "5:15", "no user or password");
    az_one_error(&az_edit(5, "    endpoint: http://127.0.0.1:10000/devstoreaccount1"), "5:15", "path must be empty");
    az_one_error(&az_edit(5, ""), "3:5", "azure backend needs `endpoint:`");
    az_one_error(&az_edit(6, "    account: Acct"), "6:14", "invalid account \"Acct\"");
    az_one_error(&az_edit(6, "    account: ab"), "6:14", "3 to 24");
    az_one_error(&az_edit(6, &format!("    account: {}", "a".repeat(25))), "6:14", "3 to 24");
    az_one_error(&az_edit(6, ""), "3:5", "azure backend needs `account:`");
}

#[test]
fn region_and_redundancy_errors() {
    az_one_error(&az_edit(7, ""), "3:5", "azure backend needs `region:`");
    az_one_error(&az_edit(7, "    region: uk-south"), "7:13", "unknown Azure region \"uk-south\"");
    az_one_error(&az_edit(7, "    region: eu-west-2"), "7:13", "is an AWS region, not an Azure one");
    az_one_error(&az_edit(7, "    region: UKSouth"), "7:13", "invalid region");
    az_one_error(&az_edit(8, "    redundancy: geo"), "8:17", "unknown redundancy \"geo\"");
    // No pair: geo-redundancy has no known second place, so it is refused (lrs and zrs are fine).
    let poland = az_edit(15, "").replace("region: uksouth", "region: polandcentral");
    az_one_error(&poland, "8:17", "polandcentral has no Azure region pair");
    az_one_error(&poland.replace("redundancy: grs", "redundancy: ragzrs"), "8:17", "redundancy ragzrs");
    az_ok(&poland.replace("redundancy: grs", "redundancy: zrs"));
    // A region the config adds (opened after the table was checked) may be declared; it has no known pair.
    let added = az_edit(15, "").replacen(
        "backends:",
        "residency: { regions: [{ name: denmarkeast, country: DK }] }\nbackends:",
        1,
    );
    az_ok(&added.replace("region: uksouth", "region: denmarkeast").replace("redundancy: grs", "redundancy: lrs"));
    az_one_error(&added.replace("region: uksouth\n", "region: denmarkeast\n"), "9:17", "no Azure region pair");
}

#[test]
fn credential_errors() {
    az_one_error(&az_edit(9, "    credentials: { account_key_env: NOT_B64 }"), "9:37", "not base64");
    let errs = az_errors(&az_edit(9, "    credentials: { account_key_env: NOT_B64 }"));
    assert!(!errs[0].contains("secret-but"), "the value was quoted: {errs:#?}");
    az_one_error(
        &az_edit(9, "    credentials: { account_key_env: UNSET }"),
        "9:37",
        "UNSET (account_key_env) is not set",
    );
    az_one_error(&az_edit(9, "    credentials: { sas_token_env: AZ_KEY }"), "9:35", "not a SAS token");
    az_one_error(
        &az_edit(9, "    credentials: { account_key_env: AZ_KEY, sas_token_env: AZ_SAS }"),
        "9:60",
        "an account key or a SAS token, not both",
    );
    az_one_error(
        &az_edit(9, "    credentials: { account_key_env: AZ_KEY, account_key_file: /k }"),
        "9:63",
        "exactly one of account_key_env or account_key_file",
    );
    az_one_error(&az_edit(9, "    credentials: {}"), "9:18", "missing secret");
    az_one_error(
        &az_edit(9, "    credentials: { access_key_id: x, account_key_env: AZ_KEY }"),
        "9:35",
        "`access_key_id` is only valid in s3 backend and aws-kms credentials",
    );
    az_one_error(&az_edit(9, "    credentials: { account_key: inline }"), "9:20", "unknown field `account_key`");
    az_one_error(
        &az_edit(9, "    credentials: { account_key_file: /nonexistent/k }"),
        "9:38",
        "cannot read secret file",
    );
    az_one_error(&az_edit(9, ""), "3:5", "azure backend needs `credentials:`");
}

#[test]
fn fields_of_other_kinds_are_refused() {
    az_one_error(&az_edit(8, "    redundancy: grs\n    force_path_style: true"), "9:23", "only valid for s3 backends");
    az_one_error(&az_edit(8, "    redundancy: grs\n    path: /x"), "9:11", "`path` is only valid for fs backends");
    // And the other way round, in GOOD's s3 and fs backends.
    one_error(&edit(9, "    force_path_style: true\n    account: acct"), "10:14", "only valid for azure backends");
    one_error(&edit(15, "    path: x\n    redundancy: grs"), "16:17", "only valid for azure backends");
    one_error(&edit(15, "    path: x\n    endpoint: http://x"), "16:15", "only valid for s3 and azure backends");
    one_error(
        &edit(12, "      secret_access_key_env: S3_SECRET\n      account_key_env: AZ_KEY"),
        "13:24",
        "`account_key_env` is only valid in an azure backend's credentials",
    );
}

#[test]
fn residency_counts_the_declared_region_and_the_geo_redundant_copy() {
    // UK only: uksouth passes with lrs and grs (ukwest is UK too).
    az_ok(AZ);
    az_ok(&az_edit(8, ""));
    // westeurope is refused at the tenant's backend reference, like an s3 or fs backend's region;
    // with grs, its copy in northeurope too.
    let west = AZ.replace("redundancy: grs", "redundancy: lrs").replace("region: uksouth\n", "region: westeurope\n");
    az_one_error(
        &west,
        "12:22",
        "residency: tenant brit: residency allow [UK] does not allow default backend az-uk in westeurope (NL: EU EEA)",
    );
    let errs = az_errors(&AZ.replace("region: uksouth\n", "region: westeurope\n"));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[1].starts_with("c.yaml:12:22: ") && errs[1].contains("az-uk's grs copy in northeurope (IE: EU EEA)"));

    // EU only: westeurope + grs passes (northeurope is EU) ...
    let eu = AZ.replace("allow: [UK]", "allow: [EU]").replace("region: uksouth", "region: westeurope");
    az_ok(&eu);
    // ... uksouth + grs fails, naming both the region and its copy in ukwest.
    let errs = az_errors(&eu.replace("    region: westeurope\n", "    region: uksouth\n"));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].contains("default backend az-uk in uksouth (GB: UK adequacy)"), "{errs:#?}");
    assert!(errs[1].contains("default backend az-uk's grs copy in ukwest (GB: UK adequacy)"), "{errs:#?}");

    // The copy alone decides: a Netherlands-only tenant may use westeurope, but not geo-redundantly
    // (the copy would be in Ireland).
    let nl = eu.replace("allow: [EU]", "allow: [NL]");
    let errs = az_errors(&nl);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains("does not allow default backend az-uk's grs copy in northeurope (IE: EU EEA)"),
        "{errs:#?}"
    );
    az_ok(&nl.replace("redundancy: grs", "redundancy: zrs"));
    // brazilsouth's pair is outside Brazil: an adequacy-only tenant may not be there geo-redundantly.
    let br = AZ.replace("allow: [UK]", "allow: [adequacy]").replace("region: uksouth\n", "region: brazilsouth\n");
    let errs = az_errors(&br);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].contains("grs copy in southcentralus (US: US)"), "{errs:#?}");
}
