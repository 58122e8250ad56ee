//! Retention as a pure function: how long may this object be kept, by the tenant's rules.
//!
//! Rules are tried in order and the first whose every given condition matches wins; a tenant
//! default applies otherwise. A deadline is the write time plus the rule's duration, rounded up to
//! the next midnight UTC (deadlines are whole days: one sweep a day finds them all, and later a key
//! per deadline day can cover them). `keep` means no deadline.

use std::collections::BTreeMap;
use std::fmt;

use globset::{Glob, GlobBuilder, GlobMatcher};
use time::{Duration, OffsetDateTime, Time};

/// How long to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Delete this long after the write (rounded up to the next midnight UTC).
    For(Duration),
    /// No deadline.
    Forever,
}

impl Keep {
    /// Parses `28d`, `36h`, `6w` or `keep`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "keep" {
            return Ok(Keep::Forever);
        }
        // Split before the last *character*: a byte index could fall inside a multi-byte one (found by
        // the fuzz harness: `split_at` panicked on "1é").
        let at = text.char_indices().last().map_or(0, |(i, _)| i);
        let (num, unit) = (text.get(..at).unwrap_or_default(), text.get(at..).unwrap_or_default());
        let n: i64 = num.parse().ok().filter(|n| (1..=100_000).contains(n)).ok_or_else(|| {
            format!("{text:?} is not a duration: expected a number and a unit (28d, 36h, 6w) or `keep`")
        })?;
        match unit {
            "h" => Ok(Keep::For(Duration::hours(n))),
            "d" => Ok(Keep::For(Duration::days(n))),
            "w" => Ok(Keep::For(Duration::weeks(n))),
            _ => Err(format!("{text:?}: unit must be h, d or w (or `keep`)")),
        }
    }
}

impl fmt::Display for Keep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Keep::Forever => f.write_str("keep"),
            Keep::For(d) if d.whole_hours() % 24 == 0 => write!(f, "{}d", d.whole_days()),
            Keep::For(d) => write!(f, "{}h", d.whole_hours()),
        }
    }
}

/// Whether a client may move the deadline a rule sets (request header `x-blobseal-retention-days`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientOverride {
    #[default]
    Never,
    /// Only to an earlier deadline.
    Shorten,
    /// Only to a later one.
    Extend,
    Any,
}

impl ClientOverride {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "never" => ClientOverride::Never,
            "shorten" => ClientOverride::Shorten,
            "extend" => ClientOverride::Extend,
            "any" => ClientOverride::Any,
            _ => return None,
        })
    }
}

/// A glob with its source text (for messages).
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    matcher: GlobMatcher,
}

impl Pattern {
    /// `*` matches within a `/`-separated segment, `**` across segments.
    pub fn parse(text: &str) -> Result<Self, String> {
        let glob: Glob = GlobBuilder::new(text).literal_separator(true).build().map_err(|e| e.to_string())?;
        Ok(Self { text: text.to_owned(), matcher: glob.compile_matcher() })
    }

    pub fn matches(&self, s: &str) -> bool {
        self.matcher.is_match(s)
    }

    /// The glob as written in config (after `prefix:` was turned into a glob), for summaries and messages.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// One rule; every condition given must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionRule {
    /// `rule 2` or the rule's `name:`, for messages and the response header.
    pub name: String,
    pub bucket: Option<Pattern>,
    pub key: Option<Pattern>,
    /// The key starts with this.
    pub prefix: Option<String>,
    pub content_type: Option<Pattern>,
    /// User metadata that must be present with these values (names without `x-amz-meta-`).
    pub metadata: BTreeMap<String, String>,
    /// Object tags that must be present with these values.
    pub tags: BTreeMap<String, String>,
    pub keep: Keep,
    pub client_override: ClientOverride,
}

/// What is known about an object at write time.
#[derive(Debug, Clone, Copy)]
pub struct ObjectFacts<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub content_type: Option<&'a str>,
    pub metadata: &'a BTreeMap<String, String>,
    pub tags: &'a BTreeMap<String, String>,
}

/// The decision for one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// `None`: keep (no deadline).
    pub delete_after: Option<OffsetDateTime>,
    /// Which rule decided (`default` if none matched).
    pub rule: String,
}

/// A tenant's rules and default.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionPolicy {
    pub rules: Vec<RetentionRule>,
    pub default: Keep,
    pub default_override: ClientOverride,
    /// Bind objects with a deadline to a key per deadline day too (see `keys::chain`), destroyed by the
    /// sweeper once the day has passed.
    pub period_keys: bool,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self { rules: Vec::new(), default: Keep::Forever, default_override: ClientOverride::Never, period_keys: false }
    }
}

impl RetentionRule {
    fn matches(&self, o: &ObjectFacts<'_>) -> bool {
        self.bucket.as_ref().is_none_or(|p| p.matches(o.bucket))
            && self.key.as_ref().is_none_or(|p| p.matches(o.key))
            && self.prefix.as_ref().is_none_or(|p| o.key.starts_with(p.as_str()))
            && self.content_type.as_ref().is_none_or(|p| o.content_type.is_some_and(|c| p.matches(c)))
            && self.metadata.iter().all(|(k, v)| o.metadata.get(k) == Some(v))
            && self.tags.iter().all(|(k, v)| o.tags.get(k) == Some(v))
    }
}

/// The deadline for `keep` from `now`: `now + duration`, rounded up to the next midnight UTC.
pub fn deadline(keep: Keep, now: OffsetDateTime) -> Option<OffsetDateTime> {
    match keep {
        Keep::Forever => None,
        Keep::For(d) => {
            let due = now.to_offset(time::UtcOffset::UTC) + d;
            let midnight = due.replace_time(Time::MIDNIGHT);
            Some(if midnight == due { due } else { midnight + Duration::days(1) })
        }
    }
}

impl RetentionPolicy {
    /// Decides the deadline of a write at `now`. `client_days` is the client's requested retention
    /// (days from now), honoured only where the matching rule allows that direction; otherwise the
    /// write is refused with the reason (the caller answers AccessDenied).
    pub fn decide(
        &self,
        o: &ObjectFacts<'_>,
        now: OffsetDateTime,
        client_days: Option<u32>,
    ) -> Result<Decision, String> {
        let (keep, name, over) = match self.rules.iter().find(|r| r.matches(o)) {
            Some(r) => (r.keep, r.name.clone(), r.client_override),
            None => (self.default, "default".to_owned(), self.default_override),
        };
        let by_rule = deadline(keep, now);
        let Some(days) = client_days else { return Ok(Decision { delete_after: by_rule, rule: name }) };
        let wanted = deadline(Keep::For(Duration::days(i64::from(days))), now);
        let earlier = match (wanted, by_rule) {
            (Some(w), Some(r)) => w < r,
            (Some(_), None) => true,
            _ => false,
        };
        let allowed = match over {
            ClientOverride::Any => true,
            ClientOverride::Shorten => earlier || wanted == by_rule,
            ClientOverride::Extend => !earlier,
            ClientOverride::Never => wanted == by_rule,
        };
        if allowed {
            Ok(Decision { delete_after: wanted, rule: format!("{name} (client {days}d)") })
        } else {
            Err(format!("retention is set by policy ({name}: {keep}); the client may not change it"))
        }
    }
}

#[cfg(test)]
mod tests {
    /// Found by the fuzz harness (issue 11): a duration ending in a multi-byte character panicked.
    #[test]
    fn durations_ending_in_any_character_are_refused_not_panicking() {
        for text in ["1é", "é", "28dé", "日", ""] {
            assert!(Keep::parse(text).is_err(), "{text}");
        }
        assert!(Keep::parse("28d").is_ok());
    }

    use super::*;
    use time::macros::datetime;

    fn rule(name: &str, key: Option<&str>, ct: Option<&str>, keep: &str) -> RetentionRule {
        RetentionRule {
            name: name.into(),
            bucket: None,
            key: key.map(|k| Pattern::parse(k).unwrap()),
            prefix: None,
            content_type: ct.map(|c| Pattern::parse(c).unwrap()),
            metadata: BTreeMap::new(),
            tags: BTreeMap::new(),
            keep: Keep::parse(keep).unwrap(),
            client_override: ClientOverride::Never,
        }
    }

    #[test]
    fn parse_and_round_up_to_midnight() {
        assert_eq!(Keep::parse("28d").unwrap(), Keep::For(Duration::days(28)));
        assert_eq!(Keep::parse("keep").unwrap(), Keep::Forever);
        assert_eq!(Keep::parse("36h").unwrap().to_string(), "36h");
        assert_eq!(Keep::parse("2w").unwrap().to_string(), "14d");
        for bad in ["", "d", "0d", "28", "28y", "-1d", "1.5d"] {
            assert!(Keep::parse(bad).is_err(), "{bad}");
        }
        let now = datetime!(2026-11-30 13:45 UTC);
        assert_eq!(deadline(Keep::parse("28d").unwrap(), now), Some(datetime!(2026-12-29 00:00 UTC)));
        assert_eq!(
            deadline(Keep::parse("1d").unwrap(), datetime!(2026-11-30 00:00 UTC)),
            Some(datetime!(2026-12-01 00:00 UTC))
        );
        assert_eq!(deadline(Keep::Forever, now), None);
    }

    #[test]
    fn first_match_wins_then_default() {
        let mut meta = BTreeMap::new();
        let tags: BTreeMap<String, String> = [("class".to_owned(), "log".to_owned())].into();
        let mut tagged = rule("logs", None, None, "35d");
        tagged.tags = tags.clone();
        let p = RetentionPolicy {
            rules: vec![
                rule("calls", Some("calls/**"), None, "28d"),
                rule("recordings", None, Some("audio/*"), "180d"),
                tagged,
                rule("backups", Some("backups/**"), None, "keep"),
            ],
            default: Keep::parse("35d").unwrap(),
            default_override: ClientOverride::Never,
            period_keys: false,
        };
        let now = datetime!(2026-11-30 10:00 UTC);
        let empty = BTreeMap::new();
        let facts = |key, ct, tags| ObjectFacts { bucket: "b", key, content_type: ct, metadata: &meta, tags };
        let d = |f: ObjectFacts<'_>| p.decide(&f, now, None).unwrap();
        assert_eq!(d(facts("calls/2026/a.json", Some("audio/wav"), &empty)).rule, "calls");
        assert_eq!(d(facts("x/a.wav", Some("audio/wav"), &empty)).delete_after, Some(datetime!(2027-05-30 00:00 UTC)));
        assert_eq!(d(facts("x/a.txt", None, &tags)).rule, "logs");
        assert_eq!(d(facts("backups/db.tar", None, &empty)).delete_after, None);
        assert_eq!(d(facts("calls.json", None, &empty)).rule, "default", "calls/** needs the slash");
        let mut by_prefix = rule("pre", None, None, "1d");
        by_prefix.prefix = Some("calls".into());
        let q = RetentionPolicy { rules: vec![by_prefix], ..RetentionPolicy::default() };
        for key in ["calls/2026/a.json", "calls-2026.json", "calls"] {
            assert_eq!(q.decide(&facts(key, None, &empty), now, None).unwrap().rule, "pre", "{key}");
        }
        assert_eq!(q.decide(&facts("x/calls", None, &empty), now, None).unwrap().rule, "default");
        meta.insert("k".into(), "v".into());
    }

    #[test]
    fn client_overrides_only_where_allowed() {
        let mut r = rule("r", None, None, "30d");
        let now = datetime!(2026-11-30 10:00 UTC);
        let meta = BTreeMap::new();
        let facts = ObjectFacts { bucket: "b", key: "k", content_type: None, metadata: &meta, tags: &meta };
        let p = |r: &RetentionRule| RetentionPolicy { rules: vec![r.clone()], ..RetentionPolicy::default() };
        assert!(p(&r).decide(&facts, now, Some(10)).is_err(), "never");
        r.client_override = ClientOverride::Shorten;
        assert_eq!(p(&r).decide(&facts, now, Some(10)).unwrap().delete_after, Some(datetime!(2026-12-11 00:00 UTC)));
        assert!(p(&r).decide(&facts, now, Some(40)).is_err());
        r.client_override = ClientOverride::Extend;
        assert!(p(&r).decide(&facts, now, Some(10)).is_err());
        assert!(p(&r).decide(&facts, now, Some(40)).is_ok());
    }
}
