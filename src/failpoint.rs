//! Crash points for tests: `hit("name")` aborts the process (as `kill -9` would, with no unwinding,
//! no destructors, no flushing) when the environment variable `BLOBSEAL_FAILPOINT` names that point.
//!
//! Only debug builds look at the variable (the integration tests run the debug binary); in release
//! builds `hit` compiles to nothing, so a stray variable in production cannot crash a server.

/// The environment variable naming the one crash point that aborts.
pub const ENV: &str = "BLOBSEAL_FAILPOINT";

/// Aborts the process if `BLOBSEAL_FAILPOINT` is `name` (debug builds only).
#[cfg(debug_assertions)]
pub fn hit(name: &str) {
    // Unit tests crash one task, not the test binary: the point panics inside the future armed by
    // `crash_at`, which unwinds it with nothing after the point run (as after a kill).
    #[cfg(test)]
    if ARMED.try_with(|armed| *armed == name).unwrap_or(false) {
        panic!("failpoint {name}");
    }
    if armed(std::env::var(ENV).ok().as_deref(), name) {
        tracing::error!(failpoint = name, "failpoint hit: aborting");
        std::process::abort();
    }
}

/// Release builds: no crash points.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn hit(_name: &str) {}

/// Whether the configured value arms point `name` (pure, so it is testable without aborting).
#[cfg_attr(not(debug_assertions), allow(dead_code))]
fn armed(configured: Option<&str>, name: &str) -> bool {
    configured.is_some_and(|v| !v.is_empty() && v == name)
}

#[cfg(test)]
tokio::task_local! {
    static ARMED: &'static str;
}

/// Runs `fut` with point `name` armed (unit tests): `Err(())` if it crashed there.
#[cfg(test)]
pub async fn crash_at<F: std::future::Future>(name: &'static str, fut: F) -> Result<F::Output, ()> {
    use futures::FutureExt as _;
    std::panic::AssertUnwindSafe(ARMED.scope(name, fut)).catch_unwind().await.map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::armed;

    #[test]
    fn only_the_named_point_is_armed() {
        assert!(armed(Some("fs.complete.after-rename"), "fs.complete.after-rename"));
        assert!(!armed(Some("fs.complete.after-rename"), "core.complete.after-copy"));
        assert!(!armed(None, "x"));
        assert!(!armed(Some(""), ""));
    }
}
