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
const XSD: &str = "schemas/aci-manifest-2.xsd";

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
            validator.constraints().check(
                &prost::Message::encode_to_vec(std::hint::black_box(&manifest)),
                &manifest.filing_type,
                aci_gateway::validate::constraints::Form::Current,
                &mut report,
            );
            report
        })
    });
    let document = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(XML)).expect("example");
    let limits = aci_gateway::validate::xsd::Limits::default();
    group.bench_function("xml_schema_5k", |b| {
        b.iter(|| {
            validator
                .schema()
                .validate(std::hint::black_box(&document), &limits)
        })
    });
    group.bench_function("xml_read_5k", |b| {
        b.iter(|| validator.read_xml(std::hint::black_box(&document), &limits))
    });
    group.finish();
    summary(validator, &manifest, now);
    xml_summary(validator);
}

/// Our XSD validation against libxml2's, over the same corpus (every example), one core each.
fn xml_summary(validator: &Validator) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/examples");
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .expect("examples")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .map(|p| {
            format!(
                "schemas/examples/{}",
                p.file_name().expect("name").to_string_lossy()
            )
        })
        .collect();
    names.sort();
    let documents: Vec<Vec<u8>> = names
        .iter()
        .map(|n| std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(n)).expect("read"))
        .collect();
    let limits = aci_gateway::validate::xsd::Limits::default();
    const ROUNDS: usize = 400;
    let started = Instant::now();
    let mut ours_valid = vec![false; documents.len()];
    for _ in 0..ROUNDS {
        for (i, d) in documents.iter().enumerate() {
            ours_valid[i] = validator
                .schema()
                .validate(std::hint::black_box(d), &limits)
                .is_valid();
        }
    }
    let ours = started.elapsed().as_secs_f64() / (ROUNDS * documents.len()) as f64;
    // libxml2: the same corpus many times in one process; per-document cost by difference.
    let run = |repeat: usize| -> Option<(Duration, String)> {
        let files: Vec<&str> = (0..repeat)
            .flat_map(|_| names.iter().map(String::as_str))
            .collect();
        let started = Instant::now();
        let output = Command::new("xmllint")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["--noout", "--nonet", "--schema", XSD])
            .args(&files)
            .output()
            .ok()?;
        Some((
            started.elapsed(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ))
    };
    let Some(((few, verdicts), (many, _))) = run(1).zip(run(ROUNDS / 4)) else {
        println!("  libxml2: xmllint not found; install libxml2-utils for the XML comparison");
        return;
    };
    let theirs = (many - few).as_secs_f64() / ((ROUNDS / 4 - 1) * documents.len()) as f64;
    let agree = names
        .iter()
        .zip(&ours_valid)
        .filter(|(n, ours)| verdicts.contains(&format!("{n} validates")) == **ours)
        .count();
    let size: usize = documents.iter().map(Vec::len).sum::<usize>() / documents.len();
    println!(
        "  XML schema validation, {} documents of {} bytes on average:",
        documents.len(),
        size
    );
    println!(
        "    ours    {:>8.0} documents/s ({:.1} µs each)",
        1.0 / ours,
        ours * 1e6
    );
    println!(
        "    libxml2 {:>8.0} documents/s ({:.1} µs each)",
        1.0 / theirs,
        theirs * 1e6
    );
    println!(
        "    ratio {:.2}x libxml2; identical verdicts {agree}/{}",
        theirs / ours,
        documents.len()
    );
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
