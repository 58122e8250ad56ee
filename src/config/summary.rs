//! `Settings::summary()`: what `blobseal check-config` prints and the server logs at start: the
//! effective config, with each tenant's effective policy (where its data, backups and keys are and
//! whether the residency rule allows each place, a geo-redundant azure account's paired region
//! included; its retention rules). Never a secret.

use super::*;
use crate::core::policy::residency::ResidencyPolicy;

impl Settings {
    /// A short human summary for `check-config` and the start-up log. Never contains secrets.
    ///
    /// Besides the plain settings it prints each tenant's effective policy: its residency rule with every
    /// place its data, backups and keys can be (region, country, jurisdictions, and whether the rule allows
    /// it), its retention rules in match order, and its backup targets; and, globally, the drift check and
    /// sweeper schedule. This is the record of "what blobseal was told to do" an operator keeps.
    pub fn summary(&self) -> String {
        use crate::core::policy::regions::jurisdictions_of;
        use crate::core::policy::retention::{ClientOverride, RetentionRule};

        // One place a tenant's data or keys can be, as `what in REGION (CC: EU, EEA): ok`.
        fn place(table: &RegionTable, policy: &ResidencyPolicy, what: &str, region: Option<&str>) -> String {
            let located = match region {
                None => format!("{what}: region not declared"),
                Some(r) => match table.country_of(r) {
                    None => format!("{what} in {r} (not in the residency table)"),
                    Some(c) => {
                        let js: Vec<&str> = jurisdictions_of(&c).iter().map(|j| j.as_str()).collect();
                        let js = if js.is_empty() { "no jurisdiction".to_owned() } else { js.join(", ") };
                        format!("{what} in {r} ({c}: {js})")
                    }
                },
            };
            // Settings only exist once the static check passed, so a refusal here means the summary and
            // the check disagree: print it rather than hide it.
            match policy.check(table, what, region) {
                Ok(()) => format!("{located}: ok"),
                Err(_) => format!("{located}: REFUSED"),
            }
        }
        fn pairs(what: &str, map: &std::collections::BTreeMap<String, String>) -> Option<String> {
            let kv: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
            (!kv.is_empty()).then(|| format!("{what} {}", kv.join(" ")))
        }
        fn overrides(o: ClientOverride) -> &'static str {
            match o {
                ClientOverride::Never => "",
                ClientOverride::Shorten => ", client may shorten",
                ClientOverride::Extend => ", client may extend",
                ClientOverride::Any => ", client may change",
            }
        }
        fn rule_text(r: &RetentionRule) -> String {
            let conditions: Vec<String> = [
                r.bucket.as_ref().map(|b| format!("bucket {}", b.as_str())),
                r.key.as_ref().map(|k| format!("key {}", k.as_str())),
                r.prefix.as_ref().map(|p| format!("prefix {p}")),
                r.content_type.as_ref().map(|c| format!("content type {}", c.as_str())),
                pairs("metadata", &r.metadata),
                pairs("tags", &r.tags),
            ]
            .into_iter()
            .flatten()
            .collect();
            let conditions = if conditions.is_empty() { "any object".to_owned() } else { conditions.join(", ") };
            format!("{} ({conditions}) {}{}", r.name, r.keep, overrides(r.client_override))
        }

        let mut out = format!("config: {}\nlisten: {}\n", self.source, self.listen);
        if let Some(domain) = &self.virtual_host_domain {
            out.push_str(&format!("virtual hosts: <bucket>.{domain}\n"));
        }
        if let Some(azure) = self.azure_listen {
            let accounts: Vec<&str> =
                self.tenants.iter().filter_map(|t| t.azure_account.as_ref()).map(|a| a.name.as_str()).collect();
            out.push_str(&format!(
                "azure listen: {azure} (path-style /<account>/..., accounts: {})\n",
                accounts.join(", ")
            ));
            if let Some(domain) = &self.azure_domain {
                out.push_str(&format!("azure hosts: <account>.blob.{domain}\n"));
            }
        }
        let ops = &self.operations;
        match ops.admin_listen {
            Some(a) => out.push_str(&format!("admin listen: {a} (/livez, /readyz, /metrics)\n")),
            None => out.push_str("admin listen: none (no health endpoints, no metrics)\n"),
        }
        match &ops.tls {
            Some(t) => out.push_str(&format!(
                "tls: cert {}, key {}{} (reloaded when they change)\n",
                t.cert_file.display(),
                t.key_file.display(),
                t.client_ca_file
                    .as_ref()
                    .map(|c| format!(", client certificates from {}", c.display()))
                    .unwrap_or_default()
            )),
            None => out.push_str("tls: none (plain HTTP)\n"),
        }
        out.push_str(&format!(
            "logs: {}; shutdown: drain {} s, then up to {} s for open requests\n",
            ops.log_format.as_str(),
            ops.shutdown.drain_delay.as_secs(),
            ops.shutdown.timeout.as_secs()
        ));
        match &self.audit {
            Some(a) => out.push_str(&format!(
                "audit trail: {}, signing key {}, records grouped every {} ms, heads every {} s \
                 (each tenant's <bucket_prefix>blobseal-audit or key_store.audit_bucket)\n",
                match a.mode {
                    super::audit::AuditMode::BestEffort => "best-effort",
                    super::audit::AuditMode::Required => "required (a request waits for its record)",
                },
                a.signing_key_file.display(),
                a.flush.as_millis(),
                a.rollup.as_secs()
            )),
            None => out.push_str("audit trail: off (add `audit:` to keep one)\n"),
        }
        out.push_str(&format!("key providers ({}):\n", self.key_providers.len()));
        for p in &self.key_providers {
            out.push_str(&format!("  {}: {}\n", p.name, p.settings.describe()));
        }
        out.push_str(&format!(
            "key cache: ttl {} s (the longest a destroyed key stays usable in a running replica), {} entries\n",
            self.key_cache.ttl.as_secs(),
            self.key_cache.max_entries
        ));
        out.push_str(&match self.residency.drift_check {
            Some(every) => format!("residency: drift check every {} s\n", every.as_secs()),
            None => "residency: drift check only at start\n".to_owned(),
        });
        out.push_str(&match self.sweeper.interval {
            Some(every) => format!(
                "sweeper: every {} s, at most {} deletions/s\n",
                every.as_secs(),
                self.sweeper.max_deletes_per_second
            ),
            None => format!(
                "sweeper: not scheduled in process (run `blobseal sweep`), at most {} deletions/s\n",
                self.sweeper.max_deletes_per_second
            ),
        });
        out.push_str(&format!("backends ({}):\n", self.backends.len()));
        for b in &self.backends {
            let detail = match &b.kind {
                BackendKind::Fs { root, region } => format!(
                    "fs at {}{}",
                    root.display(),
                    region.as_deref().map(|r| format!(", region {r}")).unwrap_or_default()
                ),
                BackendKind::S3 { endpoint, region, access_key_id, force_path_style, .. } => format!(
                    "s3 region {region}, endpoint {}, key id {access_key_id}{}",
                    endpoint.as_deref().unwrap_or("(AWS default)"),
                    if *force_path_style { ", path-style" } else { "" }
                ),
                BackendKind::Azure { endpoint, account, region, redundancy, credentials } => format!(
                    "azure account {account} at {endpoint}, region {region}, redundancy {redundancy}{}, {}",
                    b.secondary_region().map(|pair| format!(" (copies to {pair})")).unwrap_or_default(),
                    match credentials {
                        AzureAuth::AccountKey(_) => "account key",
                        AzureAuth::Sas(_) => "SAS token",
                    }
                ),
            };
            out.push_str(&format!("  {}: {detail}\n", b.name));
        }
        // Every region a backend keeps data in (a geo-redundant azure account's copy too), named for the summary.
        let backend_places = |name: &str, what: String| match self.backends.iter().find(|b| b.name == name) {
            Some(b) => b.places(&what),
            None => vec![(what, None)],
        };
        out.push_str(&format!("tenants ({}):\n", self.tenants.len()));
        for t in &self.tenants {
            let ids: Vec<&str> = t.access_keys.iter().map(|k| k.id.as_str()).collect();
            out.push_str(&format!(
                "  {}: default backend {}, bucket prefix {:?}, access keys [{}]\n",
                t.name,
                t.default_backend,
                t.bucket_prefix,
                ids.join(", ")
            ));
            if let Some(a) = &t.azure_account {
                let served = if self.azure_listen.is_some() { "" } else { " (no azure_listen: not served)" };
                let keys = if a.keys.len() == 1 { "1 key".to_owned() } else { format!("{} keys", a.keys.len()) };
                out.push_str(&format!("    azure account {} ({keys}){served}\n", a.name));
            }
            let subjects: Vec<String> = t
                .data_subjects
                .iter()
                .map(|r| match r {
                    DataSubjectRule::Metadata(m) => format!("header x-amz-meta-{m}"),
                    DataSubjectRule::KeyPattern(p) => format!("key pattern {p}"),
                })
                .collect();
            out.push_str(&format!(
                "    keys: provider {}, key store {}/{}, data subjects: {}\n",
                t.key_provider,
                t.key_store.backend,
                t.key_store.bucket,
                if subjects.is_empty() { "none".to_owned() } else { subjects.join(", ") }
            ));
            let allow: Vec<String> = t.residency.allow.iter().map(ToString::to_string).collect();
            out.push_str(&if allow.is_empty() {
                "    residency: unrestricted\n".to_owned()
            } else {
                format!("    residency: allow [{}]\n", allow.join(", "))
            });
            // The same places, named the same way, as the static check at start-up.
            let mut places = backend_places(&t.default_backend, format!("default backend {}", t.default_backend));
            for r in self.buckets.iter().filter(|r| r.tenant == t.name) {
                places.extend(backend_places(&r.backend, format!("backend {} (bucket {})", r.backend, r.bucket)));
            }
            places.extend(backend_places(&t.key_store.backend, format!("key store backend {}", t.key_store.backend)));
            let provider_region =
                self.key_providers.iter().find(|p| p.name == t.key_provider).and_then(|p| p.settings.region());
            places.push((format!("key provider {}", t.key_provider), provider_region));
            for b in &t.backups {
                places.extend(backend_places(&b.backend, format!("backup target {}/{}", b.backend, b.bucket)));
            }
            for (what, region) in &places {
                out.push_str(&format!("      {}\n", place(&self.residency.table, &t.residency, what, *region)));
            }
            let rules: Vec<String> = t.retention.rules.iter().map(rule_text).collect();
            out.push_str(&format!(
                "    retention: default {}{}; rules: {}{}\n",
                t.retention.default,
                overrides(t.retention.default_override),
                if rules.is_empty() { "none".to_owned() } else { rules.join("; ") },
                if t.retention.period_keys { "; deadline-day keys on" } else { "" }
            ));
            let backups: Vec<String> = t.backups.iter().map(|b| format!("{}/{}", b.backend, b.bucket)).collect();
            out.push_str(&format!(
                "    backups: {}\n",
                if backups.is_empty() { "none".to_owned() } else { backups.join(", ") }
            ));
        }
        out.push_str(&format!("bucket routes ({}):\n", self.buckets.len()));
        for r in &self.buckets {
            let backups: Vec<String> = r.backups.iter().map(|b| format!("{}/{}", b.backend, b.bucket)).collect();
            let backups =
                if backups.is_empty() { String::new() } else { format!(" (backups: {})", backups.join(", ")) };
            out.push_str(&format!("  {}/{} -> {}/{}{backups}\n", r.tenant, r.bucket, r.backend, r.backend_bucket));
        }
        out
    }
}
