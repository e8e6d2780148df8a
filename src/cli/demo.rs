//! `aci-gateway demo`: two administrations' gateways in one process, A (GB) routing every
//! filing to B (NL), with a fresh development PKI in a temporary directory. A carrier files the
//! sample of every mode (one invalid, one late); the demo shows the receipts, the violations,
//! the forwarding, B's risk assessment (an item-level do-not-load, a screening referral answered
//! with a result, a control that refuses an amendment), and where the
//! traces and metrics are. Exits 0 when all of that happened.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail, ensure};
use sha2::Digest;

use crate::client::{CarrierClient, ClientTls, Credentials, PeerClient};
use crate::config::Config;
use crate::pb::{self, Manifest, Notice, NoticeKind};
use crate::pki::{self, Authority, Validity};
use crate::server::{Gateway, Options};

const A: &str = "GB-DEMO-A";
const B: &str = "NL-DEMO-B";
/// How long the demo waits for forwarding and the notice.
const PATIENCE: Duration = Duration::from_secs(30);

/// The samples, one per mode, as shipped in `schemas/examples/`.
const SAMPLES: [(&str, &str); 7] = [
    ("sea", include_str!("../../schemas/examples/sea-f10.json")),
    ("air", include_str!("../../schemas/examples/air-f23.json")),
    ("road", include_str!("../../schemas/examples/road-f50.json")),
    ("rail", include_str!("../../schemas/examples/rail-f51.json")),
    (
        "postal",
        include_str!("../../schemas/examples/postal-f45.json"),
    ),
    (
        "express",
        include_str!("../../schemas/examples/express-f30.json"),
    ),
    (
        "inland",
        include_str!("../../schemas/examples/inland-f10.json"),
    ),
];
const INVALID: &str = include_str!("../../schemas/examples/invalid/sea-f10.json");

/// Runs the demo in `dir` (a new temporary directory when `None`, removed afterwards).
pub async fn run(dir: Option<PathBuf>) -> Result<()> {
    let temporary = dir.is_none();
    let dir = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("aci-gateway-demo-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let outcome = demo(&dir).await;
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("\nfiles kept in {}", dir.display());
    }
    outcome
}

async fn demo(dir: &Path) -> Result<()> {
    println!("aci-gateway demo: administration {A} routes every filing to {B}\n");
    let carrier_files = write_pki(dir)?;
    let b = Gateway::start(&config(dir, B, None)?, Options::default()).await?;
    let b_endpoint = format!("https://{}", b.peer_addr);
    let a = Gateway::start(&config(dir, A, Some(&b_endpoint))?, Options::default()).await?;
    println!(
        "started {A}: carriers https://{}, peers https://{}, admin http://{}",
        a.carrier_addr, a.peer_addr, a.admin_addr
    );
    println!(
        "started {B}: peers {b_endpoint}, admin http://{}\n",
        b.admin_addr
    );
    let shown = show(dir, &a, &b, &carrier_files).await;
    a.stop().await?;
    b.stop().await?;
    shown
}

async fn show(dir: &Path, a: &Gateway, b: &Gateway, carrier: &ClientTls) -> Result<()> {
    let run = Run {
        endpoint: format!("https://{}", a.carrier_addr),
        credentials: Credentials::Tls(carrier.clone()),
        id: trace_id("run"),
    };
    let sea_mrn = run.file_every_mode().await?;
    let mut client = CarrierClient::connect(&run.endpoint, &run.credentials).await?;
    run.file_invalid(&mut client).await?;
    run.file_late(&mut client).await?;
    forwarding(a, b, &mut client, &sea_mrn).await?;
    run.risk(dir, a, &mut client, &sea_mrn).await?;
    where_to_look(a);
    println!("\ndemo complete");
    Ok(())
}

/// One run of the demo: where the carrier files, as whom, and the run's id (in LRNs, traces).
struct Run {
    endpoint: String,
    credentials: Credentials,
    id: String,
}

impl Run {
    /// Files the sample of every mode; the sea filing's MRN.
    async fn file_every_mode(&self) -> Result<String> {
        println!("1. A carrier files the sample of every mode (each call carries a W3C trace id):");
        let mut sea_mrn = String::new();
        for (mode, json) in SAMPLES {
            let manifest = sample(
                json,
                &format!("DEMO-{}-{}", mode.to_uppercase(), &self.id[..6]),
            )?;
            let trace = trace_id(mode);
            let receipt = CarrierClient::connect(&self.endpoint, &self.credentials)
                .await?
                .with_traceparent(&format!("00-{trace}-{}-01", &trace_id("span")[..16]))
                .submit(manifest)
                .await
                .with_context(|| format!("the {mode} sample was refused"))?;
            println!(
                "   {mode:<8} accepted  MRN {}  sequence {:>2}  trace {trace}",
                receipt.mrn, receipt.sequence
            );
            if mode == "sea" {
                sea_mrn = receipt.mrn.clone();
            }
        }
        Ok(sea_mrn)
    }

    async fn file_invalid(&self, client: &mut CarrierClient) -> Result<()> {
        println!("\n2. An invalid filing gets every violation at once:");
        let invalid = sample(INVALID, &format!("DEMO-INVALID-{}", &self.id[..6]))?;
        let status = match client.submit(invalid).await {
            Ok(receipt) => bail!("the invalid sample was accepted: {}", receipt.mrn),
            Err(status) => status,
        };
        let report = crate::status::report_of(&status).unwrap_or_default();
        println!(
            "   refused ({:?}) with {} violations:",
            status.code(),
            report.violations.len()
        );
        for violation in &report.violations {
            println!(
                "   - [{}] {} {}: {}",
                violation.code, violation.rule, violation.path, violation.message
            );
        }
        ensure!(!report.violations.is_empty(), "no violations reported");
        Ok(())
    }

    async fn file_late(&self, client: &mut CarrierClient) -> Result<()> {
        println!("\n3. A late filing is accepted with a warning:");
        let mut late = sample(SAMPLES[0].1, &format!("DEMO-LATE-{}", &self.id[..6]))?;
        let soon = SystemTime::now() + Duration::from_secs(2 * 3600);
        if let Some(itinerary) = late.itinerary.as_mut() {
            itinerary.estimated_departure = Some(soon.into());
            itinerary.estimated_arrival = Some((soon + Duration::from_secs(20 * 86_400)).into());
        }
        let receipt = client.submit(late).await.context("the late filing")?;
        ensure!(
            !receipt.warnings.is_empty(),
            "the late filing has no warning"
        );
        for warning in &receipt.warnings {
            println!(
                "   MRN {}: warning [{}] {}",
                receipt.mrn, warning.rule, warning.message
            );
        }
        Ok(())
    }

    /// B's risk assessment of the sea filing: a do-not-load on its container (the carrier sees
    /// which), a screening referral the carrier answers with a result, then a control, after
    /// which the carrier's amendment is refused.
    async fn risk(
        &self,
        dir: &Path,
        a: &Gateway,
        client: &mut CarrierClient,
        sea_mrn: &str,
    ) -> Result<()> {
        let manifest = sample(SAMPLES[0].1, &format!("DEMO-SEA-{}", &self.id[..6]))?;
        let container = manifest
            .transport_equipment
            .first()
            .map(|e| e.container_number.clone())
            .context("the sea sample has a container")?;
        println!("\n5. {B} sends do-not-load for container {container} of {sea_mrn}:");
        let mut notifications = client.watch_notifications(0).await?;
        let as_b = ClientTls {
            ca: dir.join("pki").join(pki::ADMIN_CA_CERT),
            cert: dir.join("pki").join(format!("{B}.pem")),
            key: dir.join("pki").join(format!("{B}.key")),
        };
        let mut b = PeerClient::connect(&format!("https://{}", a.peer_addr), A, &as_b).await?;
        let target = pb::NoticeTarget {
            r#type: pb::TargetType::Container as i32,
            reference: container.clone(),
        };
        let notice = |suffix: &str, kind: NoticeKind, text: &str| Notice {
            notice_id: format!("{B}-{suffix}-{}", &self.id[..6]),
            mrn: sea_mrn.to_owned(),
            kind: kind as i32,
            text: text.to_owned(),
            targets: vec![target.clone()],
            ..Notice::default()
        };
        let ack = b
            .notify(notice(
                "DNL",
                NoticeKind::DoNotLoad,
                "high-risk consignment: do not load before inspection",
            ))
            .await?;
        println!("   {A} stored the notice at sequence {}", ack.sequence);
        let notification = tokio::time::timeout(PATIENCE, notifications.message())
            .await
            .context("no notification in time")??
            .context("the notification stream ended")?;
        println!(
            "   carrier's stream: {} from {} about {} {}: {}",
            notification.kind().as_str_name(),
            notification.administration,
            notification.mrn,
            notification
                .targets
                .iter()
                .map(crate::store::risk::target_label)
                .collect::<Vec<_>>()
                .join(", "),
            notification.text
        );
        print_items(&client.status_by_mrn(sea_mrn).await?);

        println!(
            "\n6. {B} asks for high-risk cargo screening; the carrier answers with the result:"
        );
        let referral = Notice {
            requests: vec![pb::ReferralRequest {
                reference: "1".into(),
                request_type: "RFS".into(),
                recommended_methods: vec!["XRY".into(), "EDD".into()],
                ..pb::ReferralRequest::default()
            }],
            deadline: Some(prost_types::Timestamp::from(
                SystemTime::now() + Duration::from_secs(3600),
            )),
            ..notice(
                "RFS",
                NoticeKind::ReferralScreening,
                "screen before loading",
            )
        };
        let referral_id = referral.notice_id.clone();
        b.notify(referral).await?;
        let answered = client
            .answer(
                sea_mrn,
                &referral_id,
                "",
                Some(pb::ReferralAnswer {
                    request_reference: "1".into(),
                    result: "1".into(),
                    methods: vec!["XRY".into(), "EDD".into()],
                    facility: "CNSHA".into(),
                    text: "screened at the origin hub".into(),
                    ..pb::ReferralAnswer::default()
                }),
            )
            .await?;
        print_items(&answered);
        b.notify(notice(
            "AC",
            NoticeKind::AssessmentComplete,
            "screening result accepted",
        ))
        .await?;
        println!("   {B}'s assessment complete on {container} lifts its do-not-load:");
        print_items(&client.status_by_mrn(sea_mrn).await?);

        println!("\n7. {B} announces a control; from then on the filing may not be amended:");
        b.notify(Notice {
            control: Some(pb::Control {
                office: "NL000396".into(),
                place: "NLRTM".into(),
                scheduled_at: None,
            }),
            ..notice("CTL", NoticeKind::Control, "")
        })
        .await?;
        let mut amended = manifest;
        if let Some(item) = amended
            .consignments
            .first_mut()
            .and_then(|c| c.goods_items.first_mut())
        {
            item.description.push_str(" (amended)");
        }
        let refused = client.amend(sea_mrn, amended).await;
        wait_forwarded(a).await?;
        println!("   {B} received the carrier's answer and every record of A");
        match refused {
            Ok(_) => bail!("an amendment under control was accepted"),
            Err(status) => {
                let reason = tonic_types::StatusExt::get_details_precondition_failure(&status)
                    .and_then(|f| f.violations.first().map(|v| v.r#type.clone()))
                    .unwrap_or_default();
                ensure!(
                    reason == "LIFECYCLE_UNDER_CONTROL",
                    "the amendment was refused otherwise: {status:?}"
                );
                println!("   amend refused: {reason}: {}", status.message());
            }
        }
        Ok(())
    }
}

/// Waits until A forwarded everything durable to its peer.
async fn wait_forwarded(a: &Gateway) -> Result<crate::exchange::PeerReport> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let durable = a.store().stats().durable_seq.load(Ordering::Acquire);
        let report = a
            .exchange()
            .reports()
            .into_iter()
            .next()
            .context("A has no peer")?;
        if report.cursor >= durable {
            return Ok(report);
        }
        ensure!(
            Instant::now() < deadline,
            "forwarding did not finish: {report:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Prints a filing's per-item risk state.
fn print_items(status: &pb::FilingStatus) {
    for item in &status.items {
        let what = item.target.as_ref().map_or_else(
            || "the whole filing".to_owned(),
            crate::store::risk::target_label,
        );
        let states: Vec<&str> = item.states().map(|s| s.as_str_name()).collect();
        println!("   status: {what}: {}", states.join(", "));
    }
}

/// Waits until A forwarded everything to B, and shows B's progress and a filing's deliveries.
async fn forwarding(
    a: &Gateway,
    b: &Gateway,
    client: &mut CarrierClient,
    sea_mrn: &str,
) -> Result<()> {
    println!("\n4. A forwards every record to {B} (mutual TLS, acknowledged once durable):");
    let report = wait_forwarded(a).await?;
    println!(
        "   {B}: connected {}, cursor {}, lag {} records, {} delivered, {} refused",
        report.connected, report.cursor, report.lag_records, report.delivered, report.refused
    );
    println!(
        "   {B}'s log now holds {} received records",
        b.store().stats().durable_seq.load(Ordering::Acquire)
    );
    let status = client.status_by_mrn(sea_mrn).await?;
    for delivery in &status.deliveries {
        println!(
            "   status of {sea_mrn}: {} {:?}",
            delivery.administration,
            delivery.state()
        );
    }
    Ok(())
}

fn where_to_look(a: &Gateway) {
    println!("\n8. Where to look:");
    if crate::telemetry::exporting() {
        println!("   traces were exported over OTLP: look up the trace ids above in your back end");
    } else {
        println!(
            "   traces: run with OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 and a collector \
             (deploy/docker-compose.yml brings Jaeger), then look up the trace ids above; each \
             shows the carrier's call, A's stages, the forward and B's receipt"
        );
    }
    println!(
        "   metrics: GET /metrics on the admin port (here http://{}), peers: GET /peers",
        a.admin_addr
    );
    println!("   the same with real processes: aci-gateway serve, submit, status, peers, notify");
}

/// A sample with its own LRN and transport document numbers, dated from now so that it is on
/// time whatever the day.
fn sample(json: &str, lrn: &str) -> Result<Manifest> {
    let mut manifest: Manifest = pb::from_json(json).context("a sample filing")?;
    manifest.lrn = lrn.to_owned();
    for (i, consignment) in manifest.consignments.iter_mut().enumerate() {
        if let Some(document) = consignment.transport_document.as_mut() {
            document.number = format!("{lrn}-{i}");
        }
    }
    if let Some(itinerary) = manifest.itinerary.as_mut() {
        let departure = SystemTime::now() + Duration::from_secs(3 * 86_400);
        let voyage = match (&itinerary.estimated_departure, &itinerary.estimated_arrival) {
            (Some(d), Some(a)) => {
                Duration::from_secs(u64::try_from(a.seconds - d.seconds).unwrap_or(86_400))
            }
            _ => Duration::from_secs(86_400),
        };
        if itinerary.estimated_departure.is_some() {
            itinerary.estimated_departure = Some(departure.into());
        }
        itinerary.estimated_arrival = Some((departure + voyage).into());
    }
    Ok(manifest)
}

/// 32 hex digits, different on every call.
fn trace_id(salt: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let digest = sha2::Sha256::digest(format!("{salt}/{}/{nanos}/{n}", std::process::id()));
    hex::encode(&digest[..16])
}

/// One network's PKI: the carrier and administrations CAs, both gateways' certificates, and
/// the sample carrier's. Returns the carrier's files.
fn write_pki(dir: &Path) -> Result<ClientTls> {
    let pki_dir = dir.join("pki");
    std::fs::create_dir_all(&pki_dir)?;
    let carrier_ca = Authority::new("aci-gateway demo carrier CA")?;
    let admin_ca = Authority::new("aci-gateway demo administrations CA")?;
    let write = |name: &str, text: &str| {
        pki::write_file(&pki_dir.join(name), text.as_bytes(), name.ends_with(".key"))
    };
    write(pki::CARRIER_CA_CERT, &carrier_ca.cert_pem())?;
    write(pki::ADMIN_CA_CERT, &admin_ca.cert_pem())?;
    for id in [A, B] {
        let issued = admin_ca.issue_gateway(
            &["localhost", "127.0.0.1"],
            &pki::admin_uri(id),
            Validity::days(1),
        )?;
        write(&format!("{id}.pem"), &issued.cert_pem)?;
        write(&format!("{id}.key"), &issued.key_pem)?;
    }
    let carrier = carrier_ca.issue_client(
        &pki::carrier_uri(pki::SAMPLE_CARRIER_EORI),
        Validity::days(1),
    )?;
    write(pki::SAMPLE_CARRIER_CERT, &carrier.cert_pem)?;
    write(pki::SAMPLE_CARRIER_KEY, &carrier.key_pem)?;
    Ok(ClientTls {
        ca: pki_dir.join(pki::ADMIN_CA_CERT),
        cert: pki_dir.join(pki::SAMPLE_CARRIER_CERT),
        key: pki_dir.join(pki::SAMPLE_CARRIER_KEY),
    })
}

/// The configuration of one demo gateway: everything on loopback, any free port. A delivers to
/// `peer_endpoint` (B) by one route per mode; B takes deliveries from A.
fn config(dir: &Path, id: &str, peer_endpoint: Option<&str>) -> Result<Config> {
    let country = &id[..2];
    let (peer, peering) = match peer_endpoint {
        Some(endpoint) => (
            B,
            format!(
                "[[peers]]\nid = \"{B}\"\nendpoint = \"{endpoint}\"\n\n[[routes]]\npeer = \"{B}\"\n\
                 modes = [\"sea\", \"air\", \"road\", \"rail\", \"postal\", \"express\", \"inland_waterway\"]\n"
            ),
        ),
        None => (A, format!("[[peers]]\nid = \"{A}\"\n")),
    };
    let text = format!(
        r#"# demo gateway {id} (exchanges with {peer})
[gateway]
id = "{id}"
country = "{country}"
data_dir = "data-{id}"

[carrier_api]
listen = "127.0.0.1:0"

[peer_api]
listen = "127.0.0.1:0"

[admin]
listen = "127.0.0.1:0"

[tls]
server_cert = "pki/{id}.pem"
server_key = "pki/{id}.key"
carrier_ca = "pki/{carrier_ca}"
peer_ca = "pki/{admin_ca}"

{peering}"#,
        carrier_ca = pki::CARRIER_CA_CERT,
        admin_ca = pki::ADMIN_CA_CERT,
    );
    let path = dir.join(format!("{id}.toml"));
    std::fs::write(&path, &text)?;
    Ok(Config::parse(&text, &path)?)
}
