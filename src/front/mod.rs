//! Protocol front ends. Each turns its wire protocol into calls on `core::service::BlobService`
//! and maps `CoreError` to its protocol's errors in exactly one place.

pub mod azure;
pub mod body_guard;
pub mod s3;
pub mod xml_text;
