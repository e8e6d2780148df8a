//! The carrier's commands: `submit`, `amend`, `invalidate`, `arrive`, `status`,
//! `notifications` and `answer`; how answers and refusals are printed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use tonic::Code;
use tonic_types::StatusExt;

use super::ClientArgs;
use crate::client::{CarrierClient, ClientTls, Credentials};
use crate::config::Config;
use crate::pb::{self, Manifest};
use crate::{pki, telemetry};

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
pub(super) fn client_target(args: &ClientArgs) -> Result<(String, Credentials)> {
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

pub(super) async fn submit(file: &Path, args: &ClientArgs) -> Result<ExitCode> {
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

pub(super) async fn status(
    mrn: Option<String>,
    lrn: Option<String>,
    args: &ClientArgs,
) -> Result<ExitCode> {
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

/// `notifications [--after SEQ] [--follow]`: the carrier's notices as JSON lines. Following,
/// a stream the gateway ends (its connection aged out, or it restarted) is resumed after the
/// last notice printed, so none is missed or printed twice.
pub(super) async fn notifications(
    mut after: u64,
    follow: bool,
    args: &ClientArgs,
) -> Result<ExitCode> {
    let quiet = std::time::Duration::from_secs(1);
    let mut client = connect(args).await?;
    loop {
        let mut stream = match client.watch_notifications(after).await {
            Ok(stream) => stream,
            Err(status) if follow && transient(&status) => {
                tokio::time::sleep(quiet).await;
                continue;
            }
            Err(status) => return refused(&status),
        };
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
                Ok(Some(notification)) => {
                    after = notification.sequence;
                    println!("{}", pb::to_json(&notification));
                }
                Ok(None) if follow => break,
                Ok(None) => return Ok(ExitCode::SUCCESS),
                Err(status) if follow && transient(&status) => break,
                Err(status) => return refused(&status),
            }
        }
        tokio::time::sleep(quiet).await;
        if let Ok(fresh) = connect(args).await {
            client = fresh;
        }
    }
}

/// A failure of the connection rather than a refusal: worth trying again.
fn transient(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Cancelled | Code::Unknown | Code::DeadlineExceeded
    )
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
pub(super) fn refused(status: &tonic::Status) -> Result<ExitCode> {
    // A transport failure says why underneath (a refused handshake: "certificate revoked").
    let message = match std::error::Error::source(status) {
        Some(cause) => format!("{}: {}", status.message(), telemetry::one_line(cause)),
        None => status.message().to_owned(),
    };
    let mut out = serde_json::json!({
        "code": code_name(status.code()),
        "message": message,
    });
    if let Some(failure) = status.get_details_precondition_failure()
        && let Some(first) = failure.violations.first()
    {
        out["reason"] = first.r#type.clone().into();
    } else if crate::status::report_of(status).is_none()
        && let Some(bad_request) = status.get_details_bad_request()
        && let [only] = bad_request.field_violations.as_slice()
    {
        out["reason"] = only.reason.clone().into();
        out["field"] = only.field.clone().into();
    }
    if let Some(report) = crate::status::report_of(status) {
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

pub(super) fn print_json(value: &serde_json::Value) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: cannot print the answer: {e}"),
    }
}

/// `amend MRN FILE`: a new version of one of your filings.
pub(super) async fn amend(mrn: &str, file: &Path, args: &ClientArgs) -> Result<ExitCode> {
    let filing = read_filing(file)?;
    let mut connection = connect(args).await?;
    let answer = match filing {
        Filing::Xml(bytes) => connection.amend_xml(mrn, bytes).await,
        Filing::Manifest(manifest) => connection.amend(mrn, *manifest).await,
    };
    print_answer(answer.map(|r| pb::to_json(&r)))
}

/// `invalidate MRN --reason ...`.
pub(super) async fn invalidate(mrn: &str, reason: &str, args: &ClientArgs) -> Result<ExitCode> {
    let answer = connect(args).await?.invalidate(mrn, reason).await;
    print_answer(answer.map(|s| pb::to_json(&s)))
}

/// `arrive MRN... [--document D]... [--at T] [--office O] [--means M]`: one answer per filing;
/// exit 1 when any was refused.
pub(super) async fn arrive(
    mrns: Vec<String>,
    transport_documents: Vec<String>,
    facts: pb::ArrivalFacts,
    args: &ClientArgs,
) -> Result<ExitCode> {
    let notification = pb::ArrivalNotification {
        facts: Some(facts),
        mrns,
        transport_documents,
    };
    match connect(args).await?.register_arrival(notification).await {
        Ok(registration) => {
            print_json(&pb::to_json(&registration));
            let all = registration
                .results
                .iter()
                .all(|r| matches!(r.outcome, Some(pb::arrival_result::Outcome::Status(_))));
            Ok(if all {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Err(status) => refused(&status),
    }
}

/// The facts of an arrival from `arrive`'s options.
pub(super) fn arrival_facts(
    at: Option<&str>,
    office: Option<String>,
    means: Option<String>,
) -> Result<pb::ArrivalFacts> {
    Ok(pb::ArrivalFacts {
        arrived_at: at.map(super::admin::parse_time).transpose()?,
        office: office.unwrap_or_default(),
        means_of_transport: means.unwrap_or_default(),
    })
}

/// `answer`'s structured answer from its options (attachments read from their files).
pub(super) fn referral_answer(
    request: Option<String>,
    result: Option<String>,
    methods: Vec<String>,
    facility: Option<String>,
    attachments: &[std::path::PathBuf],
    text: String,
) -> Result<pb::ReferralAnswer> {
    let attachments = attachments
        .iter()
        .map(|path| {
            let media_type = match path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("pdf") => "application/pdf",
                Some("jpg" | "jpeg") => "image/jpeg",
                Some("png") => "image/png",
                Some("tif" | "tiff") => "image/tiff",
                Some("txt") => "text/plain",
                Some("xml") => "application/xml",
                _ => bail!(
                    "{}: attach a .pdf, .jpg, .png, .tif, .txt or .xml file",
                    path.display()
                ),
            };
            let content =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            Ok(pb::Attachment {
                filename: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                media_type: media_type.to_owned(),
                content,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(pb::ReferralAnswer {
        request_reference: request.unwrap_or_default(),
        result: result.unwrap_or_default(),
        methods,
        facility: facility.unwrap_or_default(),
        attachments,
        text,
    })
}

/// `answer MRN NOTICE_ID [--request R] [--result C] [--method M]... [--text T]`.
pub(super) async fn answer(
    mrn: &str,
    notice_id: &str,
    answer: pb::ReferralAnswer,
    args: &ClientArgs,
) -> Result<ExitCode> {
    let text = answer.text.clone();
    let answer = connect(args)
        .await?
        .answer(mrn, notice_id, &text, Some(answer))
        .await;
    print_answer(answer.map(|s| pb::to_json(&s)))
}
