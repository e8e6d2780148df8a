//! The one place where the carrier API's outcomes become gRPC statuses.
//!
//! Rejections use the rich error model: `google.rpc.BadRequest` (one field violation per finding,
//! with reason `ACI_<code>_<RULE>`) for any gRPC client, and `aci.v1.ValidationReport` with the
//! full findings for clients that know it. Internal detail (paths on disk, IO errors) is logged,
//! never sent.

use prost::Message;
use tonic::{Code, Status};
use tonic_types::pb::{self as rpc, bad_request::FieldViolation};

use crate::ids::Mrn;
use crate::pb;
use crate::store::{LifecycleError, StoreError};
use crate::validate::{self, Finding, Report, Severity};
use tonic_types::StatusExt;

const TYPE_PREFIX: &str = "type.googleapis.com/";

/// `INVALID_ARGUMENT` carrying every finding of the report.
pub fn rejected(report: &Report) -> Status {
    let violations = report.to_proto();
    let bad_request = rpc::BadRequest {
        field_violations: violations
            .violations
            .iter()
            .map(|v| FieldViolation {
                field: v.path.clone(),
                description: v.message.clone(),
                reason: reason(v),
                localized_message: None,
            })
            .collect(),
    };
    let count = violations.violations.len();
    let message = format!(
        "filing refused: {count}{} finding{} (see details)",
        if violations.truncated { "+" } else { "" },
        if count == 1 { "" } else { "s" }
    );
    with_details(
        Code::InvalidArgument,
        message,
        vec![
            any("google.rpc.BadRequest", &bad_request),
            any("aci.v1.ValidationReport", &violations),
        ],
    )
}

/// `ALREADY_EXISTS`: the LRN is registered with other content.
pub fn conflict(lrn: &str, mrn: &Mrn) -> Status {
    let info = rpc::ResourceInfo {
        resource_type: "aci.v1.Filing".into(),
        resource_name: mrn.to_string(),
        owner: String::new(),
        description: format!("LRN {lrn} is registered as {mrn} with different content"),
    };
    with_details(
        Code::AlreadyExists,
        format!(
            "LRN {lrn} is already registered as {mrn} with different content; \
             amend {mrn} to change it, or use a new LRN"
        ),
        vec![any("google.rpc.ResourceInfo", &info)],
    )
}

/// `INVALID_ARGUMENT` with a code 81 finding: the filer already filed this master document.
pub fn duplicate_document(document: &str, mrn: &Mrn, paths: &[(String, String)]) -> Status {
    document_finding(
        document,
        paths,
        "store.duplicate_master_document",
        format!(
            "you filed master transport document {document} already, as {mrn}; amend {mrn} instead"
        ),
    )
}

/// `INVALID_ARGUMENT` with a code 81 finding: another partial filing of this master document
/// awaits completion. It names neither that filing nor its filer.
pub fn partial_filing_exists(document: &str, paths: &[(String, String)]) -> Status {
    document_finding(
        document,
        paths,
        "store.partial_filing_exists",
        format!(
            "master transport document {document} already has a partial filing awaiting \
             completion; check the document number"
        ),
    )
}

/// A rejection with one code 81 finding about `document`, at its path in the filing.
fn document_finding(
    document: &str,
    paths: &[(String, String)],
    rule: &'static str,
    message: String,
) -> Status {
    let path = paths
        .iter()
        .find(|(number, _)| number == document)
        .map_or("consignments", |(_, path)| path.as_str());
    let mut report = Report::default();
    report.push(Finding {
        code: validate::Code::DuplicateDocument,
        rule,
        path: path.to_owned(),
        message,
        severity: Severity::Error,
        value: document.to_owned(),
    });
    rejected(&report)
}

/// Each consignment's own transport document number and its path.
pub fn document_paths(manifest: &pb::Manifest) -> Vec<(String, String)> {
    manifest
        .consignments
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            c.transport_document.as_ref().map(|d| {
                (
                    d.number.clone(),
                    format!("consignments[{i}].transport_document.number"),
                )
            })
        })
        .collect()
}

/// `FAILED_PRECONDITION`: the filing's lifecycle does not allow the change.
pub fn lifecycle(mrn: &Mrn, error: LifecycleError) -> Status {
    let description = match error {
        LifecycleError::Invalidated => format!("{mrn} was invalidated and can no longer change"),
        LifecycleError::Arrived => format!("the goods of {mrn} arrived; it can no longer change"),
        LifecycleError::ImmutableField(field) => {
            format!("an amendment of {mrn} may not change {field}; file anew instead")
        }
        LifecycleError::UnknownReferral => {
            format!("{mrn} has no referral with that notice id")
        }
        LifecycleError::AlreadyAnswered => {
            format!("the referral on {mrn} was answered before, differently")
        }
    };
    let failure = rpc::PreconditionFailure {
        violations: vec![rpc::precondition_failure::Violation {
            r#type: error.code().to_owned(),
            subject: mrn.to_string(),
            description: description.clone(),
        }],
    };
    with_details(
        Code::FailedPrecondition,
        description,
        vec![any("google.rpc.PreconditionFailure", &failure)],
    )
}

/// `RESOURCE_EXHAUSTED`: the carrier is over its rate; retry after `wait` (a `retry-after`
/// header in whole seconds, rounded up, and a `google.rpc.RetryInfo` with the exact delay).
pub fn throttled(wait: std::time::Duration) -> Status {
    let mut status = Status::with_error_details(
        Code::ResourceExhausted,
        format!(
            "over this carrier's filing rate; retry in {} ms",
            wait.as_millis().max(1)
        ),
        tonic_types::ErrorDetails::with_retry_info(Some(wait)),
    );
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    if let Ok(value) = seconds.max(1).to_string().parse() {
        status.metadata_mut().insert("retry-after", value);
    }
    status
}

/// What a carrier is told to wait when the gateway's disk is full.
const DISK_FULL_RETRY_SECONDS: u64 = 5;

/// A store failure: the filing was not acknowledged and may be retried with the same LRN.
pub fn store_failure(error: &StoreError) -> Status {
    tracing::error!(%error, "store failure");
    match error {
        StoreError::Closed => Status::unavailable("the gateway is shutting down; retry"),
        StoreError::Unwritable {
            disk_full: true, ..
        } => {
            let wait = std::time::Duration::from_secs(DISK_FULL_RETRY_SECONDS);
            let mut status = Status::with_error_details(
                Code::ResourceExhausted,
                "the gateway's storage is full; the filing was not registered, retry later with the same LRN",
                tonic_types::ErrorDetails::with_retry_info(Some(wait)),
            );
            status
                .metadata_mut()
                .insert("retry-after", DISK_FULL_RETRY_SECONDS.into());
            status
        }
        _ => Status::unavailable(
            "the filing could not be made durable; it was not registered, retry with the same LRN",
        ),
    }
}

/// The findings in a status from this gateway, if it carries them.
pub fn report_of(status: &Status) -> Option<pb::ValidationReport> {
    let details = rpc::Status::decode(status.details()).ok()?;
    details
        .details
        .iter()
        .find(|any| any.type_url == format!("{TYPE_PREFIX}aci.v1.ValidationReport"))
        .and_then(|any| pb::ValidationReport::decode(any.value.as_slice()).ok())
}

fn reason(violation: &pb::Violation) -> String {
    let rule: String = violation
        .rule
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("ACI_{}_{rule}", violation.code)
}

fn any(type_name: &str, message: &impl Message) -> prost_types::Any {
    prost_types::Any {
        type_url: format!("{TYPE_PREFIX}{type_name}"),
        value: message.encode_to_vec(),
    }
}

fn with_details(code: Code, message: String, details: Vec<prost_types::Any>) -> Status {
    let status = rpc::Status {
        code: code as i32,
        message: message.clone(),
        details,
    };
    Status::with_details(code, message, status.encode_to_vec().into())
}
