//! The built-in residency table: which country each AWS and Azure region is in, which legal
//! jurisdictions each country belongs to, and (in `pairs.rs`) where a geo-redundant Azure account
//! in each region keeps its second copy.
//!
//! Pure data and pure functions, no I/O: the residency policy asks this module "where is region X" and
//! "is country Y inside jurisdiction Z" and decides on its own. Config may add or override regions (see
//! `docs/RESIDENCY.md`); this module only knows what was true when the table was last checked
//! ([`TABLE_CHECKED`]). A region missing here is unknown, and the policy must treat unknown as "not allowed"
//! rather than guess.

use std::fmt;
use std::str::FromStr;

mod pairs;
pub use pairs::azure_paired_region;

/// The date (ISO 8601) on which the region lists and the adequacy list below were last checked against
/// the providers' and the European Commission's published lists.
pub const TABLE_CHECKED: &str = "2026-11-24";

/// A cloud provider whose region names the table knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cloud {
    /// Amazon Web Services (commercial, GovCloud, China and European Sovereign Cloud partitions).
    Aws,
    /// Microsoft Azure (public cloud and Azure Government).
    Azure,
}

impl Cloud {
    /// The name used in docs and log lines: `AWS` or `Azure`.
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Aws => "AWS",
            Cloud::Azure => "Azure",
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One cloud region and where its data centres physically are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Region {
    /// The provider's programmatic region name (`eu-central-1`, `westeurope`), always lower-case.
    pub name: &'static str,
    /// Which provider the name belongs to.
    pub cloud: Cloud,
    /// ISO 3166-1 alpha-2 code of the country the data centres are in (`GB` for the United Kingdom,
    /// `GR` for Greece: ISO codes, not the EU's own `UK`/`EL` abbreviations).
    pub country: &'static str,
    /// The place as the provider publishes it: a city, a state or only the country. Informational.
    pub city: &'static str,
}

impl Region {
    /// The jurisdictions this region's country belongs to; see [`jurisdictions_of`].
    pub fn jurisdictions(&self) -> Vec<Jurisdiction> {
        jurisdictions_of(self.country)
    }
}

// `const fn` so the table below stays one short line per region.
const fn r(name: &'static str, cloud: Cloud, country: &'static str, city: &'static str) -> Region {
    Region { name, cloud, country, city }
}

use Cloud::{Aws, Azure};

// Sources: AWS — the partitions shipped in botocore 1.43 `endpoints.json` (`aws`, `aws-us-gov`, `aws-cn`,
// `aws-eusc`; the classified `aws-iso*` partitions are left out). Azure — Microsoft's "Azure regions list"
// (public cloud, including access-restricted regions) plus the three Azure Government regions; Azure China
// and the DoD regions are left out because their physical location is not published per region.
static REGIONS: &[Region] = &[
    r("us-east-1", Aws, "US", "N. Virginia"),
    r("us-east-2", Aws, "US", "Ohio"),
    r("us-west-1", Aws, "US", "N. California"),
    r("us-west-2", Aws, "US", "Oregon"),
    r("us-gov-east-1", Aws, "US", "GovCloud US-East"),
    r("us-gov-west-1", Aws, "US", "GovCloud US-West"),
    r("ca-central-1", Aws, "CA", "Montreal"),
    r("ca-west-1", Aws, "CA", "Calgary"),
    r("mx-central-1", Aws, "MX", "Querétaro"),
    r("sa-east-1", Aws, "BR", "São Paulo"),
    r("eu-central-1", Aws, "DE", "Frankfurt"),
    r("eu-central-2", Aws, "CH", "Zurich"),
    r("eu-west-1", Aws, "IE", "Ireland"),
    r("eu-west-2", Aws, "GB", "London"),
    r("eu-west-3", Aws, "FR", "Paris"),
    r("eu-north-1", Aws, "SE", "Stockholm"),
    r("eu-south-1", Aws, "IT", "Milan"),
    r("eu-south-2", Aws, "ES", "Spain"),
    r("eusc-de-east-1", Aws, "DE", "Brandenburg"),
    r("il-central-1", Aws, "IL", "Tel Aviv"),
    r("me-central-1", Aws, "AE", "UAE"),
    r("me-south-1", Aws, "BH", "Bahrain"),
    r("af-south-1", Aws, "ZA", "Cape Town"),
    r("ap-east-1", Aws, "HK", "Hong Kong"),
    r("ap-east-2", Aws, "TW", "Taipei"),
    r("ap-northeast-1", Aws, "JP", "Tokyo"),
    r("ap-northeast-2", Aws, "KR", "Seoul"),
    r("ap-northeast-3", Aws, "JP", "Osaka"),
    r("ap-south-1", Aws, "IN", "Mumbai"),
    r("ap-south-2", Aws, "IN", "Hyderabad"),
    r("ap-southeast-1", Aws, "SG", "Singapore"),
    r("ap-southeast-2", Aws, "AU", "Sydney"),
    r("ap-southeast-3", Aws, "ID", "Jakarta"),
    r("ap-southeast-4", Aws, "AU", "Melbourne"),
    r("ap-southeast-5", Aws, "MY", "Malaysia"),
    r("ap-southeast-6", Aws, "NZ", "New Zealand"),
    r("ap-southeast-7", Aws, "TH", "Thailand"),
    r("cn-north-1", Aws, "CN", "Beijing"),
    r("cn-northwest-1", Aws, "CN", "Ningxia"),
    r("eastus", Azure, "US", "Virginia"),
    r("eastus2", Azure, "US", "Virginia"),
    r("westus", Azure, "US", "California"),
    r("westus2", Azure, "US", "Washington"),
    r("westus3", Azure, "US", "Phoenix"),
    r("centralus", Azure, "US", "Iowa"),
    r("northcentralus", Azure, "US", "Illinois"),
    r("southcentralus", Azure, "US", "Texas"),
    r("westcentralus", Azure, "US", "Wyoming"),
    r("usgovvirginia", Azure, "US", "Virginia"),
    r("usgovtexas", Azure, "US", "Texas"),
    r("usgovarizona", Azure, "US", "Arizona"),
    r("canadacentral", Azure, "CA", "Toronto"),
    r("canadaeast", Azure, "CA", "Quebec City"),
    r("mexicocentral", Azure, "MX", "Querétaro State"),
    r("brazilsouth", Azure, "BR", "Sao Paulo State"),
    r("brazilsoutheast", Azure, "BR", "Rio"),
    r("chilecentral", Azure, "CL", "Santiago"),
    r("westeurope", Azure, "NL", "Netherlands"),
    r("northeurope", Azure, "IE", "Ireland"),
    r("germanywestcentral", Azure, "DE", "Frankfurt"),
    r("germanynorth", Azure, "DE", "Berlin"),
    r("francecentral", Azure, "FR", "Paris"),
    r("francesouth", Azure, "FR", "Marseille"),
    r("swedencentral", Azure, "SE", "Gävle"),
    r("swedensouth", Azure, "SE", "Malmö"),
    r("norwayeast", Azure, "NO", "Norway"),
    r("norwaywest", Azure, "NO", "Norway"),
    r("switzerlandnorth", Azure, "CH", "Zurich"),
    r("switzerlandwest", Azure, "CH", "Geneva"),
    r("uksouth", Azure, "GB", "London"),
    r("ukwest", Azure, "GB", "Cardiff"),
    r("italynorth", Azure, "IT", "Milan"),
    r("polandcentral", Azure, "PL", "Warsaw"),
    r("spaincentral", Azure, "ES", "Madrid"),
    r("austriaeast", Azure, "AT", "Vienna"),
    r("belgiumcentral", Azure, "BE", "Brussels"),
    r("israelcentral", Azure, "IL", "Israel"),
    r("qatarcentral", Azure, "QA", "Doha"),
    r("uaenorth", Azure, "AE", "Dubai"),
    r("uaecentral", Azure, "AE", "Abu Dhabi"),
    r("southafricanorth", Azure, "ZA", "Johannesburg"),
    r("southafricawest", Azure, "ZA", "Cape Town"),
    r("eastasia", Azure, "HK", "Hong Kong"),
    r("southeastasia", Azure, "SG", "Singapore"),
    r("japaneast", Azure, "JP", "Tokyo, Saitama"),
    r("japanwest", Azure, "JP", "Osaka"),
    r("koreacentral", Azure, "KR", "Seoul"),
    r("koreasouth", Azure, "KR", "Busan"),
    r("centralindia", Azure, "IN", "Pune"),
    r("southindia", Azure, "IN", "Chennai"),
    r("westindia", Azure, "IN", "Mumbai"),
    r("jioindiacentral", Azure, "IN", "Nagpur"),
    r("jioindiawest", Azure, "IN", "Jamnagar"),
    r("australiaeast", Azure, "AU", "New South Wales"),
    r("australiasoutheast", Azure, "AU", "Victoria"),
    r("australiacentral", Azure, "AU", "Canberra"),
    r("australiacentral2", Azure, "AU", "Canberra"),
    r("newzealandnorth", Azure, "NZ", "Auckland"),
    r("indonesiacentral", Azure, "ID", "Jakarta"),
    r("malaysiawest", Azure, "MY", "Kuala Lumpur"),
];

/// Every region the table knows, AWS first, then Azure. Region names are unique across both clouds.
pub fn builtin_regions() -> &'static [Region] {
    REGIONS
}

/// Looks a region up by its programmatic name, ignoring ASCII case (`EU-Central-1` finds `eu-central-1`).
/// `None` means the table does not know the name; callers must treat that as "location unknown", never as
/// "allowed".
pub fn region(name: &str) -> Option<&'static Region> {
    REGIONS.iter().find(|r| r.name.eq_ignore_ascii_case(name))
}

/// Maps the value S3's GetBucketLocation returns to a region of the table. S3 answers an empty
/// `LocationConstraint` for `us-east-1` and the legacy `EU` for `eu-west-1`; every other value is a region
/// name. `None` as input means the element was absent, which S3 also uses for `us-east-1`.
pub fn s3_location_constraint_region(constraint: Option<&str>) -> Option<&'static Region> {
    match constraint.map(str::trim) {
        None | Some("") => region("us-east-1"),
        Some("EU") => region("eu-west-1"),
        Some(name) => region(name),
    }
}

/// A legal area a tenant's data may be restricted to. Parsed from config; see `docs/RESIDENCY.md` for
/// the legal basis of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Jurisdiction {
    /// The 27 member states of the European Union.
    Eu,
    /// The European Economic Area: the EU plus Iceland, Liechtenstein and Norway (EEA Agreement), where
    /// the GDPR applies in full and no transfer mechanism is needed.
    Eea,
    /// The United Kingdom (`GB`), under the UK GDPR.
    Uk,
    /// Switzerland (`CH`), under the revised Federal Act on Data Protection.
    Ch,
    /// The United States (`US`).
    Us,
    /// Countries outside the EEA with a current European Commission adequacy decision under GDPR Art. 45.
    /// The United States is deliberately NOT included: its adequacy decision (the EU-US Data Privacy
    /// Framework) covers only organisations certified under it, which a table of countries cannot know.
    Adequacy,
}

impl Jurisdiction {
    /// Every jurisdiction, in the order [`jurisdictions_of`] reports them.
    pub const ALL: [Jurisdiction; 6] = [
        Jurisdiction::Eu,
        Jurisdiction::Eea,
        Jurisdiction::Uk,
        Jurisdiction::Ch,
        Jurisdiction::Us,
        Jurisdiction::Adequacy,
    ];

    /// Parses a config spelling: `EU`, `EEA`, `UK`, `CH`, `US` or `adequacy`, ignoring ASCII case and
    /// surrounding whitespace. Anything else (including country codes such as `DE`) gives `None`, so a
    /// caller can go on to try the text as a country code; use `str::parse` for a typed error instead.
    pub fn parse(s: &str) -> Option<Self> {
        let t = s.trim();
        Jurisdiction::ALL.into_iter().find(|j| j.as_str().eq_ignore_ascii_case(t))
    }

    /// The canonical config spelling, which [`Jurisdiction::parse`] accepts back.
    pub fn as_str(self) -> &'static str {
        match self {
            Jurisdiction::Eu => "EU",
            Jurisdiction::Eea => "EEA",
            Jurisdiction::Uk => "UK",
            Jurisdiction::Ch => "CH",
            Jurisdiction::Us => "US",
            Jurisdiction::Adequacy => "adequacy",
        }
    }

    /// Whether `country` (ISO 3166-1 alpha-2, ASCII case ignored) belongs to this jurisdiction.
    pub fn contains(self, country: &str) -> bool {
        let c = country.trim();
        let is = |code: &str| code.eq_ignore_ascii_case(c);
        match self {
            Jurisdiction::Eu => EU_MEMBERS.iter().any(|m| is(m)),
            Jurisdiction::Eea => EU_MEMBERS.iter().chain(EEA_EFTA_MEMBERS).any(|m| is(m)),
            Jurisdiction::Uk => is("GB"),
            Jurisdiction::Ch => is("CH"),
            Jurisdiction::Us => is("US"),
            Jurisdiction::Adequacy => ADEQUATE_COUNTRIES.iter().any(|m| is(m)),
        }
    }
}

impl fmt::Display for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Jurisdiction {
    type Err = UnknownJurisdiction;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Jurisdiction::parse(s).ok_or_else(|| UnknownJurisdiction(s.trim().to_owned()))
    }
}

/// A config value that is not one of the jurisdiction spellings; carries the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown jurisdiction {0:?}: expected one of EU, EEA, UK, CH, US, adequacy")]
pub struct UnknownJurisdiction(pub String);

/// EU member states (ISO codes; Greece is `GR`, not the EU's `EL`).
const EU_MEMBERS: &[&str] = &[
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT", "LT", "LU", "LV",
    "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
];

/// EEA members that are not in the EU.
const EEA_EFTA_MEMBERS: &[&str] = &["IS", "LI", "NO"];

/// Countries and territories with a current GDPR Art. 45 adequacy decision, as of [`TABLE_CHECKED`]:
/// Andorra, Argentina, Brazil (adopted 27 January 2026), Canada (commercial organisations under PIPEDA),
/// Switzerland, the Faroe Islands, the United Kingdom (renewed 19 December 2025, until 27 December 2031),
/// Guernsey, Israel, the Isle of Man, Jersey, Japan, the Republic of Korea, New Zealand and Uruguay.
/// Not listed: the United States (only DPF-certified organisations, see [`Jurisdiction::Adequacy`]) and
/// the European Patent Organisation (an international organisation, not a country).
const ADEQUATE_COUNTRIES: &[&str] =
    &["AD", "AR", "BR", "CA", "CH", "FO", "GB", "GG", "IL", "IM", "JE", "JP", "KR", "NZ", "UY"];

/// The jurisdictions `country` (ISO 3166-1 alpha-2, ASCII case ignored) belongs to, in [`Jurisdiction::ALL`]
/// order. Examples: `DE` → `[EU, EEA]`, `NO` → `[EEA]`, `GB` → `[UK, adequacy]`, `CH` → `[CH, adequacy]`,
/// `US` → `[US]`, `JP` → `[adequacy]`. An unknown or jurisdiction-less country gives an empty list, which a
/// policy must read as "in none of them".
pub fn jurisdictions_of(country: &str) -> Vec<Jurisdiction> {
    Jurisdiction::ALL.into_iter().filter(|j| j.contains(country)).collect()
}

/// Whether `s` is an officially assigned ISO 3166-1 alpha-2 code, written as ISO writes it: exactly two
/// upper-case ASCII letters (`DE` yes; `de`, `UK`, `EL`, `XK` no). Use it to validate config entries.
pub fn is_country_code(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase()) && ISO_3166_ALPHA2.split(' ').any(|code| code == s)
}

// All 249 officially assigned codes (Debian iso-codes 4.15), space-separated to keep the file short.
const ISO_3166_ALPHA2: &str = "\
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ \
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR \
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO \
JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR \
MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO \
RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV \
TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use Jurisdiction::{Adequacy, Ch, Eea, Eu, Uk, Us};

    fn spot(name: &str, cloud: Cloud, country: &str, want: &[Jurisdiction]) {
        let r = region(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!((r.cloud, r.country), (cloud, country), "{name}");
        assert_eq!(r.jurisdictions(), want, "{name}");
    }

    #[test]
    fn aws_spot_checks() {
        spot("eu-central-1", Aws, "DE", &[Eu, Eea]);
        spot("eu-west-2", Aws, "GB", &[Uk, Adequacy]);
        spot("eu-central-2", Aws, "CH", &[Ch, Adequacy]);
        spot("us-east-1", Aws, "US", &[Us]);
        spot("ap-northeast-1", Aws, "JP", &[Adequacy]);
        spot("eu-west-1", Aws, "IE", &[Eu, Eea]);
        spot("eu-south-2", Aws, "ES", &[Eu, Eea]);
        spot("il-central-1", Aws, "IL", &[Adequacy]);
        spot("us-gov-west-1", Aws, "US", &[Us]);
        spot("me-central-1", Aws, "AE", &[]);
    }

    #[test]
    fn azure_spot_checks() {
        spot("norwayeast", Azure, "NO", &[Eea]);
        spot("westeurope", Azure, "NL", &[Eu, Eea]);
        spot("northeurope", Azure, "IE", &[Eu, Eea]);
        spot("uksouth", Azure, "GB", &[Uk, Adequacy]);
        spot("switzerlandwest", Azure, "CH", &[Ch, Adequacy]);
        spot("eastasia", Azure, "HK", &[]);
        spot("southeastasia", Azure, "SG", &[]);
        spot("eastus2", Azure, "US", &[Us]);
        spot("brazilsouth", Azure, "BR", &[Adequacy]);
    }

    #[test]
    fn lookup_ignores_case_and_refuses_unknown() {
        assert_eq!(region("EU-Central-1").map(|r| r.name), Some("eu-central-1"));
        assert!(region("eu-central-9").is_none());
        assert!(region("").is_none());
        assert!(region("Frankfurt").is_none());
    }

    #[test]
    fn s3_location_constraints() {
        let name = |c| s3_location_constraint_region(c).map(|r| r.name);
        assert_eq!(name(None), Some("us-east-1"));
        assert_eq!(name(Some("")), Some("us-east-1"));
        assert_eq!(name(Some("EU")), Some("eu-west-1"));
        assert_eq!(name(Some("eu-central-2")), Some("eu-central-2"));
        assert_eq!(name(Some("nowhere-1")), None);
    }

    #[test]
    fn region_names_are_unique_lower_case_and_countries_valid() {
        let mut seen = HashSet::new();
        for r in builtin_regions() {
            assert!(seen.insert(r.name), "duplicate region {}", r.name);
            assert_eq!(r.name, r.name.to_ascii_lowercase(), "{}", r.name);
            assert!(is_country_code(r.country), "{}: bad country {}", r.name, r.country);
            assert!(!r.city.is_empty(), "{}", r.name);
        }
        assert!(builtin_regions().len() >= 90, "table shrank to {}", builtin_regions().len());
    }

    #[test]
    fn jurisdiction_sets() {
        assert_eq!(EU_MEMBERS.len(), 27);
        let all: Vec<&str> = EU_MEMBERS.iter().chain(EEA_EFTA_MEMBERS).chain(ADEQUATE_COUNTRIES).copied().collect();
        assert!(all.iter().all(|c| is_country_code(c)), "a set holds a non-ISO code");
        assert_eq!(all.len(), all.iter().collect::<HashSet<_>>().len(), "a country is in two sets");
        assert_eq!(jurisdictions_of("de"), [Eu, Eea]);
        assert_eq!(jurisdictions_of("LI"), [Eea]);
        assert_eq!(jurisdictions_of("GR"), [Eu, Eea]);
        assert_eq!(jurisdictions_of("EL"), []);
        assert_eq!(jurisdictions_of("UK"), [], "UK is a jurisdiction name, not a country code");
        assert_eq!(jurisdictions_of("US"), [Us], "US is not adequate as a country (DPF is per organisation)");
        assert_eq!(jurisdictions_of("CA"), [Adequacy]);
        assert_eq!(jurisdictions_of("CN"), []);
        assert_eq!(jurisdictions_of(""), []);
    }

    #[test]
    fn jurisdiction_parse_round_trips() {
        for j in Jurisdiction::ALL {
            assert_eq!(Jurisdiction::parse(j.as_str()), Some(j));
            assert_eq!(j.to_string().parse::<Jurisdiction>(), Ok(j));
            assert_eq!(Jurisdiction::parse(&j.as_str().to_ascii_lowercase()), Some(j));
        }
        assert_eq!(Jurisdiction::parse(" Adequacy "), Some(Adequacy));
        assert_eq!(Jurisdiction::parse("eea"), Some(Eea));
        assert_eq!(Jurisdiction::parse("DE"), None);
        assert_eq!(Jurisdiction::parse(""), None);
        assert_eq!(Jurisdiction::parse("GB"), None);
        let err = " de ".parse::<Jurisdiction>().unwrap_err();
        assert_eq!(err, UnknownJurisdiction("de".into()));
        assert!(err.to_string().contains("EEA"));
    }

    #[test]
    fn country_codes() {
        for ok in ["DE", "GB", "CH", "US", "NO", "IS", "LI", "FO", "GG", "JE", "IM", "HK", "TW", "ZW", "AD"] {
            assert!(is_country_code(ok), "{ok}");
        }
        for bad in ["de", "UK", "EL", "XK", "EU", "ZZ", "D", "DEU", "D1", "", "ÄÖ", " DE"] {
            assert!(!is_country_code(bad), "{bad}");
        }
        assert_eq!(ISO_3166_ALPHA2.split(' ').count(), 249);
        assert!(ISO_3166_ALPHA2.split(' ').all(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase())));
    }

    /// The table in docs/RESIDENCY.md must list exactly the built-in regions, each with the same cloud,
    /// city, country and jurisdictions, so the doc and the code cannot drift apart.
    #[test]
    fn residency_doc_lists_exactly_the_builtin_table() {
        let doc = include_str!("../../../docs/RESIDENCY.md");
        // Only the table under "## Built-in regions" (up to the next section) is the region table.
        let rows: Vec<Vec<&str>> = doc
            .lines()
            .skip_while(|l| *l != "## Built-in regions")
            .skip(1)
            .take_while(|l| !l.starts_with("## "))
            .filter(|l| l.starts_with("| `"))
            .map(|l| l.trim_matches('|').split('|').map(str::trim).collect())
            .collect();
        let mut doc_names = HashSet::new();
        for row in &rows {
            let [name, cloud, city, country, jur] = row.as_slice() else { panic!("bad table row {row:?}") };
            let name = name.trim_matches('`');
            assert!(doc_names.insert(name), "{name} listed twice in RESIDENCY.md");
            let r = region(name).unwrap_or_else(|| panic!("RESIDENCY.md lists {name}, the code does not"));
            assert_eq!((*cloud, *city, *country), (r.cloud.as_str(), r.city, r.country), "{name}");
            let want: Vec<&str> = r.jurisdictions().iter().map(|j| j.as_str()).collect();
            let want = if want.is_empty() { "none".to_owned() } else { want.join(", ") };
            assert_eq!(*jur, want, "{name}: jurisdictions column");
        }
        for r in builtin_regions() {
            assert!(doc_names.contains(r.name), "RESIDENCY.md does not list {}", r.name);
        }
    }
}
