//! The `blobseal` command line: parse arguments, load settings, run the app. Nothing else.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 invalid configuration (each problem printed as
//! `FILE:LINE:COL: message` on its own stderr line).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use blobseal::config::{self, ConfigError, GeneratedCredentials, Settings};
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
        /// The YAML config file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

const EXIT_RUNTIME: u8 = 1;
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve { config: None }) {
        Command::CheckConfig { file } => check_config(&file),
        Command::Serve { config } => serve(config),
    }
}

/// The real process environment; the only place blobseal reads it for configuration.
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match config::load_file(file, &process_env) {
        Ok(settings) => {
            print!("{}", settings.summary());
            println!("OK");
            ExitCode::SUCCESS
        }
        Err(err) => config_failure(&err),
    }
}

fn config_failure(err: &ConfigError) -> ExitCode {
    for line in err.lines() {
        eprintln!("{line}");
    }
    ExitCode::from(EXIT_CONFIG)
}

fn serve(config_file: Option<PathBuf>) -> ExitCode {
    init_tracing();
    let loaded: Result<(Settings, Option<GeneratedCredentials>), ConfigError> = match &config_file {
        Some(path) => config::load_file(path, &process_env).map(|s| (s, None)),
        None => config::embedded(&process_env),
    };
    let (settings, generated) = match loaded {
        Ok(loaded) => loaded,
        Err(err) => return config_failure(&err),
    };
    if let Some(creds) = &generated {
        print_generated(creds, &settings);
    }
    tracing::info!(source = %settings.source, "configuration loaded");

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the async runtime");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    match runtime.block_on(blobseal::app::serve(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "blobseal stopped");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// Logs go to stderr, one compact line per event; `RUST_LOG` filters (default `info`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: escape codes in a log file or journal are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).compact().init();
}

/// Shown once, on the start that generated the credentials: they are not printed again
/// (later starts log only the access key id and the file they are stored in).
fn print_generated(creds: &GeneratedCredentials, settings: &Settings) {
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
