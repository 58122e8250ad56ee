//! [`AzureBackend`]: objects in Azure Blob Storage (work in progress, issue 12).

mod names;
mod settings;

pub use settings::{AzureBackendSettings, AzureCredentials};
