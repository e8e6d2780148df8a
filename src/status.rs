//! The one place where outcomes become gRPC statuses, on both listeners: the same outcome gets
//! the same code and the same details (`BadRequest`, `PreconditionFailure`, `RetryInfo`) from
//! the carrier API and from the peer API.
//!
//! Rejections use the rich error model: `google.rpc.BadRequest` (one field violation per finding,
//! with reason `ACI_<code>_<RULE>`) for any gRPC client, and `aci.v1.ValidationReport` with the
//! rest of each finding for clients that know it; each finding once, the whole bounded.
//! Internal detail (paths on disk, IO errors) is logged, never sent.

use prost::Message;
use tonic::{Code, Status};
use tonic_types::pb::{self as rpc, bad_request::FieldViolation};

use crate::exchange::inbound::ExchangeError;
use crate::filing::FilingError;
use crate::ids::Mrn;
use crate::pb;
use crate::store::{ChangeRefusal, StoreError};
use crate::validate::{self, Finding, Report, Severity};
use tonic_types::StatusExt;

const TYPE_PREFIX: &str = "type.googleapis.com/";

/// The most a refusal's status details may take, encoded: the `grpc-status-details-bin`
/// trailer is this in base64 (4/3 as large, so about 8 KiB), well within the 16 KiB header
/// list most clients accept. Beyond it, findings are left out and counted.
pub const DETAILS_BUDGET: usize = 6 * 1024;

/// `INVALID_ARGUMENT` carrying the report's findings, each once and as many as
/// [`DETAILS_BUDGET`] holds, errors first: an error's path and message in a
/// `google.rpc.BadRequest` field violation (for any gRPC client), its code, rule, severity and
/// value at the same position of an `aci.v1.ValidationReport` ([`report_of`] puts them back
/// together). Warnings follow in the report only, whole.
pub fn rejected(report: &Report) -> Status {
    let full = report.to_proto();
    let total = full.violations.len();
    let mut bad_request = rpc::BadRequest::default();
    let mut violations = pb::ValidationReport {
        truncated: full.truncated,
        ..pb::ValidationReport::default()
    };
    // Room for the message, the type URLs and the counts.
    let mut used = 512;
    // Errors first, each a field violation of the BadRequest too; then warnings, in the report
    // only: BadRequest has no severity, and a generic client counts every field violation as a
    // reason for the refusal.
    let (errors, warnings): (Vec<_>, Vec<_>) = full
        .violations
        .into_iter()
        .partition(|v| v.severity != pb::Severity::Warning as i32);
    for v in errors {
        let field = FieldViolation {
            field: v.path.clone(),
            description: v.message.clone(),
            reason: reason(&v),
            localized_message: None,
        };
        let rest = pb::Violation {
            path: String::new(),
            message: String::new(),
            ..v
        };
        // Each repeated element also costs its tag and length.
        let cost = field.encoded_len() + rest.encoded_len() + 8;
        if used + cost > DETAILS_BUDGET {
            break;
        }
        used += cost;
        bad_request.field_violations.push(field);
        violations.violations.push(rest);
    }
    let all_errors_shown = violations.violations.len() == bad_request.field_violations.len()
        && violations.violations.len() == total - warnings.len();
    if all_errors_shown {
        for v in warnings {
            let cost = v.encoded_len() + 4;
            if used + cost > DETAILS_BUDGET {
                break;
            }
            used += cost;
            violations.violations.push(v);
        }
    }
    let shown = violations.violations.len();
    if shown < total {
        violations.truncated = true;
        violations.omitted = (total - shown) as u32;
    }
    let message = if shown < total || full.truncated {
        format!(
            "filing refused: {total}{} findings, the first {shown} in the details; \
             `aci-gateway validate FILE` lists them all",
            if full.truncated { "+" } else { "" },
        )
    } else {
        format!(
            "filing refused: {total} finding{} (see details)",
            if total == 1 { "" } else { "s" }
        )
    };
    with_details(
        Code::InvalidArgument,
        message,
        vec![
            any("google.rpc.BadRequest", &bad_request),
            any("aci.v1.ValidationReport", &violations),
        ],
    )
}

impl From<FilingError> for Status {
    fn from(error: FilingError) -> Status {
        match error {
            FilingError::Malformed(message) => Status::invalid_argument(message),
            FilingError::InvalidField { field, message } => {
                invalid_field(&field, "ACI_INVALID_FIELD", &message)
            }
            error @ FilingError::AttachmentsTooLarge { .. } => {
                Status::resource_exhausted(error.to_string())
            }
            FilingError::Rejected(report) => rejected(&report),
            FilingError::Forbidden(message) => Status::permission_denied(message),
            FilingError::NotFound(message) => Status::not_found(message),
            FilingError::Conflict { lrn, mrn } => conflict(lrn.as_str(), &mrn),
            FilingError::DuplicateDocument {
                document,
                mrn,
                paths,
            } => duplicate_document(&document, &mrn, &paths),
            FilingError::PartialFilingExists { document, paths } => {
                partial_filing_exists(&document, &paths)
            }
            error @ FilingError::NotNextFilingParty { .. } => {
                Status::permission_denied(error.to_string())
            }
            FilingError::Refused { mrn, refusal } => lifecycle(&mrn, refusal),
            FilingError::Throttled { wait, kind } => throttled(wait, kind),
            FilingError::TooManyInFlight { limit } => too_many_in_flight(limit),
            FilingError::Pool(error) => pool_failure(&error),
            FilingError::Store(error) => store_failure(&error),
            FilingError::Unreadable(error) => read_failure(&error),
            FilingError::Internal(message) => Status::internal(message),
        }
    }
}

impl From<ExchangeError> for Status {
    fn from(error: ExchangeError) -> Status {
        match error {
            ExchangeError::Malformed(message) => Status::invalid_argument(message),
            ExchangeError::InvalidField {
                field,
                code,
                message,
            } => invalid_field(&field, code, &message),
            error @ ExchangeError::NotShared { .. } => Status::not_found(error.to_string()),
            error @ ExchangeError::LogUnreadable => Status::internal(error.to_string()),
            ExchangeError::Store(error) => store_failure(&error),
        }
    }
}

/// `INVALID_ARGUMENT` about one field of a request: a `google.rpc.BadRequest` naming it, with
/// a stable reason (e.g. `NOTICE_UNKNOWN_TARGET`).
pub fn invalid_field(field: &str, reason: &str, message: &str) -> Status {
    let bad_request = rpc::BadRequest {
        field_violations: vec![FieldViolation {
            field: field.to_owned(),
            description: message.to_owned(),
            reason: reason.to_owned(),
            localized_message: None,
        }],
    };
    with_details(
        Code::InvalidArgument,
        format!("{field}: {message}"),
        vec![any("google.rpc.BadRequest", &bad_request)],
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
pub fn lifecycle(mrn: &Mrn, error: ChangeRefusal) -> Status {
    let description = match error {
        ChangeRefusal::Invalidated => format!("{mrn} was invalidated and can no longer change"),
        ChangeRefusal::Arrived => format!("the goods of {mrn} arrived; it can no longer change"),
        ChangeRefusal::ImmutableField(field) => {
            format!("an amendment of {mrn} may not change {field}; file anew instead")
        }
        ChangeRefusal::UnknownReferral => format!(
            "{mrn} has no referral with that notice id (or the referral has no request with that \
             reference; name the request when it has several)"
        ),
        ChangeRefusal::AlreadyAnswered => {
            format!("the referral on {mrn} was answered before, differently")
        }
        ChangeRefusal::UnderControl => format!(
            "an administration announced a control of {mrn}: it may not be amended or invalidated"
        ),
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

/// `RESOURCE_EXHAUSTED`: the carrier is over its `kind` ("write" or "read") rate; retry
/// after `wait` (a `retry-after` header in whole seconds, rounded up, and a
/// `google.rpc.RetryInfo` with the exact delay).
pub fn throttled(wait: std::time::Duration, kind: &str) -> Status {
    retry_later(
        Code::ResourceExhausted,
        format!(
            "over this carrier's {kind} rate; retry in {} ms",
            wait.as_millis().max(1)
        ),
        wait,
    )
}

/// `RESOURCE_EXHAUSTED`: the carrier has as many filings in flight as it may.
pub fn too_many_in_flight(limit: usize) -> Status {
    retry_later(
        Code::ResourceExhausted,
        format!(
            "this carrier has {limit} filings in flight already; wait for their answers, or \
             retry shortly"
        ),
        std::time::Duration::from_millis(100),
    )
}

/// `code` (`RESOURCE_EXHAUSTED`, `UNAVAILABLE`) with a `retry-after` header and a
/// `google.rpc.RetryInfo`.
fn retry_later(code: Code, message: String, wait: std::time::Duration) -> Status {
    let mut status = Status::with_error_details(
        code,
        message,
        tonic_types::ErrorDetails::with_retry_info(Some(wait)),
    );
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    if let Ok(value) = seconds.max(1).to_string().parse() {
        status.metadata_mut().insert("retry-after", value);
    }
    status
}

/// A read of the gateway's records failed: the request changed nothing, so the answer says
/// so (a write's failure speaks of durability instead).
pub fn read_failure(error: &StoreError) -> Status {
    match error {
        StoreError::Closed | StoreError::ReadFailed(_) => store_failure(error),
        _ => {
            tracing::error!(%error, "store read failure");
            retry_later(
                Code::Unavailable,
                "the gateway could not read its records just now; nothing was changed, retry"
                    .into(),
                std::time::Duration::from_secs(1),
            )
        }
    }
}

/// The validation pool gave no answer: the gateway is stopping, or validating this filing
/// failed (a bug, logged): either way the filing was not registered.
pub fn pool_failure(error: &crate::filing::pool::PoolError) -> Status {
    match error {
        crate::filing::pool::PoolError::Stopped => {
            Status::unavailable("the gateway is stopping; retry with the same LRN")
        }
        crate::filing::pool::PoolError::Panicked => {
            Status::internal("the filing could not be validated; it was not registered")
        }
    }
}

/// What a carrier is told to wait when the gateway's disk is full.
const DISK_FULL_RETRY_SECONDS: u64 = 5;

/// A store failure: nothing was stored or acknowledged, and the same request may be retried
/// (a filing with the same LRN, an envelope with the same origin sequence: either is applied
/// once). A full disk is `RESOURCE_EXHAUSTED` with a `retry-after`; records larger than a
/// shared log takes at once `INVALID_ARGUMENT`; an index read that panicked (a bug, and a read:
/// nothing was to be made durable) `INTERNAL`; anything else `UNAVAILABLE`.
pub fn store_failure(error: &StoreError) -> Status {
    tracing::error!(%error, "store failure");
    match error {
        StoreError::Closed => Status::unavailable("the gateway is shutting down; retry"),
        StoreError::ReadFailed(_) => Status::internal("the gateway could not read its index"),
        StoreError::Unwritable {
            disk_full: true, ..
        } => retry_later(
            Code::ResourceExhausted,
            "the gateway's storage is full; nothing was stored, retry later (with the same LRN)"
                .into(),
            std::time::Duration::from_secs(DISK_FULL_RETRY_SECONDS),
        ),
        StoreError::TooLarge { .. } => Status::invalid_argument(format!(
            "{error}: nothing was stored; a smaller filing (or a larger NATS max_payload) is needed"
        )),
        StoreError::Log(crate::store::LogError::Unavailable { .. })
        | StoreError::Unwritable { .. } => retry_later(
            Code::Unavailable,
            "the gateway could not make this durable; nothing was acknowledged, retry (with the \
             same LRN)"
                .into(),
            std::time::Duration::from_secs(1),
        ),
        _ => Status::unavailable(
            "the gateway could not make this durable; nothing was stored, retry (with the same \
             LRN)",
        ),
    }
}

/// The findings in a status from this gateway, if it carries them: the `ValidationReport`,
/// each violation's path and message taken from the `BadRequest` field violation at its
/// position (see [`rejected`]).
pub fn report_of(status: &Status) -> Option<pb::ValidationReport> {
    let details = rpc::Status::decode(status.details()).ok()?;
    let detail = |name: &str| {
        details
            .details
            .iter()
            .find(|any| any.type_url == format!("{TYPE_PREFIX}{name}"))
    };
    let mut report = detail("aci.v1.ValidationReport")
        .and_then(|any| pb::ValidationReport::decode(any.value.as_slice()).ok())?;
    if let Some(bad_request) = detail("google.rpc.BadRequest")
        .and_then(|any| rpc::BadRequest::decode(any.value.as_slice()).ok())
    {
        for (violation, field) in report
            .violations
            .iter_mut()
            .zip(bad_request.field_violations)
        {
            if violation.path.is_empty() {
                violation.path = field.field;
            }
            if violation.message.is_empty() {
                violation.message = field.description;
            }
        }
    }
    Some(report)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_index_read_is_internal_and_claims_nothing_about_durability() {
        let status = store_failure(&StoreError::ReadFailed("the read panicked".into()));
        assert_eq!(status.code(), Code::Internal);
        assert!(
            !status.message().contains("durable"),
            "{}",
            status.message()
        );
        // Beside it, a write that failed says that nothing was made durable.
        let unwritable = store_failure(&StoreError::Unwritable {
            reason: "I/O error".into(),
            disk_full: false,
        });
        assert_eq!(unwritable.code(), Code::Unavailable);
        assert!(unwritable.message().contains("nothing was acknowledged"));
    }

    /// A status query whose index read failed is told to retry, and nothing about storing.
    #[test]
    fn a_read_that_failed_says_nothing_was_changed() {
        let index = crate::store::IndexError::Decode {
            key: "26GB00000000000010".into(),
            reason: "short".into(),
        };
        let status = Status::from(FilingError::Unreadable(StoreError::Index(index)));
        assert_eq!(status.code(), Code::Unavailable);
        assert!(
            status.message().contains("could not read")
                && status.message().contains("nothing was changed")
                && !status.message().contains("durable")
                && !status.message().contains("stored"),
            "{}",
            status.message()
        );
        assert_eq!(
            status.metadata().get("retry-after").map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
        let closed = Status::from(FilingError::Unreadable(StoreError::Closed));
        assert_eq!(closed.code(), Code::Unavailable);
        assert!(closed.message().contains("shutting down"));
    }
}
