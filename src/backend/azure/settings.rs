//! How to reach and authenticate to one Azure Blob Storage account.

use std::fmt;

/// How the backend proves who it is to the storage account.
#[derive(Clone)]
pub enum AzureCredentials {
    /// The storage account key (base64, as the portal shows it): requests are signed with SharedKey.
    AccountKey(String),
    /// A shared access signature (the query string, with or without its leading `?`), appended to
    /// every request. It needs the permissions the backend uses: read, add, create, write, delete,
    /// list, tag (and delete version, where the account keeps versions).
    Sas(String),
}

impl fmt::Debug for AzureCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AzureCredentials::AccountKey(_) => f.write_str("AccountKey(***)"),
            AzureCredentials::Sas(_) => f.write_str("Sas(***)"),
        }
    }
}

/// One storage account's blob service.
#[derive(Clone, Debug)]
pub struct AzureBackendSettings {
    /// The blob service URL: `https://<account>.blob.core.windows.net`, or an emulator's URL whose
    /// first path segment is the account (`http://127.0.0.1:10000/devstoreaccount1`).
    pub endpoint: String,
    /// The storage account name.
    pub account: String,
    pub credentials: AzureCredentials,
}
