//! A well-behaved carrier filing a steady 400/s (8 workers, one filing each per 20 ms), alone
//! and beside each kind of hostile client, alternated in one run: its accepted filings/s and
//! p99 latency, and the ratio to alone. `cargo bench --bench hostile` prints a table (and, with
//! `ACI_BENCH_JSON=FILE`, writes each attack's figures there as JSON).
//!
//! The attacks: a flood from another carrier (64 in flight, limit 1 000/s a carrier), and one of
//! large XML filings (390 KB, 999 goods items; the same limit); 5 000 idle
//! connections, 200 slowloris and 200 silent TLS connections, renewed as they are cut; malformed
//! and 10 000-deep nested protobuf from 16 workers; TLS handshakes with a rogue CA's certificate
//! from 8 workers; over-size (5 MiB) filings from 8 workers. Under each attack's line: what the
//! log wrote meanwhile (records/s: the carrier's 400 and what the attack got accepted) and how
//! long its commits took (from the gateway's metrics). `cargo bench --bench hostile -- XML` runs
//! the attacks whose names contain a word given.
//!
//! The gateway is `aci-gateway serve` as it ships, a process of its own on CPU 1; the carriers,
//! good and hostile, are this process, on CPU 0, the hostile ones at the lowest priority.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aci_gateway::client::{CarrierClient, ClientTls, Credentials};
use aci_gateway::pki::{Authority, Validity};
use common::{GatewayBuilder, GatewayProcess, OTHER_CARRIER, admin_get, sea_filing, tls_config};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;
use tonic::transport::Certificate;

const ROUND: Duration = Duration::from_secs(5);
const ROUNDS: usize = 3;

/// One round of the well-behaved carrier: accepted filings/s and the p99 latency (ms).
async fn behave(carrier: &CarrierClient, label: &str) -> (f64, f64) {
    let done = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let (mut carrier, done, latencies) =
            (carrier.clone(), Arc::clone(&done), Arc::clone(&latencies));
        let label = label.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u32;
            loop {
                let due = started + Duration::from_millis(20) * n;
                if due >= started + ROUND {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                let mut filing = sea_filing(&format!("OK-{label}-{worker}-{n}"));
                filing.declarant.as_mut().expect("declarant").eori = OTHER_CARRIER.into();
                if carrier.submit(filing).await.is_ok() {
                    done.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut l) = latencies.lock() {
                        l.push(due.elapsed().as_secs_f64() * 1000.0);
                    }
                }
                n += 1;
            }
        }));
    }
    for task in tasks {
        task.await.expect("worker");
    }
    let mut latencies = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    latencies.sort_by(f64::total_cmp);
    let p99 = latencies
        .get(latencies.len() * 99 / 100)
        .copied()
        .unwrap_or(f64::NAN);
    (
        done.load(Ordering::Relaxed) as f64 / ROUND.as_secs_f64(),
        p99,
    )
}

#[derive(Debug, Clone, Copy)]
enum Attack {
    Flood,
    LargeXml,
    Connections,
    Malformed,
    RogueCertificates,
    Oversize,
}

impl Attack {
    fn name(self) -> &'static str {
        match self {
            Attack::Flood => "flood (64 in flight)",
            Attack::LargeXml => "large XML flood (390 KB, 64 in flight)",
            Attack::Connections => "5 000 idle + 200 slowloris + 200 silent TLS",
            Attack::Malformed => "malformed + nested protobuf x16",
            Attack::RogueCertificates => "rogue-CA handshakes x8",
            Attack::Oversize => "over-size 5 MiB filings x8",
        }
    }
}

/// What the attackers need.
struct Target {
    addr: SocketAddr,
    endpoint: String,
    flooder: CarrierClient,
    raw: tonic::transport::Channel,
    rogue: ClientTls,
    gateway_ca: Certificate,
    carrier: ClientTls,
}

/// Starts the attack's workers; each returns how many attempts it made.
fn start(
    attack: Attack,
    target: &Arc<Target>,
    stop: &Arc<AtomicBool>,
    attackers: &Handle,
) -> Vec<JoinHandle<u64>> {
    let spawn = |workers: usize, body: fn(Arc<Target>, Arc<AtomicBool>, usize) -> Attempts| {
        (0..workers)
            .map(|w| attackers.spawn(body(Arc::clone(target), Arc::clone(stop), w)))
            .collect::<Vec<_>>()
    };
    match attack {
        Attack::Flood => spawn(64, |t, stop, w| Box::pin(flood(t, stop, w))),
        Attack::LargeXml => spawn(64, |t, stop, w| Box::pin(large_xml_flood(t, stop, w))),
        Attack::Connections => spawn(1, |t, stop, _| Box::pin(connections(t, stop))),
        Attack::Malformed => spawn(16, |t, stop, w| Box::pin(malformed(t, stop, w))),
        Attack::RogueCertificates => spawn(8, |t, stop, _| Box::pin(rogue(t, stop))),
        Attack::Oversize => spawn(8, |t, stop, _| Box::pin(oversize(t, stop))),
    }
}

/// Picks a figure of a round (filings/s, p99 ms).
type Pick = fn(&(f64, f64)) -> f64;

type Attempts = std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send>>;

/// Large XML filings (999 goods items), as fast as they are answered.
async fn large_xml_flood(target: Arc<Target>, stop: Arc<AtomicBool>, worker: usize) -> u64 {
    static TEMPLATE: std::sync::LazyLock<String> = std::sync::LazyLock::new(common::large_xml);
    let mut flooder = target.flooder.clone();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let xml = TEMPLATE.replace("{lrn}", &format!("XMLFLOOD-{worker}-{n}-{}", nonce()));
        let _ = flooder.submit_xml(xml.into_bytes()).await;
        n += 1;
    }
    n
}

async fn flood(target: Arc<Target>, stop: Arc<AtomicBool>, worker: usize) -> u64 {
    let mut flooder = target.flooder.clone();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let _ = flooder
            .submit(sea_filing(&format!("FLOOD-{worker}-{n}-{}", nonce())))
            .await;
        n += 1;
    }
    n
}

async fn connections(target: Arc<Target>, stop: Arc<AtomicBool>) -> u64 {
    let mut attempts = 0;
    let tls = aci_gateway::tls::client_config(
        &target.carrier.cert,
        &target.carrier.key,
        &target.carrier.ca,
    )
    .expect("tls");
    let connector = tokio_rustls::TlsConnector::from(tls);
    let mut held = Vec::new();
    let mut silent = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        // Renew what the gateway cut (it cuts each after 10 s); keep 5 000 + 200 + 200 open.
        held.retain(|s: &TcpStream| s.peer_addr().is_ok());
        while held.len() < 5_200 && !stop.load(Ordering::Relaxed) {
            let Ok(mut stream) = TcpStream::connect(target.addr).await else {
                break;
            };
            if held.len() >= 5_000 {
                let _ = stream.write_all(&[0x16]).await;
            }
            held.push(stream);
            attempts += 1;
        }
        while silent.len() < 200 && !stop.load(Ordering::Relaxed) {
            let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
            let Ok(tcp) = TcpStream::connect(target.addr).await else {
                break;
            };
            if let Ok(stream) = connector.connect(name, tcp).await {
                silent.push(stream);
            }
            attempts += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    attempts
}

async fn malformed(target: Arc<Target>, stop: Arc<AtomicBool>, worker: usize) -> u64 {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let bytes = if (n + worker as u64).is_multiple_of(2) {
            common::raw::nested_groups(10_000)
        } else {
            vec![0xff; 512]
        };
        let _ = common::raw::submit_raw(target.raw.clone(), bytes).await;
        n += 1;
    }
    n
}

async fn rogue(target: Arc<Target>, stop: Arc<AtomicBool>) -> u64 {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let tls = tls_config(&target.rogue, &target.gateway_ca);
        if let Ok(channel) = common::channel(&target.endpoint, tls).await {
            let mut client =
                aci_gateway::pb::carrier_gateway_client::CarrierGatewayClient::new(channel);
            let _ = client
                .submit(aci_gateway::pb::SubmitRequest {
                    filing: Some(aci_gateway::pb::submit_request::Filing::Manifest(Box::new(
                        sea_filing("ROGUE"),
                    ))),
                })
                .await;
        }
        n += 1;
    }
    n
}

async fn oversize(target: Arc<Target>, stop: Arc<AtomicBool>) -> u64 {
    let mut flooder = target.flooder.clone();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut filing = sea_filing("BIG");
        filing.consignments[0].goods_items[0].description = "x".repeat(5 * 1024 * 1024);
        let _ = flooder.submit(filing).await;
        n += 1;
    }
    n
}

/// What the gateway's log writer did over stretches of time: batches committed, the records in
/// them, the seconds spent writing and syncing them (from the store's counters and histograms),
/// and how long the stretches were.
#[derive(Debug, Clone, Copy, Default)]
struct LogActivity {
    batches: u64,
    records: u64,
    commit_seconds: f64,
    sync_seconds: f64,
    seconds: f64,
}

impl LogActivity {
    /// The gateway's counters so far, from its metrics (as Prometheus reads them).
    async fn now(admin: SocketAddr) -> LogActivity {
        let metrics = admin_get(admin, "/metrics").await;
        let value = |series: &str| {
            common::metric_value(&metrics, series)
                .unwrap_or_else(|| panic!("{series} in the gateway's metrics"))
        };
        LogActivity {
            batches: value("aci_log_batches_total") as u64,
            records: value("aci_log_records_total") as u64,
            commit_seconds: value("aci_log_commit_seconds_sum"),
            sync_seconds: value("aci_log_fdatasync_seconds_sum"),
            seconds: 0.0,
        }
    }

    /// Runs `stretch`, adding what the writer did meanwhile to this total.
    async fn watch<T>(&mut self, admin: SocketAddr, stretch: impl Future<Output = T>) -> T {
        let (before, started) = (LogActivity::now(admin).await, Instant::now());
        let out = stretch.await;
        let after = LogActivity::now(admin).await;
        self.batches += after.batches - before.batches;
        self.records += after.records - before.records;
        self.commit_seconds += after.commit_seconds - before.commit_seconds;
        self.sync_seconds += after.sync_seconds - before.sync_seconds;
        self.seconds += started.elapsed().as_secs_f64();
        out
    }

    fn records_per_second(&self) -> f64 {
        self.records as f64 / self.seconds.max(f64::MIN_POSITIVE)
    }

    /// Milliseconds per batch, to write and sync it.
    fn commit_ms(&self) -> f64 {
        self.commit_seconds * 1e3 / self.batches.max(1) as f64
    }

    fn describe(&self) -> String {
        format!(
            "{:.0} records/s in {:.0} batches/s, commit {:.2} ms a batch (sync {:.2} ms)",
            self.records_per_second(),
            self.batches as f64 / self.seconds.max(f64::MIN_POSITIVE),
            self.commit_ms(),
            self.sync_seconds * 1e3 / self.batches.max(1) as f64,
        )
    }
}

/// A different number every call (LRNs must be new across rounds).
fn nonce() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // `cargo bench --bench hostile -- xml` runs the attacks whose names contain a word given.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let site = GatewayBuilder::default()
        .rate_per_carrier(1000.0, 1000.0)
        .site();
    // The gateway is a process of its own on CPU 1 and the carriers share CPU 0, as in
    // benches/run.sh; the attackers run in a runtime of their own at the lowest priority. A
    // hostile carrier does not run on the gateway's machine, let alone in its runtime, nor on the
    // good carrier's. (With all in one process and one runtime, the good carrier's tasks queued
    // behind the attackers' and their work, a 390 KB document built per filing included, took
    // the gateway's cores: p99 beside the flood was 51 ms, against 5.1 ms alone.)
    let gateway = GatewayProcess::start(&site);
    let pinned = pin(gateway.child.id(), 1) && pin(std::process::id(), 0);
    if !pinned {
        println!(
            "note: not pinning (taskset missing or one CPU): the carriers share the gateway's CPUs"
        );
    }
    let runtime = |name: &str, nice: i32| -> Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name(name)
            .on_thread_start(move || {
                // Per thread on Linux; where refused, the attackers share CPU 0 evenly.
                let _ = rustix::process::nice(nice);
            })
            .build()
            .expect("runtime")
    };
    let (carriers, attackers) = (runtime("carrier", 0), runtime("attacker", 19));
    let endpoint = gateway.endpoint.clone();
    let admin = gateway.admin();
    let Credentials::Tls(carrier) = site.carrier() else {
        panic!("TLS credentials");
    };
    let gateway_ca = Certificate::from_pem(site.pki.admin_ca.cert_pem());
    let rogue_ca = Authority::new("rogue CA").expect("CA");
    // The attackers' connections are driven by their runtime.
    let (flooder, raw) = attackers.block_on(async {
        (
            common::client(&endpoint, &site.carrier()).await,
            common::channel(&endpoint, tls_config(&carrier, &gateway_ca))
                .await
                .expect("raw channel"),
        )
    });
    let target = Arc::new(Target {
        addr: endpoint
            .trim_start_matches("https://")
            .parse()
            .expect("the carrier address"),
        endpoint: endpoint.clone(),
        flooder,
        raw,
        rogue: site.pki.client_files(
            "rogue",
            &rogue_ca,
            &aci_gateway::pki::carrier_uri(common::CARRIER),
            Validity::days(1),
        ),
        gateway_ca,
        carrier,
    });
    carriers.block_on(async {
        let good = common::client(&endpoint, &site.carrier_as(OTHER_CARRIER)).await;
        behave(&good, "warm").await;
        println!(
            "a carrier filing 400/s, alone and beside each attack, {ROUNDS} rounds of {} s each (medians):",
            ROUND.as_secs()
        );
        println!(
            "  {:<44} {:>8} {:>9} {:>8} {:>9} {:>6} {:>9}",
            "attack", "alone/s", "p99 ms", "beside/s", "p99 ms", "ratio", "attempts"
        );
        let mut report = serde_json::Map::new();
        for attack in [
            Attack::Flood,
            Attack::LargeXml,
            Attack::Connections,
            Attack::Malformed,
            Attack::RogueCertificates,
            Attack::Oversize,
        ] {
            if !filters.is_empty() && !filters.iter().any(|f| attack.name().contains(f.as_str())) {
                continue;
            }
            let (mut alone, mut beside, mut attempts) = (Vec::new(), Vec::new(), 0);
            let (mut log_alone, mut log_beside) = (LogActivity::default(), LogActivity::default());
            for round in 0..ROUNDS {
                // Short labels: they go into LRNs (at most 22 characters; a long one was
                // refused, and counted as the carrier's loss).
                let attack_number = attack as usize;
                let label = format!("{attack_number}a{round}");
                alone.push(log_alone.watch(admin, behave(&good, &label)).await);
                let stop = Arc::new(AtomicBool::new(false));
                let workers = start(attack, &target, &stop, attackers.handle());
                let label = format!("{attack_number}b{round}");
                beside.push(log_beside.watch(admin, behave(&good, &label)).await);
                stop.store(true, Ordering::Relaxed);
                for worker in workers {
                    attempts += worker.await.expect("attacker");
                }
            }
            let median = |v: &[(f64, f64)], pick: Pick| {
                let mut values: Vec<f64> = v.iter().map(pick).collect();
                values.sort_by(f64::total_cmp);
                values[values.len() / 2]
            };
            let rate: Pick = |r| r.0;
            let p99: Pick = |r| r.1;
            println!(
                "  {:<44} {:>8.0} {:>9.1} {:>8.0} {:>9.1} {:>6.2} {:>9}",
                attack.name(),
                median(&alone, rate),
                median(&alone, p99),
                median(&beside, rate),
                median(&beside, p99),
                median(&beside, rate) / median(&alone, rate),
                attempts
            );
            println!("    the log, alone:  {}", log_alone.describe());
            println!("    the log, beside: {}", log_beside.describe());
            report.insert(
                format!("{attack:?}"),
                serde_json::json!({
                    "alone_per_second": median(&alone, rate),
                    "alone_p99_ms": median(&alone, p99),
                    "beside_per_second": median(&beside, rate),
                    "beside_p99_ms": median(&beside, p99),
                    "throughput_vs_alone": median(&beside, rate) / median(&alone, rate),
                    "p99_vs_alone": median(&beside, p99) / median(&alone, p99),
                    "log_records_per_second_alone": log_alone.records_per_second(),
                    "log_records_per_second_beside": log_beside.records_per_second(),
                    "commit_ms_alone": log_alone.commit_ms(),
                    "commit_ms_beside": log_beside.commit_ms(),
                }),
            );
        }
        // For benches/run.sh.
        if let Ok(path) = std::env::var("ACI_BENCH_JSON") {
            std::fs::write(&path, serde_json::Value::Object(report).to_string())
                .expect("write the JSON report");
        }
    });
    let status = gateway.terminate();
    assert!(status.success(), "the gateway stops cleanly: {status}");
}

/// Pins every thread of process `pid` (and those it starts later) to `cpu`, as `taskset` does;
/// false where that is not possible.
fn pin(pid: u32, cpu: usize) -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() > cpu)
        && std::process::Command::new("taskset")
            .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}
