//! Hostile clients over real mutual TLS: malformed and deeply nested protobuf, and thousands
//! of connections that never finish a handshake (slowloris) or never say anything, while a
//! well-behaved carrier keeps filing. (Certificates, impersonation, other carriers' data, the
//! peer API and floods are in carrier_api.rs, lifecycle.rs and exchange.rs.)

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aci_gateway::client::CarrierClient;
use common::{GatewayBuilder, GatewayProcess, client, endpoint, sea_filing, tls_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Code;
use tonic::transport::Certificate;

#[tokio::test]
async fn malformed_and_deeply_nested_protobuf_is_invalid_argument() {
    let (site, gateway) = GatewayBuilder::default().start().await;
    let ca = Certificate::from_pem(site.pki.admin_ca.cert_pem());
    let files = site
        .pki
        .carrier_files("raw", common::CARRIER, aci_gateway::pki::Validity::days(1));
    let channel = common::channel(&endpoint(&gateway), tls_config(&files, &ca))
        .await
        .expect("connects");
    for (what, bytes) in [
        ("garbage", vec![0xff; 64]),
        ("a length past the end", vec![0x0a, 0xff, 0xff, 0x03, 0x01]),
        (
            "groups nested 10 000 deep",
            common::raw::nested_groups(10_000),
        ),
    ] {
        let status = common::raw::submit_raw(channel.clone(), bytes).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert!(
            status.message().contains("not a valid protobuf message"),
            "{what}: {status:?}"
        );
    }
    // The connection and the server are fine.
    let mut carrier = client(&endpoint(&gateway), &site.carrier()).await;
    carrier
        .submit(sea_filing("AFTER-RAW"))
        .await
        .expect("still filing");
    gateway.stop().await.expect("clean stop");
}

/// Files `count` filings over 4 bulk streams; returns filings per second.
async fn throughput(carrier: &CarrierClient, prefix: &str, count: usize) -> f64 {
    let started = Instant::now();
    let lrns = (0..count).map(|i| format!("{prefix}-{i:05}")).collect();
    let sequences = common::file_bulk(carrier, lrns, 4).await;
    assert_eq!(sequences.len(), count);
    count as f64 / started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_and_slowloris_connections_cost_a_carrier_nothing() {
    let site = GatewayBuilder::default().site();
    let gateway = GatewayProcess::start(&site);
    let addr: SocketAddr = gateway
        .endpoint
        .trim_start_matches("https://")
        .parse()
        .expect("carrier address");
    let carrier = client(&gateway.endpoint, &site.carrier()).await;
    throughput(&carrier, "WARM", 200).await;
    let alone = throughput(&carrier, "ALONE", 1500).await;

    // 10 000 connections that open TCP and say nothing, and 200 that dribble a TLS
    // ClientHello one byte every 200 ms (slowloris).
    let mut idle = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        idle.push(TcpStream::connect(addr).await.expect("idle connection"));
    }
    let slow: Vec<_> = (0..200)
        .map(|_| {
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await.expect("slow connection");
                let hello = [
                    0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
                ];
                for byte in hello.iter().cycle() {
                    if stream.write_all(&[*byte]).await.is_err() {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                false
            })
        })
        .collect();
    // And 200 that finish TLS with a valid carrier certificate, then never speak.
    let files = match site.carrier() {
        aci_gateway::client::Credentials::Tls(files) => files,
        other => panic!("{other:?}"),
    };
    let tls = aci_gateway::tls::client_config(&files.cert, &files.key, &files.ca).expect("tls");
    let connector = tokio_rustls::TlsConnector::from(tls);
    let mut silent = Vec::new();
    for _ in 0..200 {
        let tcp = TcpStream::connect(addr).await.expect("silent connection");
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        silent.push(connector.connect(name, tcp).await.expect("handshake"));
    }
    let beside = throughput(&carrier, "BESIDE", 1500).await;
    println!(
        "a carrier beside 10 000 idle, 200 slowloris and 200 silent TLS connections: \
         {beside:.0} filings/s, alone {alone:.0} filings/s: ratio {:.2}",
        beside / alone
    );

    // The handshake deadline closes them all; nothing of theirs was served.
    let deadline = aci_gateway::tls::HANDSHAKE_TIMEOUT + Duration::from_secs(5);
    for task in slow {
        let cut = tokio::time::timeout(deadline, task)
            .await
            .expect("the server cut the slowloris")
            .expect("task");
        assert!(cut);
    }
    let mut buffer = [0u8; 64];
    for stream in idle.iter_mut().step_by(97) {
        let read = tokio::time::timeout(deadline, stream.read(&mut buffer))
            .await
            .expect("the server closed the idle connection");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    for stream in &mut silent {
        // The server speaks first (session tickets, its HTTP/2 settings); then it hangs up.
        let closed = tokio::time::timeout(deadline, async {
            while let Ok(n) = stream.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
            }
        });
        closed
            .await
            .expect("the server closed the silent connection");
    }
    let metrics = common::admin_get(gateway.admin(), "/metrics").await;
    let timeouts = common::metric(
        &metrics,
        "aci_tls_handshake_failures_total{listener=\"carrier\",reason=\"timeout\"}",
    );
    assert!(timeouts >= 10_000, "handshake timeouts counted: {timeouts}");
    assert!(
        metrics.contains(
            "aci_tls_handshake_failures_total{listener=\"carrier\",reason=\"silent\"} 200"
        ),
        "{metrics}"
    );
    drop(idle);
    throughput(&carrier, "AFTER", 200).await;
    assert!(gateway.terminate().success());
}
