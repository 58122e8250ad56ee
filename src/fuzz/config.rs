//! The YAML configuration and the small languages inside it (key patterns, retention durations and
//! globs, residency rules), plus those patterns applied to client keys.

use proptest::prelude::*;

use super::{config, mutate};
use crate::config::parse_str;
use crate::core::keys::subject::KeyPattern;
use crate::core::policy::residency::Allow;
use crate::core::policy::retention::{Keep, Pattern};

const DOCUMENTED: &str = include_str!("../../config/blobseal.yaml");
const POLICY_EXAMPLE: &str = include_str!("../../config/examples/policy.yaml");

/// Every variable resolves (to a valid base64 master key, which is also a fine secret), so parsing
/// goes as deep as it can.
fn any_env(_: &str) -> Option<String> {
    Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_owned())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn yaml_config_never_panics(text in "\\PC{0,300}") {
        let _ = parse_str(&text, "fuzz.yaml", &any_env);
    }

    #[test]
    fn mutated_shipped_configs_never_panic(which in any::<bool>(), op in any::<u8>(), at in any::<usize>(), with in any::<u8>(), times in 1usize..4) {
        let mut bytes = if which { DOCUMENTED } else { POLICY_EXAMPLE }.as_bytes().to_vec();
        for i in 0..times {
            bytes = mutate(&bytes, op.wrapping_add(i as u8), at.wrapping_mul(i + 1), with);
        }
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = parse_str(text, "fuzz.yaml", &any_env);
        }
    }

    #[test]
    fn key_patterns_parse_and_match_any_key(pattern in "[a-z{}*/]{0,30}|\\PC{0,30}", key in "[a-z/]{0,60}|\\PC{0,60}") {
        if let Ok(p) = KeyPattern::parse(&pattern) {
            if let Some(subject) = p.subject_of(&key) {
                prop_assert!(key.contains(subject));
                // Redaction hides exactly the subject segment.
                let shown = p.redact(&key).unwrap();
                let marker = "{subject}";
                prop_assert!(shown.contains(marker), "{} -> {}", key, shown);
            }
        }
    }

    #[test]
    fn retention_globs_match_in_bounded_time(glob in "[a-c*/]{0,24}", key in "[a-c/]{0,200}") {
        if let Ok(p) = Pattern::parse(&glob) {
            let started = std::time::Instant::now();
            let _ = p.matches(&key);
            // Globs come from config, keys from clients: no backtracking blow-up on either.
            prop_assert!(started.elapsed() < std::time::Duration::from_millis(200), "{glob:?} on {key:?}");
        }
    }

    #[test]
    fn durations_and_residency_rules_never_panic(text in "\\PC{0,20}|[0-9]{0,25}[hdw]") {
        let _ = Keep::parse(&text);
        let _ = Allow::parse(&text);
    }
}
