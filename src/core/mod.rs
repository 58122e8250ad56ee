//! The protocol-neutral core: tenants, encryption, keys and the object service the front ends call.
//! Nothing here knows about HTTP, XML or s3s.

pub mod audit;
pub mod blocks;
pub mod buckets;
pub mod completion_intent;
pub mod container_meta;
pub mod drift;
pub mod envelope;
pub mod error;
pub mod governance;
pub mod housekeeping;
pub mod keys;
pub mod multipart;
pub mod object_properties;
pub mod policy;
pub mod rekey;
pub mod service;
pub mod stored;
pub mod tenant;
pub mod upload_token;

#[cfg(test)]
pub(crate) mod test_support;
