//! The counters and histograms served as Prometheus text on the admin port.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// A Prometheus histogram: cumulative buckets with fixed upper bounds, a sum and a count.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One counter per bound, then one for +Inf (not cumulative here; summed when rendered).
    counts: Vec<AtomicU64>,
    /// The sum of observations, in millionths of the unit.
    sum_millionths: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_millionths: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_millionths
            .fetch_add((value * 1e6).max(0.0) as u64, Ordering::Relaxed);
    }

    /// The sum of the observations so far.
    pub fn sum(&self) -> f64 {
        self.sum_millionths.load(Ordering::Relaxed) as f64 / 1e6
    }

    /// Appends the exposition of this histogram as `name`.
    pub fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.counts[self.bounds.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(
            out,
            "{name}_sum {:.6}\n{name}_count {cumulative}",
            self.sum()
        );
    }
}

/// EU customs finding codes counted in `aci_findings_total`.
/// Transport mode labels, indexed by `TransportMode as usize`.
const MODES: [&str; 8] = [
    "unknown",
    "sea",
    "air",
    "road",
    "rail",
    "postal",
    "express",
    "inland_waterway",
];

const FINDING_CODES: [&str; 6] = ["12", "13", "14", "15", "26", "81"];

/// How a filing was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilingAnswer {
    Registered,
    Duplicate,
    Conflict,
    Rejected,
    Forbidden,
    /// Over the carrier's rate.
    Throttled,
}

impl FilingAnswer {
    const ALL: [FilingAnswer; 6] = [
        FilingAnswer::Registered,
        FilingAnswer::Duplicate,
        FilingAnswer::Conflict,
        FilingAnswer::Rejected,
        FilingAnswer::Forbidden,
        FilingAnswer::Throttled,
    ];

    /// The answer as a metric label (and a span's `outcome`).
    pub fn label(self) -> &'static str {
        match self {
            FilingAnswer::Registered => "registered",
            FilingAnswer::Duplicate => "duplicate",
            FilingAnswer::Conflict => "conflict",
            FilingAnswer::Rejected => "rejected",
            FilingAnswer::Forbidden => "forbidden",
            FilingAnswer::Throttled => "throttled",
        }
    }
}

/// Counters by label values: few distinct keys, so a short locked list is enough (the lock is
/// held only to bump one counter).
#[derive(Debug)]
struct Family<K>(std::sync::Mutex<Vec<(K, u64)>>);

impl<K> Default for Family<K> {
    fn default() -> Self {
        Family(std::sync::Mutex::new(Vec::new()))
    }
}

impl<K: PartialEq + Clone> Family<K> {
    fn add(&self, key: K) {
        let mut counts = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match counts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => counts.push((key, 1)),
        }
    }

    fn snapshot(&self) -> Vec<(K, u64)> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Label values of a counter family's key, in the order of its label names.
trait LabelValues {
    fn values(&self) -> Vec<&str>;
}

impl LabelValues for &'static str {
    fn values(&self) -> Vec<&str> {
        vec![self]
    }
}

impl LabelValues for (&'static str, &'static str) {
    fn values(&self) -> Vec<&str> {
        vec![self.0, self.1]
    }
}

impl LabelValues for (String, &'static str) {
    fn values(&self) -> Vec<&str> {
        vec![&self.0, self.1]
    }
}

impl<K: PartialEq + Clone + LabelValues> Family<K> {
    /// Prometheus text of the family: a counter `name`, one series per key.
    fn render(&self, name: &str, help: &str, labels: &[&str], out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (key, count) in self.snapshot() {
            let pairs: Vec<String> = labels
                .iter()
                .zip(key.values())
                .map(|(label, value)| format!("{label}=\"{value}\""))
                .collect();
            let _ = writeln!(out, "{name}{{{}}} {count}", pairs.join(","));
        }
    }
}

/// The gateway's counters (the store keeps its own, and hands them over as a [`StoreSeries`]).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Filings by transport mode (`TransportMode as usize`, 0 when unknown) and outcome
    /// (`FilingAnswer as usize`).
    filings: [[AtomicU64; FilingAnswer::ALL.len()]; MODES.len()],
    /// Lifecycle changes refused, by code.
    lifecycle_refused: Family<&'static str>,
    /// Findings reported to carriers (errors and warnings), by code, as in FINDING_CODES.
    findings: [AtomicU64; FINDING_CODES.len()],
    /// TLS handshakes that failed, by (listener, reason).
    handshake_failures: Family<(&'static str, &'static str)>,
    /// Envelopes peers delivered, by (peer, outcome: stored, duplicate, refused).
    received: Family<(String, &'static str)>,
    /// Risk notices peers sent, by (peer, kind).
    notices: Family<(String, &'static str)>,
}

impl Metrics {
    /// Counts a filing's answer; `mode` is its `TransportMode` (0 when unknown).
    pub fn filing(&self, mode: i32, outcome: FilingAnswer) {
        let mode = usize::try_from(mode)
            .ok()
            .filter(|m| *m < MODES.len())
            .unwrap_or(0);
        self.filings[mode][outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the findings of a report (of a refused filing, or the warnings of an accepted one).
    pub fn findings<'a>(&self, codes: impl IntoIterator<Item = &'a str>) {
        for code in codes {
            if let Some(i) = FINDING_CODES.iter().position(|c| *c == code) {
                self.findings[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts a failed TLS handshake.
    pub fn handshake_failed(&self, listener: &'static str, reason: &'static str) {
        self.handshake_failures.add((listener, reason));
    }

    /// Counts a refused lifecycle change.
    pub fn lifecycle_refused(&self, code: &'static str) {
        self.lifecycle_refused.add(code);
    }

    /// Counts an envelope a peer delivered: "stored", "duplicate" or "refused".
    pub fn received(&self, peer: &str, outcome: &'static str) {
        self.received.add((peer.to_owned(), outcome));
    }

    /// Counts a risk notice a peer sent.
    pub fn notice(&self, peer: &str, kind: &'static str) {
        self.notices.add((peer.to_owned(), kind));
    }

    /// Prometheus text exposition of these counters, the store's, the peers' and the host's.
    pub fn render(
        &self,
        store: &StoreSeries<'_>,
        peers: &[PeerSeries],
        host: &HostSeries,
    ) -> String {
        let mut out = String::new();
        out.push_str("# HELP aci_filings_total Filings answered, by transport mode and outcome.\n");
        out.push_str("# TYPE aci_filings_total counter\n");
        for (mode, counts) in MODES.iter().zip(&self.filings) {
            for outcome in FilingAnswer::ALL {
                let _ = writeln!(
                    out,
                    "aci_filings_total{{mode=\"{mode}\",outcome=\"{}\"}} {}",
                    outcome.label(),
                    counts[outcome as usize].load(Ordering::Relaxed)
                );
            }
        }
        self.handshake_failures.render(
            "aci_tls_handshake_failures_total",
            "TLS handshakes refused, by listener and reason.",
            &["listener", "reason"],
            &mut out,
        );
        out.push_str(
            "# HELP aci_findings_total Findings reported to carriers, by EU customs code.\n",
        );
        out.push_str("# TYPE aci_findings_total counter\n");
        for (code, count) in FINDING_CODES.iter().zip(&self.findings) {
            let _ = writeln!(
                out,
                "aci_findings_total{{code=\"{code}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        self.lifecycle_refused.render(
            "aci_lifecycle_refused_total",
            "Amendments, invalidations, arrivals and referral answers refused, by code.",
            &["code"],
            &mut out,
        );
        render_store(store, &mut out);
        self.received.render(
            "aci_received_envelopes_total",
            "Envelopes peers delivered, by peer and outcome (duplicate: a redelivery absorbed).",
            &["peer", "outcome"],
            &mut out,
        );
        self.notices.render(
            "aci_notices_received_total",
            "Risk notices peers sent, by peer and kind.",
            &["peer", "kind"],
            &mut out,
        );
        render_peers(peers, &mut out);
        render_host(host, &mut out);
        out
    }
}

/// The store's histograms and counters.
fn render_store(store: &StoreSeries<'_>, out: &mut String) {
    store.commit_latency.render(
        "aci_log_commit_seconds",
        "Time to write and fdatasync one group-commit batch.",
        out,
    );
    store.batch_size.render(
        "aci_log_batch_records",
        "Records per group-commit batch.",
        out,
    );
    store.sync_latency.render(
        "aci_log_fdatasync_seconds",
        "Time in fdatasync per group-commit batch.",
        out,
    );
    store.append_latency.render(
        "aci_append_seconds",
        "Time from registering a filing to its durable answer (queue, batch, sync, index).",
        out,
    );
    let counters = [
        (
            "aci_log_records_total",
            "Records appended to the log.",
            store.records,
        ),
        (
            "aci_log_batches_total",
            "Group commits (batches written under one sync).",
            store.batches,
        ),
        (
            "aci_log_fsyncs_total",
            "fdatasync and fsync calls made by the log writer.",
            store.syncs,
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        let _ = writeln!(out, "{name} {value}");
    }
    let _ = writeln!(
        out,
        "# HELP aci_log_durable_sequence Sequence of the last record on disk.\n\
         # TYPE aci_log_durable_sequence gauge\naci_log_durable_sequence {}",
        store.durable_seq
    );
    let _ = writeln!(
        out,
        "# HELP aci_log_writable 1 while batches are written; 0 while the disk is full or failing.\n\
         # TYPE aci_log_writable gauge\naci_log_writable {}",
        u8::from(store.writable)
    );
    out.push_str(
        "# HELP aci_index_reads_waited_total Index reads of carriers' and peers' calls that \
         would have waited on an async worker, done on a blocking thread instead, by what they \
         waited for: not_in_memory (the disk), writer_busy (the index writer's batch).\n\
         # TYPE aci_index_reads_waited_total counter\n",
    );
    for (cause, count) in store.reads_waited {
        let _ = writeln!(
            out,
            "aci_index_reads_waited_total{{cause=\"{cause}\"}} {count}"
        );
    }
}

/// What the admin endpoint reads of the machine and the files the gateway runs with, at each
/// scrape.
#[derive(Debug, Clone, Default)]
pub struct HostSeries {
    /// Bytes the gateway may still use on the data directory's file system, and its size.
    pub disk: Option<(u64, u64)>,
    /// When each certificate expires (Unix seconds): the server's, and the CAs it trusts.
    pub certificates: Vec<(&'static str, i64)>,
}

fn render_host(host: &HostSeries, out: &mut String) {
    if let Some((free, size)) = host.disk {
        let _ = writeln!(
            out,
            "# HELP aci_disk_free_bytes Bytes the gateway may still write on the data directory's file system.\n\
             # TYPE aci_disk_free_bytes gauge\naci_disk_free_bytes {free}\n\
             # HELP aci_disk_size_bytes Size of the data directory's file system.\n\
             # TYPE aci_disk_size_bytes gauge\naci_disk_size_bytes {size}"
        );
    }
    if host.certificates.is_empty() {
        return;
    }
    out.push_str(
        "# HELP aci_tls_certificate_expiry_timestamp_seconds When a certificate the gateway serves or trusts expires (the earliest of a file's).\n\
         # TYPE aci_tls_certificate_expiry_timestamp_seconds gauge\n",
    );
    for (certificate, expiry) in &host.certificates {
        let _ = writeln!(
            out,
            "aci_tls_certificate_expiry_timestamp_seconds{{certificate=\"{certificate}\"}} {expiry}"
        );
    }
}

/// The same exposition in the OpenMetrics text format (for a scraper that asks for it): a
/// counter's family is named without its `_total` suffix, and the text ends with `# EOF`.
pub fn openmetrics(prometheus: &str) -> String {
    let counters: std::collections::HashSet<&str> = prometheus
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(prometheus.len() + 8);
    for line in prometheus.lines() {
        let family = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let name = rest.split(' ').next()?;
            let base = name.strip_suffix("_total")?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{base}{}", &rest[name.len()..]))
        });
        out.push_str(family.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out.push_str("# EOF\n");
    out
}

/// What the store reports to the metrics endpoint: its histograms and the values of its
/// counters now.
#[derive(Debug)]
pub struct StoreSeries<'a> {
    pub commit_latency: &'a Histogram,
    pub batch_size: &'a Histogram,
    pub sync_latency: &'a Histogram,
    pub append_latency: &'a Histogram,
    pub records: u64,
    pub batches: u64,
    pub syncs: u64,
    pub durable_seq: u64,
    pub writable: bool,
    /// Index reads that gave up on an async worker, by cause.
    pub reads_waited: [(&'static str, u64); crate::store::WouldWait::ALL.len()],
}

/// One peer's forwarding progress, as the metrics endpoint renders it.
#[derive(Debug, Clone, Default)]
pub struct PeerSeries {
    pub peer: String,
    pub connected: bool,
    pub cursor: u64,
    pub lag_records: u64,
    pub lag_seconds: f64,
    pub retries: u64,
    pub delivered: u64,
    pub duplicates: u64,
    pub refused: u64,
}

/// Per-peer forwarding series.
fn render_peers(peers: &[PeerSeries], out: &mut String) {
    type Value = fn(&PeerSeries) -> f64;
    let series: [(&str, &str, &str, Value); 8] = [
        (
            "aci_peer_connected",
            "gauge",
            "1 while a forwarder (or a pulling peer) is connected.",
            |p| f64::from(u8::from(p.connected)),
        ),
        (
            "aci_peer_cursor",
            "gauge",
            "Sequence up to which the peer acknowledged.",
            |p| p.cursor as f64,
        ),
        (
            "aci_peer_lag_records",
            "gauge",
            "Log records after the peer's cursor.",
            |p| p.lag_records as f64,
        ),
        (
            "aci_peer_lag_seconds",
            "gauge",
            "Age of the oldest record the peer has not acknowledged.",
            |p| p.lag_seconds,
        ),
        (
            "aci_peer_retries_total",
            "counter",
            "Failed connection attempts and broken sessions.",
            |p| p.retries as f64,
        ),
        (
            "aci_peer_delivered_total",
            "counter",
            "Envelopes the peer acknowledged.",
            |p| p.delivered as f64,
        ),
        (
            "aci_peer_duplicates_total",
            "counter",
            "Acknowledgements of redeliveries the peer absorbed.",
            |p| p.duplicates as f64,
        ),
        (
            "aci_peer_refused_total",
            "counter",
            "Envelopes the peer refused.",
            |p| p.refused as f64,
        ),
    ];
    for (name, kind, help, value) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for peer in peers {
            let _ = writeln!(out, "{name}{{peer=\"{}\"}} {}", peer.peer, value(peer));
        }
    }
}
