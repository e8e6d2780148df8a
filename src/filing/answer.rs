//! The carrier's side of risk management: answering a referral's requests (structured
//! screening answers with attachments) and registering arrivals with their facts, several
//! filings at once.

use std::time::{Duration, SystemTime};

use crate::ids::Eori;
use crate::pb::{
    AnswerReferralRequest, ArrivalFacts, ArrivalNotification, FilingStatus, NoticeKind,
    ReferralAnswer,
};
use crate::store::Change;
use crate::store::risk::{is_referral, same_answer};
use crate::validate::codes::CodeLists;

use super::{FilingError, FilingService};

/// Longest referral answer text.
const MAX_ANSWER_TEXT: usize = 8192;
/// Most screening methods one answer names (ICS2 IE3R03).
const MAX_METHODS: usize = 9;
/// Most attachments of one answer.
const MAX_ATTACHMENTS: usize = 99;
/// Most filings one arrival registers.
const MAX_ARRIVALS: usize = 999;
/// How far in the future an arrival's time may be (clocks disagree a little).
const CLOCK_SKEW: Duration = Duration::from_secs(300);
/// Media types an attachment may have.
const MEDIA_TYPES: &[&str] = &[
    "application/pdf",
    "image/jpeg",
    "image/png",
    "image/tiff",
    "text/plain",
    "application/xml",
];

impl FilingService {
    /// Answers one request of a referral on one of the caller's filings: the answer is kept
    /// with the request and forwarded to the administration that asked.
    pub async fn answer_referral(
        &self,
        caller: &Eori,
        request: AnswerReferralRequest,
        traceparent: String,
    ) -> Result<FilingStatus, FilingError> {
        let at = SystemTime::now();
        self.throttle(caller)?;
        let mut answer = request.answer.unwrap_or_default();
        if answer.text.is_empty() {
            answer.text.clone_from(&request.text);
        }
        // The referral may have reached another replica of a shared log just now.
        self.store.caught_up().await?;
        let (mrn, current) = self.own_filing(caller, &request.mrn).await?;
        // Notice ids are the administrations' own: the one named; else, of the referrals with
        // that id, the one this answer was given to before (a retry), else the one awaiting it,
        // else the first.
        let referrals: Vec<_> = current
            .notices
            .iter()
            .filter(|n| {
                n.notice_id == request.notice_id
                    && is_referral(n.kind())
                    && (request.administration.is_empty()
                        || n.administration == request.administration)
            })
            .collect();
        let answered = |n: &&crate::pb::Notification, given: bool| {
            answered_request(n, &answer.request_reference).is_some_and(|r| {
                if given {
                    r.answer.as_ref().is_some_and(|a| same_answer(a, &answer))
                } else {
                    r.answer.is_none()
                }
            })
        };
        let referral = referrals
            .iter()
            .find(|n| answered(n, true))
            .or_else(|| referrals.iter().find(|n| answered(n, false)))
            .or(referrals.first())
            .copied();
        let administration = referral
            .map(|n| n.administration.clone())
            .unwrap_or_default();
        let screening = referral.is_some_and(|n| n.kind() == NoticeKind::ReferralScreening);
        check_answer(&answer, screening, self.max_attachment_bytes)?;
        let change = Change::AnswerReferral {
            administration: administration.clone(),
            notice_id: request.notice_id,
            text: answer.text.clone(),
            answer,
            at,
        };
        let status = self.change(mrn.clone(), change, traceparent).await?;
        tracing::info!(%mrn, %administration, "referral answered");
        Ok(status)
    }

    /// Registers the arrival of several of the caller's filings with the facts declared: each
    /// answered on its own, in the request's order (MRNs, then transport documents). The
    /// arrivals are decided together, so they share one commit.
    pub async fn register_arrival(
        &self,
        caller: &Eori,
        request: ArrivalNotification,
        traceparent: String,
    ) -> Result<Vec<(String, Result<FilingStatus, FilingError>)>, FilingError> {
        self.throttle(caller)?;
        let count = request.mrns.len() + request.transport_documents.len();
        if count == 0 || count > MAX_ARRIVALS {
            return Err(FilingError::Malformed(format!(
                "name 1 to {MAX_ARRIVALS} MRNs or transport documents"
            )));
        }
        let now = SystemTime::now();
        let facts = check_facts(request.facts.unwrap_or_default(), now)?;
        // The record is made now; when the goods arrived is one of the facts.
        let at = now;
        let keys = request
            .mrns
            .into_iter()
            .map(|mrn| (mrn, false))
            .chain(request.transport_documents.into_iter().map(|d| (d, true)));
        // Concurrently, so that the arrivals are decided in one batch and share one commit.
        let mut arrivals = tokio::task::JoinSet::new();
        for (i, (key, is_document)) in keys.enumerate() {
            let service = self.clone();
            let caller = caller.clone();
            let facts = facts.clone();
            let traceparent = traceparent.clone();
            arrivals.spawn(async move {
                let arrived = service
                    .arrive_one(&caller, &key, is_document, at, facts, traceparent)
                    .await;
                (i, key, arrived)
            });
        }
        let mut answers: Vec<Option<(String, Result<FilingStatus, FilingError>)>> =
            (0..count).map(|_| None).collect();
        while let Some(joined) = arrivals.join_next().await {
            let (i, key, arrived) = joined
                .map_err(|e| FilingError::Internal(format!("an arrival task failed: {e}")))?;
            answers[i] = Some((key, arrived));
        }
        Ok(answers.into_iter().flatten().collect())
    }

    /// Registers the arrival of one filing, by MRN or by master transport document.
    async fn arrive_one(
        &self,
        caller: &Eori,
        key: &str,
        is_document: bool,
        at: SystemTime,
        facts: ArrivalFacts,
        traceparent: String,
    ) -> Result<FilingStatus, FilingError> {
        // Each arrival is a write of its own against the caller's rate.
        self.throttle(caller)?;
        let mrn = if is_document {
            self.document_mrn(caller, key)
                .await?
                .ok_or_else(super::not_yours)?
                .to_string()
        } else {
            key.to_owned()
        };
        let (mrn, _) = self.own_filing(caller, &mrn).await?;
        let change = Change::Arrive {
            at,
            facts: Some(facts),
        };
        let status = self.change(mrn.clone(), change, traceparent).await?;
        tracing::info!(%mrn, "arrival registered");
        Ok(status)
    }
}

/// The request of a referral an answer with `reference` is for: the one with that reference,
/// or with none, the referral's only request (as the store decides it).
fn answered_request<'a>(
    referral: &'a crate::pb::Notification,
    reference: &str,
) -> Option<&'a crate::pb::RequestStatus> {
    if reference.is_empty() {
        return match referral.requests.as_slice() {
            [only] => Some(only),
            _ => None,
        };
    }
    referral
        .requests
        .iter()
        .find(|r| r.request.as_ref().is_some_and(|q| q.reference == reference))
}

/// An answer as a carrier may give it: codes from their lists, bounded text and attachments.
fn check_answer(
    answer: &ReferralAnswer,
    screening: bool,
    max_attachment_bytes: usize,
) -> Result<(), FilingError> {
    let invalid = |field: &str, message: String| FilingError::InvalidField {
        field: format!("answer.{field}"),
        message,
    };
    let codes = CodeLists::builtin();
    if answer.text.len() > MAX_ANSWER_TEXT {
        return Err(invalid(
            "text",
            format!("longer than {MAX_ANSWER_TEXT} bytes"),
        ));
    }
    crate::validate::check_free_text("the answer's text", &answer.text)
        .map_err(|m| invalid("text", m))?;
    if screening && answer.result.is_empty() {
        return Err(invalid(
            "result",
            "a screening answer gives its result (code list screening-results, CL726)".into(),
        ));
    }
    if !screening && answer.text.trim().is_empty() && answer.attachments.is_empty() {
        return Err(invalid(
            "text",
            "an answer to a request for information gives a text or attachments".into(),
        ));
    }
    if !answer.result.is_empty()
        && !codes
            .list(crate::validate::codes::SCREENING_RESULTS)
            .contains(&answer.result)
    {
        return Err(invalid(
            "result",
            format!(
                "{:?} is not in the code list screening-results (CL726)",
                answer.result
            ),
        ));
    }
    if answer.methods.len() > MAX_METHODS {
        return Err(invalid(
            "methods",
            format!("at most {MAX_METHODS} screening methods"),
        ));
    }
    if let Some((i, method)) = answer.methods.iter().enumerate().find(|(_, m)| {
        !codes
            .list(crate::validate::codes::SCREENING_METHODS)
            .contains(m)
    }) {
        return Err(invalid(
            &format!("methods[{i}]"),
            format!("{method:?} is not in the code list screening-methods (CL724)"),
        ));
    }
    if !answer.facility.is_empty() && !crate::ids::is_locode(&answer.facility) {
        return Err(invalid(
            "facility",
            format!("{:?} is not a UN/LOCODE", answer.facility),
        ));
    }
    check_attachments(answer, max_attachment_bytes)
}

fn check_attachments(answer: &ReferralAnswer, limit: usize) -> Result<(), FilingError> {
    if answer.attachments.len() > MAX_ATTACHMENTS {
        return Err(FilingError::InvalidField {
            field: "answer.attachments".into(),
            message: format!("at most {MAX_ATTACHMENTS} attachments"),
        });
    }
    let total: usize = answer.attachments.iter().map(|a| a.content.len()).sum();
    if total > limit {
        return Err(FilingError::AttachmentsTooLarge { total, limit });
    }
    for (i, attachment) in answer.attachments.iter().enumerate() {
        let name = &attachment.filename;
        let bad_name = name.is_empty()
            || name.len() > 256
            || name.contains(['/', '\\'])
            || name.chars().any(char::is_control);
        if bad_name {
            return Err(FilingError::InvalidField {
                field: format!("answer.attachments[{i}].filename"),
                message: "a file name of 1 to 256 characters, without path or control characters"
                    .into(),
            });
        }
        if !MEDIA_TYPES.contains(&attachment.media_type.as_str()) {
            return Err(FilingError::InvalidField {
                field: format!("answer.attachments[{i}].media_type"),
                message: format!(
                    "{:?} is not one of {}",
                    attachment.media_type,
                    MEDIA_TYPES.join(", ")
                ),
            });
        }
    }
    Ok(())
}

/// An arrival's facts, checked: not in the future, a customs office code, a bounded means.
fn check_facts(facts: ArrivalFacts, now: SystemTime) -> Result<ArrivalFacts, FilingError> {
    let invalid = |field: &str, message: String| FilingError::InvalidField {
        field: format!("facts.{field}"),
        message,
    };
    if let Some(at) = facts.arrived_at {
        if at.seconds < 0 || !(0..1_000_000_000).contains(&at.nanos) {
            return Err(invalid("arrived_at", "not a time after 1970".into()));
        }
        let at =
            SystemTime::try_from(at).map_err(|_| invalid("arrived_at", "not a time".into()))?;
        if at > now + CLOCK_SKEW {
            return Err(invalid(
                "arrived_at",
                "an arrival is registered once it happened, not before".into(),
            ));
        }
    }
    if !facts.office.is_empty() && !crate::ids::is_customs_office(&facts.office) {
        return Err(invalid(
            "office",
            format!(
                "{:?} is not a customs office code (2 letters and 6 letters or digits)",
                facts.office
            ),
        ));
    }
    if facts.means_of_transport.len() > 35 {
        return Err(invalid(
            "means_of_transport",
            "at most 35 characters".into(),
        ));
    }
    crate::validate::check_free_text("the means of transport", &facts.means_of_transport)
        .map_err(|m| invalid("means_of_transport", m))?;
    Ok(facts)
}
