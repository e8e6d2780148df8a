//! One log record on disk: framing (`len | crc32c | payload`), sealing into the hash chain, and
//! the checks that tell a torn write from corruption.
//!
//! The payload is a `LogRecord` without its `hash` field, then its manifest (field 9) where the
//! manifest came encoded ([`EncodedManifests`]: a filing's canonical encoding, a peer's bytes
//! as delivered), then the hash field encoded by hand (tag 15, 32 bytes). Protobuf merges fields
//! in any order, so the payload decodes as one message, and the hash covers exactly the bytes
//! before it: verification never re-encodes anything.

use std::borrow::Cow;

use bytes::Bytes;
use prost::Message;
use sha2::{Digest, Sha256};

use crate::pb::store::LogRecord;

/// Bytes before the payload: length and CRC32C, both little-endian u32.
pub const HEADER_LEN: usize = 8;
/// Largest payload a frame may declare; anything larger is damage, not data.
pub const MAX_PAYLOAD: usize = 128 * 1024 * 1024;
/// The layout version written into `LogRecord.format`.
pub const FORMAT: u32 = 1;
/// The hash-chain value before the first record.
pub const GENESIS: [u8; 32] = [0; 32];

/// The hash field's encoding: key (field 15, length-delimited) and length.
const HASH_FIELD_PREFIX: [u8; 2] = [(15 << 3) | 2, 32];
const HASH_FIELD_LEN: usize = HASH_FIELD_PREFIX.len() + 32;

/// What is wrong with the bytes at some offset of a segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("the segment ends inside a frame")]
    Truncated,
    #[error("frame declares {0} bytes, which is not a valid payload length")]
    BadLength(u32),
    #[error("payload CRC32C mismatch")]
    Crc,
}

/// Why a frame's payload, intact on disk, is not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("payload does not decode as a log record: {0}")]
    Decode(String),
    #[error("record format {0} is newer than this binary understands")]
    Format(u32),
    #[error("record hash does not match its contents")]
    Hash,
}

/// `LogRecord.manifest`'s field number (a test holds it to the generated type).
const MANIFEST_FIELD: u32 = 9;

/// Manifests of a batch's records that come encoded, by the record's sequence, sealed into
/// their records as they are ([`seal`]): a peer's deliveries (never decoded; such a record has
/// no `manifest` of its own) and carriers' filings (the canonical encoding the validator made
/// and the digest covers, not made again).
#[derive(Debug, Clone, Default)]
pub struct EncodedManifests(super::BatchMap<u64, Bytes>);

impl EncodedManifests {
    /// The encoded manifest of the record with `sequence`, if it has one.
    pub fn get(&self, sequence: u64) -> Option<&[u8]> {
        self.0.get(&sequence).map(|m| m.as_ref())
    }

    pub fn insert(&mut self, sequence: u64, manifest: Bytes) {
        self.0.insert(sequence, manifest);
    }

    /// The bytes `record` takes in its segment once sealed with its manifest from here (its
    /// header and payload; the hash fields only once sealed).
    pub fn framed_len(&self, record: &LogRecord) -> u64 {
        let Some(encoded) = self.get(record.sequence) else {
            return framed_len(record);
        };
        let typed = record.manifest.as_deref().map_or(0, |m| {
            prost::encoding::message::encoded_len(MANIFEST_FIELD, m)
        });
        framed_len(record) - typed as u64 + manifest_field_len(encoded) as u64
    }
}

/// An encoded manifest as the record's field: key, length and the manifest.
fn manifest_field_len(manifest: &[u8]) -> usize {
    prost::encoding::key_len(MANIFEST_FIELD)
        + prost::encoding::encoded_len_varint(manifest.len() as u64)
        + manifest.len()
}

/// Seals `record` into the chain after `prev_hash`: sets `format` and `prev_hash`, computes the
/// hash, and returns the framed bytes and the record's hash. `manifest`, the record's manifest
/// encoded, goes into the payload as its manifest field instead of the record's own (which
/// must be the same manifest, if it has one).
pub fn seal(
    record: &mut LogRecord,
    manifest: Option<&[u8]>,
    prev_hash: [u8; 32],
) -> (Vec<u8>, [u8; 32]) {
    debug_assert!(
        manifest.is_none()
            || record
                .manifest
                .as_ref()
                .is_none_or(|m| m.encode_to_vec() == manifest.unwrap_or_default()),
        "an encoded manifest is the record's own"
    );
    record.format = FORMAT;
    record.prev_hash = prev_hash.to_vec();
    record.hash.clear();
    // Out of the record while it is encoded, back after: its bytes are `manifest`.
    let typed = match manifest {
        Some(_) => record.manifest.take(),
        None => None,
    };
    let body_len = record.encoded_len();
    let payload_len = body_len + manifest.map_or(0, manifest_field_len) + HASH_FIELD_LEN;
    let mut frame = Vec::with_capacity(HEADER_LEN + payload_len);
    frame.extend_from_slice(&[0; HEADER_LEN]);
    record
        .encode(&mut frame)
        .expect("a Vec grows to fit any message");
    if typed.is_some() {
        record.manifest = typed;
    }
    // Fields merge in any order: the manifest after the rest decodes as if encoded with it.
    if let Some(manifest) = manifest {
        prost::encoding::encode_key(
            MANIFEST_FIELD,
            prost::encoding::WireType::LengthDelimited,
            &mut frame,
        );
        prost::encoding::encode_varint(manifest.len() as u64, &mut frame);
        frame.extend_from_slice(manifest);
    }
    let hash: [u8; 32] = Sha256::digest(&frame[HEADER_LEN..]).into();
    frame.extend_from_slice(&HASH_FIELD_PREFIX);
    frame.extend_from_slice(&hash);
    record.hash = hash.to_vec();
    let len = u32::try_from(payload_len).expect("records are far below 4 GiB");
    let crc = crc32c::crc32c(&frame[HEADER_LEN..]);
    frame[..4].copy_from_slice(&len.to_le_bytes());
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
    (frame, hash)
}

/// Reads the frame at the start of `bytes`: its payload and the frame's total length.
pub fn read_frame(bytes: &[u8]) -> Result<(&[u8], usize), FrameError> {
    let header: &[u8; HEADER_LEN] = bytes
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(FrameError::Truncated)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let len_usize = usize::try_from(len).map_err(|_| FrameError::BadLength(len))?;
    if len_usize <= HASH_FIELD_LEN || len_usize > MAX_PAYLOAD {
        return Err(FrameError::BadLength(len));
    }
    let payload = bytes
        .get(HEADER_LEN..HEADER_LEN + len_usize)
        .ok_or(FrameError::Truncated)?;
    if crc32c::crc32c(payload) != crc {
        return Err(FrameError::Crc);
    }
    Ok((payload, HEADER_LEN + len_usize))
}

/// Decodes an intact payload and verifies the record's own hash (not yet its place in the chain).
pub fn open(payload: &[u8]) -> Result<LogRecord, RecordError> {
    Opened::open(payload)
}

/// The fields of a log record that say where it stands and which timers it sets, decoded
/// without the rest (prost skips the manifest and the original as bytes, allocating nothing):
/// for a reader that looks at every record for a few of them (the scheduler's sweep). Its tags
/// are `LogRecord`'s (a test holds them together).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RecordHead {
    #[prost(uint32, tag = "1")]
    pub format: u32,
    #[prost(uint64, tag = "2")]
    pub sequence: u64,
    #[prost(enumeration = "crate::pb::store::RecordKind", tag = "3")]
    pub kind: i32,
    #[prost(string, tag = "4")]
    pub mrn: String,
    #[prost(bytes = "vec", tag = "14")]
    pub prev_hash: Vec<u8>,
    #[prost(bytes = "vec", tag = "15")]
    pub hash: Vec<u8>,
    #[prost(message, repeated, tag = "32")]
    pub timers: Vec<crate::pb::store::Timer>,
}

impl From<LogRecord> for RecordHead {
    fn from(record: LogRecord) -> RecordHead {
        RecordHead {
            format: record.format,
            sequence: record.sequence,
            kind: record.kind,
            mrn: record.mrn,
            prev_hash: record.prev_hash,
            hash: record.hash,
            timers: record.timers,
        }
    }
}

/// What a payload is decoded into by a log reader: the whole record, its head, or the record as
/// shared with peers, each verified against the record's hash.
pub trait Opened: Message + Default {
    fn format(&self) -> u32;
    fn sequence(&self) -> u64;
    fn prev_hash(&self) -> &[u8];
    fn hash(&self) -> &[u8];

    /// Decodes an intact payload and verifies the record's own hash (not yet its place in the
    /// chain).
    fn open(payload: &[u8]) -> Result<Self, RecordError> {
        let record = Self::decode(payload).map_err(|e| RecordError::Decode(e.to_string()))?;
        if record.format() != FORMAT {
            return Err(RecordError::Format(record.format()));
        }
        // A payload that decodes yet is shorter than the hash field reaches here only when a
        // caller skipped `read_frame` (which enforces the length): refuse it, never underflow.
        let split = payload
            .len()
            .checked_sub(HASH_FIELD_LEN)
            .ok_or(RecordError::Hash)?;
        let (body, hash_field) = payload.split_at(split);
        if hash_field[..2] != HASH_FIELD_PREFIX || hash_field[2..] != *record.hash() {
            return Err(RecordError::Hash);
        }
        let computed: [u8; 32] = Sha256::digest(body).into();
        if computed[..] != *record.hash() {
            return Err(RecordError::Hash);
        }
        Ok(record)
    }
}

/// Each carries the fields under the same names (the head's and the shared record's are the
/// record's).
macro_rules! opened_by_fields {
    ($($message:ty),*) => {$(
        impl Opened for $message {
            fn format(&self) -> u32 {
                self.format
            }
            fn sequence(&self) -> u64 {
                self.sequence
            }
            fn prev_hash(&self) -> &[u8] {
                &self.prev_hash
            }
            fn hash(&self) -> &[u8] {
                &self.hash
            }
        }
    )*};
}

/// A log record as it is shared with peers: the fields an envelope carries and routing reads,
/// with the manifest left as its encoding. The forwarder sends that encoding on as it is, so a
/// record on its way to a peer is never decoded into a manifest and encoded again (which was
/// most of what forwarding cost: perf of a backlog's drain). Its tags are `LogRecord`'s (a
/// test holds them together).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SharedRecord {
    #[prost(uint32, tag = "1")]
    pub format: u32,
    #[prost(uint64, tag = "2")]
    pub sequence: u64,
    #[prost(enumeration = "crate::pb::store::RecordKind", tag = "3")]
    pub kind: i32,
    #[prost(string, tag = "4")]
    pub mrn: String,
    #[prost(string, tag = "5")]
    pub filer: String,
    #[prost(string, tag = "6")]
    pub lrn: String,
    #[prost(uint32, tag = "7")]
    pub version: u32,
    #[prost(message, optional, tag = "8")]
    pub received_at: Option<prost_types::Timestamp>,
    /// The manifest's encoding, as stored (a filing's canonical one; a received envelope's as
    /// the peer sent it).
    #[prost(bytes = "vec", optional, tag = "9")]
    pub manifest: Option<Vec<u8>>,
    #[prost(bytes = "vec", tag = "12")]
    pub digest: Vec<u8>,
    #[prost(bytes = "vec", tag = "14")]
    pub prev_hash: Vec<u8>,
    #[prost(bytes = "vec", tag = "15")]
    pub hash: Vec<u8>,
    #[prost(string, tag = "16")]
    pub traceparent: String,
    #[prost(string, tag = "18")]
    pub reason: String,
    #[prost(string, tag = "21")]
    pub origin: String,
    #[prost(message, optional, tag = "26")]
    pub notice: Option<crate::pb::Notice>,
    #[prost(message, optional, tag = "27")]
    pub routing: Option<crate::pb::store::RouteFacts>,
    #[prost(message, optional, tag = "28")]
    pub referral_answer: Option<crate::pb::ReferralAnswer>,
    #[prost(message, optional, tag = "29")]
    pub arrival: Option<crate::pb::ArrivalFacts>,
}

impl From<LogRecord> for SharedRecord {
    /// For a log that reads whole records only: the manifest is encoded again.
    fn from(record: LogRecord) -> SharedRecord {
        SharedRecord {
            format: record.format,
            sequence: record.sequence,
            kind: record.kind,
            mrn: record.mrn,
            filer: record.filer,
            lrn: record.lrn,
            version: record.version,
            received_at: record.received_at,
            manifest: record.manifest.map(|m| m.encode_to_vec()),
            digest: record.digest,
            prev_hash: record.prev_hash,
            hash: record.hash,
            traceparent: record.traceparent,
            reason: record.reason,
            origin: record.origin,
            notice: record.notice,
            routing: record.routing,
            referral_answer: record.referral_answer,
            arrival: record.arrival,
        }
    }
}

opened_by_fields!(LogRecord, RecordHead, SharedRecord);

/// The media type of a filing submitted as protobuf.
pub const PROTOBUF: &str = "application/x-protobuf";

/// A filing's original bytes: as submitted for XML. A protobuf filing's original is its
/// manifest's canonical encoding (whose SHA-256 is `digest`), which the record holds as the
/// manifest: it is not stored a second time, and is encoded again here.
pub fn original_of(record: &LogRecord) -> Cow<'_, [u8]> {
    match &record.manifest {
        Some(manifest) if record.original.is_empty() && record.original_type == PROTOBUF => {
            Cow::Owned(manifest.encode_to_vec())
        }
        _ => Cow::Borrowed(&record.original),
    }
}

/// The record's hash as an array (present and 32 bytes in every record `open` accepted).
pub fn hash_of(record: &impl Opened) -> [u8; 32] {
    record.hash().try_into().unwrap_or(GENESIS)
}

/// The bytes a sealed record takes in its segment (header and payload).
pub fn framed_len(record: &LogRecord) -> u64 {
    (HEADER_LEN + record.encoded_len()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_shorter_than_the_hash_field_is_refused_not_a_panic() {
        // `format = 1` and nothing else: decodes, yet has no room for a hash.
        assert!(matches!(open(&[0x08, 0x01]), Err(RecordError::Hash)));
    }

    fn record(seq: u64) -> LogRecord {
        LogRecord {
            sequence: seq,
            mrn: format!("26GB{seq:013}0"),
            filer: "GB123456789000".into(),
            lrn: format!("LRN-{seq}"),
            original: vec![7; 300],
            ..LogRecord::default()
        }
    }

    #[test]
    fn sealed_frames_read_back_and_chain() {
        let mut first = record(1);
        let (frame1, hash1) = seal(&mut first, None, GENESIS);
        let mut second = record(2);
        let (frame2, hash2) = seal(&mut second, None, hash1);
        let mut segment = frame1.clone();
        segment.extend_from_slice(&frame2);

        let (payload, used) = read_frame(&segment).expect("first frame");
        assert_eq!(used, frame1.len());
        let read1 = open(payload).expect("first record");
        assert_eq!(read1, first);
        assert_eq!(hash_of(&read1), hash1);
        let (payload, _) = read_frame(&segment[used..]).expect("second frame");
        let read2 = open(payload).expect("second record");
        assert_eq!(read2.prev_hash, hash1.to_vec());
        assert_eq!(hash_of(&read2), hash2);
    }

    /// A record sealed with an encoded manifest reads back as if it had been sealed with the
    /// manifest decoded, its hash verified; a shared reader gets the manifest's bytes as they
    /// came (unknown fields and all), and `framed_len` plus what the manifests add is the frame.
    #[test]
    fn an_encoded_manifest_is_sealed_as_the_record_s_manifest() {
        use crate::pb::store::RecordKind;
        let manifest: crate::pb::Manifest =
            crate::pb::from_json(include_str!("../../schemas/examples/sea-f10.json"))
                .expect("sample");
        let mut encoded = manifest.encode_to_vec();
        // A field this build does not know, as a newer peer might send.
        prost::encoding::string::encode(4000, &"later".to_owned(), &mut encoded);
        let mut manifests = EncodedManifests::default();
        manifests.insert(3, Bytes::from(encoded.clone()));
        let mut received = LogRecord {
            kind: RecordKind::Received as i32,
            origin: "NL-1".into(),
            ..record(3)
        };
        let (frame, hash) = seal(&mut received, manifests.get(3), [4; 32]);
        assert_eq!(frame.len() as u64, manifests.framed_len(&received));
        let (payload, _) = read_frame(&frame).expect("frame");
        let read = open(payload).expect("opens: its hash verifies");
        assert_eq!(hash_of(&read), hash);
        assert_eq!(
            read,
            LogRecord {
                manifest: Some(Box::new(manifest)),
                ..received.clone()
            }
        );
        let shared = SharedRecord::open(payload).expect("shared");
        assert_eq!(shared.manifest, Some(encoded));
    }

    /// A filing sealed with its manifest's encoding (the validator's) holds those bytes and
    /// reads back as the record it is, manifest included.
    #[test]
    fn a_filing_is_sealed_with_its_manifest_s_encoding() {
        use crate::pb::store::RecordKind;
        let manifest: crate::pb::Manifest =
            crate::pb::from_json(include_str!("../../schemas/examples/sea-f10.json"))
                .expect("sample");
        let encoded = manifest.encode_to_vec();
        let mut manifests = EncodedManifests::default();
        manifests.insert(5, Bytes::from(encoded.clone()));
        let mut filing = LogRecord {
            kind: RecordKind::Filing as i32,
            manifest: Some(Box::new(manifest)),
            ..record(5)
        };
        let (frame, hash) = seal(&mut filing, manifests.get(5), GENESIS);
        assert!(filing.manifest.is_some(), "the record keeps its manifest");
        assert_eq!(frame.len() as u64, manifests.framed_len(&filing));
        let (payload, _) = read_frame(&frame).expect("frame");
        assert_eq!(open(payload).expect("opens"), filing);
        assert_eq!(hash_of(&filing), hash);
        let shared = SharedRecord::open(payload).expect("shared");
        assert_eq!(shared.manifest, Some(encoded));
    }

    /// A head decoded from a record's payload is the record's, field for field: the tags of
    /// `RecordHead` are `LogRecord`'s.
    #[test]
    fn a_head_is_its_record_without_the_rest() {
        use crate::pb::store::{RecordKind, Timer};
        let mut full = LogRecord {
            kind: RecordKind::Filing as i32,
            timers: vec![Timer {
                administration: "GB".into(),
                due: Some(prost_types::Timestamp {
                    seconds: 1_900_000_000,
                    nanos: 0,
                }),
                ..Timer::default()
            }],
            manifest: Some(Box::new(crate::pb::aci::v1::Manifest {
                lrn: "LRN-7".into(),
                ..Default::default()
            })),
            ..record(7)
        };
        let (frame, _) = seal(&mut full, None, [9; 32]);
        let (payload, _) = read_frame(&frame).expect("frame");
        let head = RecordHead::open(payload).expect("head");
        assert_eq!(head, RecordHead::from(full.clone()));
        assert_eq!(hash_of(&head), hash_of(&full));
    }

    /// A shared record decoded from a record's payload is the record's, field for field, its
    /// manifest encoded: the tags of `SharedRecord` are `LogRecord`'s.
    #[test]
    fn a_shared_record_is_its_record_with_the_manifest_encoded() {
        use crate::pb::store::{RecordKind, RouteFacts};
        let manifest: crate::pb::Manifest =
            crate::pb::from_json(include_str!("../../schemas/examples/sea-f10.json"))
                .expect("sample");
        let mut full = LogRecord {
            kind: RecordKind::Filing as i32,
            filer: "GB123456789000".into(),
            lrn: "LRN-7".into(),
            version: 2,
            received_at: Some(prost_types::Timestamp {
                seconds: 1_900_000_000,
                nanos: 5,
            }),
            manifest: Some(Box::new(manifest.clone())),
            digest: vec![3; 32],
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            reason: "withdrawn".into(),
            origin: "NL-1".into(),
            notice: Some(crate::pb::Notice {
                notice_id: "N-1".into(),
                ..crate::pb::Notice::default()
            }),
            routing: Some(RouteFacts {
                first_entry_country: "NL".into(),
                ..RouteFacts::default()
            }),
            referral_answer: Some(crate::pb::ReferralAnswer {
                result: "1".into(),
                ..crate::pb::ReferralAnswer::default()
            }),
            arrival: Some(crate::pb::ArrivalFacts {
                office: "GB000001".into(),
                ..crate::pb::ArrivalFacts::default()
            }),
            original: b"<xml/>".to_vec(),
            ..record(7)
        };
        let (frame, _) = seal(&mut full, None, [9; 32]);
        let (payload, _) = read_frame(&frame).expect("frame");
        let shared = SharedRecord::open(payload).expect("shared");
        assert_eq!(shared, SharedRecord::from(full.clone()));
        assert_eq!(shared.manifest, Some(manifest.encode_to_vec()));
        assert_eq!(hash_of(&shared), hash_of(&full));
    }

    #[test]
    fn any_truncation_is_reported_as_truncated() {
        let (frame, _) = seal(&mut record(1), None, GENESIS);
        for cut in 0..frame.len() {
            assert_eq!(
                read_frame(&frame[..cut]),
                Err(FrameError::Truncated),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn flipped_payload_bits_fail_the_crc() {
        let (frame, _) = seal(&mut record(1), None, GENESIS);
        for i in HEADER_LEN..frame.len() {
            let mut damaged = frame.clone();
            damaged[i] ^= 0x10;
            assert_eq!(read_frame(&damaged), Err(FrameError::Crc), "byte {i}");
        }
    }

    #[test]
    fn a_rewritten_record_with_a_fresh_crc_fails_the_hash() {
        let (frame, _) = seal(&mut record(1), None, GENESIS);
        let mut forged = frame.clone();
        // Change the LRN and recompute only the CRC, as a careless tamperer would.
        let at = forged
            .windows(5)
            .position(|w| w == b"LRN-1")
            .expect("lrn in payload");
        forged[at + 4] = b'9';
        let crc = crc32c::crc32c(&forged[HEADER_LEN..]);
        forged[4..8].copy_from_slice(&crc.to_le_bytes());
        let (payload, _) = read_frame(&forged).expect("frame intact");
        assert_eq!(open(payload), Err(RecordError::Hash));
    }

    #[test]
    fn zeroed_space_is_not_a_frame() {
        assert_eq!(read_frame(&[0; 64]), Err(FrameError::BadLength(0)));
    }
}
