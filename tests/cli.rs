//! The command line as a user runs it: the real binary against a real gateway.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use aci_gateway::client::{ClientTls, Credentials};
use aci_gateway::server::{Gateway, Options};
use common::{GatewayBuilder, client, sea_filing};

fn aci(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aci-gateway"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run aci-gateway")
}

fn client_args<'a>(endpoint: &'a str, tls: &'a ClientTls) -> Vec<&'a str> {
    client_args_with_config("/nonexistent/gateway.toml", endpoint, tls)
}

/// The same, with a config for what else the command reads of it.
fn client_args_with_config<'a>(
    config: &'a str,
    endpoint: &'a str,
    tls: &'a ClientTls,
) -> Vec<&'a str> {
    vec![
        "--config",
        config,
        "--endpoint",
        endpoint,
        "--ca",
        tls.ca.to_str().expect("utf-8 path"),
        "--cert",
        tls.cert.to_str().expect("utf-8 path"),
        "--key",
        tls.key.to_str().expect("utf-8 path"),
    ]
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_prints_the_receipt_or_every_violation_with_exit_codes() {
    let (site, gateway) = GatewayBuilder::default().start().await;
    let endpoint = common::endpoint(&gateway);
    let Credentials::Tls(tls) = site.carrier() else {
        unreachable!("the fixture carrier uses TLS")
    };
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/examples");
    let sea = examples.join("sea-f10.json");
    let invalid = examples.join("invalid/sea-f10.json");

    let mut args = vec!["submit", sea.to_str().expect("path")];
    args.extend(client_args(&endpoint, &tls));
    let first = aci(&args);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let receipt = json(&first);
    for field in [
        "mrn",
        "sequence",
        "digest",
        "chain_hash",
        "received_at",
        "warnings",
    ] {
        assert!(
            receipt.get(field).is_some(),
            "receipt lacks {field}: {receipt}"
        );
    }
    assert_eq!(receipt["lrn"], "SEA-2026-000001");
    assert!(receipt["warnings"].is_array(), "{receipt}");

    let second = aci(&args);
    assert_eq!(second.status.code(), Some(0));
    assert_eq!(
        json(&second),
        receipt,
        "a resubmission prints the same receipt"
    );

    let mut args = vec!["submit", invalid.to_str().expect("path")];
    args.extend(client_args(&endpoint, &tls));
    let refused = aci(&args);
    assert_eq!(refused.status.code(), Some(1));
    let answer = json(&refused);
    assert_eq!(answer["code"], "INVALID_ARGUMENT");
    let paths: Vec<&str> = answer["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .map(|v| v["path"].as_str().expect("path"))
        .collect();
    assert_eq!(
        paths,
        [
            "itinerary.place_of_first_entry.locode",
            "consignments[0].goods_items[0].hs_code"
        ]
    );

    let mrn = receipt["mrn"].as_str().expect("mrn");
    let mut args = vec!["status", mrn];
    args.extend(client_args(&endpoint, &tls));
    let status = aci(&args);
    assert_eq!(status.status.code(), Some(0));
    assert_eq!(json(&status)["receipt"], receipt);

    gateway.stop().await.expect("stop");

    // Nobody listening: a transport error, exit 2.
    let mut args = vec!["submit", sea.to_str().expect("path")];
    args.extend(client_args(&endpoint, &tls));
    let unreachable = aci(&args);
    assert_eq!(unreachable.status.code(), Some(2));
}

#[test]
fn validate_works_offline_with_every_finding() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/examples");
    let good = aci(&[
        "validate",
        examples.join("air-f23.json").to_str().expect("path"),
    ]);
    assert_eq!(
        good.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&good.stdout)
    );
    assert_eq!(json(&good)["valid"], true);

    let bad = aci(&[
        "validate",
        examples
            .join("invalid/sea-f10.json")
            .to_str()
            .expect("path"),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    let answer = json(&bad);
    assert_eq!(answer["valid"], false);
    let rules: Vec<&str> = answer["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .map(|v| v["rule"].as_str().expect("rule"))
        .collect();
    assert!(rules.contains(&"field.pattern"), "{answer}");

    let missing = aci(&["validate", "/nonexistent.json"]);
    assert_eq!(missing.status.code(), Some(2));
}

/// `validate` over folders: every filing in them, on several threads, a table or JSON lines,
/// exit 1 when one is invalid and 2 when one cannot be read.
#[test]
fn validate_checks_every_filing_of_folders_on_every_core() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/examples");
    let filings = |dir: &Path| {
        std::fs::read_dir(dir)
            .expect("examples")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "xml"))
            .count()
    };
    let (valid, invalid) = (
        filings(&examples) + filings(&examples.join("v1")),
        filings(&examples.join("invalid")),
    );
    assert!(valid >= 14 && invalid >= 2);

    let lines = aci(&[
        "validate",
        "--json",
        "--jobs",
        "2",
        examples.to_str().expect("path"),
    ]);
    assert_eq!(
        lines.status.code(),
        Some(1),
        "the invalid/ folder is searched too"
    );
    let verdicts: Vec<serde_json::Value> = String::from_utf8_lossy(&lines.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(verdicts.len(), valid + invalid);
    let invalid_files: Vec<&str> = verdicts
        .iter()
        .filter(|v| v["verdict"] == "invalid")
        .map(|v| v["file"].as_str().expect("file"))
        .collect();
    assert_eq!(invalid_files.len(), invalid, "{invalid_files:?}");
    assert!(invalid_files.iter().all(|f| f.contains("/invalid/")));
    assert!(
        verdicts
            .iter()
            .filter(|v| v["verdict"] == "invalid")
            .all(|v| v["findings"].as_u64() > Some(0) && v["violations"].is_array())
    );

    let all_good = examples.join("sea-f10.json");
    let also_good = examples.join("sea-f10.xml");
    let table = aci(&[
        "validate",
        all_good.to_str().expect("path"),
        also_good.to_str().expect("path"),
    ]);
    assert_eq!(table.status.code(), Some(0));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("file"), "a table: {text}");
    assert!(
        text.contains("2 files: 2 valid, 0 invalid, 0 unreadable"),
        "{text}"
    );

    let missing = aci(&[
        "validate",
        all_good.to_str().expect("path"),
        "/nonexistent.json",
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stdout).contains("unreadable"));
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    // `aci-gateway validate schemas/examples | head -0`: the reader is gone before the output.
    let mut child = Command::new(env!("CARGO_BIN_EXE_aci-gateway"))
        .args(["validate", "--config", "/nonexistent/gateway.toml"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/examples"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run aci-gateway");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_bad_config_is_reported_before_anything_listens() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        include_str!("../config/gateway.toml").replace("[admin]", "[admin]\nport = 1"),
    )
    .expect("write");
    let output = aci(&["serve", "--config", config.to_str().expect("path")]);
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("gateway.toml"), "{stderr}");
    assert!(stderr.contains("port"), "{stderr}");
}

#[tokio::test]
async fn insecure_dev_serves_plaintext_and_trusts_only_the_claimed_carrier() {
    let site = GatewayBuilder::default().site();
    let gateway = Gateway::start(
        &site.config(),
        Options {
            insecure_dev: true,
            ..Options::default()
        },
    )
    .await
    .expect("start");
    let endpoint = format!("http://{}", gateway.carrier_addr);
    let dev = Credentials::InsecureDev {
        eori: common::CARRIER.into(),
    };
    let mut carrier = client(&endpoint, &dev).await;
    let receipt = carrier.submit(sea_filing("DEV-1")).await.expect("accepted");
    assert_eq!(receipt.filer, common::CARRIER);

    // Still one filer per identity: the claimed carrier cannot file as another.
    let other = Credentials::InsecureDev {
        eori: common::OTHER_CARRIER.into(),
    };
    let mut impostor = client(&endpoint, &other).await;
    let status = impostor
        .submit(sea_filing("DEV-2"))
        .await
        .expect_err("impersonation");
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    gateway.stop().await.expect("stop");
}

#[test]
fn validate_schema_only_agrees_with_xmllint_on_the_examples() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tmp");
    let mut documents = Vec::new();
    // The current samples against the current schema, version 1's against version 1's.
    for (folder, xsd) in [
        ("schemas/examples", "schemas/aci-manifest-2.xsd"),
        ("schemas/examples/v1", "schemas/aci-manifest-1.xsd"),
    ] {
        let xsd = root.join(xsd);
        for entry in std::fs::read_dir(root.join(folder)).expect("examples") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "xml") {
                let text = std::fs::read_to_string(&path).expect("read");
                let stem = path
                    .file_stem()
                    .expect("stem")
                    .to_string_lossy()
                    .into_owned();
                documents.push((path.clone(), xsd.clone()));
                for (i, (from, to)) in [
                    ("<Lrn>", "<Lrn>\u{20ac}"),
                    ("</Totals>", "<Extra/></Totals>"),
                    ("<Sequence>1<", "<Sequence>0<"),
                ]
                .iter()
                .enumerate()
                {
                    let mutated = dir.path().join(format!("{stem}-{i}.xml"));
                    std::fs::write(&mutated, text.replacen(from, to, 1)).expect("write");
                    documents.push((mutated, xsd.clone()));
                }
            }
        }
    }
    assert!(documents.len() >= 20);
    for (document, xsd) in documents {
        let ours = aci(&[
            "validate",
            "--schema-only",
            document.to_str().expect("path"),
        ]);
        let theirs = Command::new("xmllint")
            .args(["--noout", "--nonet", "--schema"])
            .arg(&xsd)
            .arg(&document)
            .output()
            .expect("xmllint is needed (apt-get install libxml2-utils)");
        assert_eq!(
            ours.status.code() == Some(0),
            theirs.status.success(),
            "{}: ours {}, xmllint {}",
            document.display(),
            String::from_utf8_lossy(&ours.stdout),
            String::from_utf8_lossy(&theirs.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_verify_and_tail_read_the_log_as_operators_need() {
    let (site, gateway) = GatewayBuilder::default().start().await;
    let mut carrier = client(&common::endpoint(&gateway), &site.carrier()).await;
    for i in 1..=3 {
        carrier
            .submit(sea_filing(&format!("LOG-{i}")))
            .await
            .expect("filed");
    }
    gateway.stop().await.expect("stop");
    let config = site.config_path.to_str().expect("path");

    let verified = aci(&["log", "verify", "--config", config]);
    assert_eq!(verified.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&verified.stdout).starts_with("3 records verified"));

    let tail = aci(&["log", "tail", "--from", "2", "--config", config]);
    assert_eq!(tail.status.code(), Some(0));
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&tail.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let sequences: Vec<&str> = records
        .iter()
        .map(|r| r["sequence"].as_str().expect("seq"))
        .collect();
    assert_eq!(sequences, ["2", "3"]);
    assert_eq!(records[0]["lrn"], "LOG-2");
    // The original bytes are not printed, only counted: here the protobuf the client sent.
    let sent = prost::Message::encoded_len(&sea_filing("LOG-2")) as u64;
    assert_eq!(records[0]["original_bytes"].as_u64(), Some(sent));

    // A flipped byte inside the second record: verify names it and fails.
    let segment = aci_gateway::store::list_segments(&site.data_dir().join("log"))
        .expect("segments")
        .pop()
        .expect("segment")
        .1;
    let mut bytes = std::fs::read(&segment).expect("read");
    let second = common::records_end(&segment) as usize / 2;
    bytes[second] ^= 0x01;
    std::fs::write(&segment, bytes).expect("write");
    let broken = aci(&["log", "verify", "--config", config]);
    assert_eq!(broken.status.code(), Some(1));
    let report = String::from_utf8_lossy(&broken.stdout);
    assert!(report.contains("record 2"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_notify_notifications_and_answer_work_from_the_command_line() {
    let network = GatewayBuilder::default().id("TEST-N").site();
    let (a_port, b_port, admin_port) = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    let b_site = GatewayBuilder::default()
        .id("TEST-B")
        .network_of(&network)
        .peer_port(b_port)
        .peer("TEST-A", None)
        .site();
    let a_site = GatewayBuilder::default()
        .network_of(&network)
        .peer_port(a_port)
        .admin_port(admin_port)
        .peer("TEST-B", Some(format!("https://127.0.0.1:{b_port}")))
        .route("peer = \"TEST-B\"\nmodes = [\"sea\"]")
        .site();
    let b = Gateway::start(&b_site.config(), Options::default())
        .await
        .expect("B starts");
    let a = Gateway::start(&a_site.config(), Options::default())
        .await
        .expect("A starts");
    let receipt = client(&common::endpoint(&a), &a_site.carrier())
        .await
        .submit(sea_filing("CLI-PEERS-1"))
        .await
        .expect("filed");
    let a_config = a_site.config_path.to_str().expect("path");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let peers = loop {
        let peers = aci(&["peers", "--config", a_config, "--json"]);
        assert!(peers.status.success(), "{peers:?}");
        let peers = json(&peers);
        if peers[0]["cursor"] == receipt.sequence {
            break peers;
        }
        assert!(std::time::Instant::now() < deadline, "{peers}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(peers[0]["peer"], "TEST-B");
    assert_eq!(peers[0]["connected"], true);
    let table = aci(&["peers", "--config", a_config]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("TEST-B") && table.contains("connected"),
        "{table}"
    );

    // B's operator asks for information, as B; the carrier sees it and answers.
    let a_endpoint = format!("https://127.0.0.1:{a_port}");
    let b_config = b_site.config_path.to_str().expect("path");
    let notify = aci(&[
        "notify",
        "--config",
        b_config,
        "--peer",
        "TEST-A",
        "--endpoint",
        &a_endpoint,
        &receipt.mrn,
        "--kind",
        "referral-information",
        "--text",
        "the dangerous goods declaration, please",
        "--id",
        "B-REF-1",
        "--deadline",
        "2030-01-01T00:00:00Z",
    ]);
    assert!(notify.status.success(), "{notify:?}");
    assert_eq!(json(&notify)["duplicate"], false);

    let Credentials::Tls(tls) = a_site.carrier() else {
        unreachable!("the fixture carrier uses TLS")
    };
    let endpoint = common::endpoint(&a);
    let mut args = vec!["notifications"];
    args.extend(client_args(&endpoint, &tls));
    let listed = aci(&args);
    assert!(listed.status.success(), "{listed:?}");
    let line = String::from_utf8_lossy(&listed.stdout);
    let notification: serde_json::Value =
        serde_json::from_str(line.lines().next().expect("one notification")).expect("JSON");
    assert_eq!(notification["notice_id"], "B-REF-1", "{notification}");
    assert_eq!(notification["kind"], "NOTICE_KIND_REFERRAL_INFORMATION");

    let mut args = vec!["answer", &receipt.mrn, "B-REF-1", "--text", "attached"];
    args.extend(client_args(&endpoint, &tls));
    let answered = aci(&args);
    assert!(answered.status.success(), "{answered:?}");
    assert_eq!(json(&answered)["notices"][0]["answer"], "attached");
    let mut args = vec!["answer", &receipt.mrn, "NO-SUCH", "--text", "x"];
    args.extend(client_args(&endpoint, &tls));
    let unknown = aci(&args);
    assert_eq!(unknown.status.code(), Some(1), "{unknown:?}");
    a.stop().await.expect("stop A");
    b.stop().await.expect("stop B");
}

#[test]
fn demo_runs_two_gateways_end_to_end_and_exits_0() {
    let dir = tempfile::tempdir().expect("tmp");
    let keep = dir.path().join("demo");
    let demo = aci(&["demo", "--dir", keep.to_str().expect("path")]);
    let out = String::from_utf8_lossy(&demo.stdout);
    assert!(
        demo.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    for expected in [
        "sea      accepted",
        "inland   accepted",
        "violations:",
        "warning [deadline.late_filing]",
        "lag 0 records",
        "NL-DEMO-B Acknowledged",
        "carrier's stream: NOTICE_KIND_DO_NOT_LOAD from NL-DEMO-B",
        "container:CSQU3054383: RISK_STATE_DO_NOT_LOAD",
        "RISK_STATE_REFERRAL_ANSWERED",
        "container:CSQU3054383: RISK_STATE_REFERRAL_ANSWERED, RISK_STATE_ASSESSMENT_COMPLETE",
        "amend refused: LIFECYCLE_UNDER_CONTROL",
        "demo complete",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }
    // Both gateways' logs verify: A holds the 8 filings, B's four notices and the carrier's
    // answer; B the 8 filings and the answer it received.
    for (gateway, records) in [("GB-DEMO-A", 13), ("NL-DEMO-B", 9)] {
        let config = keep.join(format!("{gateway}.toml"));
        let verify = aci(&["log", "verify", "--config", config.to_str().expect("path")]);
        assert!(verify.status.success(), "{verify:?}");
        let text = String::from_utf8_lossy(&verify.stdout);
        assert!(
            text.starts_with(&format!("{records} records verified")),
            "{gateway}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_drives_unary_and_stream_load_and_reports_it() {
    let (site, gateway) = GatewayBuilder::default().start().await;
    let endpoint = common::endpoint(&gateway);
    let Credentials::Tls(tls) = site.carrier() else {
        unreachable!("the fixture carrier uses TLS")
    };
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/examples");
    for (mode, connections) in [("unary", "2"), ("stream", "1")] {
        let mut args = vec![
            "load",
            "--mode",
            mode,
            "--connections",
            connections,
            "--concurrency",
            "8",
            "--count",
            "60",
            "--payloads",
            examples.to_str().expect("path"),
            "--json",
        ];
        args.extend(client_args(&endpoint, &tls));
        let run = aci(&args);
        assert!(run.status.success(), "{run:?}");
        let report = json(&run);
        // Every sample (JSON and XML, every mode) made unique each time: all accepted.
        assert_eq!(report["ok"], 60, "{mode}: {report}");
        assert_eq!(report["errors"], serde_json::json!({}), "{mode}: {report}");
        assert!(report["latency_us"]["p50"].as_u64().expect("p50") > 0);
        assert!(report["throughput"].as_f64().expect("rate") > 0.0);
    }
    assert_eq!(
        gateway
            .store()
            .stats()
            .durable_seq
            .load(std::sync::atomic::Ordering::Acquire),
        120,
        "120 filings stored"
    );
    // Status reads of random stored filings (their MRNs from the config's country): all found;
    // told of more filings than there are, the unknown ones count as NotFound, not as reads.
    let config = site.config_path.to_str().expect("utf-8 path");
    for (stored, all_found) in [("120", true), ("240", false)] {
        let mut args = vec![
            "load",
            "--mode",
            "status",
            "--stored",
            stored,
            "--concurrency",
            "4",
            "--count",
            "80",
            "--json",
        ];
        args.extend(client_args_with_config(config, &endpoint, &tls));
        let run = aci(&args);
        assert!(run.status.success(), "{run:?}");
        let report = json(&run);
        let ok = report["ok"].as_u64().expect("ok");
        let missing = report["errors"]["NotFound"].as_u64().unwrap_or(0);
        assert_eq!(ok + missing, 80, "{stored}: {report}");
        if all_found {
            assert_eq!(
                report["errors"],
                serde_json::json!({}),
                "{stored}: {report}"
            );
        } else {
            assert!(ok > 10 && missing > 10, "{stored}: {report}");
        }
    }
    let misuse = aci(&["load", "--stored", "5", "--count", "1", "--config", config]);
    assert_eq!(misuse.status.code(), Some(2), "a usage error: {misuse:?}");
    assert!(String::from_utf8_lossy(&misuse.stderr).contains("--mode status"));
    gateway.stop().await.expect("clean stop");
}

#[test]
fn serve_logs_json_lines_to_stdout_when_configured() {
    let site = GatewayBuilder::default().site();
    let mut config = std::fs::read_to_string(&site.config_path).expect("config");
    config.push_str("\n[telemetry]\nlog_format = \"json\"\n");
    std::fs::write(&site.config_path, config).expect("config");
    let ready = site.dir.path().join("ready.json");
    let child = Command::new(env!("CARGO_BIN_EXE_aci-gateway"))
        .args(["serve", "--config"])
        .arg(&site.config_path)
        .arg("--ready-file")
        .arg(&ready)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("serve");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !ready.exists() {
        assert!(std::time::Instant::now() < deadline, "not ready");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let output = child.wait_with_output().expect("exits");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not JSON: {e}")))
        .collect();
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect();
    for expected in ["gateway listening", "gateway stopped"] {
        assert!(messages.contains(&expected), "{messages:?}");
    }
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string())
    );
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("gateway listening"),
        "logs go to stdout, not stderr"
    );
}

/// `notifications --follow` outlives the connection it started on: when the gateway ends its
/// stream (here: the connection's maximum age), it resumes after the last notice printed, so a
/// notice sent later is printed once, and none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_follow_resumes_when_the_connection_ages_out() {
    use aci_gateway::pb::{Notice, NoticeKind};
    use std::io::{BufRead, BufReader};
    let site = GatewayBuilder::default()
        .carrier_api("max_connection_age_seconds = 2\nmax_connection_age_grace_seconds = 1")
        .peer("TEST-B", None)
        .route("peer = \"TEST-B\"\nmodes = [\"sea\"]")
        .site();
    let gateway = Gateway::start(&site.config(), Options::default())
        .await
        .expect("start");
    let endpoint = common::endpoint(&gateway);
    let receipt = client(&endpoint, &site.carrier())
        .await
        .submit(sea_filing("CLI-FOLLOW-1"))
        .await
        .expect("filed");
    let peer_files = site.pki.client_files(
        "peer-b",
        &site.pki.admin_ca,
        &aci_gateway::pki::admin_uri("TEST-B"),
        aci_gateway::pki::Validity::days(1),
    );
    let mut peer = aci_gateway::client::PeerClient::connect(
        &format!("https://{}", gateway.peer_addr),
        "TEST-A",
        &peer_files,
    )
    .await
    .expect("peer connects");
    let notice = |id: &str| Notice {
        notice_id: id.into(),
        mrn: receipt.mrn.clone(),
        kind: NoticeKind::AssessmentComplete as i32,
        text: format!("notice {id}"),
        deadline: None,
        ..Default::default()
    };
    peer.notify(notice("FOLLOW-1")).await.expect("first notice");

    let Credentials::Tls(tls) = site.carrier() else {
        unreachable!("the fixture carrier uses TLS")
    };
    let mut args = vec!["notifications", "--follow"];
    args.extend(client_args(&endpoint, &tls));
    let mut follower = Command::new(env!("CARGO_BIN_EXE_aci-gateway"))
        .args(&args)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("follow");
    let stdout = follower.stdout.take().expect("stdout");
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let next = |what: &str| {
        let line = lines
            .recv_timeout(std::time::Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{what} within 20 s"));
        serde_json::from_str::<serde_json::Value>(&line).expect("JSON line")
    };
    assert_eq!(next("the first notice")["notice_id"], "FOLLOW-1");
    // Past the connection's age and its grace: the stream the follower had is gone.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    peer.notify(notice("FOLLOW-2"))
        .await
        .expect("second notice");
    assert_eq!(next("the second notice")["notice_id"], "FOLLOW-2");
    assert!(
        lines
            .recv_timeout(std::time::Duration::from_secs(2))
            .is_err(),
        "a notice printed twice"
    );
    let _ = follower.kill();
    let _ = follower.wait();
    gateway.stop().await.expect("stop");
}
