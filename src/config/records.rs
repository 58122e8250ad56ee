//! `blobseal records`: the processor's record of processing activities (GDPR Art. 30(2)), generated from the
//! config: who processes for whom (the `processor:` and per-tenant `controller:` blocks), what processing
//! blobseal carries out for each controller, where each tenant's data, keys and backups are (region, country,
//! jurisdictions) and which places are transfers out of the EEA, the retention schedule, the security
//! measures, and the sub-processors (backends and key providers by provider). Nothing is contacted.
//!
//! The record is the processor's to keep and sign; this gives it the facts blobseal knows, in the same
//! words as `check-config`, so the two cannot drift apart.

use serde::Serialize;

use super::parties::Party;
use super::*;
use crate::core::policy::regions::{jurisdictions_of, Jurisdiction};

/// One place where a tenant's data, keys or backups are.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Place {
    pub what: String,
    pub region: Option<String>,
    pub country: Option<String>,
    pub jurisdictions: Vec<String>,
    /// Outside the EEA: a transfer to a third country (Chapter V).
    pub third_country: bool,
    /// Its transfer basis as blobseal knows it: `EEA`, `adequacy decision (Art. 45)`, or `none known`.
    pub basis: String,
}

/// The record for one controller (a tenant).
#[derive(Debug, Clone, Serialize)]
pub struct ControllerRecord {
    pub tenant: String,
    pub controller: Option<Party>,
    pub purposes: Vec<String>,
    pub data_categories: Vec<String>,
    pub subject_categories: Vec<String>,
    /// Categories of processing carried out on the controller's behalf (30(2)(b)).
    pub processing: Vec<String>,
    pub places: Vec<Place>,
    /// The places that are transfers to third countries (30(2)(c)).
    pub transfers: Vec<Place>,
    pub retention: Vec<String>,
    pub backups: Vec<String>,
    pub key_provider: String,
}

/// A sub-processor: a provider blobseal stores with or keeps keys at.
#[derive(Debug, Clone, Serialize)]
pub struct SubProcessor {
    pub name: String,
    pub role: String,
    pub provider: String,
    pub region: Option<String>,
}

/// The whole record.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub title: String,
    pub generated: String,
    pub config: String,
    pub config_sha256: String,
    pub processor: Option<Party>,
    pub controllers: Vec<ControllerRecord>,
    /// General description of the technical and organisational security measures (30(2)(d)).
    pub security_measures: Vec<String>,
    pub sub_processors: Vec<SubProcessor>,
}

fn place(table: &RegionTable, what: String, region: Option<&str>) -> Place {
    let country = region.and_then(|r| table.country_of(r));
    let js = country.as_deref().map(jurisdictions_of).unwrap_or_default();
    let in_eea = js.contains(&Jurisdiction::Eea);
    let basis = match (&country, in_eea, js.contains(&Jurisdiction::Adequacy)) {
        (None, _, _) => "region not declared or not in the residency table".to_owned(),
        (_, true, _) => "EEA".to_owned(),
        (_, false, true) => "adequacy decision (Art. 45)".to_owned(),
        _ => "none known to blobseal: the controller's safeguards (Art. 46) apply".to_owned(),
    };
    Place {
        what,
        region: region.map(str::to_owned),
        country: country.clone(),
        jurisdictions: js.iter().map(|j| j.as_str().to_owned()).collect(),
        third_country: country.is_some() && !in_eea,
        basis,
    }
}

fn provider_of_backend(b: &BackendSettings) -> String {
    match &b.kind {
        BackendKind::Fs { root, .. } => format!("local filesystem at {} (the operator's own storage)", root.display()),
        BackendKind::S3 { endpoint: None, .. } => "Amazon Web Services, Amazon S3".to_owned(),
        BackendKind::S3 { endpoint: Some(e), .. } => format!("S3-compatible storage at {e}"),
        BackendKind::Azure { endpoint, account, .. } => {
            format!("Microsoft Azure Blob Storage, account {account} ({endpoint})")
        }
    }
}

fn provider_of_keys(p: &KeyProviderSettings) -> String {
    match p {
        KeyProviderSettings::Local { .. } => "local keyring file (the operator's own host)".to_owned(),
        KeyProviderSettings::AwsKms { endpoint: None, .. } => "Amazon Web Services, AWS KMS".to_owned(),
        KeyProviderSettings::AwsKms { endpoint: Some(e), .. } => format!("KMS at {e}"),
        KeyProviderSettings::Pkcs11 { module, .. } => format!("PKCS#11 HSM (module {})", module.display()),
    }
}

impl Settings {
    /// The Art. 30(2) record of this config, generated at `now` (RFC 3339).
    pub fn records(&self, now: &str) -> Record {
        let table = &self.residency.table;
        let backend_places = |name: &str, what: String| -> Vec<Place> {
            match self.backends.iter().find(|b| b.name == name) {
                Some(b) => b.places(&what).into_iter().map(|(w, r)| place(table, w, r)).collect(),
                None => vec![place(table, what, None)],
            }
        };
        let mut controllers = Vec::new();
        for t in &self.tenants {
            let mut places = backend_places(&t.default_backend, format!("objects (backend {})", t.default_backend));
            for r in self.buckets.iter().filter(|r| r.tenant == t.name) {
                places.extend(backend_places(
                    &r.backend,
                    format!("objects of bucket {} (backend {})", r.bucket, r.backend),
                ));
            }
            places.extend(backend_places(
                &t.key_store.backend,
                format!("wrapped keys, receipts and audit trail (backend {})", t.key_store.backend),
            ));
            let provider = self.key_providers.iter().find(|p| p.name == t.key_provider);
            places.push(place(
                table,
                format!("root keys (key provider {})", t.key_provider),
                provider.and_then(|p| p.settings.region()),
            ));
            for b in &t.backups {
                places.extend(backend_places(&b.backend, format!("backup copies ({}/{})", b.backend, b.bucket)));
            }
            let mut processing = vec![
                "storage of the controller's objects (S3 and Azure Blob APIs), encrypted before they reach storage"
                    .to_owned(),
                "retrieval and decryption for the controller's authenticated clients".to_owned(),
                if t.retention.rules.is_empty() && t.retention.default.to_string() == "keep" {
                    "no retention deadline: objects are kept until the controller deletes them".to_owned()
                } else {
                    format!(
                        "deletion when the retention deadline passes (default {}; {} rule(s))",
                        t.retention.default,
                        t.retention.rules.len()
                    )
                },
                "crypto-shredding of a data subject or of the whole tenant on the controller's instruction".to_owned(),
            ];
            if !t.backups.is_empty() {
                processing.push(format!("backup copies of every object in {} target(s)", t.backups.len()));
            }
            if self.audit.is_some() {
                processing.push("an audit record of every request (data subjects as keyed hashes)".to_owned());
            }
            let mut retention = vec![format!("default: {}", t.retention.default)];
            retention.extend(t.retention.rules.iter().map(|r| format!("{}: {}", r.name, r.keep)));
            if t.retention.period_keys {
                retention.push("deadline-day keys are destroyed once their day has passed".to_owned());
            }
            let transfers = places.iter().filter(|p| p.third_country).cloned().collect();
            let c = t.controller.clone().unwrap_or_default();
            controllers.push(ControllerRecord {
                tenant: t.name.clone(),
                controller: t.controller.as_ref().map(|c| c.party.clone()),
                purposes: c.purposes,
                data_categories: c.data_categories,
                subject_categories: c.subject_categories,
                processing,
                places,
                transfers,
                retention,
                backups: t.backups.iter().map(|b| format!("{}/{}", b.backend, b.bucket)).collect(),
                key_provider: provider.map(|p| p.settings.describe()).unwrap_or_default(),
            });
        }
        let mut security_measures = vec![
            "encryption at rest: every object sealed with AES-256-GCM in 64 KiB segments under its own data key \
             (committing, with the object's identity and metadata authenticated), data keys wrapped under \
             per-tenant and per-data-subject keys (docs/FORMAT.md)"
                .to_owned(),
            "tampered, truncated or moved ciphertext is refused, never served".to_owned(),
            "tenant isolation: separate credentials, buckets, keys and key stores".to_owned(),
            "crypto-shredding: destroying a subject's or tenant's keys makes every copy unreadable, with a chained receipt"
                .to_owned(),
            "residency: every place is checked against each tenant's allowed jurisdictions at start, on writes and \
             (with a drift check) continuously"
                .to_owned(),
            "requests authenticated (SigV4, Azure Shared Key / SAS) before any body byte is read; bounded connections"
                .to_owned(),
        ];
        security_measures.push(match &self.operations.tls {
            Some(_) => "TLS on the client listeners (rustls)".to_owned(),
            None => {
                "client listeners without TLS (plain HTTP: for a sidecar on loopback or behind a TLS proxy)".to_owned()
            }
        });
        security_measures.push(match &self.audit {
            Some(a) => format!(
                "tamper-evident audit trail (signed, hash-chained; {})",
                match a.mode {
                    super::audit::AuditMode::BestEffort => "best-effort",
                    super::audit::AuditMode::Required => "required: no request is acknowledged without its record",
                }
            ),
            None => "no audit trail configured".to_owned(),
        });
        for p in &self.key_providers {
            security_measures.push(format!("key provider {}: {}", p.name, p.settings.describe()));
        }
        let mut sub_processors: Vec<SubProcessor> = self
            .backends
            .iter()
            .map(|b| SubProcessor {
                name: b.name.clone(),
                role: "storage".to_owned(),
                provider: provider_of_backend(b),
                region: b.region().map(str::to_owned),
            })
            .collect();
        sub_processors.extend(self.key_providers.iter().map(|p| SubProcessor {
            name: p.name.clone(),
            role: "key management".to_owned(),
            provider: provider_of_keys(&p.settings),
            region: p.settings.region().map(str::to_owned),
        }));
        Record {
            title: "Record of processing activities of a processor (GDPR Art. 30(2))".to_owned(),
            generated: now.to_owned(),
            config: self.source.clone(),
            config_sha256: self.sha256.clone(),
            processor: self.processor.clone(),
            controllers,
            security_measures,
            sub_processors,
        }
    }
}

/// What an empty list the controller did not fill in says, and what an empty computed list says.
const GIVEN: &str = "(not given: add it to the tenant's `controller:`)";
const NONE: &str = "none";

fn party_md(out: &mut String, p: Option<&Party>, missing: &str) {
    match p {
        None => out.push_str(&format!("- {missing}\n")),
        Some(p) => {
            out.push_str(&format!("- Name: {}\n- Contact: {}\n", p.name, p.contact));
            if let Some(d) = &p.dpo {
                out.push_str(&format!("- Data protection officer: {d}\n"));
            }
            if let Some(r) = &p.representative {
                out.push_str(&format!("- Representative (Art. 27): {r}\n"));
            }
        }
    }
}

fn list_md(out: &mut String, title: &str, items: &[String], empty: &str) {
    out.push_str(&format!("\n**{title}**\n\n"));
    if items.is_empty() {
        out.push_str(&format!("- {empty}\n"));
    }
    for i in items {
        out.push_str(&format!("- {i}\n"));
    }
}

impl Record {
    /// The record as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "# {}\n\nGenerated {} by blobseal from `{}` (SHA-256 `{}`).\n\n## Processor (30(2)(a))\n\n",
            self.title, self.generated, self.config, self.config_sha256
        );
        party_md(&mut out, self.processor.as_ref(), "(not given: add `processor:` to the config)");
        for c in &self.controllers {
            out.push_str(&format!("\n## Controller: tenant `{}`\n\n", c.tenant));
            party_md(&mut out, c.controller.as_ref(), "(not given: add `controller:` to the tenant)");
            list_md(&mut out, "Purposes (as the controller stated them)", &c.purposes, GIVEN);
            list_md(&mut out, "Categories of personal data", &c.data_categories, GIVEN);
            list_md(&mut out, "Categories of data subjects", &c.subject_categories, GIVEN);
            list_md(&mut out, "Categories of processing (30(2)(b))", &c.processing, NONE);
            out.push_str("\n**Where the data, keys and backups are**\n\n| what | region | country | jurisdictions | transfer basis |\n|---|---|---|---|---|\n");
            for p in &c.places {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} |\n",
                    p.what,
                    p.region.as_deref().unwrap_or("-"),
                    p.country.as_deref().unwrap_or("-"),
                    if p.jurisdictions.is_empty() { "-".to_owned() } else { p.jurisdictions.join(", ") },
                    p.basis
                ));
            }
            let transfers: Vec<String> = c
                .transfers
                .iter()
                .map(|p| format!("{} to {} ({})", p.what, p.country.as_deref().unwrap_or("?"), p.basis))
                .collect();
            list_md(&mut out, "Transfers to third countries (30(2)(c))", &transfers, NONE);
            list_md(&mut out, "Retention schedule", &c.retention, NONE);
            list_md(&mut out, "Backups", &c.backups, NONE);
            out.push_str(&format!("\n**Keys**: {}\n", c.key_provider));
        }
        list_md(&mut out, "Technical and organisational security measures (30(2)(d))", &self.security_measures, NONE);
        out.push_str("\n## Sub-processors\n\n| name | role | provider | region |\n|---|---|---|---|\n");
        for s in &self.sub_processors {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                s.name,
                s.role,
                s.provider,
                s.region.as_deref().unwrap_or("-")
            ));
        }
        out
    }
}
