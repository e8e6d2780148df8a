//! Test fixtures: a PKI made per test, gateways started on `127.0.0.1:0` with temporary data
//! directories (in-process or as real processes), and clients presenting any certificate.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
    pub carrier_ca: Authority,
    pub admin_ca: Authority,
}

impl TestPki {
    pub fn new(dir: &Path) -> TestPki {
        std::fs::create_dir_all(dir).expect("pki dir");
        let carrier_ca = Authority::new("test carrier CA").expect("carrier CA");
        let admin_ca = Authority::new("test admin CA").expect("admin CA");
        let gateway = admin_ca
            .issue_gateway(
                &["localhost", "127.0.0.1"],
                "urn:aci:admin:TEST-A",
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
    max_message_bytes: usize,
    segment_bytes: u64,
    representatives: Vec<(String, Vec<String>)>,
}

impl Default for GatewayBuilder {
    fn default() -> Self {
        GatewayBuilder {
            max_message_bytes: 4 * 1024 * 1024,
            segment_bytes: 64 * 1024 * 1024,
            representatives: Vec::new(),
        }
    }
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
        let pki = TestPki::new(&dir.path().join("pki"));
        let mut config = format!(
            r#"
[gateway]
id = "TEST-A"
country = "GB"
data_dir = "data"

[carrier_api]
listen = "127.0.0.1:0"
max_message_bytes = {max}

[peer_api]
listen = "127.0.0.1:0"

[admin]
listen = "127.0.0.1:0"

[tls]
server_cert = "pki/gateway.pem"
server_key = "pki/gateway.key"
carrier_ca = "pki/carrier-ca.pem"
peer_ca = "pki/admin-ca.pem"

[store]
segment_bytes = {segment}
"#,
            max = self.max_message_bytes,
            segment = self.segment_bytes,
        );
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
    let mut manifest: Manifest =
        aci_gateway::pb::from_json(include_str!("../../schemas/examples/sea-f10.json"))
            .expect("sample parses");
    manifest.lrn = lrn.to_owned();
    if let Some(document) = manifest.consignments[0].transport_document.as_mut() {
        document.number = format!("BL-{lrn}");
    }
    manifest
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
        let ready_file = site.dir.path().join("ready.json");
        let _ = std::fs::remove_file(&ready_file);
        let mut child = Command::new(env!("CARGO_BIN_EXE_aci-gateway"))
            .arg("serve")
            .arg("--config")
            .arg(&site.config_path)
            .arg("--ready-file")
            .arg(&ready_file)
            .env("RUST_LOG", "warn")
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
