//! Which data subject an object is about, by the tenant's rules: a metadata header
//! (`x-amz-meta-data-subject`) or a key pattern (`customers/{subject}/**`). First match wins.
//!
//! An object with a subject gets its data key wrapped under that subject's own lifetime key, so that
//! destroying one key (`blobseal shred --subject`) erases exactly that person's objects everywhere.
//! Subjects never appear in clear in key ids: [`subject_hash`] names them.

use std::collections::BTreeMap;

use aws_lc_rs::digest;

/// Longest subject accepted (bytes); longer values are refused, not truncated.
pub const MAX_SUBJECT_LEN: usize = 1024;

/// One way an object names its data subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectSource {
    /// A user-metadata entry, by its name without `x-amz-meta-` (lower case), e.g. `data-subject`.
    Metadata(String),
    /// A key pattern of `/`-separated segments: a literal, `*` (one segment), `**` (any number of
    /// segments, only last) or `{subject}` (one non-empty segment: the subject).
    KeyPattern(KeyPattern),
}

/// A parsed key pattern; see [`SubjectSource::KeyPattern`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One,
    Rest,
    Subject,
}

impl KeyPattern {
    /// Parses `text`; it must hold `{subject}` exactly once, and `**` only as the last segment.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut segments = Vec::new();
        let parts: Vec<&str> = text.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let seg = match *part {
                "{subject}" => Segment::Subject,
                "*" => Segment::One,
                "**" if i + 1 == parts.len() => Segment::Rest,
                "**" => return Err("`**` may only be the last segment".into()),
                lit if lit.contains(['{', '}', '*']) => {
                    return Err(format!("segment {lit:?}: `{{subject}}`, `*` and `**` must be whole segments"))
                }
                lit => Segment::Literal(lit.to_owned()),
            };
            segments.push(seg);
        }
        match segments.iter().filter(|s| **s == Segment::Subject).count() {
            1 => Ok(Self { text: text.to_owned(), segments }),
            _ => Err("a key pattern must contain `{subject}` exactly once".into()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The subject segment of `key`, if `key` matches.
    pub fn subject_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        let mut parts = key.split('/');
        let mut subject = None;
        for seg in &self.segments {
            match seg {
                Segment::Rest => return subject,
                Segment::Literal(lit) => (parts.next()? == lit).then_some(())?,
                Segment::One => {
                    parts.next()?;
                }
                Segment::Subject => subject = Some(parts.next().filter(|p| !p.is_empty())?),
            }
        }
        parts.next().is_none().then_some(subject).flatten()
    }

    /// `key` with its subject segment replaced by `{subject}`, if `key` matches: what a log line may
    /// show of a key that names a person.
    pub fn redact(&self, key: &str) -> Option<String> {
        self.subject_of(key)?;
        let at = self.segments.iter().position(|s| *s == Segment::Subject)?;
        let redacted: Vec<&str> =
            key.split('/').enumerate().map(|(i, part)| if i == at { "{subject}" } else { part }).collect();
        Some(redacted.join("/"))
    }
}

/// A tenant's subject rules, tried in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectRules(pub Vec<SubjectSource>);

impl SubjectRules {
    /// The embedded default's rule: the `x-amz-meta-data-subject` header.
    pub fn default_header() -> Self {
        Self(vec![SubjectSource::Metadata("data-subject".into())])
    }

    /// `key` as a log line may show it: the subject segment of the first key pattern it matches
    /// replaced by `{subject}`; unchanged when no pattern matches.
    pub fn redact_key<'k>(&self, key: &'k str) -> std::borrow::Cow<'k, str> {
        self.0
            .iter()
            .find_map(|rule| match rule {
                SubjectSource::KeyPattern(p) => p.redact(key),
                SubjectSource::Metadata(_) => None,
            })
            .map_or(std::borrow::Cow::Borrowed(key), std::borrow::Cow::Owned)
    }

    /// The subject of an object with this key and (user) metadata, if a rule names one.
    /// Errors on a subject longer than [`MAX_SUBJECT_LEN`] (refused rather than truncated).
    pub fn subject_of(&self, key: &str, metadata: &BTreeMap<String, String>) -> Result<Option<String>, String> {
        for rule in &self.0 {
            let found = match rule {
                // Azure metadata names cannot hold `-`: `data_subject` names the subject as `data-subject` does.
                SubjectSource::Metadata(name) => metadata
                    .get(name)
                    .or_else(|| metadata.get(&name.replace('-', "_")))
                    .map(String::as_str)
                    .filter(|v| !v.is_empty()),
                SubjectSource::KeyPattern(p) => p.subject_of(key),
            };
            if let Some(subject) = found {
                if subject.len() > MAX_SUBJECT_LEN {
                    return Err(format!("data subject longer than {MAX_SUBJECT_LEN} bytes"));
                }
                return Ok(Some(subject.to_owned()));
            }
        }
        Ok(None)
    }
}

/// The name of a subject's lifetime key: 32 hex digits of
/// `SHA-256("blobseal/v1/subject" ‖ u32 BE len ‖ tenant ‖ u32 BE len ‖ subject)`.
/// Stable, so every replica finds the same key; one-way, so key ids and receipts do not show the
/// subject in clear (though a guessable subject, like an e-mail address, can be confirmed by hashing it).
pub fn subject_hash(tenant: &str, subject: &str) -> String {
    let mut buf = b"blobseal/v1/subject".to_vec();
    for part in [tenant, subject] {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(part.as_bytes());
    }
    let d = digest::digest(&digest::SHA256, &buf);
    hex::encode(d.as_ref().get(..16).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_patterns() {
        let p = KeyPattern::parse("customers/{subject}/**").unwrap();
        assert_eq!(p.subject_of("customers/42/calls/a.wav"), Some("42"));
        assert_eq!(p.subject_of("customers/42/"), Some("42"));
        assert_eq!(p.subject_of("customers/42"), Some("42"));
        assert_eq!(p.subject_of("customers//x"), None, "empty subject");
        assert_eq!(p.subject_of("other/42/x"), None);
        let q = KeyPattern::parse("*/users/{subject}").unwrap();
        assert_eq!(q.subject_of("eu/users/ann"), Some("ann"));
        assert_eq!(q.subject_of("eu/users/ann/x"), None, "no trailing segments without **");
        for bad in ["customers/**/{subject}", "a/b", "x{subject}/y", "{subject}/{subject}"] {
            assert!(KeyPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_are_redacted_for_logs() {
        let rules = SubjectRules(vec![
            SubjectSource::Metadata("data-subject".into()),
            SubjectSource::KeyPattern(KeyPattern::parse("customers/{subject}/**").unwrap()),
        ]);
        assert_eq!(rules.redact_key("customers/ann.smith/calls/a.wav"), "customers/{subject}/calls/a.wav");
        assert_eq!(rules.redact_key("customers/ann"), "customers/{subject}");
        assert_eq!(rules.redact_key("other/ann/x"), "other/ann/x");
        assert_eq!(SubjectRules::default_header().redact_key("customers/ann/x"), "customers/ann/x");
    }

    #[test]
    fn rules_first_match_and_limits() {
        let rules = SubjectRules(vec![
            SubjectSource::Metadata("data-subject".into()),
            SubjectSource::KeyPattern(KeyPattern::parse("customers/{subject}/**").unwrap()),
        ]);
        let mut meta = BTreeMap::new();
        assert_eq!(rules.subject_of("customers/7/x", &meta).unwrap().as_deref(), Some("7"));
        meta.insert("data-subject".into(), "ann".into());
        assert_eq!(rules.subject_of("customers/7/x", &meta).unwrap().as_deref(), Some("ann"));
        assert_eq!(rules.subject_of("logs/x", &BTreeMap::new()).unwrap(), None);
        meta.insert("data-subject".into(), "x".repeat(MAX_SUBJECT_LEN + 1));
        assert!(rules.subject_of("k", &meta).is_err());
    }

    #[test]
    fn subject_hash_is_stable_and_tenant_bound() {
        let h = subject_hash("acme", "ann");
        assert_eq!(h.len(), 32);
        assert_eq!(h, subject_hash("acme", "ann"));
        assert_ne!(h, subject_hash("globex", "ann"));
        assert_ne!(subject_hash("ab", "c"), subject_hash("a", "bc"));
    }
}
