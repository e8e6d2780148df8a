//! `aci-gateway load`: a load generator for the carrier API (what ghz would be, were it here).
//!
//! N connections × M concurrent requests each, unary `Submit` or one bulk `SubmitStream` per
//! connection; closed loop (as fast as answers come) or open loop at a fixed rate (latency then
//! counts from each request's scheduled time, so a stalled server is not hidden); for a duration
//! or a count. Payloads are the filings in a folder (JSON or XML), each request with a fresh LRN
//! and fresh transport document numbers (air waybills keep a valid check digit). Prints
//! throughput, errors by gRPC code and latency percentiles (HDR histogram), or JSON.
//!
//! A third mode reads instead of filing: `GetStatus` of filings the gateway already stores, picked
//! at random among its first records (a gateway `load` filled), to see what a large store costs
//! the carriers' reads.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use tokio::sync::Mutex;

use crate::client::{CarrierClient, Credentials};
use crate::ids::{Mrn, Seq};
use crate::pb::{self, Manifest, SubmitRequest, submit_request, submit_result};
use crate::validate::rules::awb_check_digit_ok;

/// How requests are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// One `Submit` per filing.
    Unary,
    /// One `SubmitStream` per connection, `concurrency` filings in flight on it.
    Stream,
    /// One `GetStatus` per request, of a stored filing picked at random (see [`Stored`]).
    Status,
}

/// What the status mode asks about: the filings at sequences 1 to `records` of a gateway whose
/// log holds nothing else (as after filling it with `load`), filed this year. Their MRNs follow
/// from the sequence ([`Mrn::issue`]); a status the gateway does not know is counted as an error
/// (`NotFound`), so a wrong assumption shows in the report.
#[derive(Clone, Debug)]
pub struct Stored {
    pub records: u64,
    pub country: String,
    pub year: i32,
}

impl Stored {
    /// The MRN request `n` asks about: a sequence spread over the whole store (splitmix64 of
    /// `n`), so that reads hit old filings as often as recent ones.
    fn mrn(&self, n: u64) -> String {
        let mut x = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        let sequence = 1 + x % self.records.max(1);
        Mrn::issue(self.year, &self.country, Seq(sequence)).to_string()
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    pub endpoint: String,
    pub credentials: Credentials,
    pub connections: usize,
    pub concurrency: usize,
    pub mode: Mode,
    /// Requests per second in total (open loop); `None`: closed loop.
    pub rate: Option<f64>,
    pub duration: Option<Duration>,
    pub count: Option<u64>,
    /// What the status mode reads (required by it, ignored by the others).
    pub stored: Option<Stored>,
}

/// A filing to send, with what makes each copy unique.
#[derive(Clone, Debug)]
pub enum Payload {
    Manifest(Box<Manifest>),
    Xml {
        text: String,
        lrn: String,
        documents: Vec<String>,
    },
}

/// Reads every `.json` and `.xml` filing in `dir` (not its subfolders).
pub fn payloads(dir: &Path) -> Result<Vec<Payload>> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path)?;
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => {
                let manifest: Manifest =
                    pb::from_json(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                out.push(Payload::Manifest(Box::new(manifest)));
            }
            Some("xml") => {
                let manifest = crate::validate::xml::from_xml(
                    crate::validate::Validator::standard().schema(),
                    text.as_bytes(),
                )
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                out.push(Payload::Xml {
                    documents: documents(&manifest),
                    lrn: manifest.lrn,
                    text,
                });
            }
            _ => {}
        }
    }
    if out.is_empty() {
        bail!("no .json or .xml filings in {}", dir.display());
    }
    Ok(out)
}

fn documents(manifest: &Manifest) -> Vec<String> {
    manifest
        .consignments
        .iter()
        .filter_map(|c| c.transport_document.as_ref())
        .map(|d| d.number.clone())
        .filter(|n| !n.is_empty())
        .collect()
}

/// A document number unique to run `run` and number `n` (a filer files each master document
/// once a year, so runs must not repeat them): an air waybill gets a new serial with its check
/// digit.
fn unique_document(number: &str, run: &str, n: u64) -> String {
    if awb_check_digit_ok(number) {
        let prefix = &number[..3];
        let seed = u64::from_str_radix(run, 16).unwrap_or(0);
        let body = seed.wrapping_add(n) % 10_000_000;
        format!("{prefix}-{body:07}{}", body % 7)
    } else {
        let mut unique = format!("{number}-{run}-{n}");
        unique.truncate(70);
        unique
    }
}

/// The `n`th request of a run: the payload with a fresh LRN and document numbers.
pub fn request(payload: &Payload, run: &str, n: u64) -> SubmitRequest {
    let lrn = format!("LD-{run}-{n}");
    let filing = match payload {
        Payload::Manifest(manifest) => {
            let mut manifest = (**manifest).clone();
            manifest.lrn = lrn;
            for (i, consignment) in manifest.consignments.iter_mut().enumerate() {
                if let Some(document) = consignment.transport_document.as_mut() {
                    document.number = unique_document(&document.number, run, n * 16 + i as u64);
                }
            }
            submit_request::Filing::Manifest(Box::new(manifest))
        }
        Payload::Xml {
            text,
            lrn: original,
            documents,
        } => {
            let mut xml = text.replace(&format!(">{original}<"), &format!(">{lrn}<"));
            for (i, document) in documents.iter().enumerate() {
                let unique = unique_document(document, run, n * 16 + i as u64);
                xml = xml.replace(&format!(">{document}<"), &format!(">{unique}<"));
            }
            submit_request::Filing::Xml(xml.into_bytes())
        }
    };
    SubmitRequest {
        filing: Some(filing),
    }
}

/// What a run measured.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub mode: String,
    pub connections: usize,
    pub concurrency: usize,
    pub seconds: f64,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    /// Accepted filings (status mode: answered reads) per second.
    pub throughput: f64,
    pub latency_us: Percentiles,
}

#[derive(Debug, serde::Serialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

/// Shared by the workers.
struct Run {
    payloads: Vec<Payload>,
    run_id: String,
    next: AtomicU64,
    count: Option<u64>,
    deadline: Option<Instant>,
    started: Instant,
    /// Open loop: the interval between two requests.
    interval: Option<Duration>,
    latency: Mutex<Histogram<u64>>,
    ok: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Run {
    /// The next request number and when it is due, or `None` when the run is over.
    fn ticket(&self) -> Option<(u64, Instant)> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        if self.count.is_some_and(|count| n >= count) {
            return None;
        }
        let due = match self.interval {
            Some(interval) => self.started + interval.mul_f64(n as f64),
            None => Instant::now(),
        };
        if self.deadline.is_some_and(|deadline| due >= deadline) {
            return None;
        }
        Some((n, due))
    }

    async fn record(&self, due: Instant, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                let micros = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX);
                let _ = self.latency.lock().await.record(micros.max(1));
            }
            Err(code) => *self.errors.lock().await.entry(code).or_default() += 1,
        }
    }

    fn payload(&self, n: u64) -> SubmitRequest {
        let payload = &self.payloads[(n % self.payloads.len() as u64) as usize];
        request(payload, &self.run_id, n)
    }
}

/// Waits until `due` (open loop). The timer has millisecond resolution: a request already due
/// goes at once instead of waiting for the next tick.
async fn wait_until(due: Instant) {
    if due > Instant::now() {
        tokio::time::sleep_until(due.into()).await;
    }
}

fn code_name(code: tonic::Code) -> String {
    format!("{code:?}")
}

/// Request `n` of a unary run: a status read of a stored filing when `reads` says which, else
/// a filing.
async fn send_one(
    client: &mut CarrierClient,
    run: &Run,
    reads: Option<&Stored>,
    n: u64,
) -> Result<(), tonic::Status> {
    if let Some(stored) = reads {
        return client.status_by_mrn(&stored.mrn(n)).await.map(drop);
    }
    match run.payload(n).filing {
        Some(submit_request::Filing::Manifest(m)) => client.submit(m).await.map(drop),
        Some(submit_request::Filing::Xml(x)) => client.submit_xml(x).await.map(drop),
        None => Err(tonic::Status::invalid_argument("no filing")),
    }
}

/// Runs the plan and reports.
pub async fn run(plan: &Plan, payloads: Vec<Payload>) -> Result<Report> {
    if plan.duration.is_none() && plan.count.is_none() {
        bail!("give --duration or --count");
    }
    // What the status mode reads; `None`: the run files.
    let reads = match (plan.mode, &plan.stored) {
        (Mode::Status, Some(stored)) => Some(stored.clone()),
        (Mode::Status, None) => {
            bail!("the status mode needs --stored (how many filings the gateway holds)")
        }
        (Mode::Unary | Mode::Stream, _) => None,
    };
    // Eight hex digits of the start in milliseconds (they repeat every 50 days): with "LD-",
    // a dash and the request's number, an LRN stays within ICS2's 22 characters up to 10^10.
    let run_id = format!(
        "{:08x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
            % (1 << 32)
    );
    let mut clients = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        clients.push(CarrierClient::connect(&plan.endpoint, &plan.credentials).await?);
    }
    let started = Instant::now();
    let run = Arc::new(Run {
        payloads,
        run_id,
        next: AtomicU64::new(0),
        count: plan.count,
        deadline: plan.duration.map(|d| started + d),
        started,
        interval: plan
            .rate
            .map(|r| Duration::from_secs_f64(1.0 / r.max(0.001))),
        latency: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3)?),
        ok: AtomicU64::new(0),
        errors: Mutex::new(BTreeMap::new()),
    });
    let mut tasks = Vec::new();
    for client in clients {
        match plan.mode {
            Mode::Unary | Mode::Status => {
                for _ in 0..plan.concurrency {
                    let (mut client, run, reads) =
                        (client.clone(), Arc::clone(&run), reads.clone());
                    tasks.push(tokio::spawn(async move {
                        while let Some((n, due)) = run.ticket() {
                            wait_until(due).await;
                            let outcome = send_one(&mut client, &run, reads.as_ref(), n).await;
                            run.record(due, outcome.map_err(|s| code_name(s.code())))
                                .await;
                        }
                    }));
                }
            }
            Mode::Stream => {
                let run = Arc::clone(&run);
                let concurrency = plan.concurrency;
                tasks.push(tokio::spawn(stream_worker(client, run, concurrency)));
            }
        }
    }
    let progress = tokio::spawn(show_progress(Arc::clone(&run), plan.duration));
    for task in tasks {
        task.await?;
    }
    progress.abort();
    let _ = progress.await;
    let seconds = started.elapsed().as_secs_f64();
    let ok = run.ok.load(Ordering::Relaxed);
    let latency = run.latency.lock().await;
    Ok(Report {
        mode: format!("{:?}", plan.mode).to_lowercase(),
        connections: plan.connections,
        concurrency: plan.concurrency,
        seconds,
        ok,
        errors: run.errors.lock().await.clone(),
        throughput: ok as f64 / seconds,
        latency_us: Percentiles {
            p50: latency.value_at_quantile(0.5),
            p90: latency.value_at_quantile(0.9),
            p99: latency.value_at_quantile(0.99),
            p999: latency.value_at_quantile(0.999),
            max: latency.max(),
            mean: latency.mean(),
        },
    })
}

/// Shows how far the run is, until aborted: filings sent towards `--count`, or seconds towards
/// `--duration`.
async fn show_progress(run: Arc<Run>, duration: Option<Duration>) {
    /// Clears the bar when the task is aborted (the report follows on stdout).
    struct Shown(Option<super::progress::Progress>);
    impl Drop for Shown {
        fn drop(&mut self) {
            if let Some(progress) = self.0.take() {
                progress.finish();
            }
        }
    }
    let (unit, total) = match (run.count, duration) {
        (Some(count), _) => ("filings", count),
        (None, Some(duration)) => ("s", duration.as_secs()),
        (None, None) => return,
    };
    let mut shown = Shown(Some(super::progress::Progress::new("load", unit, total)));
    let mut reported = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = match run.count {
            Some(count) => run.next.load(Ordering::Relaxed).min(count),
            None => run.started.elapsed().as_secs().min(total),
        };
        if let Some(progress) = shown.0.as_mut() {
            progress.advance(now - reported);
        }
        reported = now;
    }
}

/// One bulk stream: up to `concurrency` filings in flight, answers matched by position.
async fn stream_worker(mut client: CarrierClient, run: Arc<Run>, concurrency: usize) {
    let (requests, outgoing) = tokio::sync::mpsc::channel::<SubmitRequest>(concurrency);
    let mut answers = match client
        .submit_stream(tokio_stream::wrappers::ReceiverStream::new(outgoing))
        .await
    {
        Ok(answers) => answers,
        Err(status) => {
            run.record(Instant::now(), Err(code_name(status.code())))
                .await;
            return;
        }
    };
    let window = Arc::new(tokio::sync::Semaphore::new(concurrency));
    // Position on the stream (from 1) → when it was due.
    let due_at = Arc::new(std::sync::Mutex::new(BTreeMap::<u64, Instant>::new()));
    let sender = {
        let (run, window, due_at) = (Arc::clone(&run), Arc::clone(&window), Arc::clone(&due_at));
        tokio::spawn(async move {
            let mut position = 0u64;
            while let Some((n, due)) = run.ticket() {
                let Ok(permit) = Arc::clone(&window).acquire_owned().await else {
                    return;
                };
                permit.forget();
                wait_until(due).await;
                position += 1;
                if let Ok(mut map) = due_at.lock() {
                    map.insert(position, due);
                }
                if requests.send(run.payload(n)).await.is_err() {
                    return;
                }
            }
        })
    };
    loop {
        let answer = match answers.message().await {
            Ok(Some(answer)) => answer,
            Ok(None) => break,
            Err(status) => {
                run.record(Instant::now(), Err(code_name(status.code())))
                    .await;
                break;
            }
        };
        let due = due_at
            .lock()
            .ok()
            .and_then(|mut map| map.remove(&answer.position))
            .unwrap_or_else(Instant::now);
        let outcome = match answer.outcome {
            Some(submit_result::Outcome::Receipt(_)) => Ok(()),
            Some(submit_result::Outcome::Rejection(rejection)) => {
                Err(code_name(tonic::Code::from_i32(rejection.code)))
            }
            None => Err("NoOutcome".into()),
        };
        run.record(due, outcome).await;
        window.add_permits(1);
    }
    let _ = sender.await;
}

impl Report {
    /// The report as text lines.
    pub fn text(&self) -> String {
        let errors: u64 = self.errors.values().sum();
        let mut out = format!(
            "{} x {} {} in {:.1} s: {} answered ({:.0}/s), {errors} errors\n",
            self.connections, self.concurrency, self.mode, self.seconds, self.ok, self.throughput
        );
        for (code, count) in &self.errors {
            out.push_str(&format!("  {code}: {count}\n"));
        }
        let l = &self.latency_us;
        out.push_str(&format!(
            "latency (us): p50 {} p90 {} p99 {} p99.9 {} max {} mean {:.0}\n",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn the_status_mode_reads_the_whole_store() {
        let stored = Stored {
            records: 1000,
            country: "GB".into(),
            year: 2026,
        };
        let issued = |sequences: std::ops::RangeInclusive<u64>| -> HashSet<String> {
            sequences
                .map(|s| Mrn::issue(2026, "GB", Seq(s)).to_string())
                .collect()
        };
        let asked: HashSet<String> = (0..5000).map(|n| stored.mrn(n)).collect();
        assert!(
            asked.is_subset(&issued(1..=1000)),
            "only MRNs the store issued"
        );
        // 5 000 draws from 1 000 leave about 1 000 × e^-5 ≈ 7 unseen.
        assert!(asked.len() > 950, "spread over the store: {}", asked.len());
        let oldest = asked.intersection(&issued(1..=100)).count();
        assert!(oldest > 90, "the oldest tenth is read too: {oldest}");
    }

    #[test]
    fn every_request_is_a_new_valid_filing() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/examples");
        let payloads = payloads(&dir).expect("samples");
        assert!(payloads.len() >= 14, "JSON and XML of every mode");
        let validator = crate::validate::Validator::standard();
        let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        for (i, payload) in payloads.iter().enumerate() {
            let (a, b) = (request(payload, "T", 7), request(payload, "T", 8));
            let accepted = |r: SubmitRequest| match r.filing {
                Some(submit_request::Filing::Manifest(m)) => validator.validate(m, now),
                Some(submit_request::Filing::Xml(x)) => {
                    validator.validate_xml(&x, &crate::validate::xsd::Limits::default(), now)
                }
                None => panic!("no filing"),
            };
            let (a, b) = (accepted(a), accepted(b));
            let (a, b) = match (a, b) {
                (Ok(a), Ok(b)) => (a, b),
                (a, b) => panic!("payload {i}: {:?} / {:?}", a.err(), b.err()),
            };
            assert_ne!(a.lrn, b.lrn);
            assert!(
                a.master_documents
                    .iter()
                    .all(|d| !b.master_documents.contains(d)),
                "payload {i}: the master documents differ"
            );
        }
    }
}
