//! The `aci-gateway` command line: `serve`, `pki init`, `submit`, `amend`, `invalidate`, `arrive`,
//! `status`, `notifications`, `answer`, `validate`, `rules`, `peers`, `notify`, `log
//! verify|tail`, `reindex`.
//!
//! Exit codes: 0 success (filing accepted), 1 refused by the gateway (violations, conflict,
//! permission), 2 usage, configuration or transport error, 64 invalid configuration at `serve`.
//!
//! This file holds the arguments and [`run`], which only dispatches; each group of commands has
//! its file: `serve.rs` (serve, demo), `carrier.rs` (a carrier's commands and how answers are
//! printed), `admin.rs` (peers, notify), `log.rs` (log verify|tail, reindex), `pki.rs`,
//! `bench.rs` (bench-fsync, load).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::{pb, telemetry};

mod admin;
mod bench;
mod carrier;
mod demo;
mod load;
mod log;
mod pki;
mod progress;
mod serve;
mod validate;

use self::serve::BenchSwitches;

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
    /// files every sample (one invalid, one late), A forwards to B, B's risk assessment (a
    /// container's do-not-load, a screening referral answered, a control) reaches the
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
    /// Validate filings (proto3 JSON, or XML for a .xml file) offline, with no server. One file:
    /// its every finding as JSON. Several, or folders (searched for .json and .xml): a table, or
    /// JSON lines with --json. Exit 0 all valid, 1 one invalid, 2 one unreadable.
    Validate {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// XML only: report the XML schema findings alone (to compare with other XSD processors).
        #[arg(long)]
        schema_only: bool,
        /// Several files: one JSON object per file and line, instead of a table.
        #[arg(long)]
        json: bool,
        /// Several files: how many are checked at once (default: the number of cores).
        #[arg(long)]
        jobs: Option<usize>,
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
    /// Register the arrival of the goods of your filings (one or several MRNs, or master
    /// transport documents), with the facts of the arrival: each is answered on its own.
    Arrive {
        #[arg(required_unless_present = "documents")]
        mrns: Vec<String>,
        /// A master transport document of one of your filings (repeatable).
        #[arg(long = "document")]
        documents: Vec<String>,
        /// When the goods arrived (RFC 3339; default: now).
        #[arg(long)]
        at: Option<String>,
        /// The actual customs office of first entry (e.g. NL000396).
        #[arg(long)]
        office: Option<String>,
        /// The active means of transport on arrival (IMO number, flight, plate).
        #[arg(long)]
        means: Option<String>,
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
    /// Answer a referral an administration sent about one of your filings: one request of it
    /// (--request, needed when it has several), with a text, or for screening the result, the
    /// methods used, the facility and attachments.
    Answer {
        mrn: String,
        notice_id: String,
        /// The request answered (its reference in the notice).
        #[arg(long)]
        request: Option<String>,
        /// Screening result (code list screening-results, CL726).
        #[arg(long)]
        result: Option<String>,
        /// A screening method used (code list screening-methods, CL724; repeatable).
        #[arg(long = "method")]
        methods: Vec<String>,
        /// The screening facility (UN/LOCODE).
        #[arg(long)]
        facility: Option<String>,
        /// A file to attach (PDF, JPEG, PNG, TIFF, text or XML; repeatable).
        #[arg(long = "attach")]
        attachments: Vec<PathBuf>,
        #[arg(long, default_value = "")]
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
        mode: load::Mode,
        /// Requests per second in total (open loop); without it, as fast as answers come.
        #[arg(long)]
        rate: Option<f64>,
        /// Seconds to run.
        #[arg(long)]
        duration: Option<f64>,
        /// Requests to send.
        #[arg(long)]
        count: Option<u64>,
        /// Status mode: how many records the gateway's log holds, all of them filings made this
        /// year (a gateway `load` filled); each request reads one of them at random. The MRNs'
        /// country is the config's.
        #[arg(long, required_if_eq("mode", "status"))]
        stored: Option<u64>,
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
        #[command(flatten)]
        notice: NoticeArgs,
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

/// What `notify` sends: the notice's kind, targets, requests, control and text.
#[derive(Debug, Args)]
struct NoticeArgs {
    /// The filing the notice is about.
    mrn: String,
    #[arg(long, value_enum)]
    kind: NoticeKindArg,
    /// What the notice is about: house-document:NUMBER, container:NUMBER, receptacle:ID or
    /// goods-item:CONSIGNMENT/ITEM (repeatable; none: the whole filing).
    #[arg(long = "target")]
    targets: Vec<String>,
    /// Referrals: a request's reference (repeatable; default: one request per target, or
    /// one for the whole filing).
    #[arg(long = "request")]
    requests: Vec<String>,
    /// Screening referrals: a recommended screening method (CL724; repeatable).
    #[arg(long = "method")]
    methods: Vec<String>,
    /// Controls: the customs office that controls.
    #[arg(long)]
    office: Option<String>,
    /// Controls: when the control is scheduled (RFC 3339).
    #[arg(long)]
    at: Option<String>,
    /// Controls: where.
    #[arg(long)]
    place: Option<String>,
    #[arg(long, default_value = "")]
    text: String,
    /// Our id for the notice (a retry with the same id is one notice); default: generated.
    #[arg(long)]
    id: Option<String>,
    /// For referrals: when the answer is due (RFC 3339).
    #[arg(long)]
    deadline: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum NoticeKindArg {
    AssessmentComplete,
    ReferralInformation,
    ReferralScreening,
    DoNotLoad,
    Control,
}

impl From<NoticeKindArg> for pb::NoticeKind {
    fn from(kind: NoticeKindArg) -> pb::NoticeKind {
        match kind {
            NoticeKindArg::AssessmentComplete => pb::NoticeKind::AssessmentComplete,
            NoticeKindArg::ReferralInformation => pb::NoticeKind::ReferralInformation,
            NoticeKindArg::ReferralScreening => pb::NoticeKind::ReferralScreening,
            NoticeKindArg::DoNotLoad => pb::NoticeKind::DoNotLoad,
            NoticeKindArg::Control => pb::NoticeKind::Control,
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

/// A reader that stops early (`aci-gateway validate DIR | head`) closes the pipe; the next
/// `println!` then fails with EPIPE and panics, printing a backtrace at the user. Rust ignores
/// SIGPIPE, and undoing that needs `unsafe`; so end the way a Unix tool killed by SIGPIPE ends:
/// quietly, with status 141 (128 + 13).
fn end_quietly_when_stdout_closes() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        report(info);
    }));
}

/// An error writing to stdout: a reader that went away ends the command as
/// [`end_quietly_when_stdout_closes`] does; any other is the command's error.
fn unless_stdout_closed(error: std::io::Error) -> anyhow::Error {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(141);
    }
    anyhow::Error::new(error).context("writing to stdout")
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    end_quietly_when_stdout_closes();
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

/// Runs one command: each is a call into the file of its group.
async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve {
            config,
            insecure_dev,
            ready_file,
            bench,
        } => serve::run(&config, bench.options(insecure_dev), ready_file).await,
        Command::Demo { dir } => serve::demo(dir).await,
        Command::Pki { command } => pki::run(command),
        Command::Submit { file, client } => carrier::submit(&file, &client).await,
        Command::Status { mrn, lrn, client } => carrier::status(mrn, lrn, &client).await,
        Command::Amend { mrn, file, client } => carrier::amend(&mrn, &file, &client).await,
        Command::Invalidate {
            mrn,
            reason,
            client,
        } => carrier::invalidate(&mrn, &reason, &client).await,
        Command::Arrive {
            mrns,
            documents,
            at,
            office,
            means,
            client,
        } => {
            let facts = carrier::arrival_facts(at.as_deref(), office, means)?;
            carrier::arrive(mrns, documents, facts, &client).await
        }
        Command::Validate {
            paths,
            config,
            schema_only,
            json,
            jobs,
        } => validate::run(&validate::Request {
            paths: &paths,
            config: &config,
            schema_only,
            json,
            jobs,
        }),
        Command::Log { command, config } => log::log(command, &config),
        Command::Notifications {
            after,
            follow,
            client,
        } => carrier::notifications(after, follow, &client).await,
        Command::Answer {
            mrn,
            notice_id,
            request,
            result,
            methods,
            facility,
            attachments,
            text,
            client,
        } => {
            let answer =
                carrier::referral_answer(request, result, methods, facility, &attachments, text)?;
            carrier::answer(&mrn, &notice_id, answer, &client).await
        }
        Command::Peers { config, json } => admin::peers(&config, json).await,
        Command::BenchFsync {
            dir,
            count,
            batch,
            prezeroed,
        } => bench::fsync(dir, count, batch, prezeroed).await,
        Command::Load {
            connections,
            concurrency,
            mode,
            rate,
            duration,
            count,
            stored,
            payloads,
            json,
            client,
        } => {
            let plan = bench::LoadArgs {
                connections,
                concurrency,
                mode,
                rate,
                duration,
                count,
                stored,
            };
            bench::load(plan, &payloads, json, &client).await
        }
        Command::Notify {
            peer,
            notice,
            endpoint,
            config,
        } => {
            let notice = admin::notice(notice)?;
            admin::notify(&config, &peer, endpoint, notice).await
        }
        Command::Rules => {
            print!("{}", crate::validate::rules::markdown());
            Ok(ExitCode::SUCCESS)
        }
        Command::Reindex { config } => log::reindex(&config),
    }
}
