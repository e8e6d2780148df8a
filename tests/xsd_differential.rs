//! Our streaming XSD validator against libxml2 (xmllint), document by document, over a corpus
//! made from the examples by systematic mutation: every verdict (valid or not) must agree.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use aci_gateway::validate::xsd::{Limits, Schema};
use quick_xml::Reader;
use quick_xml::events::Event;

const XSD: &str = include_str!("../schemas/aci-manifest-2.xsd");
/// The current samples whose types differ most: sea (parties, routing, packagings, equipment
/// codes, documents), air, road and rail (passive means), the buyer and seller supplement,
/// postal receptacles, the express minimum set.
const EXAMPLES: [&str; 10] = [
    "sea-f10",
    "air-f23",
    "road-f50",
    "sea-f17",
    "sea-f10-large",
    "rail-f51",
    "postal-f42",
    "express-f32",
    "inland-f10",
    "invalid/sea-f15-dataset",
];

/// An element's extent in the text, and whether it holds text only.
struct Extent {
    start: usize,
    end: usize,
    name: String,
    leaf: bool,
    /// The byte range of its text, for leaves.
    text: (usize, usize),
    parent: Option<usize>,
}

fn extents(xml: &str) -> Vec<Extent> {
    let mut reader = Reader::from_str(xml);
    let mut out: Vec<Extent> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    loop {
        let before = reader.buffer_position() as usize;
        match reader.read_event().expect("examples are well-formed") {
            Event::Start(e) => {
                let parent = open.last().copied();
                if let Some(p) = parent {
                    out[p].leaf = false;
                }
                let after = reader.buffer_position() as usize;
                out.push(Extent {
                    start: before,
                    end: 0,
                    name: e.local_name().into_inner().to_owned(),
                    leaf: true,
                    text: (after, after),
                    parent,
                });
                open.push(out.len() - 1);
            }
            Event::End(_) => {
                let i = open.pop().expect("balanced");
                out[i].text.1 = before;
                out[i].end = reader.buffer_position() as usize;
            }
            Event::Eof => break,
            _ => {}
        }
    }
    out
}

fn splice(xml: &str, range: (usize, usize), with: &str) -> String {
    format!("{}{}{}", &xml[..range.0], with, &xml[range.1..])
}

/// The corpus: (name, document).
fn corpus() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/examples");
    let mut docs = Vec::new();
    let values = [
        "",
        "X",
        "0",
        "-1",
        "1.5",
        "1.2345",
        "99999999999.001",
        "abc",
        "GB",
        "SEA",
        "CT",
        "VR",
        "2026-12-01T08:00:00Z",
        "2026-13-01T08:00:00Z",
        "2026-12-01",
        "820411",
        "82041",
        "CSQU3054383",
        "  SEA  ",
        "4294967296",
        "true",
    ];
    let long_values = [
        "L".repeat(18),
        "L".repeat(36),
        "L".repeat(71),
        "L".repeat(513),
    ];
    for example in EXAMPLES {
        let path = root.join(format!("{example}.xml"));
        let xml =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let example = example.replace('/', "-");
        let example = example.as_str();
        docs.push((example.to_owned(), xml.clone()));
        let elements = extents(&xml);
        for (i, e) in elements.iter().enumerate().skip(1) {
            // Only the first two examples get every mutation; the others a sample.
            if example != "sea-f10" && example != "air-f23" && i % 5 != 0 {
                continue;
            }
            let tag = format!("{}-{i}-{}", example.replace('/', "-"), e.name);
            docs.push((format!("{tag}-drop"), splice(&xml, (e.start, e.end), "")));
            docs.push((
                format!("{tag}-dup"),
                splice(&xml, (e.end, e.end), &xml[e.start..e.end]),
            ));
            if let Some(next) = elements
                .iter()
                .skip(i + 1)
                .find(|n| n.parent == e.parent && n.start >= e.end)
            {
                let swapped = format!(
                    "{}{}{}{}{}",
                    &xml[..e.start],
                    &xml[next.start..next.end],
                    &xml[e.end..next.start],
                    &xml[e.start..e.end],
                    &xml[next.end..]
                );
                docs.push((format!("{tag}-swap"), swapped));
            }
            if e.leaf {
                for (v, value) in values.iter().enumerate() {
                    if (i + v) % 4 == 0 {
                        docs.push((format!("{tag}-value{v}"), splice(&xml, e.text, value)));
                    }
                }
                let long = &long_values[i % long_values.len()];
                docs.push((format!("{tag}-long"), splice(&xml, e.text, long)));
            } else {
                docs.push((
                    format!("{tag}-unknown"),
                    splice(&xml, (e.text.0, e.text.0), "<Unknown>1</Unknown>"),
                ));
                docs.push((
                    format!("{tag}-text"),
                    splice(&xml, (e.text.0, e.text.0), "stray text"),
                ));
            }
            if i % 7 == 0 {
                let open_end = xml[e.start..]
                    .find('>')
                    .map(|p| e.start + p)
                    .expect("tag end");
                docs.push((
                    format!("{tag}-attr"),
                    splice(&xml, (open_end, open_end), " extra=\"1\""),
                ));
                docs.push((format!("{tag}-xsi"), splice(&xml, (open_end, open_end), " xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:schemaLocation=\"urn:x http://example.invalid/x.xsd\"")));
            }
        }
        docs.push((
            format!("{example}-wrong-ns"),
            xml.replace("urn:aci-gateway:manifest:1", "urn:other"),
        ));
        docs.push((
            format!("{example}-no-ns"),
            xml.replace(" xmlns=\"urn:aci-gateway:manifest:1\"", ""),
        ));
        docs.push((
            format!("{example}-comment"),
            xml.replace("<Lrn>", "<!-- a comment --><Lrn>"),
        ));
        docs.push((
            format!("{example}-cdata"),
            xml.replace("<Lrn>", "<Lrn><![CDATA[")
                .replace("</Lrn>", "]]></Lrn>"),
        ));
        docs.push((
            format!("{example}-charref"),
            xml.replace("<Lrn>", "<Lrn>&#65;"),
        ));
    }
    docs
}

#[test]
fn every_verdict_agrees_with_libxml2() {
    let schema = Schema::compile(XSD).expect("the schema compiles");
    let docs = corpus();
    let dir = tempfile::tempdir().expect("tmp");
    let mut files = Vec::new();
    let mut ours = HashMap::new();
    for (i, (name, xml)) in docs.iter().enumerate() {
        let file = dir.path().join(format!("{i:05}.xml"));
        std::fs::write(&file, xml).expect("write");
        ours.insert(
            file.display().to_string(),
            (
                name.clone(),
                schema.validate(xml.as_bytes(), &Limits::default()),
            ),
        );
        files.push(file.display().to_string());
    }
    let schema_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/aci-manifest-2.xsd");
    let output = Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(&schema_path)
        .args(&files)
        .output()
        .expect("xmllint is needed (apt-get install libxml2-utils; .ci/run installs it)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut disagreements = Vec::new();
    let mut invalid = 0;
    for file in &files {
        let libxml2_valid = stderr.contains(&format!("{file} validates"));
        let (name, report) = &ours[file];
        if !libxml2_valid {
            invalid += 1;
        }
        if report.is_valid() != libxml2_valid {
            let detail: Vec<&str> = stderr
                .lines()
                .filter(|l| l.starts_with(file.as_str()))
                .collect();
            disagreements.push(format!(
                "{name}: libxml2 says {}, we found {:?}\n  libxml2: {detail:?}",
                if libxml2_valid { "valid" } else { "invalid" },
                report
                    .findings
                    .iter()
                    .map(|f| f.message.as_str())
                    .collect::<Vec<_>>()
            ));
        }
    }
    let agreed = files.len() - disagreements.len();
    eprintln!(
        "XSD differential: {agreed}/{} documents agree with libxml2 ({invalid} invalid per libxml2)",
        files.len()
    );
    assert!(files.len() >= 300, "a corpus of hundreds: {}", files.len());
    assert!(
        invalid > 100 && invalid < files.len() - 5,
        "both verdicts are exercised"
    );
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}
