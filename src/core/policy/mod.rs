//! Policy as pure functions: where a tenant's data may live (residency) and how long it may be kept
//! (retention). No I/O: config validation, request handling, the drift check and the sweeper call in.

pub mod regions;
pub mod residency;
pub mod retention;
