//! `x-ms-if-tags`: a condition on a blob's tags, in the small SQL-like language Azure defines for it
//! (`"key" op 'value'` comparisons joined by `AND` / `OR`, with parentheses). A malformed condition is a
//! 400 `InvalidHeaderValue` before any work; a condition the blob's tags do not meet is a 412.
//!
//! Hand-written: the grammar is Azure's own, a few lines of recursive descent, and no crate parses it.
//! Comparisons are on the bytes of the text (as Azure compares tag values); a comparison on a tag the
//! blob does not have is false, whatever the operator.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::collections::BTreeMap;

use super::error::AzureError;

/// Most comparisons in one condition (Azure documents "up to 1000" for tag filters).
const MAX_COMPARISONS: usize = 1000;
/// Deepest nesting of parentheses accepted (bounds the recursion).
const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagCondition {
    Compare { key: String, op: CompareOp, value: String },
    And(Box<TagCondition>, Box<TagCondition>),
    Or(Box<TagCondition>, Box<TagCondition>),
}

impl TagCondition {
    /// Whether `tags` meet the condition.
    pub fn matches(&self, tags: &BTreeMap<String, String>) -> bool {
        match self {
            TagCondition::Compare { key, op, value } => tags.get(key).is_some_and(|have| {
                let (have, want) = (have.as_bytes(), value.as_bytes());
                match op {
                    CompareOp::Eq => have == want,
                    CompareOp::Ne => have != want,
                    CompareOp::Gt => have > want,
                    CompareOp::Ge => have >= want,
                    CompareOp::Lt => have < want,
                    CompareOp::Le => have <= want,
                }
            }),
            TagCondition::And(a, b) => a.matches(tags) && b.matches(tags),
            TagCondition::Or(a, b) => a.matches(tags) || b.matches(tags),
        }
    }
}

fn malformed() -> AzureError {
    AzureError::bad_request("InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct format.")
}

/// The characters a tag key or value may hold (Azure: letters, digits, space, `+ - . / : = _`).
fn tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ' ' | '+' | '-' | '.' | '/' | ':' | '=' | '_')
}

struct Parser<'a> {
    rest: &'a str,
    comparisons: usize,
}

impl<'a> Parser<'a> {
    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start_matches(' ');
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        match self.rest.get(..token.len()) {
            Some(head) if head.eq_ignore_ascii_case(token) => {
                self.rest = self.rest.get(token.len()..).unwrap_or("");
                true
            }
            _ => false,
        }
    }

    /// `AND` / `OR` as a whole word.
    fn eat_keyword(&mut self, word: &str) -> bool {
        self.skip_space();
        let after = self.rest.get(word.len()..).and_then(|r| r.chars().next());
        let whole = after.is_none_or(|c| c == ' ' || c == '(' || c == '"');
        if whole && self.eat(word) {
            return true;
        }
        false
    }

    fn or_expr(&mut self, depth: usize) -> Result<TagCondition, AzureError> {
        let mut left = self.and_expr(depth)?;
        while self.eat_keyword("or") {
            left = TagCondition::Or(Box::new(left), Box::new(self.and_expr(depth)?));
        }
        Ok(left)
    }

    fn and_expr(&mut self, depth: usize) -> Result<TagCondition, AzureError> {
        let mut left = self.factor(depth)?;
        while self.eat_keyword("and") {
            left = TagCondition::And(Box::new(left), Box::new(self.factor(depth)?));
        }
        Ok(left)
    }

    fn factor(&mut self, depth: usize) -> Result<TagCondition, AzureError> {
        if self.eat("(") {
            if depth >= MAX_DEPTH {
                return Err(malformed());
            }
            let inner = self.or_expr(depth + 1)?;
            return if self.eat(")") { Ok(inner) } else { Err(malformed()) };
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<TagCondition, AzureError> {
        self.comparisons += 1;
        if self.comparisons > MAX_COMPARISONS {
            return Err(malformed());
        }
        let key = self.key()?;
        // Longest operators first.
        let op = [
            ("<>", CompareOp::Ne),
            (">=", CompareOp::Ge),
            ("<=", CompareOp::Le),
            ("=", CompareOp::Eq),
            (">", CompareOp::Gt),
            ("<", CompareOp::Lt),
        ]
        .into_iter()
        .find(|(t, _)| self.eat(t))
        .map(|(_, op)| op)
        .ok_or_else(malformed)?;
        let value = self.value()?;
        Ok(TagCondition::Compare { key, op, value })
    }

    /// A key: `"quoted"` (any tag characters) or bare (a letter or `_`, then letters, digits, `_`).
    /// `@container` and other `@` names belong to Find Blobs by Tags, not to a blob's condition.
    fn key(&mut self) -> Result<String, AzureError> {
        self.skip_space();
        if let Some(quoted) = self.rest.strip_prefix('"') {
            let end = quoted.find('"').ok_or_else(malformed)?;
            let key = quoted.get(..end).ok_or_else(malformed)?;
            if key.is_empty() || !key.chars().all(tag_char) {
                return Err(malformed());
            }
            self.rest = quoted.get(end + 1..).unwrap_or("");
            return Ok(key.to_owned());
        }
        let end = self.rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(self.rest.len());
        let key = self.rest.get(..end).unwrap_or("");
        if key.is_empty() || key.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(malformed());
        }
        self.rest = self.rest.get(end..).unwrap_or("");
        Ok(key.to_owned())
    }

    /// A value: `'quoted'`, tag characters only.
    fn value(&mut self) -> Result<String, AzureError> {
        self.skip_space();
        let quoted = self.rest.strip_prefix('\'').ok_or_else(malformed)?;
        let end = quoted.find('\'').ok_or_else(malformed)?;
        let value = quoted.get(..end).ok_or_else(malformed)?;
        if !value.chars().all(tag_char) {
            return Err(malformed());
        }
        self.rest = quoted.get(end + 1..).unwrap_or("");
        Ok(value.to_owned())
    }
}

/// Parses an `x-ms-if-tags` value.
pub fn parse(text: &str) -> Result<TagCondition, AzureError> {
    let mut p = Parser { rest: text, comparisons: 0 };
    let condition = p.or_expr(0)?;
    p.skip_space();
    if !p.rest.is_empty() {
        return Err(malformed());
    }
    Ok(condition)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn holds(cond: &str, t: &BTreeMap<String, String>) -> bool {
        parse(cond).unwrap_or_else(|e| panic!("{cond}: {}", e.message)).matches(t)
    }

    #[test]
    fn comparisons_on_bytes() {
        let t = tags(&[("tag1", "val1"), ("tag2", "val2"), ("key1", "1a"), (" key 1 +-.:=_/", "1a")]);
        assert!(holds("tag1='val1'", &t));
        assert!(!holds("tag1='val11'", &t));
        assert!(holds("tag1>'val'", &t) && !holds("tag1>'val11'", &t));
        assert!(holds("tag1>='val1'", &t) && !holds("tag1>='vam'", &t));
        assert!(holds("tag1 <'val11'", &t) && holds("tag1< 'vam'", &t) && !holds("tag1 < 'val1'", &t));
        assert!(holds("tag1<='val1'", &t));
        assert!(holds("key1>'1 a'", &t) && holds("key1>'1+a'", &t) && holds("key1>'1.a'", &t));
        assert!(holds("\" key 1 +-.:=_/\"='1a'", &t));
        assert!(holds("tag1='val1' AND tag2='val2'", &t));
        assert!(!holds("tag1='val1' and tag2='x'", &t));
        assert!(holds("tag1='x' OR tag2='val2'", &t));
        assert!(holds("(tag1='x' or tag1='val1') and (tag2 <> 'val1')", &t));
        // A tag the blob lacks never matches, not even `<>`.
        assert!(!holds("missing<>'value1'", &t));
        assert!(!holds("tag1='val1' and missing<>'x'", &t));
        // AND binds tighter than OR.
        assert!(holds("tag1='val1' or tag1='x' and tag2='x'", &t));
    }

    #[test]
    fn long_conditions() {
        let t = tags(&[("tag1", "val1")]);
        let mut q = "tag1 <> 'v0' ".to_owned();
        for i in 1..700 {
            q.push_str(&format!("and tag1 <> 'v{i}'"));
        }
        assert!(holds(&q, &t));
        let mut too_long = q.clone();
        for i in 700..1100 {
            too_long.push_str(&format!(" and tag1 <> 'v{i}'"));
        }
        assert!(parse(&too_long).is_err());
        assert!(parse(&format!("{}tag1='val1'{}", "(".repeat(40), ")".repeat(40))).is_err());
        assert!(holds(&format!("{}tag1='val1'{}", "(".repeat(3), ")".repeat(3)), &t));
    }

    #[test]
    fn malformed_conditions() {
        for bad in [
            "adfec",
            "@container='ab'",
            "key111==value1",
            "key+1='value1'",
            "key--1='value1'",
            "key1='value$$##'",
            "key1='open",
            "(key1='a'",
            "key1='a' and",
            "key1='a' xor key2='b'",
            "'a'=key1",
            "",
            "1key='a'",
            "andkey='a' andkey2='b'",
        ] {
            let e = parse(bad).err().unwrap_or_else(|| panic!("{bad:?} parsed"));
            assert_eq!((e.status, e.code), (http::StatusCode::BAD_REQUEST, "InvalidHeaderValue"), "{bad}");
        }
    }
}
