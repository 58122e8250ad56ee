//! The housekeeping task: runs [`BlobService::housekeep`] once at start and then every interval.
//!
//! Settings come from the environment (they are operational knobs, not part of the tenant config):
//! `BLOBSEAL_HOUSEKEEPING_INTERVAL_SECS` (default 3600; 0 turns the task off) and
//! `BLOBSEAL_HOUSEKEEPING_AGE_SECS` (default 86400): what is older than the age is collected. The
//! age must exceed the longest write or completion retry window; below a minute it is refused.

use std::sync::Arc;
use std::time::Duration;

pub const INTERVAL_ENV: &str = "BLOBSEAL_HOUSEKEEPING_INTERVAL_SECS";
pub const AGE_ENV: &str = "BLOBSEAL_HOUSEKEEPING_AGE_SECS";
const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);
const DEFAULT_AGE: Duration = Duration::from_secs(24 * 3600);
/// A temp file younger than this may belong to a write still running in another process.
const MIN_AGE: Duration = Duration::from_secs(60);

/// When and what housekeeping collects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HousekeepingSettings {
    /// `None`: no housekeeping task.
    pub interval: Option<Duration>,
    pub age: Duration,
}

/// A setting that does not parse or is out of range.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HousekeepingSettingsError {
    #[error("{name}: {value:?} is not a whole number of seconds")]
    NotSeconds { name: &'static str, value: String },
    #[error("{AGE_ENV}: {0} s is too young (at least 60 s: a write may still be using its temp file)")]
    AgeTooShort(u64),
}

fn seconds(name: &'static str, value: Option<String>) -> Result<Option<u64>, HousekeepingSettingsError> {
    value
        .map(|v| v.trim().parse::<u64>().map_err(|_| HousekeepingSettingsError::NotSeconds { name, value: v }))
        .transpose()
}

impl HousekeepingSettings {
    /// Reads the settings through `get` (the process environment in `main`, a map in tests).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, HousekeepingSettingsError> {
        let interval = match seconds(INTERVAL_ENV, get(INTERVAL_ENV))? {
            None => Some(DEFAULT_INTERVAL),
            Some(0) => None,
            Some(s) => Some(Duration::from_secs(s)),
        };
        let age = match seconds(AGE_ENV, get(AGE_ENV))? {
            None => DEFAULT_AGE,
            Some(s) if s < MIN_AGE.as_secs() => return Err(HousekeepingSettingsError::AgeTooShort(s)),
            Some(s) => Duration::from_secs(s),
        };
        Ok(Self { interval, age })
    }
}

/// Spawns the task: one run now (leftovers of a crash are collected at start), then one per interval.
pub fn spawn(live: Arc<super::reload::Live>, settings: HousekeepingSettings) {
    let Some(every) = settings.interval else {
        return;
    };
    tokio::spawn(async move {
        loop {
            match live.get().core.housekeep(settings.age).await {
                Ok(r) => tracing::info!(
                    backend_leftovers = r.backend_leftovers,
                    hidden_objects = r.hidden_objects,
                    errors = r.errors,
                    "housekeeping done"
                ),
                Err(e) => tracing::error!(error = %e, "housekeeping failed"),
            }
            tokio::time::sleep(every).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<HousekeepingSettings, HousekeepingSettingsError> {
        let map: std::collections::HashMap<String, String> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        HousekeepingSettings::from_env(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_an_hour_and_a_day() {
        assert_eq!(parse(&[]).unwrap(), HousekeepingSettings { interval: Some(DEFAULT_INTERVAL), age: DEFAULT_AGE });
    }

    #[test]
    fn zero_interval_turns_it_off_and_bad_values_are_refused() {
        assert_eq!(parse(&[(INTERVAL_ENV, "0")]).unwrap().interval, None);
        assert_eq!(parse(&[(AGE_ENV, "120")]).unwrap().age, Duration::from_secs(120));
        assert_eq!(parse(&[(AGE_ENV, "5")]), Err(HousekeepingSettingsError::AgeTooShort(5)));
        assert!(matches!(parse(&[(INTERVAL_ENV, "1h")]), Err(HousekeepingSettingsError::NotSeconds { .. })));
    }
}
