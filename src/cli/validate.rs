//! `validate FILE|DIR...`: filings checked offline, with no server, exactly as the gateway
//! checks them (or, with `--schema-only`, against the XML schema alone).
//!
//! One file: its whole report as JSON. Several files or folders (searched for `.json` and
//! `.xml`): a table of file, verdict and findings, or one JSON object per line with `--json`,
//! the files checked on `--jobs` threads (default: every core). Exit 0 when every filing is
//! valid, 1 when one is not, 2 when one cannot be read.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};

use crate::config::Config;
use crate::pb::{self, Manifest};
use crate::validate::{Finding, Report, Validator};

/// What `validate` was asked.
#[derive(Debug)]
pub(super) struct Request<'a> {
    pub paths: &'a [PathBuf],
    pub config: &'a Path,
    pub schema_only: bool,
    pub json: bool,
    pub jobs: Option<usize>,
}

/// One file's verdict.
enum Verdict {
    Checked(Report),
    Unreadable(String),
}

pub(super) fn run(request: &Request<'_>) -> Result<ExitCode> {
    let settings = if request.config.exists() {
        Config::load(request.config)?.validation
    } else {
        crate::validate::rules::RuleSettings::default()
    };
    let validator = Validator::new(settings)?;
    if let [file] = request.paths
        && !file.is_dir()
    {
        return one(&validator, file, request.schema_only);
    }
    let files = filings_in(request.paths)?;
    if files.is_empty() {
        bail!("no .json or .xml file in {:?}", request.paths);
    }
    let jobs = request
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, files.len());
    let verdicts = check_all(&validator, &files, request.schema_only, jobs);
    // One write for many lines, not one per line: at 2 000 files that was a twentieth of the
    // time of `validate --schema-only --json`.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    print_summary(&mut out, &files, &verdicts, request.json)
        .and_then(|()| out.flush())
        .map_err(super::unless_stdout_closed)?;
    let code = verdicts.iter().fold(0, |code, verdict| match verdict {
        Verdict::Unreadable(_) => 2,
        Verdict::Checked(report) if report.has_errors() => code.max(1),
        Verdict::Checked(_) => code,
    });
    Ok(ExitCode::from(code))
}

/// One file: its whole report.
fn one(validator: &Validator, file: &Path, schema_only: bool) -> Result<ExitCode> {
    let report = check(validator, file, schema_only)?;
    let valid = !report.has_errors();
    let mut out = serde_json::json!({ "valid": valid });
    out["violations"] = violations_json(report.findings());
    out["truncated"] = report.truncated().into();
    super::carrier::print_json(&out);
    Ok(ExitCode::from(if valid { 0 } else { 1 }))
}

/// Every `.json` and `.xml` file named or under a folder named, in path order.
fn filings_in(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            files_under(path, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// The `.json` and `.xml` files under `dir`, in path order. Whether an entry is a folder comes
/// with the listing: no file is looked up on its own (at 2 000 files, two lookups each were a
/// tenth of `validate --schema-only`'s time).
fn files_under(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let path = entry.path();
        // A symbolic link is followed, as a path given on the command line is.
        let is_dir = match entry.file_type() {
            Ok(kind) if kind.is_symlink() => path.is_dir(),
            Ok(kind) => kind.is_dir(),
            Err(_) => path.is_dir(),
        };
        if is_dir || is_xml(&path) || is_json(&path) {
            entries.push((path, is_dir));
        }
    }
    entries.sort();
    for (path, is_dir) in entries {
        if is_dir {
            files_under(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

/// Checks `files` on `jobs` threads; the verdicts in the files' order.
fn check_all(
    validator: &Validator,
    files: &[PathBuf],
    schema_only: bool,
    jobs: usize,
) -> Vec<Verdict> {
    let next = AtomicUsize::new(0);
    let mut verdicts: Vec<(usize, Verdict)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(file) = files.get(i) else {
                            return done;
                        };
                        let verdict = match check(validator, file, schema_only) {
                            Ok(report) => Verdict::Checked(report),
                            Err(e) => Verdict::Unreadable(format!("{e:#}")),
                        };
                        done.push((i, verdict));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap_or_default())
            .collect()
    });
    verdicts.sort_by_key(|(i, _)| *i);
    verdicts.into_iter().map(|(_, verdict)| verdict).collect()
}

/// A filing's findings (all of them; or the XML schema's alone).
fn check(validator: &Validator, file: &Path, schema_only: bool) -> Result<Report> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    if schema_only && !is_xml(file) {
        bail!("--schema-only is for XML files");
    }
    let now = std::time::SystemTime::now();
    let limits = crate::validate::xsd::Limits::default();
    if schema_only {
        return Ok(validator.check_xml_schema(&bytes, &limits));
    }
    if is_xml(file) {
        return Ok(match validator.validate_xml(&bytes, &limits, now) {
            Ok(accepted) => {
                let mut report = Report::default();
                accepted.warnings.into_iter().for_each(|w| report.push(w));
                report
            }
            Err(report) => report,
        });
    }
    let text =
        String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", file.display()))?;
    let manifest: Manifest =
        pb::from_json(&text).with_context(|| format!("{} is not a manifest", file.display()))?;
    Ok(validator.check(&manifest, now))
}

fn print_summary(
    out: &mut impl Write,
    files: &[PathBuf],
    verdicts: &[Verdict],
    json: bool,
) -> std::io::Result<()> {
    let width = files
        .iter()
        .map(|f| f.display().to_string().len())
        .max()
        .unwrap_or(4)
        .max(4);
    if !json {
        writeln!(out, "{:<width$}  {:<10}  findings", "file", "verdict")?;
    }
    let (mut valid, mut invalid, mut unreadable) = (0, 0, 0);
    for (file, verdict) in files.iter().zip(verdicts) {
        let shown = file.display().to_string();
        let (label, findings, detail) = match verdict {
            Verdict::Checked(report) if report.has_errors() => {
                invalid += 1;
                ("invalid", report.findings().len(), summary(report))
            }
            Verdict::Checked(report) => {
                valid += 1;
                ("valid", report.findings().len(), summary(report))
            }
            Verdict::Unreadable(why) => {
                unreadable += 1;
                ("unreadable", 0, why.clone())
            }
        };
        if json {
            let mut line = serde_json::json!({
                "file": shown, "verdict": label, "findings": findings,
            });
            if let Verdict::Checked(report) = verdict {
                line["violations"] = violations_json(report.findings());
            } else {
                line["error"] = detail.into();
            }
            writeln!(out, "{line}")?;
        } else {
            writeln!(out, "{shown:<width$}  {label:<10}  {findings:>3}  {detail}")?;
        }
    }
    if !json {
        writeln!(
            out,
            "{} files: {valid} valid, {invalid} invalid, {unreadable} unreadable",
            files.len()
        )?;
    }
    Ok(())
}

/// Findings as the proto3 JSON of their `aci.v1.Violation`s (field names as in the .proto, every
/// field present), written directly: going through the reflective transcoder for every file
/// was a tenth of `validate --json`'s time.
fn violations_json(findings: &[Finding]) -> serde_json::Value {
    findings
        .iter()
        .map(|finding| {
            let violation = finding.to_proto();
            serde_json::json!({
                "code": violation.code,
                "rule": violation.rule,
                "path": violation.path,
                "message": violation.message,
                "severity": violation.severity().as_str_name(),
                "value": violation.value,
            })
        })
        .collect()
}

/// The codes and rules of a report's first findings, for the table.
fn summary(report: &Report) -> String {
    const SHOWN: usize = 3;
    let findings = report.findings();
    let mut text: Vec<String> = findings
        .iter()
        .take(SHOWN)
        .map(|f| format!("{} {}", f.code.as_str(), f.rule))
        .collect();
    if findings.len() > SHOWN {
        text.push(format!("+{}", findings.len() - SHOWN));
    }
    text.join(", ")
}

fn is_xml(file: &Path) -> bool {
    file.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("xml"))
}

fn is_json(file: &Path) -> bool {
    file.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_searched_in_path_order_following_links_for_filings_only() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        for file in [
            "b.xml",
            "a.json",
            "notes.txt",
            "sub/c.XML",
            "elsewhere/d.json",
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
            std::fs::write(&path, "x").expect("write");
        }
        std::os::unix::fs::symlink(root.join("elsewhere"), root.join("linked")).expect("link");
        let found = filings_in(&[root.to_owned()]).expect("listed");
        let names: Vec<_> = found
            .iter()
            .map(|p| p.strip_prefix(root).expect("under root").to_owned())
            .collect();
        let expected: Vec<PathBuf> = [
            "a.json",
            "b.xml",
            "elsewhere/d.json",
            "linked/d.json",
            "sub/c.XML",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(names, expected);
    }

    #[test]
    fn violations_are_written_as_the_proto_json_mapping_writes_them() {
        let validator = Validator::new(Default::default()).expect("validator");
        let mut findings = validator
            .check_xml_schema(
                b"<Manifest xmlns='urn:aci-gateway:manifest:2'><Lrn>x</Lrn></Manifest>",
                &Default::default(),
            )
            .findings()
            .to_vec();
        findings[0].severity = crate::validate::Severity::Warning;
        findings[0].value = "x".into();
        assert!(findings.len() > 1, "{findings:?}");
        let report = pb::ValidationReport {
            violations: findings.iter().map(Finding::to_proto).collect(),
            ..Default::default()
        };
        assert_eq!(
            violations_json(&findings),
            pb::to_json(&report)["violations"]
        );
    }
}
