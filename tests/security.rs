//! The gateway attacked as a holder of a valid certificate would attack it, and as a stranger
//! would: one test per finding of the security review, each against a real gateway.

mod common;

use std::time::{Duration, Instant};

use aci_gateway::client::ClientTls;
use aci_gateway::pb::{FilingState, Manifest, Party, TransportDocument};
use aci_gateway::pki::Validity;
use bytes::Bytes;
use common::{GatewayBuilder, GatewayProcess, client, endpoint, sea_filing};
use tonic::Code;

/// The carrier that files the partial (master-level) filing, and the one it names.
const MASTER_FILER: &str = common::CARRIER;
const NAMED_PARTY: &str = "NL812345678";
const INTRUDER: &str = "FR12345678901";

/// A partial filing (F12) of master bill `master_bl`, filed by `filer`, naming `next_party`.
fn partial(filer: &str, lrn: &str, master_bl: &str, next_party: &str) -> Manifest {
    let mut manifest = as_filer(sea_filing(lrn), filer);
    manifest.filing_type = "F12".into();
    // The master-only partial set leaves buyer and seller to the house filings.
    manifest.consignments[0].buyer = None;
    manifest.consignments[0].seller = None;
    manifest.next_filing_party = Some(Party {
        eori: next_party.into(),
        name: "Next filing party".into(),
        ..Default::default()
    });
    let document = manifest.consignments[0]
        .transport_document
        .as_mut()
        .expect("document");
    document.r#type = "N704".into();
    document.number = master_bl.into();
    manifest
}

/// A house-level filing (F15) under master bill `master_bl`.
fn house(filer: &str, lrn: &str, master_bl: &str, house_bl: &str) -> Manifest {
    let mut manifest = as_filer(sea_filing(lrn), filer);
    manifest.filing_type = "F15".into();
    let consignment = &mut manifest.consignments[0];
    consignment.transport_document = Some(TransportDocument {
        r#type: "N714".into(),
        number: house_bl.into(),
    });
    consignment.master_document = Some(TransportDocument {
        r#type: "N704".into(),
        number: master_bl.into(),
    });
    manifest
}

fn as_filer(mut manifest: Manifest, filer: &str) -> Manifest {
    let declarant = manifest.declarant.as_mut().expect("declarant");
    declarant.eori = filer.into();
    if let Some(address) = declarant.address.as_mut() {
        address.country = filer[..2].into();
    }
    manifest
}

/// Finding 1: carrier B cannot take over carrier A's partial filing by filing its own partial
/// filing of the same master document, and learns nothing of A's filing or whom it named.
#[tokio::test]
async fn a_partial_filing_cannot_be_taken_over_and_refusals_reveal_nobody() {
    let (site, gateway) = GatewayBuilder::default().start().await;
    let endpoint = endpoint(&gateway);
    let mut master_filer = client(&endpoint, &site.carrier()).await;
    let mut intruder = client(&endpoint, &site.carrier_as(INTRUDER)).await;
    let mut named = client(&endpoint, &site.carrier_as(NAMED_PARTY)).await;

    let master = master_filer
        .submit(partial(MASTER_FILER, "SEC-M-1", "MBL-SEC-1", NAMED_PARTY))
        .await
        .expect("the first partial filing of the master document");

    // The intruder's house-level filing is refused without naming the party or the filing.
    let refused = intruder
        .submit(house(INTRUDER, "SEC-H-X", "MBL-SEC-1", "HBL-SEC-X"))
        .await
        .expect_err("not the named party");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let told = format!("{refused:?}");
    for secret in [NAMED_PARTY, MASTER_FILER, master.mrn.as_str()] {
        assert!(
            !told.contains(secret),
            "the refusal reveals {secret}: {told}"
        );
    }

    // Its own partial filing of the same master document, naming itself, is refused: first wins.
    let refused = intruder
        .submit(partial(INTRUDER, "SEC-M-X", "MBL-SEC-1", INTRUDER))
        .await
        .expect_err("the master document already awaits completion");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let report = aci_gateway::status::report_of(&refused).expect("report");
    assert_eq!(report.violations[0].code, "81");
    assert_eq!(report.violations[0].rule, "store.partial_filing_exists");
    let told = format!("{refused:?}");
    for secret in [NAMED_PARTY, MASTER_FILER, master.mrn.as_str()] {
        assert!(
            !told.contains(secret),
            "the refusal reveals {secret}: {told}"
        );
    }
    // ... and so is its house-level filing under it still.
    intruder
        .submit(house(INTRUDER, "SEC-H-X2", "MBL-SEC-1", "HBL-SEC-X2"))
        .await
        .expect_err("still not the named party");

    // The named party completes the filing as it was meant to.
    named
        .submit(house(NAMED_PARTY, "SEC-H-1", "MBL-SEC-1", "HBL-SEC-1"))
        .await
        .expect("the named party's house-level filing");
    let status = master_filer
        .status_by_mrn(&master.mrn)
        .await
        .expect("status");
    assert_eq!(status.state(), FilingState::Registered);
    assert!(status.missing_links.is_empty());
    gateway.stop().await.expect("stop");
}

// ---- Finding 2 and 3: what one HTTP/2 connection may cost -------------------------------------

/// A raw HTTP/2 connection over mutual TLS, for what a gRPC client would not send.
async fn raw_h2(
    endpoint: &str,
    files: &ClientTls,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    aci_gateway::tls::install_crypto_provider();
    let tls = aci_gateway::tls::client_config(&files.cert, &files.key, &files.ca).expect("tls");
    let addr = endpoint.trim_start_matches("https://");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .expect("TLS");
    let (send, connection) = h2::client::handshake(stream).await.expect("HTTP/2");
    let driver = tokio::spawn(connection);
    // Let the server's SETTINGS (its stream limit among them) arrive.
    tokio::time::sleep(Duration::from_millis(200)).await;
    (send, driver)
}

fn grpc_request(path: &str) -> http::Request<()> {
    http::Request::builder()
        .method("POST")
        .uri(format!("https://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request")
}

/// The 5-byte gRPC message prefix declaring `len` bytes.
fn prefix(len: u32) -> Bytes {
    let mut bytes = vec![0u8];
    bytes.extend_from_slice(&len.to_be_bytes());
    Bytes::from(bytes)
}

/// The resident set of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// Finding 2: 1 000 streams on one connection, each sending only a prefix that declares 4 MiB,
/// cost the gateway neither streams beyond its limit nor memory for what was only declared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_streams_declaring_4_mib_each_reserve_nothing() {
    /// What the gateway may grow by under the attack.
    const BOUND: u64 = 256 * 1024 * 1024;
    let site = GatewayBuilder::default().site();
    let gateway = GatewayProcess::start(&site);
    let pid = gateway.child.id();
    let mut carrier = client(&gateway.endpoint, &site.carrier()).await;
    carrier
        .submit(sea_filing("SEC-WARM"))
        .await
        .expect("warm-up filing");
    let before = rss(pid);

    let files = site
        .pki
        .carrier_files("attacker", MASTER_FILER, Validity::days(1));
    let (send, _driver) = raw_h2(&gateway.endpoint, &files).await;
    // The server's limit, from its SETTINGS: what h2 enforces on its side, refusing more.
    let limit = send.current_max_send_streams();
    assert!(limit <= 128, "{limit} streams allowed on one connection");
    // 1 000 streams, each a prefix declaring 4 MiB and nothing more (those past the limit wait
    // in h2 until a stream closes).
    let mut held = Vec::new();
    for _ in 0..1000 {
        let Ok(mut ready) = send.clone().ready().await else {
            break;
        };
        let Ok((response, mut body)) =
            ready.send_request(grpc_request("/aci.v1.CarrierGateway/Submit"), false)
        else {
            break;
        };
        let _ = body.send_data(prefix(4 << 20), false);
        held.push((response, body));
    }
    assert_eq!(held.len(), 1000);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grown = rss(pid).saturating_sub(before);
    println!(
        "streams limited to {limit}, RSS {} MiB before, +{} MiB",
        before >> 20,
        grown >> 20
    );
    assert!(grown < BOUND, "the gateway grew by {} MiB", grown >> 20);
    // Everyone else is served meanwhile.
    carrier
        .submit(sea_filing("SEC-DURING"))
        .await
        .expect("filing beside the attack");
    drop(held);
}

/// Finding 2: a unary call whose body never completes ends at the request timeout instead of
/// holding its stream for as long as the connection answers pings.
#[tokio::test]
async fn a_call_whose_body_never_completes_ends_at_the_request_timeout() {
    let (site, gateway) = GatewayBuilder::default()
        .carrier_api("request_timeout_seconds = 2")
        .start()
        .await;
    let files = site
        .pki
        .carrier_files("slow", MASTER_FILER, Validity::days(1));
    let (send, _driver) = raw_h2(&endpoint(&gateway), &files).await;
    let mut ready = send.ready().await.expect("ready");
    let (response, mut body) = ready
        .send_request(grpc_request("/aci.v1.CarrierGateway/Submit"), false)
        .expect("stream");
    // 1 of 1 000 bytes, then nothing.
    body.send_data(prefix(1000), false).expect("prefix");
    body.send_data(Bytes::from_static(&[0x0a]), false)
        .expect("one byte");
    let started = Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(15), response)
        .await
        .expect("answered before 15 s")
        .expect("a response");
    let mut status = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    if status.is_none() {
        let mut body = response.into_body();
        while body.data().await.is_some() {}
        status = body.trailers().await.ok().flatten().and_then(|t| {
            t.get("grpc-status")
                .map(|v| v.to_str().unwrap_or_default().to_owned())
        });
    }
    assert!(
        status.is_some_and(|s| s != "0"),
        "the call ended with an error status"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    gateway.stop().await.expect("stop");
}

/// Finding 3: a client that makes the server reset stream after stream (here: more data than
/// its content-length) is sent GOAWAY long before 3 000 resets.
#[tokio::test]
async fn a_flood_of_provoked_resets_ends_in_goaway() {
    let (site, gateway) = GatewayBuilder::default().start().await;
    let files = site
        .pki
        .carrier_files("resets", MASTER_FILER, Validity::days(1));
    let (send, driver) = raw_h2(&endpoint(&gateway), &files).await;
    let mut resets = 0;
    let mut went_away = None;
    for _ in 0..3000 {
        let mut ready =
            match tokio::time::timeout(Duration::from_secs(5), send.clone().ready()).await {
                Ok(Ok(ready)) => ready,
                Ok(Err(e)) => {
                    went_away = Some(e);
                    break;
                }
                Err(_) => panic!("the connection neither served nor closed"),
            };
        let mut request = grpc_request("/aci.v1.CarrierGateway/Submit");
        request
            .headers_mut()
            .insert("content-length", http::HeaderValue::from_static("1"));
        let (response, mut body) = match ready.send_request(request, false) {
            Ok(stream) => stream,
            Err(e) => {
                went_away = Some(e);
                break;
            }
        };
        let _ = body.send_data(Bytes::from_static(&[0; 16]), true);
        match tokio::time::timeout(Duration::from_secs(5), response).await {
            Ok(Err(e)) if e.is_reset() => resets += 1,
            Ok(Err(e)) => {
                went_away = Some(e);
                break;
            }
            Ok(Ok(answer)) => {
                panic!("a body longer than its content-length was served: {answer:?}")
            }
            Err(_) => panic!("no answer within 5 s"),
        }
    }
    let error = went_away.expect("GOAWAY before 3 000 resets");
    println!("{resets} streams reset, then: {error}");
    assert!(resets >= 1, "the server reset the provoking streams");
    assert!(resets <= 200, "{resets} resets before GOAWAY");
    let driver = tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .expect("the connection ends")
        .expect("task");
    let error = driver.expect_err("the connection ended in an error");
    assert!(
        error.is_go_away() || error.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM),
        "{error}"
    );
    // The gateway serves new connections.
    let mut carrier = client(&endpoint(&gateway), &site.carrier()).await;
    carrier
        .submit(sea_filing("SEC-AFTER-RESETS"))
        .await
        .expect("filing");
    gateway.stop().await.expect("stop");
}

// ---- Finding 4: revocation, and the development PKI's flow ------------------------------------

fn aci(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_aci-gateway"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run aci-gateway")
}

/// Finding 4: a carrier certificate revoked with `pki revoke` is refused at its next handshake
/// (reason `revoked`), with no restart; others keep working. Dev certificates last 90 days.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_is_refused_after_the_crl_reloads_without_a_restart() {
    let site = GatewayBuilder::default().tls("dev_pki = \"devpki\"").site();
    let gateway = aci_gateway::server::Gateway::start(&site.config(), Default::default())
        .await
        .expect("start");
    let pki_dir = site.dir.path().join("devpki");
    let pki = pki_dir.to_str().expect("utf-8");
    let issued = aci(&["pki", "issue-carrier", common::OTHER_CARRIER, "--dir", pki]);
    assert!(issued.status.success(), "{issued:?}");
    let issued: serde_json::Value = serde_json::from_slice(&issued.stdout).expect("JSON");
    let files = ClientTls {
        ca: pki_dir.join(aci_gateway::pki::ADMIN_CA_CERT),
        cert: issued["cert"].as_str().expect("cert").into(),
        key: issued["key"].as_str().expect("key").into(),
    };
    let pem = std::fs::read(&files.cert).expect("cert");
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).expect("PEM");
    let cert = pem.parse_x509().expect("X.509");
    let days =
        (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()) / 86_400;
    assert!(
        days <= 91,
        "a development certificate valid for {days} days"
    );

    let credentials = aci_gateway::client::Credentials::Tls(files.clone());
    let mut filing = sea_filing("SEC-REVOKE-1");
    filing.declarant.as_mut().expect("declarant").eori = common::OTHER_CARRIER.into();
    client(&endpoint(&gateway), &credentials)
        .await
        .submit(filing)
        .await
        .expect("the new carrier files");

    let revoked = aci(&[
        "pki",
        "revoke",
        issued["serial"].as_str().expect("serial"),
        "--dir",
        pki,
    ]);
    assert!(revoked.status.success(), "{revoked:?}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let refused =
            match aci_gateway::client::CarrierClient::connect(&endpoint(&gateway), &credentials)
                .await
            {
                Err(_) => true,
                Ok(mut carrier) => carrier.status_by_lrn("SEC-REVOKE-1").await.is_err(),
            };
        if refused {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still served 15 s after revocation"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let metrics = common::admin_get(gateway.admin_addr, "/metrics").await;
    assert!(
        common::metric(
            &metrics,
            "aci_tls_handshake_failures_total{listener=\"carrier\",reason=\"revoked\"}"
        ) >= 1,
        "{metrics}"
    );
    // The sample carrier, not revoked, still files.
    let sample = aci_gateway::client::Credentials::Tls(ClientTls {
        ca: pki_dir.join(aci_gateway::pki::ADMIN_CA_CERT),
        cert: pki_dir.join(aci_gateway::pki::SAMPLE_CARRIER_CERT),
        key: pki_dir.join(aci_gateway::pki::SAMPLE_CARRIER_KEY),
    });
    client(&endpoint(&gateway), &sample)
        .await
        .submit(sea_filing("SEC-REVOKE-2"))
        .await
        .expect("the sample carrier files");
    gateway.stop().await.expect("stop");
}

// ---- Finding 5: limits on every RPC -----------------------------------------------------------

/// Finding 5: reads have their own budget, changes count as writes, and a carrier's filings in
/// flight are bounded; each refusal says when to come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_carrier_rpc_is_limited_per_carrier() {
    let (site, gateway) = GatewayBuilder::default()
        .carrier_api("rate_per_carrier = 0.1\nburst_per_carrier = 3")
        .carrier_api("read_rate_per_carrier = 0.1\nread_burst_per_carrier = 5")
        .start()
        .await;
    let mut carrier = client(&endpoint(&gateway), &site.carrier()).await;
    let first = carrier
        .submit(sea_filing("SEC-RATE-1"))
        .await
        .expect("1st write");
    let second = carrier
        .submit(sea_filing("SEC-RATE-2"))
        .await
        .expect("2nd write");
    carrier
        .invalidate(&first.mrn, "filed in error")
        .await
        .expect("3rd write");
    let refused = carrier
        .arrive(&second.mrn)
        .await
        .expect_err("a 4th write is over the burst");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.metadata().get("retry-after").is_some());

    let mut answers = Vec::new();
    for _ in 0..8 {
        answers.push(carrier.status_by_mrn(&second.mrn).await);
    }
    let served = answers.iter().filter(|a| a.is_ok()).count();
    assert_eq!(served, 5, "the read burst, then refusals");
    let refused = answers
        .into_iter()
        .find_map(Result::err)
        .expect("a refusal");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(refused.message().contains("read rate"), "{refused:?}");
    // Another carrier has budgets of its own.
    let mut other = client(&endpoint(&gateway), &site.carrier_as(common::OTHER_CARRIER)).await;
    let mut filing = sea_filing("SEC-RATE-OTHER");
    filing.declarant.as_mut().expect("declarant").eori = common::OTHER_CARRIER.into();
    other.submit(filing).await.expect("another carrier files");
    gateway.stop().await.expect("stop");

    // Filings in flight: one at a time, and 40 sent at once.
    let (site, gateway) = GatewayBuilder::default()
        .carrier_api("max_in_flight_per_carrier = 1")
        .start()
        .await;
    let carrier = client(&endpoint(&gateway), &site.carrier()).await;
    let mut heavy = sea_filing("SEC-HEAVY");
    let item = heavy.consignments[0].goods_items[0].clone();
    heavy.consignments[0].goods_items = vec![item; 900];
    let mut calls = Vec::new();
    for i in 0..40 {
        let mut carrier = carrier.clone();
        let mut filing = heavy.clone();
        filing.lrn = format!("SEC-HEAVY-{i}");
        calls.push(tokio::spawn(async move { carrier.submit(filing).await }));
    }
    let mut in_flight_refusals = 0;
    for call in calls {
        if let Err(status) = call.await.expect("task")
            && status.code() == Code::ResourceExhausted
        {
            assert!(status.message().contains("in flight"), "{status:?}");
            in_flight_refusals += 1;
        }
    }
    assert!(
        in_flight_refusals > 0,
        "40 heavy filings at once, one in flight allowed"
    );
    gateway.stop().await.expect("stop");
}

// ---- Finding 6: a refusal every client can read -----------------------------------------------

/// Finding 6: a filing with 200 findings and more is refused with a details trailer every
/// client reads: our CLI prints the findings it carries, `truncated` and how many were left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_with_200_findings_is_read_by_the_cli_with_truncated_set() {
    let (site, gateway) = GatewayBuilder::default().start().await;
    let mut filing = sea_filing("SEC-MANY");
    let mut item = filing.consignments[0].goods_items[0].clone();
    item.hs_code = "1".into();
    filing.consignments[0].goods_items = vec![item; 300];
    let file = site.dir.path().join("many-findings.json");
    std::fs::write(&file, aci_gateway::pb::to_json(&filing).to_string()).expect("write");
    let files = site
        .pki
        .carrier_files("cli", MASTER_FILER, Validity::days(1));
    let endpoint = endpoint(&gateway);
    let output = aci(&[
        "submit",
        file.to_str().expect("utf-8"),
        "--config",
        "/nonexistent/gateway.toml",
        "--endpoint",
        &endpoint,
        "--ca",
        files.ca.to_str().expect("utf-8"),
        "--cert",
        files.cert.to_str().expect("utf-8"),
        "--key",
        files.key.to_str().expect("utf-8"),
    ]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(answer["code"], "INVALID_ARGUMENT");
    assert_eq!(answer["truncated"], true, "{answer}");
    let shown = answer["violations"].as_array().expect("violations").len();
    assert!(shown >= 20, "{shown} findings shown");
    assert!(answer["omitted"].as_u64().expect("omitted") > 0, "{answer}");
    // Each finding shown is whole: its path and message from BadRequest, its code here.
    let first = &answer["violations"][0];
    assert!(
        first["path"].as_str().is_some_and(|p| !p.is_empty()),
        "{first}"
    );
    assert!(
        first["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{first}"
    );
    gateway.stop().await.expect("stop");
}

// ---- Finding 7: the client certificate profile -------------------------------------------------

/// Finding 7: a carrier certificate without the clientAuth purpose, with a key usage other
/// than digitalSignature, or naming two identities is refused at the handshake, each counted
/// with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_must_fit_the_client_profile() {
    use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyUsagePurpose, SanType};
    let (site, gateway) = GatewayBuilder::default().start().await;
    let uri =
        |eori: &str| SanType::URI(aci_gateway::pki::carrier_uri(eori).try_into().expect("uri"));
    let profile =
        |ekus: Vec<ExtendedKeyUsagePurpose>, kus: Vec<KeyUsagePurpose>, uris: Vec<SanType>| {
            let mut params = CertificateParams::default();
            params.subject_alt_names = uris;
            params.extended_key_usages = ekus;
            params.key_usages = kus;
            params
        };
    let cases = [
        (
            "no-eku",
            profile(
                vec![],
                vec![KeyUsagePurpose::DigitalSignature],
                vec![uri(MASTER_FILER)],
            ),
            "wrong_usage",
        ),
        (
            "key-encipherment",
            profile(
                vec![ExtendedKeyUsagePurpose::ClientAuth],
                vec![KeyUsagePurpose::KeyEncipherment],
                vec![uri(MASTER_FILER)],
            ),
            "wrong_usage",
        ),
        (
            "two-identities",
            profile(
                vec![ExtendedKeyUsagePurpose::ClientAuth],
                vec![KeyUsagePurpose::DigitalSignature],
                vec![uri(common::OTHER_CARRIER), uri(MASTER_FILER)],
            ),
            "several_identities",
        ),
    ];
    for (name, params, _) in &cases {
        let issued = site
            .pki
            .carrier_ca
            .sign(params.clone(), Validity::days(1))
            .expect("issue");
        let files = ClientTls {
            ca: site.pki.dir.join("admin-ca.pem"),
            cert: site.pki.dir.join(format!("{name}.pem")),
            key: site.pki.dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, issued.cert_pem).expect("cert");
        std::fs::write(&files.key, issued.key_pem).expect("key");
        let credentials = aci_gateway::client::Credentials::Tls(files);
        let served =
            match aci_gateway::client::CarrierClient::connect(&endpoint(&gateway), &credentials)
                .await
            {
                Err(_) => false,
                Ok(mut carrier) => carrier
                    .submit(sea_filing(&format!("SEC-{name}")))
                    .await
                    .is_ok(),
            };
        assert!(!served, "{name}: a certificate off the profile was served");
    }
    // The server counts a refused handshake after the client has seen the refusal: wait for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for reason in ["wrong_usage", "several_identities"] {
        let expected = cases.iter().filter(|(_, _, r)| *r == reason).count() as u64;
        let series =
            format!("aci_tls_handshake_failures_total{{listener=\"carrier\",reason=\"{reason}\"}}");
        loop {
            let metrics = common::admin_get(gateway.admin_addr, "/metrics").await;
            // At least once each (a client may try a refused handshake again).
            if common::metric(&metrics, &series) >= expected {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{series}: {metrics}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    // A certificate made as the profile says still works.
    client(&endpoint(&gateway), &site.carrier())
        .await
        .submit(sea_filing("SEC-PROFILE-OK"))
        .await
        .expect("filing");
    gateway.stop().await.expect("stop");
}

// ---- Finding 8: personal data at rest ---------------------------------------------------------

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// Every file under `dir`, and the directories.
fn tree(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = vec![dir.to_owned()];
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            found.extend(tree(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// Finding 8: under umask 022, the gateway's data directory is 0700 and every file in it 0600;
/// `pki init` puts the CA keys in a directory of their own, apart from the runtime key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_files_are_private_whatever_the_umask_and_ca_keys_live_apart() {
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o022));
    let site = GatewayBuilder::default().site();
    let gateway = GatewayProcess::start(&site);
    client(&gateway.endpoint, &site.carrier())
        .await
        .submit(sea_filing("SEC-MODES"))
        .await
        .expect("filing");
    assert!(gateway.terminate().success());
    let data = site.data_dir();
    let paths = tree(&data);
    assert!(paths.len() > 5, "{paths:?}");
    for path in paths {
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(
            mode(&path),
            expected,
            "{} is {:o}",
            path.display(),
            mode(&path)
        );
    }

    let dir = site.dir.path().join("new-pki");
    let init = aci(&["pki", "init", dir.to_str().expect("utf-8")]);
    assert!(init.status.success(), "{init:?}");
    assert!(String::from_utf8_lossy(&init.stdout).contains("CA private keys"));
    assert_eq!(mode(&dir.join(aci_gateway::pki::CA_DIR)), 0o700);
    for key in [
        aci_gateway::pki::CARRIER_CA_KEY,
        aci_gateway::pki::ADMIN_CA_KEY,
    ] {
        assert!(key.starts_with("ca/"), "{key}");
        assert_eq!(mode(&dir.join(key)), 0o600, "{key}");
    }
    assert_eq!(mode(&dir.join(aci_gateway::pki::GATEWAY_KEY)), 0o600);
    let beside_runtime_key: Vec<_> = std::fs::read_dir(&dir)
        .expect("pki dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with("-ca.key"))
        .collect();
    assert!(beside_runtime_key.is_empty(), "{beside_runtime_key:?}");
}

// ---- Finding 9: the development switch stays on loopback --------------------------------------

/// Finding 9: `serve --insecure-dev` refuses to start when a listener is not on loopback.
#[test]
fn insecure_dev_refuses_a_listener_off_loopback() {
    let site = GatewayBuilder::default().site();
    let config = std::fs::read_to_string(&site.config_path).expect("config");
    let exposed = config.replacen(
        "[carrier_api]\nlisten = \"127.0.0.1:",
        "[carrier_api]\nlisten = \"0.0.0.0:",
        1,
    );
    assert_ne!(config, exposed);
    std::fs::write(&site.config_path, exposed).expect("config");
    let output = aci(&[
        "serve",
        "--insecure-dev",
        "--config",
        site.config_path.to_str().expect("utf-8"),
    ]);
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("loopback") && said.contains("carrier_api.listen"),
        "{said}"
    );
}

// ---- Finding 10: what reflection shows, control characters, comments --------------------------

/// Finding 10: reflection on the carrier listener serves the carrier contract, not the storage
/// schema; notice and answer text with control characters is refused; an XML comment or
/// processing instruction is bounded like text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_text_and_comments_are_bounded() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let (site, gateway) = GatewayBuilder::default().peer("TEST-B", None).start().await;
    let files = site
        .pki
        .carrier_files("reflect", MASTER_FILER, Validity::days(1));
    let ca = tonic::transport::Certificate::from_pem(site.pki.admin_ca.cert_pem());
    let channel = common::channel(&endpoint(&gateway), common::tls_config(&files, &ca))
        .await
        .expect("channel");
    let mut reflection = ServerReflectionClient::new(channel);
    let ask = |request: MessageRequest| {
        tokio_stream::iter([ServerReflectionRequest {
            host: String::new(),
            message_request: Some(request),
        }])
    };
    let mut answers = reflection
        .server_reflection_info(ask(MessageRequest::ListServices(String::new())))
        .await
        .expect("reflection")
        .into_inner();
    let listed = answers.message().await.expect("answer").expect("one");
    let Some(MessageResponse::ListServicesResponse(list)) = listed.message_response else {
        panic!("not a service list: {listed:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"aci.v1.CarrierGateway".to_owned()),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("aci.store")),
        "{names:?}"
    );
    assert!(
        !names.contains(&"aci.v1.PeerExchange".to_owned()),
        "{names:?}"
    );
    let mut answers = reflection
        .server_reflection_info(ask(MessageRequest::FileContainingSymbol(
            "aci.store.v1.LogRecord".into(),
        )))
        .await
        .expect("reflection")
        .into_inner();
    match answers.message().await {
        Err(status) => assert_eq!(status.code(), Code::NotFound, "{status:?}"),
        Ok(found) => assert!(
            matches!(
                found.and_then(|f| f.message_response),
                Some(MessageResponse::ErrorResponse(_))
            ),
            "the storage schema is served"
        ),
    }

    // A notice with ESC in its text, from a configured peer: refused.
    let peer_files = site.pki.client_files(
        "peer-b",
        &site.pki.admin_ca,
        &aci_gateway::pki::admin_uri("TEST-B"),
        Validity::days(1),
    );
    let mut peer = aci_gateway::client::PeerClient::connect(
        &format!("https://{}", gateway.peer_addr),
        "TEST-A",
        &peer_files,
    )
    .await
    .expect("peer connects");
    let mut carrier = client(&endpoint(&gateway), &site.carrier()).await;
    let filed = carrier
        .submit(sea_filing("SEC-TEXT"))
        .await
        .expect("filing");
    let refused = peer
        .notify(aci_gateway::pb::Notice {
            notice_id: "N-ESC".into(),
            mrn: filed.mrn.clone(),
            kind: aci_gateway::pb::NoticeKind::DoNotLoad as i32,
            text: "do not load \u{1b}[2J\u{1b}[31mnow".into(),
            deadline: None,
            ..Default::default()
        })
        .await
        .expect_err("ESC in a notice");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("U+001B"), "{refused:?}");
    let refused = carrier
        .answer_referral(&filed.mrn, "N-1", "here\u{0}it is")
        .await
        .expect_err("NUL in an answer");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("U+0000"), "{refused:?}");

    // A 3 MB comment in an XML filing: refused at once, as text over its limit is.
    let xml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemas/examples/sea-f10.xml"
    ))
    .expect("sample");
    let (head, body) = xml.split_once("?>").expect("declaration");
    for (what, filler) in [
        ("comment", format!("<!--{}-->", "x".repeat(3_000_000))),
        (
            "processing instruction",
            format!("<?note {}?>", "y".repeat(500_000)),
        ),
    ] {
        let document = format!("{head}?>{filler}{body}");
        let started = Instant::now();
        let refused = carrier
            .submit_xml(document.into_bytes())
            .await
            .expect_err(what);
        assert_eq!(refused.code(), Code::InvalidArgument, "{what}: {refused:?}");
        let report = aci_gateway::status::report_of(&refused).expect("report");
        assert!(
            report.violations.iter().any(|v| v.message.contains(what)),
            "{what}: {report:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{what}");
    }
    gateway.stop().await.expect("stop");
}

/// The certificate a TLS server at `endpoint` presents now.
async fn server_certificate(endpoint: &str, files: &ClientTls) -> Vec<u8> {
    aci_gateway::tls::install_crypto_provider();
    let tls = aci_gateway::tls::client_config(&files.cert, &files.key, &files.ca).expect("tls");
    let tcp = tokio::net::TcpStream::connect(endpoint.trim_start_matches("https://"))
        .await
        .expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .expect("TLS");
    stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .expect("a certificate")
        .to_vec()
}

/// Finding 4: the gateway's own certificate and key are rotated by replacing their files; new
/// connections get the new certificate, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_certificate_rotates_without_a_restart() {
    let (site, gateway) = GatewayBuilder::default().start().await;
    let files = site
        .pki
        .carrier_files("rotate", MASTER_FILER, Validity::days(1));
    let before = server_certificate(&endpoint(&gateway), &files).await;
    let renewed = site
        .pki
        .admin_ca
        .issue_gateway(
            &["localhost", "127.0.0.1"],
            &aci_gateway::pki::admin_uri("TEST-A"),
            Validity::days(30),
        )
        .expect("renewed certificate");
    // As an operator would: each file renamed into place.
    for (name, contents) in [
        ("gateway.key", &renewed.key_pem),
        ("gateway.pem", &renewed.cert_pem),
    ] {
        let staging = site.pki.dir.join(format!(".{name}.new"));
        std::fs::write(&staging, contents).expect("write");
        std::fs::rename(&staging, site.pki.dir.join(name)).expect("rename");
    }
    let (_, pem) = x509_parser::pem::parse_x509_pem(renewed.cert_pem.as_bytes()).expect("PEM");
    let deadline = Instant::now() + Duration::from_secs(15);
    while server_certificate(&endpoint(&gateway), &files).await != pem.contents {
        assert!(
            Instant::now() < deadline,
            "the old certificate 15 s after rotation"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_ne!(before, pem.contents);
    client(&endpoint(&gateway), &site.carrier())
        .await
        .submit(sea_filing("SEC-ROTATED"))
        .await
        .expect("filing after rotation");
    gateway.stop().await.expect("stop");
}
