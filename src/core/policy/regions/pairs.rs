//! Azure region pairs: where a geo-redundant storage account (GRS, RA-GRS, GZRS, RA-GZRS) keeps its
//! second copy. Residency must count that region too, so the pair of every region is data here.
//!
//! Source: Microsoft's "Azure regions list" (the "Paired region" column) and "Azure region pairs
//! and nonpaired regions" (learn.microsoft.com/azure/reliability/regions-list, .../regions-paired),
//! checked on [`super::TABLE_CHECKED`]; the Azure Government pairs from Azure Storage's list of
//! secondary regions. Each row is (primary, the region its geo-redundant data is copied to).
//!
//! Most pairs go both ways. The one-way pairs are kept one-way, because the column says where
//! *this* region's copy goes: `brazilsouth` copies to `southcentralus` (outside Brazil), and
//! `brazilsoutheast`, `westindia`, `westus3` and `usgovvirginia` copy to a region that itself
//! copies elsewhere. Three pairs cross a border: `brazilsouth` (BR → US), `eastasia` ↔
//! `southeastasia` (HK ↔ SG) and `westeurope` ↔ `northeurope` (NL ↔ IE, both EU and EEA).
//!
//! A region missing here has no pair (`polandcentral`, `italynorth`, `spaincentral`, the newer
//! regions, and the Jio India regions whose pairing is not published): geo-redundancy there has no
//! known second place, so configuring it is refused rather than guessed.

use super::{region, Cloud, Region};

static AZURE_PAIRS: &[(&str, &str)] = &[
    // Americas
    ("eastus", "westus"),
    ("westus", "eastus"),
    ("westus3", "eastus"),
    ("eastus2", "centralus"),
    ("centralus", "eastus2"),
    ("northcentralus", "southcentralus"),
    ("southcentralus", "northcentralus"),
    ("westus2", "westcentralus"),
    ("westcentralus", "westus2"),
    ("usgovvirginia", "usgovtexas"),
    ("usgovtexas", "usgovarizona"),
    ("usgovarizona", "usgovtexas"),
    ("canadacentral", "canadaeast"),
    ("canadaeast", "canadacentral"),
    ("brazilsouth", "southcentralus"),
    ("brazilsoutheast", "brazilsouth"),
    // Europe
    ("northeurope", "westeurope"),
    ("westeurope", "northeurope"),
    ("uksouth", "ukwest"),
    ("ukwest", "uksouth"),
    ("francecentral", "francesouth"),
    ("francesouth", "francecentral"),
    ("germanywestcentral", "germanynorth"),
    ("germanynorth", "germanywestcentral"),
    ("switzerlandnorth", "switzerlandwest"),
    ("switzerlandwest", "switzerlandnorth"),
    ("norwayeast", "norwaywest"),
    ("norwaywest", "norwayeast"),
    ("swedencentral", "swedensouth"),
    ("swedensouth", "swedencentral"),
    // Middle East and Africa
    ("uaenorth", "uaecentral"),
    ("uaecentral", "uaenorth"),
    ("southafricanorth", "southafricawest"),
    ("southafricawest", "southafricanorth"),
    // Asia Pacific
    ("eastasia", "southeastasia"),
    ("southeastasia", "eastasia"),
    ("japaneast", "japanwest"),
    ("japanwest", "japaneast"),
    ("koreacentral", "koreasouth"),
    ("koreasouth", "koreacentral"),
    ("centralindia", "southindia"),
    ("southindia", "centralindia"),
    ("westindia", "southindia"),
    ("australiaeast", "australiasoutheast"),
    ("australiasoutheast", "australiaeast"),
    ("australiacentral", "australiacentral2"),
    ("australiacentral2", "australiacentral"),
];

/// The region a geo-redundant Azure storage account in `name` (ASCII case ignored) copies its data
/// to. `None`: `name` is not an Azure region of the table, or the region has no pair, so no
/// geo-redundant account there can be placed.
pub fn azure_paired_region(name: &str) -> Option<&'static Region> {
    let primary = region(name).filter(|r| r.cloud == Cloud::Azure)?;
    let (_, secondary) = AZURE_PAIRS.iter().find(|(p, _)| *p == primary.name)?;
    region(secondary)
}

#[cfg(test)]
mod tests {
    use super::super::{builtin_regions, Jurisdiction};
    use super::*;
    use std::collections::HashSet;

    /// The pairs Microsoft publishes as one-way (see the module doc).
    const ONE_WAY: &[&str] = &["brazilsouth", "brazilsoutheast", "westindia", "westus3", "usgovvirginia"];

    fn pair(name: &str) -> Option<&'static str> {
        azure_paired_region(name).map(|r| r.name)
    }

    #[test]
    fn published_pairs() {
        assert_eq!(pair("uksouth"), Some("ukwest"));
        assert_eq!(pair("UKWest"), Some("uksouth"));
        assert_eq!(pair("westeurope"), Some("northeurope"));
        assert_eq!(pair("francecentral"), Some("francesouth"));
        assert_eq!(pair("germanywestcentral"), Some("germanynorth"));
        assert_eq!(pair("switzerlandnorth"), Some("switzerlandwest"));
        assert_eq!(pair("norwayeast"), Some("norwaywest"));
        assert_eq!(pair("swedencentral"), Some("swedensouth"));
        assert_eq!(pair("eastus"), Some("westus"));
        assert_eq!(pair("eastus2"), Some("centralus"));
        assert_eq!(pair("westus3"), Some("eastus"));
        assert_eq!(pair("brazilsouth"), Some("southcentralus"));
        for unpaired in ["polandcentral", "italynorth", "spaincentral", "austriaeast", "israelcentral", "qatarcentral"]
        {
            assert_eq!(pair(unpaired), None, "{unpaired}");
        }
        // AWS names and unknown names have no Azure pair.
        assert_eq!(pair("eu-west-2"), None);
        assert_eq!(pair("mars"), None);
    }

    #[test]
    fn pairs_are_known_azure_regions_listed_once_and_symmetric_unless_published_one_way() {
        let mut seen = HashSet::new();
        for (primary, secondary) in AZURE_PAIRS {
            assert!(seen.insert(*primary), "{primary} listed twice");
            assert_ne!(primary, secondary);
            for name in [primary, secondary] {
                let r = region(name).unwrap_or_else(|| panic!("{name} is not in the region table"));
                assert_eq!(r.cloud, Cloud::Azure, "{name}");
            }
            let back = pair(secondary);
            assert_eq!(back == Some(*primary), !ONE_WAY.contains(primary), "{primary} -> {secondary} -> {back:?}");
        }
        for name in ONE_WAY {
            assert!(pair(name).is_some(), "{name}");
        }
    }

    /// Geo-redundancy must not quietly leave a jurisdiction: every pair of a UK, EU, EEA or Swiss
    /// region is in the same jurisdictions, so "UK only" or "EU only" means the same with or without
    /// it (a country rule such as "NL only" can still refuse the copy: westeurope's is in Ireland).
    #[test]
    fn european_pairs_stay_in_their_jurisdictions() {
        let european = [Jurisdiction::Uk, Jurisdiction::Eu, Jurisdiction::Eea, Jurisdiction::Ch];
        for r in builtin_regions().iter().filter(|r| r.cloud == Cloud::Azure) {
            let Some(p) = azure_paired_region(r.name) else { continue };
            if r.jurisdictions().iter().any(|j| european.contains(j)) {
                assert_eq!(r.jurisdictions(), p.jurisdictions(), "{} -> {}", r.name, p.name);
            }
            // The pairs that cross a border are the ones the module doc names.
            if r.country != p.country {
                let known = [
                    ("brazilsouth", "southcentralus"),
                    ("eastasia", "southeastasia"),
                    ("southeastasia", "eastasia"),
                    ("westeurope", "northeurope"),
                    ("northeurope", "westeurope"),
                ];
                assert!(known.contains(&(r.name, p.name)), "{} -> {} crosses a border", r.name, p.name);
            }
        }
        // The UK pair is UK both ways; the Netherlands-Ireland pair is EU both ways.
        let juris = |name| region(name).map(Region::jurisdictions);
        assert_eq!(juris("ukwest"), Some(vec![Jurisdiction::Uk, Jurisdiction::Adequacy]));
        assert_eq!(juris("uksouth"), juris("ukwest"));
        assert_eq!(juris("northeurope"), Some(vec![Jurisdiction::Eu, Jurisdiction::Eea]));
        assert_eq!(juris("westeurope"), juris("northeurope"));
    }
}
