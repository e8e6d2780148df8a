//! A gateway whose data directory fills up (a real tmpfs of a few MiB, filled by a ballast
//! file): filings are refused with RESOURCE_EXHAUSTED and a retry-after, status is still
//! served, readiness says why, and filing works again by itself once the ballast is gone.
//!
//! Mounting needs root (CAP_SYS_ADMIN), which the CI machines give; the test says so if not.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aci_gateway::server::{Gateway, Options};
use common::{GatewayBuilder, client, endpoint, sea_filing};
use tonic::Code;

/// A tmpfs mounted on a directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("the mount command runs");
        assert!(
            status.success(),
            "cannot mount a tmpfs on {} (this test needs root with CAP_SYS_ADMIN)",
            dir.display()
        );
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros into `path` until the file system is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("ballast");
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("ballast: {e}"),
        }
    }
    let _ = file.sync_all();
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_filings_with_retry_after_and_recovers_when_space_returns() {
    let site = GatewayBuilder::default().site();
    let _tmpfs = Tmpfs::mount(&site.data_dir(), "48m");
    let gateway = Gateway::start(&site.config(), Options::default())
        .await
        .expect("gateway starts");
    let endpoint = endpoint(&gateway);
    let mut carrier = client(&endpoint, &site.carrier()).await;
    let first = carrier.submit(sea_filing("ROOM-1")).await.expect("room");

    let ballast = site.data_dir().join("ballast");
    assert!(fill(&ballast) > 0);
    // The log's segment has space reserved for nothing: the next filings hit the full disk.
    let mut refused = Vec::new();
    for i in 0..200 {
        let lrn = format!("FULL-{i}");
        match carrier.submit(sea_filing(&lrn)).await {
            Ok(_) => continue,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert!(
                    status.metadata().get("retry-after").is_some(),
                    "a retry-after: {status:?}"
                );
                refused.push(lrn);
                if refused.len() == 3 {
                    break;
                }
            }
        }
    }
    assert!(!refused.is_empty(), "the disk never filled");

    // Status is still served, and operators see why filings are refused.
    let status = carrier.status_by_mrn(&first.mrn).await.expect("status");
    assert_eq!(status.mrn, first.mrn);
    let ready = common::admin_get(gateway.admin_addr, "/readyz").await;
    assert!(ready.contains("503"), "{ready}");
    let metrics = common::admin_get(gateway.admin_addr, "/metrics").await;
    assert!(metrics.contains("aci_log_writable 0"), "{metrics}");

    // Space returns: the refused filings are taken on their retry, with no restart.
    std::fs::remove_file(&ballast).expect("remove ballast");
    let mut retried = Vec::new();
    for lrn in &refused {
        let mut attempts = 0;
        let receipt = loop {
            match carrier.submit(sea_filing(lrn)).await {
                Ok(receipt) => break receipt,
                Err(status) if attempts < 50 => {
                    attempts += 1;
                    assert!(
                        matches!(status.code(), Code::ResourceExhausted | Code::Unavailable),
                        "{status:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(status) => panic!("{lrn} is still refused: {status:?}"),
            }
        };
        retried.push(receipt);
    }
    let ready = common::admin_get(gateway.admin_addr, "/readyz").await;
    assert!(ready.contains("200"), "{ready}");
    gateway.stop().await.expect("clean stop");

    // After a restart every acknowledged filing is there, once, and the log verifies.
    let gateway = Gateway::start(&site.config(), Options::default())
        .await
        .expect("gateway restarts");
    let records = common::log_records(gateway.store());
    for receipt in std::iter::once(&first).chain(&retried) {
        let matching = records.iter().filter(|r| r.mrn == receipt.mrn).count();
        assert_eq!(matching, 1, "{}", receipt.mrn);
    }
    gateway.stop().await.expect("clean stop");
}
