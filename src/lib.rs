//! blobseal: a transparent, encrypting S3 proxy.
//!
//! Request path: `front` (S3 protocol via s3s) → `core` (tenants, envelope encryption, keys)
//! → `backend` (filesystem, S3). `ops` holds the key-management commands (`blobseal keys`, `blobseal shred`).
//! See `docs/DESIGN.md`.
#![forbid(unsafe_code)]

pub mod app;
pub mod backend;
pub mod config;
pub mod core;
pub mod failpoint;
pub mod front;
#[cfg(test)]
pub(crate) mod fuzz;
pub mod metrics;
pub mod ops;
