//! The `aci-gateway` command line: `serve`, `pki init`, `submit`, `amend`, `invalidate`, `arrive`,
//! `status`, `notifications`, `answer`, `validate`, `rules`, `peers`, `notify`, `log
//! verify|tail`, `reindex`.
//!
//! Exit codes: 0 success (filing accepted), 1 refused by the gateway (violations, conflict,
//! permission), 2 usage, configuration or transport error, 64 invalid configuration at `serve`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use tonic::Code;

use crate::client::{CarrierClient, ClientTls, Credentials};
use crate::config::Config;
use crate::pb::{self, Manifest};
use crate::{ingest, pki, server, store, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "aci-gateway",
    version,
    about = "Advance cargo information gateway: carriers file manifests over mutual-TLS gRPC"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Serve plaintext and trust the caller's claimed identity (development only).
        #[arg(long)]
        insecure_dev: bool,
        /// Once listening, write the bound addresses to this file as JSON.
        #[arg(long)]
        ready_file: Option<PathBuf>,
        #[command(flatten)]
        bench: BenchSwitches,
    },
    /// Two administrations' gateways in one process, with a fresh development PKI: a carrier
    /// files every sample (one invalid, one late), A forwards to B, B's do-not-load reaches the
    /// carrier. Exits 0 when all of that happened.
    Demo {
        /// Keep the demo's files (PKI, configs, data) in this directory.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Development PKI.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// File a manifest (proto3 JSON, or XML for a .xml file) and print the receipt, or every
    /// violation.
    Submit {
        file: PathBuf,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Validate a filing (proto3 JSON, or XML for a .xml file) offline, with no server: every
    /// finding, exit 0 valid, 1 invalid, 2 unreadable.
    Validate {
        file: PathBuf,
        /// XML only: report the XML schema findings alone (to compare with other XSD processors).
        #[arg(long)]
        schema_only: bool,
        /// Rule settings ([validation]) are taken from this config when it exists.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// File a new version of one of your filings (JSON, or XML for a .xml file).
    Amend {
        mrn: String,
        file: PathBuf,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Withdraw one of your filings before arrival.
    Invalidate {
        mrn: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Record the arrival of the goods of one of your filings.
    Arrive {
        mrn: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show the status of one of your filings, with its history.
    Status {
        /// The MRN of the filing.
        #[arg(required_unless_present = "lrn", conflicts_with = "lrn")]
        mrn: Option<String>,
        /// Look the filing up by your LRN instead.
        #[arg(long)]
        lrn: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print the risk notices administrations sent about your filings (JSON lines), after a
    /// cursor; with --follow, keep printing new ones as they come.
    Notifications {
        /// Only notifications after this sequence (resume from the last one printed).
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Keep waiting for new notifications (otherwise stop once none came for a second).
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Answer a referral an administration sent about one of your filings.
    Answer {
        mrn: String,
        notice_id: String,
        #[arg(long)]
        text: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Drive load at a gateway's carrier API and report throughput, errors by code and latency
    /// percentiles (each filing from --payloads with a fresh LRN and document numbers).
    Load {
        /// TCP (HTTP/2) connections.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Requests in flight per connection.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, value_enum, default_value = "unary")]
        mode: crate::load::Mode,
        /// Requests per second in total (open loop); without it, as fast as answers come.
        #[arg(long)]
        rate: Option<f64>,
        /// Seconds to run.
        #[arg(long)]
        duration: Option<f64>,
        /// Requests to send.
        #[arg(long)]
        count: Option<u64>,
        /// A folder of filings (.json and .xml).
        #[arg(long, default_value = "schemas/examples")]
        payloads: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Benchmarks: the disk's raw rate of 4 KiB appends with one fdatasync per `batch` records,
    /// and the latency of each fdatasync.
    #[command(hide = true)]
    BenchFsync {
        /// A directory on the disk to measure (a scratch file is created and removed).
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 2000)]
        count: u64,
        #[arg(long, default_value_t = 1)]
        batch: u64,
        /// Overwrite a file first filled with zeros and synced, instead of appending: the file's
        /// size and blocks never change, so fdatasync has no metadata to write.
        #[arg(long)]
        prezeroed: bool,
    },
    /// Show each peer administration: connected, cursor, lag, retries, last error (from the
    /// running gateway's admin port).
    Peers {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Print the JSON as served on /peers.
        #[arg(long)]
        json: bool,
    },
    /// As this gateway's administration, send a risk notice about a filing a peer shared with
    /// us back to that peer.
    Notify {
        /// The peer gateway that shared the filing.
        #[arg(long)]
        peer: String,
        mrn: String,
        #[arg(long, value_enum)]
        kind: NoticeKindArg,
        #[arg(long, default_value = "")]
        text: String,
        /// Our id for the notice (a retry with the same id is one notice); default: generated.
        #[arg(long)]
        id: Option<String>,
        /// For referrals: when the answer is due (RFC 3339).
        #[arg(long)]
        deadline: Option<String>,
        /// The peer's API, when the config gives it no endpoint (https://host:port).
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Read the log: verify it, or print its records.
    Log {
        #[command(subcommand)]
        command: LogCommand,
        #[arg(long, default_value = DEFAULT_CONFIG, global = true)]
        config: PathBuf,
    },
    /// Print the table of validation rules (Markdown), as in schemas/RULES.md.
    Rules,
    /// Rebuild the index from the log (the gateway must be stopped).
    Reindex {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum NoticeKindArg {
    AssessmentComplete,
    ReferralInformation,
    ReferralScreening,
    DoNotLoad,
}

impl From<NoticeKindArg> for pb::NoticeKind {
    fn from(kind: NoticeKindArg) -> pb::NoticeKind {
        match kind {
            NoticeKindArg::AssessmentComplete => pb::NoticeKind::AssessmentComplete,
            NoticeKindArg::ReferralInformation => pb::NoticeKind::ReferralInformation,
            NoticeKindArg::ReferralScreening => pb::NoticeKind::ReferralScreening,
            NoticeKindArg::DoNotLoad => pb::NoticeKind::DoNotLoad,
        }
    }
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Walk every segment: frames, CRCs, record hashes and the hash chain. Exit 1 at the first
    /// bad record, naming it.
    Verify,
    /// Print records as JSON lines (without the original bytes), from a sequence on.
    Tail {
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// At most this many records.
        #[arg(long)]
        limit: Option<usize>,
    },
}

#[derive(Debug, Subcommand)]
enum PkiCommand {
    /// Create a development PKI (CAs, gateway and sample carrier certificates).
    Init {
        #[arg(default_value = "var/pki")]
        dir: PathBuf,
        #[arg(long, default_value = "GB-DEV-1")]
        gateway_id: String,
        /// Another name the gateway's certificate is valid for (repeatable), e.g. the host name
        /// peers and carriers use.
        #[arg(long = "host")]
        hosts: Vec<String>,
    },
    /// Issue a carrier certificate (valid 90 days) from the development carrier CA; prints
    /// its files and serial number.
    IssueCarrier {
        eori: String,
        #[arg(long, default_value = "var/pki")]
        dir: PathBuf,
    },
    /// Revoke a carrier certificate by serial number (hex): the CRL is written anew and a
    /// running gateway refuses the certificate from its next handshake on, without a restart.
    Revoke {
        serial: String,
        #[arg(long, default_value = "var/pki")]
        dir: PathBuf,
    },
}

/// Switches for benchmarks, in builds with the `testing` feature only (`benches/run.sh`).
#[cfg(feature = "testing")]
#[derive(Debug, Args)]
struct BenchSwitches {
    /// Benchmarks only: answer filings without validating or storing them.
    #[arg(long)]
    echo: bool,
    /// Benchmarks only: do not fdatasync the log (a crash loses acknowledged filings).
    #[arg(long)]
    unsafe_no_fsync: bool,
}

/// A production build has no benchmark switches.
#[cfg(not(feature = "testing"))]
#[derive(Debug, Args)]
struct BenchSwitches {}

impl BenchSwitches {
    fn options(self, insecure_dev: bool) -> server::Options {
        #[cfg(feature = "testing")]
        return server::Options {
            insecure_dev,
            echo: self.echo,
            unsafe_no_fsync: self.unsafe_no_fsync,
            disk: None,
        };
        #[cfg(not(feature = "testing"))]
        server::Options { insecure_dev }
    }
}

const DEFAULT_CONFIG: &str = "config/gateway.toml";

#[derive(Debug, Args)]
struct ClientArgs {
    /// Config whose carrier address and development PKI give the defaults below.
    #[arg(long, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Gateway address, e.g. https://127.0.0.1:7443.
    #[arg(long)]
    endpoint: Option<String>,
    /// CA certificate that issued the gateway's certificate.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Your client certificate (SAN URI urn:aci:carrier:<EORI>).
    #[arg(long)]
    cert: Option<PathBuf>,
    #[arg(long)]
    key: Option<PathBuf>,
    /// Talk plaintext to a `serve --insecure-dev` gateway as this EORI.
    #[arg(long, value_name = "EORI")]
    insecure_dev: Option<String>,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` and `demo` set logging up themselves (format, trace export).
    if !matches!(cli.command, Command::Serve { .. } | Command::Demo { .. }) {
        telemetry::init_logging();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", telemetry::one_line(e.as_ref()));
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve {
            config,
            insecure_dev,
            ready_file,
            bench,
        } => {
            let options = bench.options(insecure_dev);
            // Whatever the shell's umask, what the gateway writes (log, index, sled's own
            // files) is readable by its user only.
            rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
            serve(&config, options, ready_file).await
        }
        Command::Demo { dir } => {
            let telemetry = telemetry::init(
                &Default::default(),
                "demo",
                "warn",
                telemetry::LogTo::Stderr,
            )?;
            let outcome = crate::demo::run(dir).await;
            let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
            outcome?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Pki {
            command:
                PkiCommand::Init {
                    dir,
                    gateway_id,
                    hosts,
                },
        } => {
            pki::init(&dir, &gateway_id, &hosts)?;
            println!("development PKI created in {}", dir.display());
            println!(
                "the CA private keys are in {} (0700), apart from the gateway's runtime files; \
                 `pki issue-carrier` and `pki revoke` use them. Outside development, keep CA \
                 keys off the machines that run gateways",
                dir.join(pki::CA_DIR).display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Pki {
            command: PkiCommand::IssueCarrier { eori, dir },
        } => {
            if crate::ids::Eori::parse(&eori).is_none() {
                anyhow::bail!("{eori:?} is not an EORI number");
            }
            let issued = pki::issue_carrier(&dir, &eori)?;
            println!(
                "{}",
                serde_json::json!({
                    "eori": eori,
                    "cert": issued.cert.display().to_string(),
                    "key": issued.key.display().to_string(),
                    "serial": issued.serial,
                    "valid_days": pki::LEAF_DAYS,
                })
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Pki {
            command: PkiCommand::Revoke { serial, dir },
        } => {
            let count = pki::revoke(&dir, &serial)?;
            println!(
                "revoked {serial}; {} lists {count} revoked certificate(s)",
                dir.join(pki::CARRIER_CRL).display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Submit { file, client } => submit(&file, &client).await,
        Command::Status { mrn, lrn, client } => status(mrn, lrn, &client).await,
        Command::Amend { mrn, file, client } => {
            let filing = read_filing(&file)?;
            let mut connection = connect(&client).await?;
            let answer = match filing {
                Filing::Xml(bytes) => connection.amend_xml(&mrn, bytes).await,
                Filing::Manifest(manifest) => connection.amend(&mrn, *manifest).await,
            };
            print_answer(answer.map(|r| pb::to_json(&r)))
        }
        Command::Invalidate {
            mrn,
            reason,
            client,
        } => {
            let answer = connect(&client).await?.invalidate(&mrn, &reason).await;
            print_answer(answer.map(|s| pb::to_json(&s)))
        }
        Command::Arrive { mrn, client } => {
            let answer = connect(&client).await?.arrive(&mrn).await;
            print_answer(answer.map(|s| pb::to_json(&s)))
        }
        Command::Validate {
            file,
            config,
            schema_only,
        } => validate_offline(&file, &config, schema_only),
        Command::Log { command, config } => {
            let config = Config::load(&config)?;
            let log_dir = config.data_dir.join("log");
            match command {
                LogCommand::Verify => {
                    let mut count = 0u64;
                    let mut last_hash = String::new();
                    let verified = store::read_log(&log_dir, crate::ids::Seq(1), |record| {
                        count += 1;
                        last_hash = hex::encode(&record.hash);
                        Ok::<(), store::LogError>(())
                    });
                    match verified {
                        Ok(()) => {
                            println!("{count} records verified; chain head {last_hash}");
                            Ok(ExitCode::SUCCESS)
                        }
                        Err(e) => {
                            println!("after {count} good records: {e}");
                            Ok(ExitCode::from(1))
                        }
                    }
                }
                LogCommand::Tail { from, limit } => {
                    let mut printed = 0usize;
                    let limit = limit.unwrap_or(usize::MAX);
                    store::read_log(&log_dir, crate::ids::Seq(from), |mut record| {
                        if printed < limit {
                            let original_bytes = store::record::original_of(&record).len();
                            record.original.clear();
                            let mut json = pb::to_json(&record);
                            json["original_bytes"] = original_bytes.into();
                            println!("{json}");
                            printed += 1;
                        }
                        Ok::<(), store::LogError>(())
                    })?;
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        Command::Notifications {
            after,
            follow,
            client,
        } => notifications(after, follow, &client).await,
        Command::Answer {
            mrn,
            notice_id,
            text,
            client,
        } => {
            let answer = connect(&client)
                .await?
                .answer_referral(&mrn, &notice_id, &text)
                .await;
            print_answer(answer.map(|s| pb::to_json(&s)))
        }
        Command::Peers { config, json } => peers(&config, json).await,
        Command::BenchFsync {
            dir,
            count,
            batch,
            prezeroed,
        } => {
            let report =
                tokio::task::spawn_blocking(move || bench_fsync(&dir, count, batch, prezeroed))
                    .await??;
            println!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Load {
            connections,
            concurrency,
            mode,
            rate,
            duration,
            count,
            payloads,
            json,
            client,
        } => {
            let (endpoint, credentials) = client_target(&client)?;
            let plan = crate::load::Plan {
                endpoint,
                credentials,
                connections: connections.max(1),
                concurrency: concurrency.max(1),
                mode,
                rate,
                duration: duration.map(std::time::Duration::from_secs_f64),
                count,
            };
            let report = crate::load::run(&plan, crate::load::payloads(&payloads)?).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.text());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Notify {
            peer,
            mrn,
            kind,
            text,
            id,
            deadline,
            endpoint,
            config,
        } => {
            let notice = pb::Notice {
                notice_id: id.unwrap_or_else(|| {
                    format!(
                        "N-{}",
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_micros())
                    )
                }),
                mrn,
                kind: pb::NoticeKind::from(kind) as i32,
                text,
                deadline: deadline.as_deref().map(parse_time).transpose()?,
            };
            notify(&config, &peer, endpoint, notice).await
        }
        Command::Rules => {
            print!("{}", crate::validate::rules::markdown());
            Ok(ExitCode::SUCCESS)
        }
        Command::Reindex { config } => {
            let config = Config::load(&config)?;
            let records = store::reindex(&config.data_dir, config.store.segment_bytes)?;
            println!("index rebuilt from {records} log records");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve(
    config_path: &Path,
    options: server::Options,
    ready_file: Option<PathBuf>,
) -> Result<ExitCode> {
    let insecure_dev = options.insecure_dev;
    let config = match Config::load(config_path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(64));
        }
    };
    let telemetry = telemetry::init(
        &config.telemetry,
        &config.gateway_id,
        "info",
        telemetry::LogTo::Stdout,
    )?;
    let config_shown = config_path.display().to_string();
    let mut ready_error = None;
    let result = server::run(&config, options, shutdown_signal(), |gateway| {
        let scheme = if insecure_dev { "http" } else { "https" };
        let example = Path::new("schemas/examples/sea-f10.json");
        if example.exists() {
            let config_arg = if config_shown == DEFAULT_CONFIG {
                String::new()
            } else {
                format!(" --config {config_shown}")
            };
            tracing::info!(
                "ready: submit the sample filing with `cargo run --release -- submit {}{config_arg}`",
                example.display()
            );
        }
        if let Some(path) = &ready_file {
            let ready = serde_json::json!({
                "carrier": format!("{scheme}://{}", gateway.carrier_addr),
                "peer": gateway.peer_addr.to_string(),
                "admin": gateway.admin_addr.to_string(),
                "recovered_records": gateway.recovery.last_seq,
                "cut_bytes": gateway.recovery.cut.as_ref().map(|c| c.bytes),
                "acknowledged_lost": gateway.recovery.acknowledged_lost,
            });
            let tmp = path.with_extension("tmp");
            if let Err(e) = std::fs::write(&tmp, ready.to_string())
                .and_then(|()| std::fs::rename(&tmp, path))
            {
                ready_error = Some(e);
            }
        }
    })
    .await;
    // Flush the spans buffered (the exporter blocks while it sends them).
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    result?;
    if let Some(e) = ready_error {
        bail!("could not write the ready file: {e}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the gateway");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

async fn connect(args: &ClientArgs) -> Result<CarrierClient> {
    let (endpoint, credentials) = client_target(args)?;
    let client = CarrierClient::connect(&endpoint, &credentials).await?;
    // A caller's trace context (W3C), so the gateway's spans join its trace.
    Ok(match std::env::var("TRACEPARENT") {
        Ok(traceparent) => client.with_traceparent(&traceparent),
        Err(_) => client,
    })
}

/// The endpoint and credentials the client arguments (and the config's defaults) give.
fn client_target(args: &ClientArgs) -> Result<(String, Credentials)> {
    let config = if args.config.exists() {
        Some(Config::load(&args.config)?)
    } else {
        None
    };
    let dev_pki = config.as_ref().and_then(|c| c.tls.dev_pki.clone());
    let endpoint = match (&args.endpoint, &config) {
        (Some(endpoint), _) => endpoint.clone(),
        (None, Some(config)) => {
            let mut addr = config.carrier_api.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            let scheme = if args.insecure_dev.is_some() {
                "http"
            } else {
                "https"
            };
            format!("{scheme}://{addr}")
        }
        (None, None) => bail!("give --endpoint (no config at {})", args.config.display()),
    };
    let credentials = match &args.insecure_dev {
        Some(eori) => Credentials::InsecureDev { eori: eori.clone() },
        None => {
            let default = |given: &Option<PathBuf>, file: &str, what: &str| -> Result<PathBuf> {
                match (given, &dev_pki) {
                    (Some(path), _) => Ok(path.clone()),
                    (None, Some(dir)) => Ok(dir.join(file)),
                    (None, None) => bail!("give --{what} (the config has no development PKI)"),
                }
            };
            Credentials::Tls(ClientTls {
                ca: default(&args.ca, pki::ADMIN_CA_CERT, "ca")?,
                cert: default(&args.cert, pki::SAMPLE_CARRIER_CERT, "cert")?,
                key: default(&args.key, pki::SAMPLE_CARRIER_KEY, "key")?,
            })
        }
    };
    Ok((endpoint, credentials))
}

async fn submit(file: &Path, args: &ClientArgs) -> Result<ExitCode> {
    let filing = read_filing(file)?;
    let mut connection = connect(args).await?;
    let answer = match filing {
        Filing::Xml(bytes) => connection.submit_xml(bytes).await,
        Filing::Manifest(manifest) => connection.submit(*manifest).await,
    };
    print_answer(answer.map(|r| pb::to_json(&r)))
}

/// A filing file as the CLI sends it: XML bytes as they are, JSON read into a manifest.
enum Filing {
    Xml(Vec<u8>),
    Manifest(Box<Manifest>),
}

fn read_filing(file: &Path) -> Result<Filing> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    if is_xml(file) {
        return Ok(Filing::Xml(bytes));
    }
    let text =
        String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", file.display()))?;
    let manifest: Manifest =
        pb::from_json(&text).with_context(|| format!("{} is not a manifest", file.display()))?;
    Ok(Filing::Manifest(Box::new(manifest)))
}

fn is_xml(file: &Path) -> bool {
    file.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("xml"))
}

fn validate_offline(file: &Path, config: &Path, schema_only: bool) -> Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    if schema_only && !is_xml(file) {
        bail!("--schema-only is for XML files");
    }
    let settings = if config.exists() {
        Config::load(config)?.validation
    } else {
        crate::validate::rules::RuleSettings::default()
    };
    let validator = crate::validate::Validator::new(settings)?;
    let now = std::time::SystemTime::now();
    let limits = crate::validate::xsd::Limits::default();
    let report = if schema_only {
        validator.check_xml_schema(&bytes, &limits)
    } else if is_xml(file) {
        match validator.validate_xml(&bytes, &limits, now) {
            Ok(accepted) => {
                let mut report = crate::validate::Report::default();
                accepted.warnings.into_iter().for_each(|w| report.push(w));
                report
            }
            Err(report) => report,
        }
    } else {
        let text =
            String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", file.display()))?;
        let manifest: Manifest = pb::from_json(&text)
            .with_context(|| format!("{} is not a manifest", file.display()))?;
        validator.check(&manifest, now)
    };
    let valid = !report.has_errors();
    let mut out = serde_json::json!({ "valid": valid });
    out["violations"] = pb::to_json(&report.to_proto())["violations"].clone();
    out["truncated"] = report.truncated().into();
    print_json(&out);
    Ok(ExitCode::from(if valid { 0 } else { 1 }))
}

async fn status(mrn: Option<String>, lrn: Option<String>, args: &ClientArgs) -> Result<ExitCode> {
    let mut client = connect(args).await?;
    let answer = match (mrn, lrn) {
        (Some(mrn), _) => client.status_by_mrn(&mrn).await,
        (None, Some(lrn)) => client.status_by_lrn(&lrn).await,
        (None, None) => bail!("give an MRN or --lrn"),
    };
    match answer {
        Ok(status) => {
            print_json(&pb::to_json(&status));
            Ok(ExitCode::SUCCESS)
        }
        Err(status) => refused(&status),
    }
}

async fn notifications(after: u64, follow: bool, args: &ClientArgs) -> Result<ExitCode> {
    let mut stream = match connect(args).await?.watch_notifications(after).await {
        Ok(stream) => stream,
        Err(status) => return refused(&status),
    };
    let quiet = std::time::Duration::from_secs(1);
    loop {
        let next = if follow {
            stream.message().await
        } else {
            match tokio::time::timeout(quiet, stream.message()).await {
                Ok(next) => next,
                Err(_) => return Ok(ExitCode::SUCCESS),
            }
        };
        match next {
            Ok(Some(notification)) => println!("{}", pb::to_json(&notification)),
            Ok(None) => return Ok(ExitCode::SUCCESS),
            Err(status) => return refused(&status),
        }
    }
}

/// Appends `count` 4 KiB records to a scratch file with one fdatasync per `batch`: records/s
/// and fdatasync latency percentiles, as JSON.
fn bench_fsync(dir: &Path, count: u64, batch: u64, prezeroed: bool) -> Result<serde_json::Value> {
    use std::io::{Seek, Write};
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!(".aci-bench-fsync-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let record = vec![0x5a_u8; 4096];
    if prezeroed {
        let zeros = vec![0_u8; 1 << 20];
        for _ in 0..(count * record.len() as u64).div_ceil(zeros.len() as u64) {
            file.write_all(&zeros)?;
        }
        file.sync_all()?;
        file.rewind()?;
    }
    let mut latency = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 10_000_000, 3)?;
    let started = std::time::Instant::now();
    for i in 1..=count {
        file.write_all(&record)?;
        if i % batch.max(1) == 0 || i == count {
            let sync = std::time::Instant::now();
            file.sync_data()?;
            latency.record(
                u64::try_from(sync.elapsed().as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1),
            )?;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(serde_json::json!({
        "records": count,
        "batch": batch,
        "prezeroed": prezeroed,
        "records_per_second": count as f64 / seconds,
        "fdatasync_us": {
            "p50": latency.value_at_quantile(0.5),
            "p99": latency.value_at_quantile(0.99),
            "max": latency.max(),
        },
    }))
}

/// The running gateway's peers, from its admin port.
async fn peers(config: &Path, json: bool) -> Result<ExitCode> {
    let config = Config::load(config)?;
    let mut addr = config.admin_listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let body = crate::admin::get(addr, "/peers")
        .await
        .with_context(|| format!("is the gateway running? its admin port is {addr}"))?;
    let reports: Vec<crate::exchange::PeerReport> =
        serde_json::from_str(&body).context("the /peers answer")?;
    if json {
        print!("{body}");
        return Ok(ExitCode::SUCCESS);
    }
    if reports.is_empty() {
        println!("no peers configured");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<20} {:<5} {:<10} {:>10} {:>10} {:>8} {:>8} {:>10} {:>8}  LAST ERROR",
        "PEER", "MODE", "STATE", "CURSOR", "LAG", "LAG S", "RETRIES", "DELIVERED", "REFUSED"
    );
    for r in reports {
        println!(
            "{:<20} {:<5} {:<10} {:>10} {:>10} {:>8.1} {:>8} {:>10} {:>8}  {}",
            r.peer,
            r.mode,
            if r.connected { "connected" } else { "away" },
            r.cursor,
            r.lag_records,
            r.lag_seconds,
            r.retries,
            r.delivered,
            r.refused,
            r.last_error.unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Sends a notice to a peer as this gateway (its certificate, trusting the peer CA).
async fn notify(
    config: &Path,
    peer: &str,
    endpoint: Option<String>,
    notice: pb::Notice,
) -> Result<ExitCode> {
    let config = Config::load(config)?;
    let configured = config.peers.iter().find(|p| p.id == peer);
    let Some(endpoint) = endpoint.or_else(|| configured.and_then(|p| p.endpoint.clone())) else {
        bail!("{peer} has no endpoint in the config; give --endpoint https://host:port");
    };
    let files = ClientTls {
        ca: config.tls.peer_ca.clone(),
        cert: config.tls.server_cert.clone(),
        key: config.tls.server_key.clone(),
    };
    let mut client = crate::client::PeerClient::connect(&endpoint, peer, &files).await?;
    let notice_id = notice.notice_id.clone();
    match client.notify(notice).await {
        Ok(ack) => {
            print_json(&serde_json::json!({
                "notice_id": notice_id,
                "sequence": ack.sequence,
                "duplicate": ack.duplicate,
            }));
            Ok(ExitCode::SUCCESS)
        }
        Err(status) => refused(&status),
    }
}

fn parse_time(text: &str) -> Result<prost_types::Timestamp> {
    let time = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("{text:?} is not an RFC 3339 time"))?;
    Ok(prost_types::Timestamp {
        seconds: time.unix_timestamp(),
        nanos: i32::try_from(time.nanosecond()).unwrap_or(0),
    })
}

/// Prints an answer, or a refusal, as JSON.
fn print_answer(answer: Result<serde_json::Value, tonic::Status>) -> Result<ExitCode> {
    match answer {
        Ok(value) => {
            print_json(&value);
            Ok(ExitCode::SUCCESS)
        }
        Err(status) => refused(&status),
    }
}

/// Prints a refusal as JSON; exit 1 when the gateway refused the request itself, 2 otherwise.
fn refused(status: &tonic::Status) -> Result<ExitCode> {
    // A transport failure says why underneath (a refused handshake: "certificate revoked").
    let message = match std::error::Error::source(status) {
        Some(cause) => format!("{}: {}", status.message(), telemetry::one_line(cause)),
        None => status.message().to_owned(),
    };
    let mut out = serde_json::json!({
        "code": code_name(status.code()),
        "message": message,
    });
    if let Some(report) = ingest::status::report_of(status) {
        out["violations"] = pb::to_json(&report)["violations"].clone();
        out["truncated"] = report.truncated.into();
        out["omitted"] = report.omitted.into();
    }
    print_json(&out);
    let refused_by_gateway = matches!(
        status.code(),
        Code::InvalidArgument
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::ResourceExhausted
    );
    Ok(ExitCode::from(if refused_by_gateway { 1 } else { 2 }))
}

/// The canonical name of a gRPC code, as in the gRPC specification (`INVALID_ARGUMENT`).
fn code_name(code: Code) -> String {
    let camel = format!("{code:?}");
    let mut name = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

fn print_json(value: &serde_json::Value) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: cannot print the answer: {e}"),
    }
}
