//! Risk management as administrations practise it, end to end: two gateways as processes, the
//! peer's operator and the carrier on the command line. Item-level do-not-load lifted by the
//! same administration; a screening referral with two requests, one answered, the other overdue
//! and notified once across a SIGKILL; a control that freezes the filing; automatic
//! invalidation that fires once across a SIGKILL; arrival of several filings with its facts;
//! bad input refused with a code and nothing stored.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

use aci_gateway::client::{ClientTls, Credentials};
use aci_gateway::pb::{GoodsItemRef, Manifest, TransportEquipment};
use common::{GatewayBuilder, GatewayProcess, Site, client, sea_filing};

const SECOND_CONTAINER: &str = "MSKU1234565";
const FIRST_CONTAINER: &str = "CSQU3054383";

fn aci(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aci-gateway"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run aci-gateway")
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// A gateway A (a process) whose sea filings go to B (a process), and the ports to reach them.
struct Network {
    a_site: Site,
    b_site: Site,
    a_peer: u16,
    a_carrier: u16,
    a: Option<GatewayProcess>,
    _b: GatewayProcess,
}

impl Network {
    fn start(lifecycle: &str) -> Network {
        let network = GatewayBuilder::default().id("TEST-N").site();
        let (a_peer, b_peer, a_carrier) = (
            common::free_port(),
            common::free_port(),
            common::free_port(),
        );
        let b_site = GatewayBuilder::default()
            .id("TEST-B")
            .network_of(&network)
            .peer_port(b_peer)
            .peer("TEST-A", None)
            .site();
        let a_site = GatewayBuilder::default()
            .network_of(&network)
            .peer_port(a_peer)
            .carrier_port(a_carrier)
            .peer("TEST-B", Some(format!("https://127.0.0.1:{b_peer}")))
            .route("peer = \"TEST-B\"\nmodes = [\"sea\"]")
            .lifecycle(lifecycle)
            .site();
        let b = GatewayProcess::start(&b_site);
        let a = GatewayProcess::start(&a_site);
        Network {
            a_site,
            b_site,
            a_peer,
            a_carrier,
            a: Some(a),
            _b: b,
        }
    }

    /// Files a manifest at A as the fixture carrier; its MRN.
    async fn file(&self, manifest: Manifest) -> String {
        client(&self.carrier_endpoint(), &self.a_site.carrier())
            .await
            .submit(manifest)
            .await
            .expect("filed")
            .mrn
    }

    fn carrier_endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.a_carrier)
    }

    fn tls(&self) -> ClientTls {
        let Credentials::Tls(tls) = self.a_site.carrier() else {
            unreachable!("the fixture carrier uses TLS")
        };
        tls
    }

    /// Runs a carrier command against A.
    fn carrier(&self, args: &[&str]) -> Output {
        let tls = self.tls();
        let endpoint = self.carrier_endpoint();
        let mut all: Vec<&str> = args.to_vec();
        all.extend([
            "--config",
            "/nonexistent/gateway.toml",
            "--endpoint",
            &endpoint,
            "--ca",
            tls.ca.to_str().expect("utf-8"),
            "--cert",
            tls.cert.to_str().expect("utf-8"),
            "--key",
            tls.key.to_str().expect("utf-8"),
        ]);
        aci(&all)
    }

    /// B's operator sends a notice to A.
    fn notify(&self, args: &[&str]) -> Output {
        notify_a(&self.b_site, self.a_peer, args)
    }

    fn status(&self, mrn: &str) -> serde_json::Value {
        let status = self.carrier(&["status", mrn]);
        assert!(status.status.success(), "{status:?}");
        json(&status)
    }

    /// Every notification of the carrier, as JSON.
    fn notifications(&self) -> Vec<serde_json::Value> {
        let listed = self.carrier(&["notifications"]);
        assert!(listed.status.success(), "{listed:?}");
        String::from_utf8_lossy(&listed.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }

    fn kill_a(&mut self) {
        if let Some(a) = self.a.take() {
            a.kill();
        }
    }

    fn restart_a(&mut self) {
        self.kill_a();
        self.a = Some(GatewayProcess::start(&self.a_site));
    }

    /// A's log records, as `log tail` prints them.
    fn a_log(&self) -> Vec<serde_json::Value> {
        let config = self.a_site.config_path.to_str().expect("utf-8");
        let tail = aci(&["log", "tail", "--config", config]);
        assert!(tail.status.success(), "{tail:?}");
        String::from_utf8_lossy(&tail.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }
}

/// An administration's operator (its site) sends a notice to gateway TEST-A at its peer port.
fn notify_a(site: &Site, a_peer: u16, args: &[&str]) -> Output {
    let endpoint = format!("https://127.0.0.1:{a_peer}");
    let config = site.config_path.to_str().expect("utf-8");
    let mut all = vec![
        "notify",
        "--config",
        config,
        "--peer",
        "TEST-A",
        "--endpoint",
        &endpoint,
    ];
    all.extend_from_slice(args);
    aci(&all)
}

/// The sea sample with a second container holding the second goods item.
fn two_container_filing(lrn: &str) -> Manifest {
    let mut manifest = sea_filing(lrn);
    let first = &mut manifest.transport_equipment[0];
    first.goods_items.retain(|r| r.goods_item == 1);
    let mut second = TransportEquipment {
        container_number: SECOND_CONTAINER.into(),
        goods_items: vec![GoodsItemRef {
            consignment: 1,
            goods_item: 2,
        }],
        ..first.clone()
    };
    second.seal_numbers = vec!["SH0098813".into()];
    manifest.transport_equipment.push(second);
    manifest
}

fn rfc3339(at: SystemTime) -> String {
    time::OffsetDateTime::from(at)
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

/// The states of one item of a status (`container:NUMBER`), as their names.
fn item_states(status: &serde_json::Value, reference: &str) -> Vec<String> {
    status["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["target"]["reference"] == reference)
        .map(|i| {
            i["states"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| s.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_level_do_not_load_and_a_screening_referral_between_two_gateways() {
    let mut net = Network::start("max_attachment_bytes = 2048");
    let mrn = &net.file(two_container_filing("RISK-DNL-1")).await;

    // B stops one container of the two.
    let target = format!("container:{FIRST_CONTAINER}");
    let dnl = net.notify(&[
        mrn,
        "--kind",
        "do-not-load",
        "--target",
        &target,
        "--id",
        "B-DNL-1",
    ]);
    assert!(dnl.status.success(), "{dnl:?}");
    let notifications = net.notifications();
    let stopped = notifications
        .iter()
        .find(|n| n["notice_id"] == "B-DNL-1")
        .expect("the do-not-load on the carrier's stream");
    assert_eq!(stopped["kind"], "NOTICE_KIND_DO_NOT_LOAD");
    assert_eq!(stopped["targets"][0]["type"], "TARGET_TYPE_CONTAINER");
    assert_eq!(stopped["targets"][0]["reference"], FIRST_CONTAINER);
    let status = net.status(mrn);
    assert_eq!(
        item_states(&status, FIRST_CONTAINER),
        ["RISK_STATE_DO_NOT_LOAD"]
    );
    assert!(
        item_states(&status, SECOND_CONTAINER).is_empty(),
        "{status}"
    );

    // Assessment complete on it, by B, lifts it.
    let complete = net.notify(&[
        mrn,
        "--kind",
        "assessment-complete",
        "--target",
        &target,
        "--id",
        "B-AC-1",
    ]);
    assert!(complete.status.success(), "{complete:?}");
    let status = net.status(mrn);
    assert_eq!(
        item_states(&status, FIRST_CONTAINER),
        ["RISK_STATE_ASSESSMENT_COMPLETE"]
    );

    // Bad notices: an item the filing does not have, a code not in its list. Nothing stored.
    let records_before = net.a_log().len();
    let unknown = net.notify(&[
        mrn,
        "--kind",
        "do-not-load",
        "--target",
        "container:TGHU7654320",
    ]);
    assert_eq!(unknown.status.code(), Some(1), "{unknown:?}");
    assert_eq!(json(&unknown)["reason"], "NOTICE_UNKNOWN_TARGET");
    let bad_code = net.notify(&[mrn, "--kind", "referral-screening", "--method", "NOPE"]);
    assert_eq!(bad_code.status.code(), Some(1), "{bad_code:?}");
    assert_eq!(json(&bad_code)["reason"], "NOTICE_UNKNOWN_CODE");

    // A screening referral on both containers: two requests, due in a few seconds.
    let due = SystemTime::now() + Duration::from_secs(6);
    let second = format!("container:{SECOND_CONTAINER}");
    let referral = net.notify(&[
        mrn,
        "--kind",
        "referral-screening",
        "--target",
        &target,
        "--target",
        &second,
        "--method",
        "XRY",
        "--method",
        "EDD",
        "--deadline",
        &rfc3339(due),
        "--id",
        "B-RFS-1",
    ]);
    assert!(referral.status.success(), "{referral:?}");
    assert_eq!(json(&referral)["requests"], serde_json::json!(["1", "2"]));
    assert_eq!(
        net.a_log().len(),
        records_before + 1,
        "only the referral was stored"
    );

    // The carrier answers the first request with a result, the methods used, an attachment.
    let dir = tempfile::tempdir().expect("tmp");
    let report = dir.path().join("screening.txt");
    std::fs::write(&report, "x-ray image reviewed: no anomaly").expect("write");
    let too_big = dir.path().join("too-big.pdf");
    std::fs::write(&too_big, vec![b'%'; 4096]).expect("write");
    let report_path = report.to_str().expect("utf-8");
    let answered = net.carrier(&[
        "answer",
        mrn,
        "B-RFS-1",
        "--request",
        "1",
        "--result",
        "1",
        "--method",
        "XRY",
        "--method",
        "EDD",
        "--facility",
        "CNSHA",
        "--attach",
        report_path,
    ]);
    assert!(answered.status.success(), "{answered:?}");
    let status = json(&answered);
    let requests = &status["notices"]
        .as_array()
        .expect("notices")
        .iter()
        .find(|n| n["notice_id"] == "B-RFS-1")
        .expect("the referral")["requests"];
    assert_eq!(requests[0]["state"], "RISK_STATE_REFERRAL_ANSWERED");
    assert_eq!(requests[0]["answer"]["result"], "1");
    assert_eq!(requests[1]["state"], "RISK_STATE_REFERRAL_OPEN");
    assert!(
        item_states(&status, SECOND_CONTAINER).contains(&"RISK_STATE_REFERRAL_OPEN".to_owned())
    );

    // Bad answers: too large, an unknown result, another carrier's filing. Nothing stored.
    let records_before = net.a_log().len();
    let big = net.carrier(&[
        "answer",
        mrn,
        "B-RFS-1",
        "--request",
        "2",
        "--result",
        "1",
        "--method",
        "XRY",
        "--attach",
        too_big.to_str().expect("utf-8"),
    ]);
    assert_eq!(big.status.code(), Some(1), "{big:?}");
    assert_eq!(json(&big)["code"], "RESOURCE_EXHAUSTED");
    let bad_result = net.carrier(&["answer", mrn, "B-RFS-1", "--request", "2", "--result", "ZZ"]);
    assert_eq!(bad_result.status.code(), Some(1), "{bad_result:?}");
    assert_eq!(json(&bad_result)["field"], "answer.result");
    let again = net.carrier(&[
        "answer",
        mrn,
        "B-RFS-1",
        "--request",
        "1",
        "--result",
        "2",
        "--method",
        "PHS",
    ]);
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    assert_eq!(json(&again)["reason"], "REFERRAL_ANSWERED");
    let other = client(
        &net.carrier_endpoint(),
        &net.a_site.carrier_as("GB999999999000"),
    )
    .await
    .answer_referral(mrn, "B-RFS-1", "not mine")
    .await
    .expect_err("another carrier's filing");
    assert_eq!(other.code(), tonic::Code::NotFound);
    assert_eq!(
        net.a_log().len(),
        records_before,
        "no refused answer was stored"
    );

    // The answer reached B, structured.
    let b_config = net.b_site.config_path.to_str().expect("utf-8");
    wait_until("the answer at B", || {
        let tail = aci(&["log", "tail", "--config", b_config]);
        String::from_utf8_lossy(&tail.stdout).contains("screening.txt")
    });

    // A is down when the deadline passes; once back, the open request is overdue and the
    // carrier is told, once, even across another SIGKILL.
    net.kill_a();
    while SystemTime::now() < due + Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(100));
    }
    net.restart_a();
    let overdue = |net: &Network| {
        net.notifications()
            .into_iter()
            .filter(|n| n["kind"] == "NOTICE_KIND_REFERRAL_OVERDUE")
            .collect::<Vec<_>>()
    };
    wait_until("the overdue notification", || !overdue(&net).is_empty());
    net.restart_a();
    std::thread::sleep(Duration::from_secs(2));
    let told = overdue(&net);
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["notice_id"], "B-RFS-1");
    assert_eq!(told[0]["requests"][0]["request"]["reference"], "2");
    let status = net.status(mrn);
    assert!(
        item_states(&status, SECOND_CONTAINER).contains(&"RISK_STATE_REFERRAL_OVERDUE".to_owned()),
        "{status}"
    );
    assert!(
        item_states(&status, FIRST_CONTAINER).contains(&"RISK_STATE_REFERRAL_ANSWERED".to_owned()),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_freezes_the_filing_and_arrival_registers_several_with_facts() {
    let net = Network::start("");
    let mut carrier = client(&net.carrier_endpoint(), &net.a_site.carrier()).await;
    let mut mrns = Vec::new();
    for i in 0..4 {
        mrns.push(
            carrier
                .submit(sea_filing(&format!("RISK-CTL-{i}")))
                .await
                .expect("filed")
                .mrn,
        );
    }
    let control = net.notify(&[
        &mrns[0],
        "--kind",
        "control",
        "--office",
        "NL000396",
        "--at",
        "2030-12-02T10:00:00Z",
        "--place",
        "NLRTM",
        "--id",
        "B-CTL-1",
    ]);
    assert!(control.status.success(), "{control:?}");
    let controlled = net
        .notifications()
        .into_iter()
        .find(|n| n["notice_id"] == "B-CTL-1")
        .expect("the control on the carrier's stream");
    assert_eq!(controlled["control"]["office"], "NL000396");
    assert_eq!(net.status(&mrns[0])["under_control"], true);

    let dir = tempfile::tempdir().expect("tmp");
    let amended = dir.path().join("amended.json");
    let mut manifest = sea_filing("RISK-CTL-0");
    manifest.consignments[0].goods_items[0]
        .description
        .push_str(" (amended)");
    std::fs::write(&amended, aci_gateway::pb::to_json(&manifest).to_string()).expect("write");
    let amend = net.carrier(&["amend", &mrns[0], amended.to_str().expect("utf-8")]);
    assert_eq!(amend.status.code(), Some(1), "{amend:?}");
    assert_eq!(json(&amend)["reason"], "LIFECYCLE_UNDER_CONTROL");
    let invalidate = net.carrier(&["invalidate", &mrns[0], "--reason", "cancelled"]);
    assert_eq!(invalidate.status.code(), Some(1), "{invalidate:?}");
    assert_eq!(json(&invalidate)["reason"], "LIFECYCLE_UNDER_CONTROL");

    // Three arrivals at once, with their facts; one MRN that is not the carrier's is answered
    // as one that does not exist.
    let other = client(
        &net.carrier_endpoint(),
        &net.a_site.carrier_as("GB999999999000"),
    )
    .await
    .submit({
        let mut m = sea_filing("RISK-OTHER");
        if let Some(d) = m.declarant.as_mut() {
            d.eori = "GB999999999000".into();
        }
        m
    })
    .await;
    let arrived_at = rfc3339(SystemTime::now() - Duration::from_secs(60));
    let arrive = net.carrier(&[
        "arrive",
        &mrns[1],
        &mrns[2],
        "--document",
        "BL-RISK-CTL-3",
        "--at",
        &arrived_at,
        "--office",
        "NL000396",
        "--means",
        "9319466",
    ]);
    assert!(arrive.status.success(), "{arrive:?}");
    let results = json(&arrive)["results"].clone();
    let keys = [mrns[1].as_str(), mrns[2].as_str(), "BL-RISK-CTL-3"];
    for (i, result) in results.as_array().expect("results").iter().enumerate() {
        assert_eq!(result["key"], keys[i]);
        assert_eq!(result["status"]["mrn"], mrns[i + 1]);
        assert_eq!(
            result["status"]["state"], "FILING_STATE_ARRIVED",
            "{result}"
        );
    }
    let registered = net
        .notifications()
        .into_iter()
        .filter(|n| n["kind"] == "NOTICE_KIND_ARRIVAL_REGISTERED")
        .collect::<Vec<_>>();
    assert_eq!(registered.len(), 3);
    assert_eq!(registered[0]["arrival"]["office"], "NL000396");
    assert_eq!(registered[0]["arrival"]["means_of_transport"], "9319466");
    let strangers = [
        "26GB00000000000998".to_owned(),
        other.map(|r| r.mrn).unwrap_or_default(),
    ];
    let mut answers = Vec::new();
    for stranger in strangers.iter().filter(|m| !m.is_empty()) {
        let refused = net.carrier(&["arrive", stranger]);
        assert_eq!(refused.status.code(), Some(1), "{refused:?}");
        let mut answer = json(&refused)["results"][0]["rejection"].clone();
        answer["key"] = serde_json::Value::Null;
        answers.push(answer);
    }
    assert_eq!(
        answers.len(),
        2,
        "the other carrier's filing was registered"
    );
    assert_eq!(answers[0]["code"], 5, "NOT_FOUND: {answers:?}");
    assert_eq!(answers[0], answers[1], "another's filing looks like none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_invalidation_fires_once_across_a_sigkill() {
    let mut net = Network::start("automatic_invalidation_after = \"4s\"");
    let mrn = &net.file(sea_filing("RISK-AUTO-1")).await;
    net.kill_a();
    std::thread::sleep(Duration::from_secs(5));
    net.restart_a();
    wait_until("the automatic invalidation", || {
        net.status(mrn)["state"] == "FILING_STATE_INVALIDATED"
    });
    net.restart_a();
    std::thread::sleep(Duration::from_secs(2));
    let invalidations = net
        .a_log()
        .into_iter()
        .filter(|r| r["kind"] == "RECORD_KIND_INVALIDATION")
        .collect::<Vec<_>>();
    assert_eq!(invalidations.len(), 1, "{invalidations:?}");
    assert!(
        invalidations[0]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("automatic")),
        "{invalidations:?}"
    );
    let told = net
        .notifications()
        .into_iter()
        .filter(|n| n["kind"] == "NOTICE_KIND_INVALIDATED")
        .count();
    assert_eq!(told, 1);
    let status = net.status(mrn);
    assert_eq!(status["history"][1]["event"], "invalidated automatically");
    let arrive = net.carrier(&["arrive", mrn]);
    assert_eq!(arrive.status.code(), Some(1), "{arrive:?}");
    assert_eq!(
        json(&arrive)["results"][0]["rejection"]["code"],
        9,
        "FAILED_PRECONDITION"
    );
}

/// The next notification of a feed, within 30 s.
async fn next_notification(
    feed: &mut tonic::Streaming<aci_gateway::pb::Notification>,
) -> aci_gateway::pb::Notification {
    tokio::time::timeout(Duration::from_secs(30), feed.message())
        .await
        .expect("a notification in time")
        .expect("the stream")
        .expect("not ended")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incomplete_partial_filing_is_reminded_and_told_when_its_house_filing_changes() {
    // A reminder lead longer than the time to the sample's deadline: it is due at once.
    let (site, gateway) = GatewayBuilder::default()
        .lifecycle("incomplete_reminder_before = \"3650d\"")
        .start()
        .await;
    let endpoint = common::endpoint(&gateway);
    let mut carrier = client(&endpoint, &site.carrier()).await;
    let mut partial: Manifest =
        aci_gateway::pb::from_json(include_str!("../schemas/examples/sea-f12.json"))
            .expect("sample");
    partial.lrn = "RISK-F12-1".into();
    let master = partial.consignments[0]
        .transport_document
        .as_ref()
        .map(|d| d.number.clone())
        .expect("a master document");
    let partial = carrier.submit(partial).await.expect("partial filed");
    let mut feed = carrier.watch_notifications(0).await.expect("feed");
    let reminder = next_notification(&mut feed).await;
    assert_eq!(
        reminder.kind(),
        aci_gateway::pb::NoticeKind::IncompleteReminder
    );
    assert_eq!(reminder.mrn, partial.mrn);
    assert_eq!(reminder.missing_links, [master.as_str()]);
    assert_eq!(reminder.next_filing_party, "NL812345678");

    // The next filing party files the house level, then amends it: the carrier is told.
    let mut house_filer = client(&endpoint, &site.carrier_as("NL812345678")).await;
    let mut house: Manifest =
        aci_gateway::pb::from_json(include_str!("../schemas/examples/sea-f15.json"))
            .expect("sample");
    house.lrn = "RISK-F15-1".into();
    if let Some(declarant) = house.declarant.as_mut() {
        declarant.eori = "NL812345678".into();
    }
    if let Some(document) = house.consignments[0].master_document.as_mut() {
        document.number.clone_from(&master);
    }
    let filed = house_filer
        .submit(house.clone())
        .await
        .expect("house filed");
    house.consignments[0].goods_items[0]
        .description
        .push_str(" (corrected)");
    house_filer
        .amend(&filed.mrn, house)
        .await
        .expect("house amended");
    let told = next_notification(&mut feed).await;
    assert_eq!(told.kind(), aci_gateway::pb::NoticeKind::LinkedAmended);
    assert_eq!(told.mrn, partial.mrn);
    assert_eq!(told.related_mrn, filed.mrn);
    let status = carrier.status_by_mrn(&partial.mrn).await.expect("status");
    assert_eq!(status.state(), aci_gateway::pb::FilingState::Registered);
    assert!(
        status
            .history
            .iter()
            .any(|t| t.event == "incomplete reminder"),
        "{status:?}"
    );
    gateway.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_reaches_the_other_administrations_of_the_filing_once() {
    use aci_gateway::server::{Gateway, Options};
    let network = GatewayBuilder::default().id("TEST-N").site();
    let (a_peer, b_peer, c_peer) = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    let peer_of = |id: &str, port: u16| {
        GatewayBuilder::default()
            .id(id)
            .network_of(&network)
            .peer_port(port)
            .peer("TEST-A", None)
            .site()
    };
    let (b_site, c_site) = (peer_of("TEST-B", b_peer), peer_of("TEST-C", c_peer));
    let a_site = GatewayBuilder::default()
        .network_of(&network)
        .peer_port(a_peer)
        .peer("TEST-B", Some(format!("https://127.0.0.1:{b_peer}")))
        .peer("TEST-C", Some(format!("https://127.0.0.1:{c_peer}")))
        .route("peer = \"TEST-B\"\nmodes = [\"sea\"]")
        .route("peer = \"TEST-C\"\nmodes = [\"sea\"]")
        .site();
    let start = |site: &Site| {
        let config = site.config();
        async move {
            Gateway::start(&config, Options::default())
                .await
                .expect("gateway starts")
        }
    };
    let (b, c, a) = (
        start(&b_site).await,
        start(&c_site).await,
        start(&a_site).await,
    );
    let filed = client(&common::endpoint(&a), &a_site.carrier())
        .await
        .submit(sea_filing("RISK-CTL-FWD"))
        .await
        .expect("filed");
    let control = notify_a(
        &b_site,
        a_peer,
        &[
            &filed.mrn,
            "--kind",
            "control",
            "--office",
            "NL000396",
            "--id",
            "B-CTL-FWD",
        ],
    );
    assert!(control.status.success(), "{control:?}");

    let controls = |gateway: &Gateway| {
        common::log_records(gateway.store())
            .into_iter()
            .filter(|r| r.envelope_kind == aci_gateway::pb::EnvelopeKind::Control as i32)
            .collect::<Vec<_>>()
    };
    wait_until("the control at C", || !controls(&c).is_empty());
    let at_c = controls(&c);
    assert_eq!(at_c.len(), 1, "once");
    assert_eq!(at_c[0].mrn, filed.mrn);
    assert_eq!(at_c[0].reason, "TEST-B", "who announced it");
    assert_eq!(
        at_c[0]
            .notice
            .as_ref()
            .and_then(|n| n.control.as_ref())
            .map(|c| c.office.as_str()),
        Some("NL000396")
    );
    // Not back to the administration that announced it: once A forwarded all it has to B, B
    // holds the filing and not the control.
    wait_until("A forwarded everything to B", || {
        let durable = a
            .store()
            .stats()
            .durable_seq
            .load(std::sync::atomic::Ordering::Acquire);
        a.exchange()
            .reports()
            .iter()
            .any(|r| r.peer == "TEST-B" && r.cursor >= durable)
    });
    assert!(
        common::log_records(b.store())
            .iter()
            .any(|r| r.mrn == filed.mrn)
    );
    assert!(controls(&b).is_empty());
    for gateway in [a, b, c] {
        gateway.stop().await.expect("stop");
    }
}
