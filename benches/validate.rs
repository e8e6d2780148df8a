//! Validation cost of a 5 KB filing: the declarative proto constraints and the business rules,
//! beside XML schema validation of the same filing by libxml2 (xmllint, schema compiled once),
//! measured in the same run. (The gateway's own streaming XSD validator replaces libxml2 as the
//! XML figure once it exists.)
//!
//! `cargo bench --bench validate` prints criterion's figures, then a summary with the ratio.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use aci_gateway::pb::{self, Manifest};
use aci_gateway::validate::Validator;
use criterion::{Criterion, criterion_group, criterion_main};

const XML: &str = "schemas/examples/sea-f10-large.xml";
const XSD: &str = "schemas/aci-manifest-1.xsd";

fn manifest() -> Manifest {
    pb::from_json(include_str!("../schemas/examples/sea-f10-large.json")).expect("sample")
}

fn benches(c: &mut Criterion) {
    let validator = Validator::standard();
    let manifest = manifest();
    let now = SystemTime::now();
    let mut group = c.benchmark_group("validate_5k");
    group.bench_function("constraints_and_rules", |b| {
        b.iter(|| validator.check(std::hint::black_box(&manifest), now))
    });
    group.bench_function("constraints_only", |b| {
        b.iter(|| {
            let mut report = aci_gateway::validate::Report::default();
            validator
                .constraints()
                .check(std::hint::black_box(&manifest), &mut report);
            report
        })
    });
    group.finish();
    summary(validator, &manifest, now);
}

/// Time for xmllint to validate `count` copies of the document in one process.
fn xmllint(count: usize) -> Option<Duration> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = vec![XML; count];
    let started = Instant::now();
    let output = Command::new("xmllint")
        .current_dir(root)
        .args(["--noout", "--nonet", "--schema", XSD])
        .args(&files)
        .output()
        .ok()?;
    output.status.success().then(|| started.elapsed())
}

fn summary(validator: &Validator, manifest: &Manifest, now: SystemTime) {
    const ROUNDS: u32 = 20_000;
    let started = Instant::now();
    for _ in 0..ROUNDS {
        std::hint::black_box(validator.check(std::hint::black_box(manifest), now));
    }
    let ours = started.elapsed() / ROUNDS;
    println!("\nsummary (one run):");
    println!(
        "  constraints + rules, 5 KB filing: {:>8.1} µs per filing",
        ours.as_secs_f64() * 1e6
    );
    // Per-document cost by difference, so process start and schema compilation cancel out.
    let (few, many) = (10, 2010);
    match (xmllint(few), xmllint(many)) {
        (Some(t_few), Some(t_many)) if t_many > t_few => {
            let per_doc = (t_many - t_few) / (many - few) as u32;
            println!(
                "  libxml2 XSD validation, same filing: {:>5.1} µs per document",
                per_doc.as_secs_f64() * 1e6
            );
            println!(
                "  rules + constraints = {:.2} x the XML schema validation time",
                ours.as_secs_f64() / per_doc.as_secs_f64()
            );
        }
        _ => println!(
            "  libxml2: xmllint not found or failed; install libxml2-utils for the comparison"
        ),
    }
}

criterion_group!(validate, benches);
criterion_main!(validate);
