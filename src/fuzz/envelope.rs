//! The envelope header, the multipart layout, range planning and segment opening: everything read
//! from backend metadata and ciphertext before (or while) it is authenticated.

use proptest::prelude::*;

use super::{config, mutate};
use crate::core::envelope::format::{Algorithm, Envelope, FormatError, MAX_PLAINTEXT_LEN};
use crate::core::envelope::keys::ObjectKeys;
use crate::core::envelope::layout::Layout;
use crate::core::envelope::open::open_all;
use crate::core::envelope::range::plan_range;
use crate::core::envelope::seal::seal_all;
use crate::core::keys::DataKey;
use crate::core::service::{resolve_range, RangeRequest};

fn envelope() -> impl Strategy<Value = Envelope> {
    (
        prop::bool::ANY,
        0..=MAX_PLAINTEXT_LEN,
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        "[ -~]{1,255}",
        prop::collection::vec(any::<u8>(), 1..600),
    )
        .prop_map(|(siv, plaintext_len, salt, commitment, meta_digest, kek_id, wrapped_dek)| Envelope {
            alg: if siv { Algorithm::PartsSiv } else { Algorithm::Gcm },
            plaintext_len,
            salt,
            commitment,
            meta_digest,
            kek_id,
            wrapped_dek,
        })
}

/// Part lists as a client's CompleteMultipartUpload names them: ascending numbers with gaps.
fn parts() -> impl Strategy<Value = Vec<(u32, u64)>> {
    prop::collection::vec((1u32..40, prop_oneof![0u64..200_000, Just(5 << 20), Just(64 << 10)]), 1..12).prop_map(
        |steps| {
            let mut n = 0u32;
            steps
                .into_iter()
                .map(|(gap, len)| {
                    n += gap;
                    (n, len)
                })
                .collect()
        },
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn header_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..800)) {
        let _ = Envelope::decode(&bytes);
    }

    #[test]
    fn header_round_trips_and_refuses_cuts_and_tails(e in envelope(), cut in any::<usize>(), tail in any::<u8>()) {
        let bytes = e.encode().unwrap();
        prop_assert_eq!(Envelope::decode(&bytes).unwrap(), e);
        let cut = cut % bytes.len();
        prop_assert!(Envelope::decode(&bytes[..cut]).is_err());
        let mut longer = bytes.clone();
        longer.push(tail);
        prop_assert!(Envelope::decode(&longer).is_err());
    }

    #[test]
    fn mutated_headers_decode_to_something_else_or_nothing(e in envelope(), op in any::<u8>(), at in any::<usize>(), with in any::<u8>()) {
        let bytes = e.encode().unwrap();
        let changed = mutate(&bytes, op, at, with);
        if changed != bytes {
            if let Ok(d) = Envelope::decode(&changed) {
                prop_assert_ne!(d, e);
            }
        }
    }

    #[test]
    fn layout_decode_never_panics(text in "1:[0-9+x,]{0,80}|[ -~]{0,80}") {
        if let Ok(l) = Layout::decode(&text) {
            // Whatever decodes has consistent totals that every query can use without overflow.
            let plain = l.plain_len();
            let _ = l.stored_len();
            let _ = l.plan(0..plain);
            let _ = l.plan(plain / 2..plain);
            let _ = l.part_range(1);
        }
    }

    #[test]
    fn layout_numbers_at_the_limits_never_overflow(
        runs in prop::collection::vec((any::<u32>(), any::<u32>(), prop_oneof![any::<u64>(), Just(MAX_PLAINTEXT_LEN), 0u64..1 << 24]), 1..4)
    ) {
        let text = format!("1:{}", runs.iter().map(|(f, c, l)| format!("{f}+{c}x{l}")).collect::<Vec<_>>().join(","));
        if let Ok(l) = Layout::decode(&text) {
            prop_assert!(l.plain_len() <= MAX_PLAINTEXT_LEN);
            let _ = l.plan(0..l.plain_len());
        }
    }

    #[test]
    fn layouts_round_trip_and_plan_inside_themselves(parts in parts(), a in any::<u64>(), b in any::<u64>()) {
        let l = Layout::from_parts(&parts).unwrap();
        prop_assert_eq!(Layout::decode(&l.encode()).unwrap(), l.clone());
        let total: u64 = parts.iter().map(|p| p.1).sum();
        prop_assert_eq!(l.plain_len(), total);
        let (start, end) = if total == 0 { (0, 0) } else { let (x, y) = (a % (total + 1), b % (total + 1)); (x.min(y), x.max(y)) };
        let plan = l.plan(start..end).unwrap();
        prop_assert_eq!(plan.len, end - start);
        prop_assert!(plan.cipher.end <= l.stored_len());
        prop_assert!(l.check_plan(&plan).is_ok());
    }

    #[test]
    fn ranges_resolve_inside_the_object(size in prop_oneof![0u64..300_000, any::<u64>()], kind in 0u8..3, x in any::<u64>(), y in any::<u64>()) {
        let req = match kind { 0 => RangeRequest::FromTo(x, y), 1 => RangeRequest::From(x), _ => RangeRequest::Suffix(x) };
        if let Ok(r) = resolve_range(req, size) {
            prop_assert!(r.start < r.end && r.end <= size);
            if size <= MAX_PLAINTEXT_LEN {
                let plan = plan_range(size, r.clone()).unwrap();
                prop_assert_eq!(plan.len, r.end - r.start);
            }
        }
    }

    #[test]
    fn plan_range_never_panics(len in any::<u64>(), a in any::<u64>(), b in any::<u64>()) {
        if let Ok(p) = plan_range(len, a..b) {
            prop_assert!(a <= b && b <= len && p.cipher.start <= p.cipher.end);
        }
    }

    #[test]
    fn tampered_ciphertext_never_opens(plain in prop::collection::vec(any::<u8>(), 0..140_000), op in any::<u8>(), at in any::<usize>(), with in any::<u8>()) {
        let keys = ObjectKeys::derive(&DataKey::from_bytes([7; 32]), &[9; 32]).unwrap();
        let sealed = seal_all(&keys, &plain).unwrap();
        let len = plain.len() as u64;
        prop_assert_eq!(open_all(&keys, len, &sealed).unwrap(), plain);
        let tampered = mutate(&sealed, op, at, with);
        if tampered != sealed {
            let opened: Result<Vec<u8>, FormatError> = open_all(&keys, len, &tampered);
            prop_assert!(opened.is_err());
        }
    }
}
