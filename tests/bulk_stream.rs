//! The bulk stream: many filings on one stream, one answer each, durable before each receipt.

mod common;

use std::collections::HashMap;

use aci_gateway::pb::{SubmitRequest, submit_request, submit_result};
use common::{GatewayBuilder, client, endpoint, sea_filing};

const FILINGS: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_filings_get_one_answer_each_and_only_the_valid_are_stored_once() {
    let (site, gateway) = GatewayBuilder::default().start().await;
    let mut carrier = client(&endpoint(&gateway), &site.carrier()).await;
    // Every tenth filing is invalid; every tenth (offset one) repeats an earlier valid one.
    let mut expected_lrn = Vec::with_capacity(FILINGS);
    let requests: Vec<SubmitRequest> = (0..FILINGS)
        .map(|i| {
            let (lrn, invalid) = match i % 10 {
                0 => (format!("BULK-{i}"), true),
                1 if i > 10 => (format!("BULK-{}", i - 6), false),
                _ => (format!("BULK-{i}"), false),
            };
            let mut manifest = sea_filing(&lrn);
            if invalid {
                manifest.consignments[0].goods_items[0].hs_code = "82041".into();
            }
            expected_lrn.push((lrn, invalid));
            SubmitRequest {
                filing: Some(submit_request::Filing::Manifest(Box::new(manifest))),
            }
        })
        .collect();
    let mut answers = carrier
        .submit_stream(tokio_stream::iter(requests))
        .await
        .expect("stream opens");

    let mut by_position = HashMap::new();
    while let Some(answer) = answers.message().await.expect("answer") {
        assert!(
            by_position.insert(answer.position, answer).is_none(),
            "one answer per filing"
        );
    }
    assert_eq!(by_position.len(), FILINGS);

    let mut receipts: HashMap<String, aci_gateway::pb::Receipt> = HashMap::new();
    for position in 1..=FILINGS as u64 {
        let answer = &by_position[&position];
        let (lrn, invalid) = &expected_lrn[position as usize - 1];
        match answer.outcome.as_ref().expect("outcome") {
            submit_result::Outcome::Receipt(receipt) => {
                assert!(!invalid, "{lrn} is invalid yet got a receipt");
                assert_eq!(&receipt.lrn, lrn);
                assert_eq!(&answer.lrn, lrn);
                // A repeated filing gets the very receipt of its first submission.
                if let Some(earlier) = receipts.insert(lrn.clone(), receipt.clone()) {
                    assert_eq!(&earlier, receipt, "{lrn}");
                }
            }
            submit_result::Outcome::Rejection(rejection) => {
                assert!(invalid, "{lrn} is valid yet was rejected: {rejection:?}");
                assert_eq!(rejection.code, tonic::Code::InvalidArgument as i32);
                let report = rejection.report.as_ref().expect("findings");
                assert_eq!(report.violations[0].rule, "field.pattern");
            }
        }
    }
    let valid_lrns = receipts.len();
    let mut stored: HashMap<String, usize> = HashMap::new();
    for record in common::log_records(gateway.store()) {
        *stored.entry(record.lrn).or_default() += 1;
    }
    assert_eq!(
        stored.len(),
        valid_lrns,
        "exactly the valid filings are stored"
    );
    assert!(stored.values().all(|&n| n == 1), "each once");
    eprintln!(
        "bulk stream: {FILINGS} filings, {valid_lrns} stored, {} rejected",
        expected_lrn.iter().filter(|(_, invalid)| *invalid).count()
    );
    gateway.stop().await.expect("stop");
}
