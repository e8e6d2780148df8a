//! An `Envelope` with its manifest left encoded, as it leaves this gateway (the forwarder, the
//! pull feed: the manifest as the log holds it) and as it arrives (a peer's delivery: the
//! receiver checks the manifest's encoding with [`super::wire`] and stores it as it came).
//! Decoding every manifest into a `Manifest` only to encode it again was most of what
//! receiving and sending one cost.
#![warn(clippy::all)]

use bytes::Bytes;
use prost::Message;

use super::{ArrivalFacts, Envelope, EnvelopeKind, Notice, ReferralAnswer};

/// `aci.v1.Envelope` with field 8 (the manifest) as encoded bytes. Its tags are `Envelope`'s (a
/// test holds them together): a stock client's envelope reads as this, and this reads as one.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EncodedEnvelope {
    #[prost(string, tag = "1")]
    pub origin: String,
    #[prost(uint64, tag = "2")]
    pub origin_sequence: u64,
    #[prost(enumeration = "EnvelopeKind", tag = "3")]
    pub kind: i32,
    #[prost(string, tag = "4")]
    pub mrn: String,
    #[prost(string, tag = "5")]
    pub filer: String,
    #[prost(string, tag = "6")]
    pub lrn: String,
    #[prost(uint32, tag = "7")]
    pub version: u32,
    /// Each occurrence of the manifest field, in order (one, or none, as this gateway sends
    /// it). Protobuf merges a message field that occurs more than once; merging encodings is
    /// concatenating them ([`Self::manifest`]).
    #[prost(bytes = "bytes", repeated, tag = "8")]
    pub manifest_parts: Vec<Bytes>,
    #[prost(string, tag = "9")]
    pub digest: String,
    #[prost(message, optional, tag = "10")]
    pub filed_at: Option<prost_types::Timestamp>,
    #[prost(string, tag = "11")]
    pub reason: String,
    #[prost(string, tag = "12")]
    pub traceparent: String,
    #[prost(string, tag = "13")]
    pub notice_id: String,
    #[prost(string, tag = "14")]
    pub answer: String,
    #[prost(message, optional, tag = "15")]
    pub referral_answer: Option<ReferralAnswer>,
    #[prost(message, optional, tag = "16")]
    pub arrival: Option<ArrivalFacts>,
    #[prost(message, optional, tag = "17")]
    pub notice: Option<Notice>,
    #[prost(string, tag = "18")]
    pub notice_administration: String,
}

/// A received envelope's manifest, encoded, if it has one; or why it would not decode.
pub type ReceivedManifest = Result<Option<Bytes>, super::wire::WireError>;

impl EncodedEnvelope {
    /// The manifest's encoding, if the envelope carries one: `Err` where it would not decode as
    /// a `Manifest` (prost's verdict, from [`super::wire`]).
    pub fn manifest(&self) -> ReceivedManifest {
        for part in &self.manifest_parts {
            super::wire::manifest().check_field_value(part)?;
        }
        Ok(match self.manifest_parts.as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            parts => Some(parts.concat().into()),
        })
    }

    /// The envelope decoded whole, as a stock client reads it.
    pub fn decoded(&self) -> Result<Envelope, prost::DecodeError> {
        Envelope::decode(self.encode_to_vec().as_slice())
    }
}

impl From<Envelope> for EncodedEnvelope {
    fn from(envelope: Envelope) -> EncodedEnvelope {
        // The same bytes read the other way: the tags are the same.
        EncodedEnvelope::decode(envelope.encode_to_vec().as_slice())
            .expect("an envelope's encoding reads as a received envelope")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An envelope with every field set (a manifest too), each to a value of its own: for the tests
    /// that hold hand-written types to `Envelope`'s tags.
    fn every_field() -> Envelope {
        let (_, manifest) = crate::pb::sample_manifests().swap_remove(0);
        Envelope {
            origin: "GB-1".into(),
            origin_sequence: 9,
            kind: EnvelopeKind::Control as i32,
            mrn: "26GB00000000000070".into(),
            filer: "GB123456789000".into(),
            lrn: "LRN-1".into(),
            version: 3,
            manifest: Some(Box::new(manifest)),
            digest: "ab".into(),
            filed_at: Some(prost_types::Timestamp {
                seconds: 1_900_000_000,
                nanos: 1,
            }),
            reason: "r".into(),
            traceparent: "t".into(),
            notice_id: "N-2".into(),
            answer: "a".into(),
            referral_answer: Some(ReferralAnswer {
                result: "1".into(),
                ..Default::default()
            }),
            arrival: Some(ArrivalFacts {
                office: "GB000001".into(),
                ..Default::default()
            }),
            notice: Some(Notice {
                notice_id: "N-1".into(),
                ..Default::default()
            }),
            notice_administration: "NL-1".into(),
        }
    }

    #[test]
    fn tags_are_the_envelope_s() {
        let e = every_field();
        let read = EncodedEnvelope::from(e.clone());
        // Field by field, each under its own name (a swapped pair of tags would pass a round
        // trip, not this).
        assert_eq!(
            (read.origin_sequence, read.kind, read.version),
            (e.origin_sequence, e.kind, e.version)
        );
        assert_eq!(
            [
                &read.origin,
                &read.mrn,
                &read.filer,
                &read.lrn,
                &read.digest,
                &read.reason,
                &read.traceparent,
                &read.notice_id,
                &read.answer,
                &read.notice_administration
            ],
            [
                &e.origin,
                &e.mrn,
                &e.filer,
                &e.lrn,
                &e.digest,
                &e.reason,
                &e.traceparent,
                &e.notice_id,
                &e.answer,
                &e.notice_administration
            ]
        );
        assert_eq!(read.filed_at, e.filed_at);
        assert_eq!(
            (&read.referral_answer, &read.arrival, &read.notice),
            (&e.referral_answer, &e.arrival, &e.notice)
        );
        let manifest = e.manifest.as_ref().map(|m| Bytes::from(m.encode_to_vec()));
        assert_eq!(read.manifest(), Ok(manifest));
        assert_eq!(read.decoded().expect("decodes"), e);
    }

    #[test]
    fn a_manifest_sent_in_parts_is_their_merge() {
        let e = every_field();
        let manifest = e.manifest.clone().expect("a manifest");
        let first = crate::pb::Manifest {
            transport_mode: manifest.transport_mode,
            consignments: manifest.consignments[..1].to_vec(),
            ..Default::default()
        };
        let mut rest = (*manifest).clone();
        rest.consignments.remove(0);
        rest.transport_mode = 0;
        // The envelope's encoding with field 8 twice, as a sender may write it.
        let mut bytes = Envelope {
            manifest: None,
            ..e.clone()
        }
        .encode_to_vec();
        prost::encoding::message::encode(8, &first, &mut bytes);
        prost::encoding::message::encode(8, &rest, &mut bytes);
        let stock = Envelope::decode(bytes.as_slice()).expect("decodes");
        let read = EncodedEnvelope::decode(bytes.as_slice()).expect("reads");
        assert_eq!(read.manifest_parts.len(), 2);
        let merged = read.manifest().expect("checks").expect("a manifest");
        assert_eq!(
            crate::pb::Manifest::decode(merged).expect("decodes"),
            *stock.manifest.expect("merged")
        );
    }

    #[test]
    fn a_manifest_that_would_not_decode_is_an_error() {
        let mut read = EncodedEnvelope::from(every_field());
        let mut bad = read.manifest_parts[0].to_vec();
        // Its last byte cut off: the last field runs past the end.
        bad.truncate(bad.len() - 1);
        read.manifest_parts = vec![Bytes::from(bad)];
        assert!(read.manifest().is_err());
        assert!(read.decoded().is_err(), "nor does a stock client read it");
    }
}
