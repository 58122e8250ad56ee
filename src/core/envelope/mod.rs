//! The encrypted object format (see `docs/FORMAT.md`, which this code must match).
//!
//! - `format`: the envelope header (versioned, bounds-checked codec) and size arithmetic.
//! - `seal`: plaintext stream → ciphertext stream.
//! - `open`: ciphertext stream → verified plaintext stream (a state machine).
//! - `range`: plaintext byte ranges → segment-aligned ciphertext ranges.
//! - `keys`: per-object keys derived from the data key (segment key, commitment).
//! - `parts`, `layout`: multipart objects (AES-GCM-SIV parts, the part layout); `source`: both schemes behind one API.

pub mod format;
pub mod keys;
pub mod layout;
pub mod open;
pub mod parts;
pub mod range;
pub mod seal;
pub mod source;

pub use format::{
    ciphertext_len, metadata_digest, plaintext_len, segment_count, Algorithm, Envelope, FormatError, ObjectIdentity,
    MAX_PLAINTEXT_LEN, SEGMENT_SIZE, TAG_LEN,
};
pub use keys::{new_salt, ObjectKeys};
pub use layout::{Layout, LAYOUT_META, MAX_ENCODED_LAYOUT};
pub use open::{open_all, open_segments, open_stream};
pub use parts::PartKeys;
pub use range::{fetch_window, plan_range, CipherRange};
pub use seal::{seal_all, seal_stream, seal_with};
pub use source::{SealKeys, SegmentKeys};
