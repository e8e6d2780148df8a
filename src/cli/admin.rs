//! The operator's commands against a running gateway: `peers` (its admin port) and `notify`
//! (a risk notice to a peer, as this gateway).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use super::NoticeKindArg;
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

pub(super) fn parse_time(text: &str) -> Result<prost_types::Timestamp> {
    let time = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("{text:?} is not an RFC 3339 time"))?;
    Ok(prost_types::Timestamp {
        seconds: time.unix_timestamp(),
        nanos: i32::try_from(time.nanosecond()).unwrap_or(0),
    })
}

/// `notify`'s notice from its arguments; without an id, one from the clock.
pub(super) fn notice(
    mrn: String,
    kind: NoticeKindArg,
    text: String,
    id: Option<String>,
    deadline: Option<&str>,
) -> Result<pb::Notice> {
    Ok(pb::Notice {
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
        deadline: deadline.map(parse_time).transpose()?,
    })
}
