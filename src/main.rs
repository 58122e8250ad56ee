//! The `blobseal` command line: parse arguments, load settings, run the app. Nothing else.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 invalid configuration (each problem printed as
//! `FILE:LINE:COL: message` on its own stderr line).
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use blobseal::config::{
    self, ConfigError, GeneratedAzureAccount, GeneratedCredentials, GeneratedS3Credentials, Settings,
};
use blobseal::ops::retire::retire;
use blobseal::ops::rewrap::rewrap;
use blobseal::ops::rotate::rotate;
use blobseal::ops::shred::{shred, ShredRequest};
use blobseal::ops::status::status;
use blobseal::ops::sweep::Shard as SweepShard;
use blobseal::ops::sweep::{sweep, SweepRequest};
use blobseal::ops::{Ops, OpsError};
use clap::{Parser, Subcommand};

/// blobseal: a transparent, encrypting S3 proxy.
#[derive(Debug, Parser)]
#[command(name = "blobseal", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy (the default when no command is given).
    Serve {
        /// YAML config file; without it, a single-tenant default under $BLOBSEAL_DATA_DIR
        /// (./blobseal-data) is used, with credentials generated on first start.
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Validate a config file and print a summary; exit 2 listing every problem if invalid.
    CheckConfig {
        /// Check everything but secrets: an unset `*_env` variable or a missing `*_file` is not an
        /// error (for a config repository's CI, where no secret exists). Nothing is contacted either way.
        #[arg(long)]
        offline: bool,
        /// The YAML config file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Manage a tenant's keys: status, rotate, rewrap, retire. Safe while servers run: they pick
    /// changes up within the key cache TTL.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Delete objects whose retention deadline has passed, with every version, delete marker and
    /// backup copy; locked ones are kept and reported. JSON lines on stdout (or --report), a summary on stderr.
    Sweep(SweepArgs),
    /// Copy every current object to its tenant's backup targets where the copy is missing or stale.
    Backup {
        /// Only this tenant (default: all).
        #[arg(long, value_name = "TENANT")]
        tenant: Option<String>,
        /// Only shard I of N (the sweep's stable split of the keys; each shard has its own checkpoint).
        #[arg(long, value_name = "I/N", value_parser = parse_shard)]
        shard: Option<SweepShard>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Decrypt one stored object to a file with no server running: the config's key material, the backend
    /// only read. Every byte is authenticated as on a GET; a failure leaves no file.
    Decrypt {
        /// The tenant (default: the config's only tenant).
        #[arg(long, value_name = "TENANT")]
        tenant: Option<String>,
        #[arg(long, value_name = "BUCKET")]
        bucket: String,
        #[arg(long, value_name = "KEY")]
        key: String,
        /// A version of a versioned bucket (default: the current one).
        #[arg(long, value_name = "VERSION")]
        version: Option<String>,
        /// Where the plaintext goes (must not exist).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Print the processor's record of processing activities (GDPR Art. 30(2)) generated from the config:
    /// processor and controllers, processing, where data, keys and backups are, transfers, retention,
    /// security measures, sub-processors. Contacts nothing.
    Records {
        /// `md` (default) or `json`.
        #[arg(long, value_name = "FORMAT", default_value = "md", value_parser = ["md", "json"])]
        format: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Check or export the tamper-evident audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Crypto-shred a tenant, or data subjects of a tenant: destroy their keys so that every copy of
    /// their objects, wherever it is, becomes unreadable. Irreversible; writes a receipt.
    Shred {
        #[arg(long, value_name = "TENANT")]
        tenant: String,
        /// A data subject to shred (repeatable); without it the whole tenant is shredded.
        #[arg(long, value_name = "SUBJECT")]
        subject: Vec<String>,
        /// Who asks, for the receipt (default: $USER@host).
        #[arg(long, value_name = "WHO")]
        by: Option<String>,
        /// Confirm: shredding cannot be undone.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify the trail (seals, hash chains, heads) of every tenant or one; exit 0 if intact, 1 naming the
    /// first broken document otherwise.
    Verify {
        #[arg(long, value_name = "TENANT")]
        tenant: Option<String>,
        /// Verify an exported bundle instead, offline (no config, no server, no secret).
        #[arg(long, value_name = "DIR")]
        bundle: Option<PathBuf>,
        /// With --bundle: the public key you trust (`ed25519:<base64>`) instead of the bundle's own.
        #[arg(long, value_name = "KEY")]
        public_key: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// What an actor touched in a window (Art. 33(3)(a)): the matching records as JSON lines, or with
    /// --summary the counts (records, distinct objects, buckets, distinct data subjects, by operation).
    Query {
        #[arg(long, value_name = "TENANT")]
        tenant: String,
        /// Only this actor (an access key id, `<account>/key|sas` on Azure, or a command's operator).
        #[arg(long, value_name = "ACTOR")]
        actor: Option<String>,
        /// Only this operation (e.g. GetObject, GetBlob, admin:shred).
        #[arg(long, value_name = "OP")]
        op: Option<String>,
        /// Records at or after this time (RFC 3339, UTC).
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// Records before this time (RFC 3339, UTC).
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        /// Print one JSON object of counts instead of the records.
        #[arg(long)]
        summary: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Write a tenant's records as JSON lines (verified on the way), or with --bundle an offline bundle.
    Export {
        #[arg(long, value_name = "TENANT")]
        tenant: String,
        /// Records at or after this time (RFC 3339, UTC).
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// Records before this time (RFC 3339, UTC).
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        /// Write the trail as stored, with its public key, into this (new or empty) directory.
        #[arg(long, value_name = "DIR")]
        bundle: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// Retention commands.
#[derive(Debug, clap::Args)]
struct SweepArgs {
    /// Only this tenant (default: all).
    #[arg(long, value_name = "TENANT")]
    tenant: Option<String>,
    /// Report what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Compare deadlines with this time (RFC 3339) instead of now.
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
    /// Write the JSON-lines report here (default: stdout).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// At most this many deletions per second (default: the config's sweeper setting).
    #[arg(long, value_name = "N")]
    max_deletes_per_second: Option<u32>,
    /// Sweep only shard I of N (0-based; a stable split of the keys, one lease per shard), so N
    /// processes share the sweep, e.g. a Kubernetes Indexed Job with `--shard $(JOB_COMPLETION_INDEX)/N`.
    /// Deadline-day keys are destroyed only by an unsharded sweep.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<SweepShard>,
    #[command(flatten)]
    config: ConfigArg,
}

fn parse_shard(text: &str) -> Result<SweepShard, String> {
    SweepShard::parse(text)
}

/// `--config FILE`, or the embedded default ($BLOBSEAL_DATA_DIR, ./blobseal-data).
#[derive(Debug, clap::Args)]
struct ConfigArg {
    /// YAML config file; without it, the embedded default under $BLOBSEAL_DATA_DIR (./blobseal-data).
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Show a tenant's root generations, tenant keys and data-subject key count.
    Status {
        #[arg(long, value_name = "TENANT")]
        tenant: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Make a new root generation and tenant key the ones used for new writes.
    Rotate {
        #[arg(long, value_name = "TENANT")]
        tenant: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Re-wrap every object's data key under the current tenant key (envelopes only; resumable).
    Rewrap {
        #[arg(long, value_name = "TENANT")]
        tenant: String,
        /// Only this bucket.
        #[arg(long, value_name = "BUCKET")]
        bucket: Option<String>,
        /// Stop after this many objects (run again to continue from the checkpoint).
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// Only shard I of N (the sweep's stable split of the keys; each shard has its own checkpoint).
        #[arg(long, value_name = "I/N", value_parser = parse_shard)]
        shard: Option<SweepShard>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Remove old tenant keys and destroy old root keys; refuses while any object still uses them.
    Retire {
        #[arg(long, value_name = "TENANT")]
        tenant: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

const EXIT_RUNTIME: u8 = 1;
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve { config: None }) {
        Command::CheckConfig { file, offline } => check_config(&file, offline),
        Command::Serve { config } => serve(config),
        Command::Keys { command } => keys(command),
        Command::Audit { command } => audit_command(command),
        Command::Records { format, config } => records_command(&format, config.config.as_deref()),
        Command::Decrypt { tenant, bucket, key, version, out, config } => run_ops(config.config, |ops| async move {
            let d = blobseal::ops::decrypt::decrypt(&ops, tenant.as_deref(), &bucket, &key, version.as_deref(), &out)
                .await?;
            eprintln!("{} byte(s) written to {} (SHA-256 {})", d.bytes, out.display(), d.sha256);
            // Reading personal data out of blobseal is recorded like any read.
            let by = blobseal::ops::operator(None);
            let tenant = tenant.or_else(|| ops.core.directory().tenants().next().map(|t| t.name.clone()));
            ops.audit_admin(tenant.as_deref(), "decrypt", &by, true, Some(d.sha256.as_bytes())).await
        }),
        Command::Sweep(args) => sweep_command(args),
        Command::Backup { tenant, shard, config } => run_ops(config.config, |ops| async move {
            let s = blobseal::ops::backup::backup(&ops, tenant.as_deref(), shard).await?;
            let line = format!(
                "backup: {} object(s) examined, {} copied, {} already up to date, {} failed{}",
                s.examined,
                s.copied,
                s.up_to_date,
                s.failed,
                if s.leased_elsewhere.is_empty() {
                    String::new()
                } else {
                    format!("; skipped (another process holds the lease): {}", s.leased_elsewhere.join(", "))
                }
            );
            println!("{line}");
            let by = blobseal::ops::operator(None);
            ops.audit_admin(tenant.as_deref(), "backup", &by, s.failed == 0, Some(line.as_bytes())).await?;
            if s.failed > 0 {
                return Err(OpsError::Refused(format!("{} backup copies failed (see the log)", s.failed)));
            }
            Ok(())
        }),
        Command::Shred { tenant, subject, by, yes, config } => {
            if !yes {
                eprintln!("shredding cannot be undone: pass --yes to confirm");
                return ExitCode::from(EXIT_CONFIG);
            }
            let by = blobseal::ops::operator(by.as_deref());
            let request = ShredRequest { tenant, subjects: subject, by, quiet: false };
            run_ops(config.config, |ops| async move {
                let receipt = match shred(&ops, &request).await {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ops.audit_admin(Some(&request.tenant), "shred", &request.by, false, None).await;
                        return Err(e);
                    }
                };
                let json = serde_json::to_string_pretty(&receipt).unwrap_or_default();
                ops.audit_admin(Some(&receipt.tenant), "shred", &request.by, true, Some(json.as_bytes())).await?;
                // The receipt is also in the key store: a closed stdout (`| head`) must not fail the shred.
                let _ = writeln!(std::io::stdout(), "{json}");
                eprintln!(
                    "shredded {} of tenant {}; receipt {} (replicas stop using the keys within {} s)",
                    if receipt.subjects.is_empty() {
                        "all keys".to_owned()
                    } else {
                        format!("{} subject(s)", receipt.subjects.len())
                    },
                    receipt.tenant,
                    receipt.receipt,
                    receipt.cache_ttl_seconds
                );
                Ok(())
            })
        }
    }
}

fn sweep_command(args: SweepArgs) -> ExitCode {
    let now = match args
        .now
        .as_deref()
        .map(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339))
    {
        None => time::OffsetDateTime::now_utc(),
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            eprintln!("--now must be an RFC 3339 time such as 2026-12-31T00:00:00Z: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let config = args.config.config.clone();
    run_ops(config, |ops| async move {
        let started = std::time::Instant::now();
        let request = SweepRequest {
            tenant: args.tenant.clone(),
            dry_run: args.dry_run,
            now,
            max_deletes_per_second: args.max_deletes_per_second.unwrap_or(ops.sweeper.max_deletes_per_second),
            holder: blobseal::ops::operator(None),
            stop: None,
            shard: args.shard,
        };
        let mut out: Box<dyn std::io::Write + Send> = match &args.report {
            Some(path) => Box::new(
                std::fs::File::create(path)
                    .map_err(|e| OpsError::Refused(format!("cannot create {}: {e}", path.display())))?,
            ),
            None => Box::new(std::io::stdout()),
        };
        let summary = sweep(&ops, &request, out.as_mut()).await?;
        let line = summary.line(started.elapsed().as_secs_f64());
        eprintln!("{line}");
        if !args.dry_run {
            let ok = summary.errors == 0;
            ops.audit_admin(args.tenant.as_deref(), "sweep", &request.holder, ok, Some(line.as_bytes())).await?;
        }
        if summary.errors > 0 {
            return Err(OpsError::Refused(format!("{} error(s) during the sweep (see the report)", summary.errors)));
        }
        Ok(())
    })
}

/// Logging at `warn` and the settings of a command that reads the config only.
fn command_settings(config_file: Option<&std::path::Path>) -> Result<Settings, ExitCode> {
    init_tracing_at("warn", config_file);
    load_settings(config_file)
}

fn records_command(format: &str, config_file: Option<&std::path::Path>) -> ExitCode {
    let settings = match command_settings(config_file) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default();
    let record = settings.records(&now);
    let text = if format == "json" {
        match serde_json::to_string_pretty(&record) {
            Ok(j) => j + "\n",
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_RUNTIME);
            }
        }
    } else {
        record.markdown()
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    ExitCode::SUCCESS
}

fn audit_command(command: AuditCommand) -> ExitCode {
    use blobseal::ops::audit as trail;
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let outcome: Result<bool, OpsError> = match command {
        AuditCommand::Verify { bundle: Some(dir), public_key, .. } => runtime.block_on(async {
            let (tenant, public) = trail::open_bundle(&dir, public_key.as_deref())?;
            let store = blobseal::core::audit::TrailStore::Dir(dir.clone());
            trail::verify_trail(&store, &tenant, &public, &mut std::io::stdout()).await
        }),
        AuditCommand::Verify { tenant, bundle: None, config, .. } => {
            let settings = match command_settings(config.config.as_deref()) {
                Ok(s) => s,
                Err(code) => return code,
            };
            runtime.block_on(async {
                let (stores, public) = audit_trails(&settings)?;
                let mut intact = true;
                let mut names: Vec<&String> =
                    stores.keys().filter(|t| tenant.as_ref().is_none_or(|x| x == *t)).collect();
                names.sort();
                if names.is_empty() {
                    return Err(OpsError::UnknownTenant(tenant.clone().unwrap_or_default()));
                }
                for t in names {
                    intact &= trail::verify_trail(&stores[t], t, &public, &mut std::io::stdout()).await?;
                }
                Ok(intact)
            })
        }
        AuditCommand::Query { tenant, actor, op, from, to, summary, config } => {
            let settings = match command_settings(config.config.as_deref()) {
                Ok(s) => s,
                Err(code) => return code,
            };
            runtime.block_on(async {
                let (store, public) = tenant_trail(&settings, &tenant)?;
                let store = &store;
                let filter = trail::QueryFilter { actor, op, from, to };
                let mut out = std::io::BufWriter::new(std::io::stdout());
                let s = trail::query(store, &tenant, &public, &filter, summary, &mut out).await?;
                let _ = std::io::Write::flush(&mut out);
                eprintln!(
                    "{} record(s): {} object(s) in {} bucket(s), {} data subject(s)",
                    s.records,
                    s.objects,
                    s.buckets.len(),
                    s.data_subjects
                );
                Ok(true)
            })
        }
        AuditCommand::Export { tenant, from, to, bundle, config } => {
            let settings = match command_settings(config.config.as_deref()) {
                Ok(s) => s,
                Err(code) => return code,
            };
            runtime.block_on(async {
                let (store, public) = tenant_trail(&settings, &tenant)?;
                let store = &store;
                match bundle {
                    Some(dir) => {
                        let m = trail::export_bundle(store, &tenant, &public, &dir).await?;
                        eprintln!(
                            "bundle of tenant {tenant} in {}: {} segment(s), {} head(s), key {} ({})",
                            dir.display(),
                            m.segments,
                            m.heads,
                            m.key_id,
                            m.public_key
                        );
                    }
                    None => {
                        let mut out = std::io::BufWriter::new(std::io::stdout());
                        let n =
                            trail::export_records(store, &tenant, &public, from.as_deref(), to.as_deref(), &mut out)
                                .await?;
                        let _ = std::io::Write::flush(&mut out);
                        eprintln!("{n} record(s) of tenant {tenant}");
                    }
                }
                Ok(true)
            })
        }
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_RUNTIME),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// One tenant's trail and the public key that verifies it.
fn tenant_trail(
    settings: &Settings,
    tenant: &str,
) -> Result<(blobseal::core::audit::TrailStore, blobseal::core::audit::key::PublicKey), OpsError> {
    let (mut stores, public) = audit_trails(settings)?;
    let store = stores.remove(tenant).ok_or_else(|| OpsError::UnknownTenant(tenant.to_owned()))?;
    Ok((store, public))
}

/// Each tenant's trail and its public key, from settings; an error if the config has no trail.
fn audit_trails(
    settings: &Settings,
) -> Result<(HashMap<String, blobseal::core::audit::TrailStore>, blobseal::core::audit::key::PublicKey), OpsError> {
    blobseal::app::audit_trails(settings)
        .map_err(|e| OpsError::Refused(e.to_string()))?
        .ok_or_else(|| OpsError::Refused("the config has no audit trail (`audit:`)".into()))
}

fn keys(command: KeysCommand) -> ExitCode {
    match command {
        KeysCommand::Status { tenant, config } => run_ops(config.config, |ops| async move {
            print!("{}", status(&ops, &tenant).await?);
            Ok(())
        }),
        KeysCommand::Rotate { tenant, config } => run_ops(config.config, |ops| async move {
            let r = rotate(&ops, &tenant).await?;
            let line = format!(
                "rotated tenant {tenant}: root generation {} ({}), new writes use {} (running servers within {} s); \
                 {} lifetime key(s) re-wrapped under the new root. Next: `blobseal keys rewrap --tenant {tenant}`, then \
                 `blobseal keys retire --tenant {tenant}`",
                r.root_gen,
                r.root_id,
                r.tenant_key,
                ops.keys().ttl().as_secs(),
                r.rewrapped_lifetime_keys
            );
            println!("{line}");
            ops.audit_admin(Some(&tenant), "rotate", &blobseal::ops::operator(None), true, Some(line.as_bytes())).await
        }),
        KeysCommand::Rewrap { tenant, bucket, limit, shard, config } => run_ops(config.config, |ops| async move {
            let started = std::time::Instant::now();
            let sum = rewrap(&ops, &tenant, bucket.as_deref(), limit, shard).await?;
            let line = sum.line(&tenant, started.elapsed().as_secs_f64());
            println!("{line}");
            let by = blobseal::ops::operator(None);
            ops.audit_admin(Some(&tenant), "rewrap", &by, sum.failed == 0, Some(line.as_bytes())).await?;
            if sum.failed > 0 {
                return Err(OpsError::Refused(format!(
                    "{} object(s) could not be rewrapped (see the log)",
                    sum.failed
                )));
            }
            Ok(())
        }),
        KeysCommand::Retire { tenant, config } => run_ops(config.config, |ops| async move {
            let r = retire(&ops, &tenant, false).await?;
            let detail = format!("removed {:?}; destroyed {:?}", r.removed_keys, r.destroyed_roots);
            let by = blobseal::ops::operator(None);
            ops.audit_admin(Some(&tenant), "retire", &by, true, Some(detail.as_bytes())).await?;
            if r.removed_keys.is_empty() && r.destroyed_roots.is_empty() {
                println!("tenant {tenant}: nothing to retire");
            } else {
                let roots: Vec<String> =
                    r.destroyed_roots.iter().map(|d| format!("{} ({})", d.root_id, d.detail)).collect();
                println!(
                    "retired tenant {tenant}: removed [{}], destroyed root keys [{}]",
                    r.removed_keys.join(", "),
                    roots.join(", ")
                );
            }
            Ok(())
        }),
    }
}

/// Loads settings (a file or the embedded default), builds the object service and runs `f` on a
/// runtime. Exit 0 on success, 1 on a failure or refusal, 2 on a config error.
fn run_ops<F, Fut>(config_file: Option<PathBuf>, f: F) -> ExitCode
where
    F: FnOnce(Ops) -> Fut,
    Fut: std::future::Future<Output = Result<(), OpsError>>,
{
    init_tracing_at("warn", config_file.as_deref());
    let settings = match load_settings(config_file.as_deref()) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let result = runtime.block_on(async move {
        let (core, auditor) =
            blobseal::app::build_core_audited(&settings).map_err(|e| OpsError::Refused(e.to_string()))?;
        let result = f(Ops::new(core).with_sweeper(settings.sweeper).with_auditor(auditor.clone())).await;
        if let Some(a) = auditor {
            a.flush().await;
        }
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// The real process environment; the only place blobseal reads it for configuration.
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn check_config(file: &std::path::Path, offline: bool) -> ExitCode {
    let checked =
        if offline { config::check_file_offline(file, &process_env) } else { config::load_file(file, &process_env) };
    match checked {
        Ok(settings) => {
            print!("{}", settings.summary());
            println!("{}", if offline { "OK (offline: secrets not checked)" } else { "OK" });
            ExitCode::SUCCESS
        }
        Err(err) => config_failure(&err),
    }
}

/// Settings from `config_file`, or the embedded default (printing credentials it generated, once).
/// On an invalid config, the problems are printed and the exit code returned.
fn load_settings(config_file: Option<&std::path::Path>) -> Result<Settings, ExitCode> {
    let loaded: Result<(Settings, Option<GeneratedCredentials>), ConfigError> = match config_file {
        Some(path) => config::load_file(path, &process_env).map(|s| (s, None)),
        None => config::embedded(&process_env),
    };
    let (settings, generated) = loaded.map_err(|err| {
        // Logging is set up by now: the problems go through it, in the configured format.
        for line in err.lines() {
            tracing::error!("{line}");
        }
        ExitCode::from(EXIT_CONFIG)
    })?;
    if let Some(creds) = &generated {
        print_generated(creds, &settings);
    }
    Ok(settings)
}

fn config_failure(err: &ConfigError) -> ExitCode {
    for line in err.lines() {
        eprintln!("{line}");
    }
    ExitCode::from(EXIT_CONFIG)
}

fn serve(config_file: Option<PathBuf>) -> ExitCode {
    init_tracing(config_file.as_deref());
    let settings = match load_settings(config_file.as_deref()) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    tracing::info!(source = %settings.source, "configuration loaded");

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the async runtime");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    match runtime.block_on(blobseal::app::serve(settings, config_file)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "blobseal stopped");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// Logs go to stderr, one compact line per event; `RUST_LOG` filters (default `info`), under the cap
/// of [`blobseal::app::logging`] (no secret, signature or subject id at any level).
fn init_tracing(config_file: Option<&std::path::Path>) {
    init_tracing_at("info", config_file);
}

/// Like [`init_tracing`] with another default level (the key commands log warnings only).
/// The format is the config's `log_format` (or `BLOBSEAL_LOG_FORMAT`), read before validation.
fn init_tracing_at(default: &str, config_file: Option<&std::path::Path>) {
    let format = blobseal::config::operations::early_log_format(config_file, &process_env);
    blobseal::app::logging::init(default, format);
}

/// Shown once, on the start that generated the credentials: they are not printed again
/// (later starts log only the access key id or account name and the file they are stored in).
fn print_generated(generated: &GeneratedCredentials, settings: &Settings) {
    if let Some(creds) = &generated.s3 {
        print_generated_s3(creds, settings);
    }
    if let (Some(account), Some(listen)) = (&generated.azure, settings.azure_listen) {
        print_generated_azure(account, listen);
    }
}

fn print_generated_s3(creds: &GeneratedS3Credentials, settings: &Settings) {
    let endpoint = format!("http://{}", settings.listen);
    println!(
        "\n==================== blobseal: new credentials ====================\n\
         access key id:     {id}\n\
         secret access key: {secret}\n\
         saved to:          {file} (mode 0600; shown only this once)\n\
         \n\
         Use them with any S3 client, for example:\n\
         \x20 export AWS_ACCESS_KEY_ID={id}\n\
         \x20 export AWS_SECRET_ACCESS_KEY='{secret}'\n\
         \x20 export AWS_DEFAULT_REGION=us-east-1\n\
         \x20 aws --endpoint-url {endpoint} s3 mb s3://my-bucket\n\
         ===================================================================\n",
        id = creds.access_key_id,
        secret = creds.secret_access_key.expose(),
        file = creds.file.display(),
    );
}

fn print_generated_azure(account: &GeneratedAzureAccount, listen: std::net::SocketAddr) {
    let (name, key) = (&account.name, account.key.expose());
    println!(
        "\n================== blobseal: new Azure account ====================\n\
         AccountName: {name}\n\
         AccountKey:  {key}\n\
         saved to:    {file} (mode 0600; shown only this once)\n\
         \n\
         Use them with any Azure Blob client (SharedKey), for example:\n\
         \x20 export AZURE_STORAGE_CONNECTION_STRING='DefaultEndpointsProtocol=http;AccountName={name};AccountKey={key};BlobEndpoint=http://{listen}/{name};'\n\
         \x20 az storage container create --name my-container\n\
         ===================================================================\n",
        file = account.file.display(),
    );
}
