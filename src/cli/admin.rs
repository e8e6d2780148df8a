//! The operator's commands against a running gateway: `peers` (its admin port) and `notify`
//! (a risk notice to a peer, as this gateway).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use super::NoticeArgs;
use super::carrier::{print_json, refused};
use crate::client::ClientTls;
use crate::config::Config;
use crate::pb;

/// The running gateway's peers, from its admin port.
pub(super) async fn peers(config: &Path, json: bool) -> Result<ExitCode> {
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
pub(super) async fn notify(
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
    let requests: Vec<&str> = notice
        .requests
        .iter()
        .map(|r| r.reference.as_str())
        .collect();
    let requests = serde_json::json!(requests);
    match client.notify(notice.clone()).await {
        Ok(ack) => {
            print_json(&serde_json::json!({
                "notice_id": notice_id,
                "sequence": ack.sequence,
                "duplicate": ack.duplicate,
                "requests": requests,
            }));
            Ok(ExitCode::SUCCESS)
        }
        Err(status) => refused(&status),
    }
}

pub(super) fn parse_time(text: &str) -> Result<prost_types::Timestamp> {
    let time = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("{text:?} is not an RFC 3339 time"))?;
    Ok(prost_types::Timestamp {
        seconds: time.unix_timestamp(),
        nanos: i32::try_from(time.nanosecond()).unwrap_or(0),
    })
}

/// `notify`'s notice from its arguments; without an id, one from the clock. A referral's
/// requests are the `--request` references given (each about every target), or else one per
/// target, numbered from 1 (or one about the whole filing).
pub(super) fn notice(args: NoticeArgs) -> Result<pb::Notice> {
    let kind = pb::NoticeKind::from(args.kind);
    let targets = args
        .targets
        .iter()
        .map(|t| parse_target(t))
        .collect::<Result<Vec<_>>>()?;
    let referral = crate::store::risk::is_referral(kind);
    let request_type = if kind == pb::NoticeKind::ReferralScreening {
        "RFS"
    } else {
        "RFI"
    };
    let request = |reference: String, targets: Vec<pb::NoticeTarget>| pb::ReferralRequest {
        reference,
        request_type: request_type.to_owned(),
        recommended_methods: args.methods.clone(),
        targets,
        text: String::new(),
    };
    let requests = if !referral {
        if !args.requests.is_empty() || !args.methods.is_empty() {
            bail!("--request and --method are for referrals");
        }
        Vec::new()
    } else if !args.requests.is_empty() {
        args.requests
            .iter()
            .map(|r| request(r.clone(), Vec::new()))
            .collect()
    } else if targets.len() > 1 {
        targets
            .iter()
            .enumerate()
            .map(|(i, t)| request((i + 1).to_string(), vec![t.clone()]))
            .collect()
    } else {
        vec![request("1".into(), Vec::new())]
    };
    let control = if kind == pb::NoticeKind::Control {
        let Some(office) = args.office else {
            bail!("a control names the office that controls: --office CODE");
        };
        Some(pb::Control {
            office,
            place: args.place.unwrap_or_default(),
            scheduled_at: args.at.as_deref().map(parse_time).transpose()?,
        })
    } else {
        if args.office.is_some() || args.at.is_some() || args.place.is_some() {
            bail!("--office, --at and --place are for controls");
        }
        None
    };
    Ok(pb::Notice {
        notice_id: args.id.unwrap_or_else(|| {
            format!(
                "N-{}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros())
            )
        }),
        mrn: args.mrn,
        kind: kind as i32,
        text: args.text,
        deadline: args.deadline.as_deref().map(parse_time).transpose()?,
        targets,
        requests,
        control,
    })
}

/// A target as the command line writes it: `container:MSKU1234565`.
fn parse_target(text: &str) -> Result<pb::NoticeTarget> {
    let (kind, reference) = text
        .split_once(':')
        .with_context(|| format!("{text:?}: write a target as TYPE:REFERENCE"))?;
    let kind = match kind {
        "house-document" => pb::TargetType::HouseDocument,
        "container" => pb::TargetType::Container,
        "receptacle" => pb::TargetType::Receptacle,
        "goods-item" => pb::TargetType::GoodsItem,
        other => {
            bail!("{other:?}: a target is house-document, container, receptacle or goods-item")
        }
    };
    Ok(pb::NoticeTarget {
        r#type: kind as i32,
        reference: reference.to_owned(),
    })
}
