//! A gateway whose data directory fills up (a real tmpfs of a few MiB, filled by a ballast
//! file): filings are refused with RESOURCE_EXHAUSTED and a retry-after, status is still
//! served, readiness says why, and filing works again by itself once the ballast is gone.
//!
//! Mounting needs root (CAP_SYS_ADMIN), which the CI machines give; where it is refused, that
//! test says so and stops, and the same contract is still checked on a simulated disk.

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
    /// Mounts a tmpfs of `size` on `dir`; `None` if this machine does not let us mount.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("mount point");
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("the mount command runs");
        if !output.status.success() {
            eprintln!(
                "cannot mount a tmpfs on {} ({}): the real-disk check is not possible here; \
                 the simulated-disk test covers the same contract",
                dir.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs(dir.to_owned()))
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
    let Some(_tmpfs) = Tmpfs::mount(&site.data_dir(), "48m") else {
        return;
    };
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

#[tokio::test]
async fn on_a_simulated_full_disk_a_carrier_hears_resource_exhausted_then_files_again() {
    let site = GatewayBuilder::default().site();
    let disk = aci_gateway::store::SimDisk::new(5);
    let options = Options {
        disk: Some(std::sync::Arc::new(disk.clone())),
        ..Options::default()
    };
    let gateway = Gateway::start(&site.config(), options)
        .await
        .expect("gateway starts");
    let mut carrier = client(&endpoint(&gateway), &site.carrier()).await;
    let first = carrier.submit(sea_filing("SIM-1")).await.expect("room");

    disk.set_capacity(Some(disk.used()));
    let status = carrier
        .submit(sea_filing("SIM-2"))
        .await
        .expect_err("the disk is full");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(
        status
            .metadata()
            .get("retry-after")
            .map(|v| v.to_str().ok()),
        Some(Some("5"))
    );
    let details = tonic_types::StatusExt::get_error_details(&status);
    assert!(details.retry_info().is_some(), "RetryInfo: {status:?}");
    assert_eq!(
        carrier.status_by_mrn(&first.mrn).await.expect("status").mrn,
        first.mrn
    );
    let ready = common::admin_get(gateway.admin_addr, "/readyz").await;
    assert!(ready.contains("503"), "{ready}");

    // A failing fsync is UNAVAILABLE (not a full disk), and nothing of it is kept.
    disk.set_capacity(None);
    disk.fail_syncs(1);
    let status = carrier
        .submit(sea_filing("SIM-2"))
        .await
        .expect_err("the sync fails");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    let again = carrier
        .submit(sea_filing("SIM-2"))
        .await
        .expect("room again");
    assert_eq!(
        again.sequence,
        first.sequence + 1,
        "nothing refused was kept"
    );
    let ready = common::admin_get(gateway.admin_addr, "/readyz").await;
    assert!(ready.contains("200"), "{ready}");
    gateway.stop().await.expect("clean stop");
}
