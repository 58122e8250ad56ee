//! Property-based fuzzing of every parser blobseal owns that reads client or backend input (issue 11).
//!
//! Each target feeds a decoder both arbitrary input and structure-aware mutations of valid encodings
//! (a valid value, then bytes flipped, cut or appended), and checks that it never panics or
//! overflows, that what an encoder wrote decodes back to the same value, and that tampered input is
//! refused rather than misread. proptest (not cargo-fuzz) because it runs on the stable toolchain in
//! plain `cargo test`, so CI runs every target on every change:
//!
//! - `cargo test --lib fuzz` runs [`DEFAULT_CASES`] cases per target (seconds, in `.ci/run`);
//! - `BLOBSEAL_FUZZ_CASES=200000 cargo test --release --lib fuzz` is the long run (DESIGN.md, Fuzzing).
//!
//! A crash found here becomes a named regression test beside the code it broke.

mod config;
mod envelope;
mod front;
mod tokens;

use proptest::test_runner::Config;

/// Cases per target in a plain `cargo test`.
pub(crate) const DEFAULT_CASES: u32 = 1000;

/// Cases per target: `BLOBSEAL_FUZZ_CASES` when set, else `default`.
pub(crate) fn cases(default: u32) -> u32 {
    std::env::var("BLOBSEAL_FUZZ_CASES").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// The proptest configuration every target uses. Failures are not persisted to files: a failure is
/// turned into a named regression test by hand, which says what broke.
pub(crate) fn config() -> Config {
    Config { cases: cases(DEFAULT_CASES), failure_persistence: None, ..Config::default() }
}

/// `bytes` with one of a few structure-blind mutations applied: the shapes of corruption a backend,
/// a disk or an attacker produces.
pub(crate) fn mutate(bytes: &[u8], op: u8, at: usize, with: u8) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let at = if out.is_empty() { 0 } else { at % out.len() };
    match op % 5 {
        0 => {
            if let Some(b) = out.get_mut(at) {
                *b ^= with | 1;
            }
        }
        1 => out.truncate(at),
        2 => out.push(with),
        3 => out.insert(at, with),
        _ => {
            if at < out.len() {
                out.remove(at);
            }
        }
    }
    out
}
