//! The encrypted object format (see `docs/FORMAT.md`, which this code must match).
//!
//! - `format`: the envelope header (versioned, bounds-checked codec) and size arithmetic.
//! - `seal`: plaintext stream → ciphertext stream.
//! - `open`: ciphertext stream → verified plaintext stream (a state machine).
//! - `range`: plaintext byte ranges → segment-aligned ciphertext ranges.
//! - `keys`: per-object keys derived from the data key (segment key, commitment).

pub mod format;
pub mod keys;
pub mod open;
pub mod range;
pub mod seal;

pub use format::{
    ciphertext_len, metadata_digest, plaintext_len, segment_count, Envelope, FormatError, ObjectIdentity,
    MAX_PLAINTEXT_LEN, SEGMENT_SIZE, TAG_LEN,
};
pub use keys::{new_salt, ObjectKeys};
pub use open::{open_all, open_stream};
pub use range::{fetch_window, plan_range, CipherRange};
pub use seal::{seal_all, seal_stream};
