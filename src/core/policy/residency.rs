//! Residency as a pure function: may this tenant's data (or keys) be in this region?
//!
//! A tenant allows a list of jurisdictions (`EEA`, `EU`, `UK`, `CH`, `US`, `adequacy`) and/or
//! countries (`DE`); a place is allowed if its country is in one of them. A place whose location is
//! unknown (an fs backend or local keyring without a declared `region:`, a region missing from the
//! table) is refused: residency fails closed. No I/O here: the callers (config validation, request
//! placement, the drift check) pass the regions in.

use std::collections::BTreeMap;
use std::fmt;

use super::regions::{jurisdictions_of, region, Jurisdiction};

/// One entry of a tenant's `residency: { allow: [...] }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allow {
    Jurisdiction(Jurisdiction),
    /// ISO 3166-1 alpha-2, upper case.
    Country(String),
}

impl Allow {
    /// Parses a config entry: a jurisdiction name or a two-letter country code.
    pub fn parse(text: &str) -> Option<Self> {
        if let Some(j) = Jurisdiction::parse(text) {
            return Some(Allow::Jurisdiction(j));
        }
        let upper = text.to_ascii_uppercase();
        (upper.len() == 2 && upper.bytes().all(|b| b.is_ascii_uppercase()) && super::regions::is_country_code(&upper))
            .then_some(Allow::Country(upper))
    }
}

impl fmt::Display for Allow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Allow::Jurisdiction(j) => write!(f, "{j}"),
            Allow::Country(c) => f.write_str(c),
        }
    }
}

/// The built-in region table plus the config's `residency.regions` additions and overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegionTable {
    /// region name → country code; wins over the built-in table.
    overrides: BTreeMap<String, String>,
}

impl RegionTable {
    pub fn new(overrides: BTreeMap<String, String>) -> Self {
        Self { overrides }
    }

    /// The country a region is in, if known.
    pub fn country_of(&self, region_name: &str) -> Option<String> {
        self.overrides.get(region_name).cloned().or_else(|| region(region_name).map(|r| r.country.to_owned()))
    }
}

/// Why a place is not allowed, in words fit for an S3 error message and a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule, e.g. `tenant acme: residency allow [EEA]`.
    pub rule: String,
    /// The place, e.g. `backend us-store in us-east-1 (US: US)`.
    pub place: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "residency: {} does not allow {}", self.rule, self.place)
    }
}

/// A tenant's residency rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResidencyPolicy {
    pub tenant: String,
    /// Empty: no restriction.
    pub allow: Vec<Allow>,
}

impl ResidencyPolicy {
    pub fn is_restricted(&self) -> bool {
        !self.allow.is_empty()
    }

    /// The rule in words.
    pub fn describe(&self) -> String {
        let list: Vec<String> = self.allow.iter().map(ToString::to_string).collect();
        format!("tenant {}: residency allow [{}]", self.tenant, list.join(", "))
    }

    /// Whether `what` (`backend fra`, `key provider kms`, …) located in `region_name` (`None`: not
    /// declared) may hold this tenant's data or keys.
    pub fn check(&self, table: &RegionTable, what: &str, region_name: Option<&str>) -> Result<(), Violation> {
        if !self.is_restricted() {
            return Ok(());
        }
        let refuse = |place: String| Err(Violation { rule: self.describe(), place });
        let Some(name) = region_name else {
            return refuse(format!("{what}, whose location is not declared (give it a `region:`)"));
        };
        let Some(country) = table.country_of(name) else {
            return refuse(format!(
                "{what} in {name}, a region not in the residency table (add it under residency.regions)"
            ));
        };
        let juris = jurisdictions_of(&country);
        let ok = self.allow.iter().any(|a| match a {
            Allow::Jurisdiction(j) => juris.contains(j),
            Allow::Country(c) => *c == country,
        });
        if ok {
            Ok(())
        } else {
            let js: Vec<String> = juris.iter().map(ToString::to_string).collect();
            refuse(format!("{what} in {name} ({country}: {})", if js.is_empty() { "-".into() } else { js.join(" ") }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eea_only() -> ResidencyPolicy {
        ResidencyPolicy { tenant: "acme".into(), allow: vec![Allow::parse("EEA").unwrap()] }
    }

    #[test]
    fn eea_tenant_on_regions() {
        let t = RegionTable::default();
        let p = eea_only();
        assert!(p.check(&t, "backend fra", Some("eu-central-1")).is_ok());
        assert!(p.check(&t, "backend par", Some("eu-west-3")).is_ok());
        let v = p.check(&t, "backend us", Some("us-east-1")).unwrap_err();
        assert_eq!(
            v.to_string(),
            "residency: tenant acme: residency allow [EEA] does not allow backend us in us-east-1 (US: US)"
        );
        assert!(p.check(&t, "backend lon", Some("eu-west-2")).is_err(), "UK is not EEA");
        assert!(p.check(&t, "backend disk", None).unwrap_err().place.contains("not declared"));
        assert!(p
            .check(&t, "backend x", Some("mars-north-1"))
            .unwrap_err()
            .place
            .contains("not in the residency table"));
        // Overrides add regions.
        let t2 = RegionTable::new([("dc-berlin".to_owned(), "DE".to_owned())].into());
        assert!(p.check(&t2, "backend dc", Some("dc-berlin")).is_ok());
    }

    #[test]
    fn countries_and_unrestricted() {
        let t = RegionTable::default();
        let uk = ResidencyPolicy { tenant: "u".into(), allow: vec![Allow::parse("gb").unwrap()] };
        assert!(uk.check(&t, "b", Some("eu-west-2")).is_ok());
        assert!(uk.check(&t, "b", Some("eu-central-1")).is_err());
        assert!(ResidencyPolicy::default().check(&t, "b", None).is_ok());
        assert_eq!(Allow::parse("adequacy"), Some(Allow::Jurisdiction(Jurisdiction::Adequacy)));
        assert_eq!(Allow::parse("XX"), None);
        assert_eq!(Allow::parse("Europe"), None);
    }
}
