//! How a carrier's request ends when it does not end as asked: each a business outcome (a
//! refusal with its own stable code) or a failure the carrier may retry. `crate::status` maps
//! each to the same gRPC status on every listener.

use std::time::Duration;

use crate::ids::{Eori, Lrn, Mrn};
use crate::store::{ChangeRefusal, StoreError};
use crate::validate::Report;

use super::pool::PoolError;

/// A master document's paths in the filing, for pointing at it in a finding: (path, number).
pub type DocumentPaths = Vec<(String, String)>;

#[derive(Debug, thiserror::Error)]
pub enum FilingError {
    /// The request itself is unusable (a missing field, an MRN that is not one).
    #[error("{0}")]
    Malformed(String),
    /// One field of the request is not as it may be (a code not in its list, a bad media
    /// type): its path and why.
    #[error("{field}: {message}")]
    InvalidField { field: String, message: String },
    /// A referral answer's attachments are larger in total than the gateway takes.
    #[error("the attachments hold {total} bytes; at most {limit} are taken")]
    AttachmentsTooLarge { total: usize, limit: usize },
    /// The filing failed validation: every finding.
    #[error("filing refused: {} findings", .0.findings().len())]
    Rejected(Box<Report>),
    /// The caller may not do this (file as another party, use another's filing).
    #[error("{0}")]
    Forbidden(String),
    /// No such filing of the caller's (another's filing is reported as absent).
    #[error("{0}")]
    NotFound(String),
    /// The (filer, LRN) is registered with other content.
    #[error("LRN {lrn} is already registered as {mrn} with different content")]
    Conflict { lrn: Lrn, mrn: Mrn },
    /// The filer filed this master transport document already, within the window.
    #[error("master transport document {document} was filed already, as {mrn}")]
    DuplicateDocument {
        document: String,
        mrn: Mrn,
        paths: DocumentPaths,
    },
    /// Another partial filing of this master document awaits completion (first wins).
    #[error("a partial filing of {document} awaits completion already")]
    PartialFilingExists {
        document: String,
        paths: DocumentPaths,
    },
    /// The master document's partial filing awaits a house-level filing from another party.
    #[error("master document {document} does not await a house-level filing from {caller}")]
    NotNextFilingParty { document: String, caller: Eori },
    /// The filing's lifecycle does not allow the change.
    #[error("{mrn}: {}", .refusal.code())]
    Refused { mrn: Mrn, refusal: ChangeRefusal },
    /// Over the caller's `kind` ("write" or "read") rate: retry after `wait`.
    #[error("over this carrier's {kind} rate")]
    Throttled { wait: Duration, kind: &'static str },
    /// The caller has as many filings in flight as it may.
    #[error("{limit} filings in flight already")]
    TooManyInFlight { limit: usize },
    /// The validation pool gave no answer (stopping, or a bug): nothing was registered.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// Nothing was stored: the same request may be retried.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading the gateway's records failed (an I/O error, a shared log out of reach): the
    /// request changed nothing and may be retried.
    #[error("reading the gateway's records failed: {0}")]
    Unreadable(StoreError),
    /// A bug: what cannot happen did (logged).
    #[error("{0}")]
    Internal(String),
}

impl FilingError {
    /// A short label for the span that traced the request.
    pub fn label(&self) -> &'static str {
        match self {
            FilingError::Malformed(_)
            | FilingError::InvalidField { .. }
            | FilingError::Rejected(_)
            | FilingError::DuplicateDocument { .. }
            | FilingError::PartialFilingExists { .. } => "rejected",
            FilingError::Conflict { .. } => "conflict",
            FilingError::Forbidden(_) | FilingError::NotNextFilingParty { .. } => "forbidden",
            FilingError::Refused { .. } => "refused",
            FilingError::Throttled { .. }
            | FilingError::TooManyInFlight { .. }
            | FilingError::AttachmentsTooLarge { .. } => "throttled",
            FilingError::NotFound(_)
            | FilingError::Pool(_)
            | FilingError::Store(_)
            | FilingError::Unreadable(_)
            | FilingError::Internal(_) => "failed",
        }
    }
}
