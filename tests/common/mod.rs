//! Test fixtures: a PKI made per test, gateways started on `127.0.0.1:0` with temporary data
//! directories (in-process or as real processes), and clients presenting any certificate.
#![allow(dead_code)]

pub mod proxy;
pub mod raw;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aci_gateway::client::{CarrierClient, ClientTls, Credentials};
use aci_gateway::config::Config;
use aci_gateway::pb::Manifest;
use aci_gateway::pki::{self, Authority, Validity};
use aci_gateway::server::{Gateway, Options};
use tempfile::TempDir;

pub const CARRIER: &str = pki::SAMPLE_CARRIER_EORI;
pub const OTHER_CARRIER: &str = "DE987654321";

/// Certificate authorities and the gateway's certificate, written into a directory.
pub struct TestPki {
    pub dir: PathBuf,
    pub carrier_ca: Arc<Authority>,
    pub admin_ca: Arc<Authority>,
}

impl TestPki {
    pub fn new(dir: &Path) -> TestPki {
        let carrier_ca = Arc::new(Authority::new("test carrier CA").expect("carrier CA"));
        let admin_ca = Arc::new(Authority::new("test admin CA").expect("admin CA"));
        TestPki::with_authorities(dir, "TEST-A", carrier_ca, admin_ca)
    }

    /// A gateway `id`'s files, issued by existing authorities (gateways of one test network).
    pub fn with_authorities(
        dir: &Path,
        id: &str,
        carrier_ca: Arc<Authority>,
        admin_ca: Arc<Authority>,
    ) -> TestPki {
        std::fs::create_dir_all(dir).expect("pki dir");
        let gateway = admin_ca
            .issue_gateway(
                &["localhost", "127.0.0.1"],
                &pki::admin_uri(id),
                Validity::days(30),
            )
            .expect("gateway cert");
        write(&dir.join("carrier-ca.pem"), &carrier_ca.cert_pem());
        write(&dir.join("admin-ca.pem"), &admin_ca.cert_pem());
        write(&dir.join("gateway.pem"), &gateway.cert_pem);
        write(&dir.join("gateway.key"), &gateway.key_pem);
        TestPki {
            dir: dir.to_owned(),
            carrier_ca,
            admin_ca,
        }
    }

    /// Client files for a carrier certificate issued by `ca` (default: the carrier CA).
    pub fn carrier_files(&self, name: &str, eori: &str, validity: Validity) -> ClientTls {
        self.client_files(name, &self.carrier_ca, &pki::carrier_uri(eori), validity)
    }

    pub fn client_files(
        &self,
        name: &str,
        ca: &Authority,
        uri: &str,
        validity: Validity,
    ) -> ClientTls {
        let issued = ca.issue_client(uri, validity).expect("client cert");
        let cert = self.dir.join(format!("{name}.pem"));
        let key = self.dir.join(format!("{name}.key"));
        write(&cert, &issued.cert_pem);
        write(&key, &issued.key_pem);
        ClientTls {
            ca: self.dir.join("admin-ca.pem"),
            cert,
            key,
        }
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write fixture file");
}

/// Builds a gateway's config file in a temporary directory.
pub struct GatewayBuilder {
    id: String,
    max_message_bytes: usize,
    segment_bytes: u64,
    representatives: Vec<(String, Vec<String>)>,
    peer_port: u16,
    admin_port: u16,
    /// (peer id, endpoint) of each peer.
    peers: Vec<(String, Option<String>)>,
    /// Raw TOML of each `[[routes]]` table's body.
    routes: Vec<String>,
    /// Authorities shared with the other gateways of a test network.
    authorities: Option<(Arc<Authority>, Arc<Authority>)>,
    /// OTLP collector for trace export.
    otlp_endpoint: Option<String>,
    /// Filings per second per carrier, and burst.
    carrier_rate: Option<(f64, f64)>,
    /// 0: any free port.
    carrier_port: u16,
    /// More `[carrier_api]` lines (limits).
    carrier_api_extra: String,
    /// The whole `[tls]` table's body, instead of the site's PKI files.
    tls: Option<String>,
    /// The `[lifecycle]` table's body.
    lifecycle: String,
    /// More lines of the `[store]` table (and its subtables), e.g. the JetStream backend.
    store: String,
}

impl Default for GatewayBuilder {
    fn default() -> Self {
        GatewayBuilder {
            id: "TEST-A".into(),
            max_message_bytes: 4 * 1024 * 1024,
            segment_bytes: 64 * 1024 * 1024,
            representatives: Vec::new(),
            peer_port: 0,
            admin_port: 0,
            peers: Vec::new(),
            routes: Vec::new(),
            authorities: None,
            otlp_endpoint: None,
            carrier_rate: None,
            carrier_port: 0,
            carrier_api_extra: String::new(),
            tls: None,
            lifecycle: String::new(),
            store: String::new(),
        }
    }
}

/// A port free on 127.0.0.1 right now, for a gateway that must come back on the same port.
///
/// Taken below Linux's ephemeral range (32768 and up), never twice in one test process: a port
/// from `bind(0)`, dropped and bound again later, could meanwhile become the local port of any
/// outgoing connection of a test running beside it (CI saw a peer API fail to bind that way).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Processes that run one after another start at different places, so a port a previous
    // process left in TIME_WAIT is not the first one tried.
    let start = std::process::id().wrapping_mul(7_919) % COUNT;
    for _ in 0..COUNT {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + (start + offset) % COUNT) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + COUNT)
}

/// A directory with a config, a PKI and a data dir: what a gateway needs to start.
pub struct Site {
    pub dir: TempDir,
    pub pki: TestPki,
    pub config_path: PathBuf,
}

impl Site {
    pub fn config(&self) -> Config {
        Config::load(&self.config_path).expect("test config")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Every record of this site's (embedded) log, verified: while the gateway runs or not.
    pub fn log(&self) -> Vec<aci_gateway::pb::store::LogRecord> {
        let mut out = Vec::new();
        aci_gateway::store::read_log(
            &self.data_dir().join("log"),
            aci_gateway::ids::Seq(1),
            |r| -> Result<(), aci_gateway::store::LogError> {
                out.push(r);
                Ok(())
            },
        )
        .expect("the log verifies");
        out
    }

    /// Credentials of another carrier, issued by this site's carrier CA.
    pub fn carrier_as(&self, eori: &str) -> Credentials {
        Credentials::Tls(self.pki.carrier_files(
            &format!("carrier-{eori}"),
            eori,
            Validity::days(30),
        ))
    }

    pub fn carrier(&self) -> Credentials {
        Credentials::Tls(
            self.pki
                .carrier_files("carrier", CARRIER, Validity::days(30)),
        )
    }
}

impl GatewayBuilder {
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// The gateway's id (and its certificate's identity).
    pub fn id(mut self, id: &str) -> Self {
        self.id = id.to_owned();
        self
    }

    /// Listen for peers on this port (default: any free port).
    pub fn peer_port(mut self, port: u16) -> Self {
        self.peer_port = port;
        self
    }

    /// Serve the admin port on this port (default: any free port).
    /// A fixed carrier port, for a gateway that must come back where its carriers look.
    pub fn carrier_port(mut self, port: u16) -> Self {
        self.carrier_port = port;
        self
    }

    pub fn admin_port(mut self, port: u16) -> Self {
        self.admin_port = port;
        self
    }

    /// A peer with an endpoint (`https://127.0.0.1:PORT`; a forwarder delivers to it) or
    /// without (it pulls).
    pub fn peer(mut self, id: &str, endpoint: Option<String>) -> Self {
        self.peers.push((id.to_owned(), endpoint));
        self
    }

    /// A route: `peer = "..."` and its criteria, as TOML lines.
    pub fn route(mut self, body: &str) -> Self {
        self.routes.push(body.to_owned());
        self
    }

    /// Limit each carrier to `rate` filings per second, `burst` at once.
    pub fn rate_per_carrier(mut self, rate: f64, burst: f64) -> Self {
        self.carrier_rate = Some((rate, burst));
        self
    }

    /// Export traces to this OTLP/gRPC endpoint.
    /// Adds a line to `[carrier_api]`, e.g. `max_concurrent_streams = 8`.
    pub fn carrier_api(mut self, line: &str) -> Self {
        self.carrier_api_extra.push_str(line);
        self.carrier_api_extra.push('\n');
        self
    }

    /// Replaces the `[tls]` table's body (paths relative to the site's directory).
    pub fn tls(mut self, body: &str) -> Self {
        self.tls = Some(body.to_owned());
        self
    }

    /// Lines of the `[lifecycle]` table (timers, attachment bound).
    pub fn lifecycle(mut self, body: &str) -> Self {
        self.lifecycle = body.to_owned();
        self
    }

    /// Lines added at the end of the `[store]` table (subtables may follow them).
    pub fn store(mut self, body: &str) -> Self {
        self.store = body.to_owned();
        self
    }

    pub fn otlp(mut self, endpoint: &str) -> Self {
        self.otlp_endpoint = Some(endpoint.to_owned());
        self
    }

    /// Use the authorities of another site, so that the gateways trust each other.
    pub fn network_of(mut self, site: &Site) -> Self {
        self.authorities = Some((
            Arc::clone(&site.pki.carrier_ca),
            Arc::clone(&site.pki.admin_ca),
        ));
        self
    }

    pub fn representative(mut self, agent: &str, principals: &[&str]) -> Self {
        self.representatives.push((
            agent.to_owned(),
            principals.iter().map(|p| (*p).to_owned()).collect(),
        ));
        self
    }

    /// Writes the site: PKI files and `gateway.toml`.
    pub fn site(self) -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = match self.authorities {
            Some((carrier_ca, admin_ca)) => {
                TestPki::with_authorities(&dir.path().join("pki"), &self.id, carrier_ca, admin_ca)
            }
            None => TestPki::new(&dir.path().join("pki")),
        };
        let mut config = format!(
            r#"
[gateway]
id = "{id}"
country = "GB"
data_dir = "data"

[carrier_api]
listen = "127.0.0.1:{carrier_port}"
max_message_bytes = {max}
{rate}
{carrier_api_extra}

[peer_api]
listen = "127.0.0.1:{peer_port}"

[admin]
listen = "127.0.0.1:{admin_port}"

[tls]
{tls}

[store]
segment_bytes = {segment}
{store}
"#,
            id = self.id,
            peer_port = self.peer_port,
            carrier_port = self.carrier_port,
            admin_port = self.admin_port,
            max = self.max_message_bytes,
            rate = self
                .carrier_rate
                .map(|(rate, burst)| {
                    format!("rate_per_carrier = {rate:.1}\nburst_per_carrier = {burst:.1}")
                })
                .unwrap_or_default(),
            segment = self.segment_bytes,
            store = self.store,
            carrier_api_extra = self.carrier_api_extra,
            tls = self.tls.as_deref().unwrap_or(
                "server_cert = \"pki/gateway.pem\"\nserver_key = \"pki/gateway.key\"\n\
                 carrier_ca = \"pki/carrier-ca.pem\"\npeer_ca = \"pki/admin-ca.pem\""
            ),
        );
        if !self.lifecycle.is_empty() {
            config.push_str(&format!("\n[lifecycle]\n{}\n", self.lifecycle));
        }
        for (id, endpoint) in &self.peers {
            config.push_str(&format!("\n[[peers]]\nid = \"{id}\"\n"));
            if let Some(endpoint) = endpoint {
                config.push_str(&format!("endpoint = \"{endpoint}\"\n"));
            }
        }
        for route in &self.routes {
            config.push_str(&format!("\n[[routes]]\n{route}\n"));
        }
        if let Some(endpoint) = &self.otlp_endpoint {
            config.push_str(&format!("\n[telemetry]\notlp_endpoint = \"{endpoint}\"\n"));
        }
        for (agent, principals) in &self.representatives {
            config.push_str(&format!(
                "\n[[representatives]]\nagent = \"{agent}\"\nprincipals = {principals:?}\n"
            ));
        }
        let config_path = dir.path().join("gateway.toml");
        write(&config_path, &config);
        Site {
            dir,
            pki,
            config_path,
        }
    }

    /// Starts an in-process gateway on a new site.
    pub async fn start(self) -> (Site, Gateway) {
        let site = self.site();
        let gateway = Gateway::start(&site.config(), Options::default())
            .await
            .expect("gateway starts");
        (site, gateway)
    }
}

pub fn endpoint(gateway: &Gateway) -> String {
    format!("https://{}", gateway.carrier_addr)
}

pub async fn client(endpoint: &str, credentials: &Credentials) -> CarrierClient {
    CarrierClient::connect(endpoint, credentials)
        .await
        .expect("client connects")
}

/// The sea sample as a new filing: its LRN, and a bill of lading of its own (a filer files each
/// master document once).
pub fn sea_filing(lrn: &str) -> Manifest {
    static SEA: std::sync::LazyLock<Manifest> = std::sync::LazyLock::new(|| {
        aci_gateway::pb::from_json(include_str!("../../schemas/examples/sea-f10.json"))
            .expect("sample parses")
    });
    let mut manifest = SEA.clone();
    manifest.lrn = lrn.to_owned();
    if let Some(document) = manifest.consignments[0].transport_document.as_mut() {
        document.number = format!("BL-{lrn}");
    }
    manifest
}

/// Files a sea filing for each of `lrns` over `streams` concurrent bulk streams (round robin);
/// every answer must be a receipt. Returns the receipts' log sequences, in no particular order.
pub async fn file_bulk(carrier: &CarrierClient, lrns: Vec<String>, streams: usize) -> Vec<u64> {
    use aci_gateway::pb::{SubmitRequest, submit_request, submit_result};
    let mut tasks = Vec::new();
    for s in 0..streams.max(1) {
        let mut carrier = carrier.clone();
        let mine: Vec<String> = lrns
            .iter()
            .skip(s)
            .step_by(streams.max(1))
            .cloned()
            .collect();
        tasks.push(tokio::spawn(async move {
            let requests = mine.into_iter().map(|lrn| SubmitRequest {
                filing: Some(submit_request::Filing::Manifest(Box::new(sea_filing(&lrn)))),
            });
            let mut answers = carrier
                .submit_stream(tokio_stream::iter(requests))
                .await
                .expect("stream");
            let mut sequences = Vec::new();
            while let Some(answer) = answers.message().await.expect("answer") {
                match answer.outcome {
                    Some(submit_result::Outcome::Receipt(receipt)) => {
                        sequences.push(receipt.sequence)
                    }
                    other => panic!("refused: {other:?}"),
                }
            }
            sequences
        }));
    }
    let mut sequences = Vec::new();
    for task in tasks {
        sequences.extend(task.await.expect("stream task"));
    }
    sequences
}

/// Every record of a store's log, read back and verified (frames, hashes, chain).
pub fn log_records(store: &aci_gateway::store::Store) -> Vec<aci_gateway::pb::store::LogRecord> {
    let mut out = Vec::new();
    store
        .read_from(
            aci_gateway::ids::Seq(1),
            |r| -> Result<(), aci_gateway::store::LogError> {
                out.push(r);
                Ok(())
            },
        )
        .expect("the log verifies");
    out
}

/// A gateway running as a real process of the built binary.
pub struct GatewayProcess {
    pub child: Child,
    pub endpoint: String,
    pub ready: serde_json::Value,
}

impl GatewayProcess {
    /// Starts `aci-gateway serve` on the site and waits until it has written its ready file.
    pub fn start(site: &Site) -> GatewayProcess {
        GatewayProcess::start_with_env(site, &[])
    }

    /// Starts the gateway with extra environment variables (fault injection).
    pub fn start_with_env(site: &Site, env: &[(&str, &str)]) -> GatewayProcess {
        GatewayProcess::start_binary(site, Path::new(env!("CARGO_BIN_EXE_aci-gateway")), env)
    }

    /// Starts another build of the gateway (a benchmark's baseline) on the site.
    pub fn start_binary(site: &Site, binary: &Path, env: &[(&str, &str)]) -> GatewayProcess {
        let ready_file = site.dir.path().join("ready.json");
        let _ = std::fs::remove_file(&ready_file);
        let mut child = Command::new(binary)
            .arg("serve")
            .arg("--config")
            .arg(&site.config_path)
            .arg("--ready-file")
            .arg(&ready_file)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the gateway");
        let deadline = Instant::now() + Duration::from_secs(60);
        let ready = loop {
            if let Ok(text) = std::fs::read_to_string(&ready_file) {
                break serde_json::from_str::<serde_json::Value>(&text).expect("ready file JSON");
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("gateway exited before it was ready: {status}");
            }
            assert!(Instant::now() < deadline, "gateway not ready within 60 s");
            std::thread::sleep(Duration::from_millis(20));
        };
        let endpoint = ready["carrier"]
            .as_str()
            .expect("carrier address")
            .to_owned();
        GatewayProcess {
            child,
            endpoint,
            ready,
        }
    }

    /// Waits for the process to exit on its own (it crashed, or was told to stop).
    pub fn wait_exit(mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "the gateway did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The admin port's address, from the ready file.
    pub fn admin(&self) -> std::net::SocketAddr {
        self.ready["admin"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .expect("admin address in the ready file")
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        self.child.wait().expect("gateway exits")
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET on the admin port, as Prometheus would do it.
pub async fn admin_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("admin port");
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response");
    response
}

/// A valid sea filing as the store takes it (validated, not yet registered).
pub fn new_filing(lrn: &str) -> aci_gateway::store::NewFiling {
    let accepted = aci_gateway::validate::Validator::standard()
        .validate(sea_filing(lrn), std::time::SystemTime::now())
        .expect("valid sample");
    aci_gateway::store::NewFiling {
        filer: accepted.filer,
        lrn: accepted.lrn,
        digest: accepted.digest,
        version_1_digest: accepted.version_1_digest,
        manifest: accepted.manifest,
        manifest_encoding: Some(accepted.encoded),
        original: b"original bytes".to_vec(),
        original_type: "application/x-protobuf",
        submitted_bytes: 5 * 1024,
        warnings: Vec::new(),
        received_at: std::time::SystemTime::now(),
        traceparent: String::new(),
        master_documents: accepted.master_documents,
        house_references: accepted.house_references,
        next_filing_party: accepted.next_filing_party,
        due: accepted.due,
    }
}

/// The value of the Prometheus series `series` (its name and labels, as rendered), if present.
pub fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// The value of a counter series (0 if absent).
pub fn metric(metrics: &str, series: &str) -> u64 {
    metric_value(metrics, series).map_or(0, |v| v as u64)
}

/// A number from the environment variable `var`, or `default` (longer runs on demand).
pub fn env_number<T: std::str::FromStr>(var: &str, default: T) -> T {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A seeded generator (xorshift64) for a test's random choices, replayable from its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound.max(1)
    }

    /// A duration in `[from, to)` milliseconds.
    pub fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from))
    }
}

/// The seed in the environment variable `var`, or one from the clock; printed, so that a
/// failing run can be replayed.
pub fn seed(var: &str) -> u64 {
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("seed {seed} (replay with {var}={seed})");
    seed
}

/// Client TLS presenting `files`, trusting `ca`.
pub fn tls_config(
    files: &ClientTls,
    ca: &tonic::transport::Certificate,
) -> tonic::transport::ClientTlsConfig {
    let read = |p: &Path| std::fs::read(p).expect("fixture file");
    tonic::transport::ClientTlsConfig::new()
        .ca_certificate(ca.clone())
        .identity(tonic::transport::Identity::from_pem(
            read(&files.cert),
            read(&files.key),
        ))
}

/// A channel to `endpoint` with the given client TLS.
pub async fn channel(
    endpoint: &str,
    tls: tonic::transport::ClientTlsConfig,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    aci_gateway::tls::install_crypto_provider();
    tonic::transport::Endpoint::from_shared(endpoint.to_owned())
        .expect("endpoint")
        .tls_config(tls)
        .expect("tls config")
        .connect()
        .await
}

/// Where a segment's records end; after them the disk may have preallocated zeros.
pub fn records_end(segment: &std::path::Path) -> u64 {
    let bytes = std::fs::read(segment).expect("read the segment");
    let mut offset = 0;
    while let Ok((_, used)) = aci_gateway::store::record::read_frame(&bytes[offset..]) {
        offset += used;
    }
    offset as u64
}

/// Goods items the large XML filing adds to the sample's two (a filing holds at most 999).
const LARGE_XML_EXTRA_ITEMS: usize = 997;

/// The XML sample grown to 999 goods items (about 390 KB), its LRN replaced by `{lrn}` and its
/// master transport document by `BL-{lrn}` (a filer files each master document once): what a
/// carrier flooding large filings sends (benches). Valid, so that a flood of it is validated
/// whole and written to the log: each added item is one carton of 1 kg, added to the totals.
pub fn large_xml() -> String {
    let sample = include_str!("../../schemas/examples/sea-f10.xml");
    let mut items = String::new();
    for sequence in 3..LARGE_XML_EXTRA_ITEMS + 3 {
        items.push_str(&format!(
            "    <GoodsItems>\n      <Sequence>{sequence}</Sequence>\n      \
             <Description>Electric drills, hand-held, with self-contained motor</Description>\n      \
             <HsCode>846721</HsCode>\n      <GrossMassKg>1</GrossMassKg>\n      <Packagings>\n        \
             <PackageType>CT</PackageType>\n        <NumberOfPackages>1</NumberOfPackages>\n        \
             <ShippingMarks>NSCL/SHA/2026/{sequence:03}</ShippingMarks>\n      </Packagings>\n    \
             </GoodsItems>\n"
        ));
    }
    let grown = sample
        .replacen("NSCL2026SHA0001", "BL-{lrn}", 1)
        .replacen("    <Buyer>", &format!("{items}    <Buyer>"), 1)
        .replacen(
            "<NumberOfPackages>360</NumberOfPackages>",
            &format!(
                "<NumberOfPackages>{}</NumberOfPackages>",
                360 + LARGE_XML_EXTRA_ITEMS
            ),
            1,
        )
        .replacen(
            "<GrossMassKg>5050.5</GrossMassKg>\n    <NumberOfConsignments>",
            &format!(
                "<GrossMassKg>{}.5</GrossMassKg>\n    <NumberOfConsignments>",
                5050 + LARGE_XML_EXTRA_ITEMS
            ),
            1,
        );
    let lrn_start = grown.find("<Lrn>").expect("an LRN") + "<Lrn>".len();
    let lrn_end = grown.find("</Lrn>").expect("an LRN");
    format!("{}{{lrn}}{}", &grown[..lrn_start], &grown[lrn_end..])
}
