//! `aci-gateway demo`: two administrations' gateways in one process, A (GB) routing every
//! filing to B (NL), with a fresh development PKI in a temporary directory. A carrier files the
//! sample of every mode (one invalid, one late); the demo shows the receipts, the violations,
//! the forwarding, B's do-not-load reaching the carrier's notification stream, and where the
//! traces and metrics are. Exits 0 when all of that happened.

use std::path::{Path, PathBuf};
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
    run.do_not_load(dir, a, &mut client, &sea_mrn).await?;
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

    /// B sends a do-not-load about the sea filing; it reaches the carrier's stream.
    async fn do_not_load(
        &self,
        dir: &Path,
        a: &Gateway,
        client: &mut CarrierClient,
        sea_mrn: &str,
    ) -> Result<()> {
        println!("\n5. {B} sends do-not-load for {sea_mrn}; it reaches the carrier's stream:");
        let mut notifications = client.watch_notifications(0).await?;
        let as_b = ClientTls {
            ca: dir.join("pki").join(pki::ADMIN_CA_CERT),
            cert: dir.join("pki").join(format!("{B}.pem")),
            key: dir.join("pki").join(format!("{B}.key")),
        };
        let ack = PeerClient::connect(&format!("https://{}", a.peer_addr), A, &as_b)
            .await?
            .notify(Notice {
                notice_id: format!("{B}-RISK-{}", &self.id[..6]),
                mrn: sea_mrn.to_owned(),
                kind: NoticeKind::DoNotLoad as i32,
                text: "high-risk consignment: do not load before inspection".into(),
                ..Notice::default()
            })
            .await?;
        println!("   {A} stored the notice at sequence {}", ack.sequence);
        let notification = tokio::time::timeout(PATIENCE, notifications.message())
            .await
            .context("no notification in time")??
            .context("the notification stream ended")?;
        println!(
            "   carrier's stream: {} from {} about {}: {}",
            notification.kind().as_str_name(),
            notification.administration,
            notification.mrn,
            notification.text
        );
        Ok(())
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
    let deadline = Instant::now() + PATIENCE;
    let report = loop {
        let durable = *a.store().durable().borrow();
        let report = a
            .exchange()
            .reports()
            .into_iter()
            .next()
            .context("A has no peer")?;
        if report.cursor >= durable {
            break report;
        }
        ensure!(
            Instant::now() < deadline,
            "forwarding did not finish: {report:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "   {B}: connected {}, cursor {}, lag {} records, {} delivered, {} refused",
        report.connected, report.cursor, report.lag_records, report.delivered, report.refused
    );
    println!(
        "   {B}'s log now holds {} received records",
        *b.store().durable().borrow()
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
    println!("\n6. Where to look:");
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
