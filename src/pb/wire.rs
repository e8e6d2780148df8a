//! Whether bytes decode as a message, answered without decoding them: the same verdict as
//! prost's `decode`, from a walk over the encoding that allocates nothing. For bytes that are
//! stored and passed on as they are (a peer's manifest), where decoding them only to learn that
//! they decode would cost more than everything else done with them.
//!
//! The rules are prost's (0.14), not protobuf's in general: a key is a varint of at most 32 bits
//! whose field number is not 0 and whose wire type is 0–5; a varint has at most 10 bytes, the
//! tenth below 2; a known field has its type's wire type, or, repeated and numeric, the packed
//! one; strings are UTF-8; a field's length fits in what is left; unknown fields are skipped,
//! groups too, each end-group tag matching its start; a message or skipped field nested 100
//! deep is refused. A test holds the verdicts to prost's over mutated encodings.
#![warn(clippy::all)]

use std::collections::HashMap;
use std::sync::LazyLock;

use prost_reflect::{Kind, MessageDescriptor};

/// What prost decodes a message's fields with, from the top: its recursion limit.
const RECURSION_LIMIT: u32 = 100;

/// Why bytes do not decode as the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(&'static str);

/// The schema of `aci.v1.Manifest`.
pub fn manifest() -> &'static Schema {
    static MANIFEST: LazyLock<Schema> = LazyLock::new(|| {
        let descriptor = super::descriptor_pool()
            .get_message_by_name("aci.v1.Manifest")
            .expect("the descriptor set has the manifest");
        Schema::of(&descriptor)
    });
    &MANIFEST
}

/// What a known field's values must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Varint,
    Fixed32,
    Fixed64,
    Utf8,
    Bytes,
    /// A message of the schema (index into `Schema::types`).
    Message(usize),
}

#[derive(Debug, Clone, Copy)]
struct Field {
    expect: Expect,
    repeated: bool,
}

/// One message type and every type it holds, compiled from their descriptors.
#[derive(Debug)]
pub struct Schema {
    /// Each type's fields by number.
    types: Vec<HashMap<u32, Field>>,
}

impl Schema {
    /// The schema of `message` (types it holds included).
    pub fn of(message: &MessageDescriptor) -> Schema {
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut descriptors = vec![message.clone()];
        names.insert(message.full_name().to_owned(), 0);
        let mut types = Vec::new();
        while let Some(descriptor) = descriptors.get(types.len()).cloned() {
            let mut fields = HashMap::new();
            for field in descriptor.fields() {
                let expect = match field.kind() {
                    Kind::Double | Kind::Fixed64 | Kind::Sfixed64 => Expect::Fixed64,
                    Kind::Float | Kind::Fixed32 | Kind::Sfixed32 => Expect::Fixed32,
                    Kind::Int32
                    | Kind::Int64
                    | Kind::Uint32
                    | Kind::Uint64
                    | Kind::Sint32
                    | Kind::Sint64
                    | Kind::Bool
                    | Kind::Enum(_) => Expect::Varint,
                    Kind::String => Expect::Utf8,
                    Kind::Bytes => Expect::Bytes,
                    Kind::Message(inner) => {
                        let next = names.len();
                        let index = *names.entry(inner.full_name().to_owned()).or_insert(next);
                        if index == next {
                            descriptors.push(inner);
                        }
                        Expect::Message(index)
                    }
                };
                fields.insert(
                    field.number(),
                    Field {
                        expect,
                        repeated: field.is_list(),
                    },
                );
            }
            types.push(fields);
        }
        Schema { types }
    }

    /// Whether `bytes`, the value of a message field of a message decoded from the top (a
    /// manifest in a log record or an envelope), decode as this schema's message.
    pub fn check_field_value(&self, bytes: &[u8]) -> Result<(), WireError> {
        self.message(0, bytes, RECURSION_LIMIT - 1)
    }

    /// The fields of a message of type `ty`, whose fields are read `depth` levels of recursion
    /// from the limit.
    fn message(&self, ty: usize, mut bytes: &[u8], depth: u32) -> Result<(), WireError> {
        while !bytes.is_empty() {
            let (number, wire_type) = key(&mut bytes)?;
            match self.types[ty].get(&number) {
                Some(field) => self.field(*field, wire_type, &mut bytes, depth)?,
                None => skip(number, wire_type, &mut bytes, depth)?,
            }
        }
        Ok(())
    }

    fn field(
        &self,
        field: Field,
        wire_type: u8,
        bytes: &mut &[u8],
        depth: u32,
    ) -> Result<(), WireError> {
        let numeric = matches!(
            field.expect,
            Expect::Varint | Expect::Fixed32 | Expect::Fixed64
        );
        if field.repeated && numeric && wire_type == LENGTH_DELIMITED {
            let mut packed = length_delimited(bytes)?;
            while !packed.is_empty() {
                scalar(field.expect, &mut packed)?;
            }
            return Ok(());
        }
        match field.expect {
            Expect::Varint | Expect::Fixed32 | Expect::Fixed64 => {
                expect_wire_type(wire_type, wire_type_of(field.expect))?;
                scalar(field.expect, bytes)
            }
            Expect::Utf8 => {
                expect_wire_type(wire_type, LENGTH_DELIMITED)?;
                std::str::from_utf8(length_delimited(bytes)?)
                    .map(|_| ())
                    .map_err(|_| WireError("a string is not UTF-8"))
            }
            Expect::Bytes => {
                expect_wire_type(wire_type, LENGTH_DELIMITED)?;
                length_delimited(bytes).map(|_| ())
            }
            Expect::Message(inner) => {
                expect_wire_type(wire_type, LENGTH_DELIMITED)?;
                if depth == 0 {
                    return Err(WireError("nested too deep"));
                }
                let body = length_delimited(bytes)?;
                self.message(inner, body, depth - 1)
            }
        }
    }
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH_DELIMITED: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

fn wire_type_of(expect: Expect) -> u8 {
    match expect {
        Expect::Varint => VARINT,
        Expect::Fixed32 => FIXED32,
        Expect::Fixed64 => FIXED64,
        Expect::Utf8 | Expect::Bytes | Expect::Message(_) => LENGTH_DELIMITED,
    }
}

fn expect_wire_type(found: u8, expected: u8) -> Result<(), WireError> {
    if found == expected {
        Ok(())
    } else {
        Err(WireError("a known field has another wire type"))
    }
}

/// One numeric value.
fn scalar(expect: Expect, bytes: &mut &[u8]) -> Result<(), WireError> {
    match expect {
        Expect::Fixed32 => take(bytes, 4).map(|_| ()),
        Expect::Fixed64 => take(bytes, 8).map(|_| ()),
        _ => varint(bytes).map(|_| ()),
    }
}

/// A field's key: its number and wire type.
fn key(bytes: &mut &[u8]) -> Result<(u32, u8), WireError> {
    let key = varint(bytes)?;
    let key = u32::try_from(key).map_err(|_| WireError("a key is longer than 32 bits"))?;
    let wire_type = (key & 7) as u8;
    if wire_type > FIXED32 {
        return Err(WireError("a key has wire type 6 or 7"));
    }
    let number = key >> 3;
    if number == 0 {
        return Err(WireError("a key has field number 0"));
    }
    Ok((number, wire_type))
}

/// Skips a field this schema does not know (prost's `skip_field`).
fn skip(number: u32, wire_type: u8, bytes: &mut &[u8], depth: u32) -> Result<(), WireError> {
    if depth == 0 {
        return Err(WireError("nested too deep"));
    }
    match wire_type {
        VARINT => varint(bytes).map(|_| ()),
        FIXED64 => take(bytes, 8).map(|_| ()),
        FIXED32 => take(bytes, 4).map(|_| ()),
        LENGTH_DELIMITED => length_delimited(bytes).map(|_| ()),
        START_GROUP => loop {
            let (inner, inner_type) = key(bytes)?;
            if inner_type == END_GROUP {
                if inner != number {
                    return Err(WireError("an end-group tag does not match its group"));
                }
                return Ok(());
            }
            skip(inner, inner_type, bytes, depth - 1)?;
        },
        _ => Err(WireError("an end-group tag outside a group")),
    }
}

/// A length-delimited value.
fn length_delimited<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8], WireError> {
    let len = varint(bytes)?;
    let len = usize::try_from(len).map_err(|_| WireError("a length runs past the end"))?;
    take(bytes, len)
}

fn take<'a>(bytes: &mut &'a [u8], len: usize) -> Result<&'a [u8], WireError> {
    if len > bytes.len() {
        return Err(WireError("a field runs past the end"));
    }
    let (value, rest) = bytes.split_at(len);
    *bytes = rest;
    Ok(value)
}

/// A varint: at most 10 bytes, the tenth 0 or 1.
fn varint(bytes: &mut &[u8]) -> Result<u64, WireError> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            if i == 9 && byte > 1 {
                break;
            }
            *bytes = &bytes[i + 1..];
            return Ok(value);
        }
    }
    Err(WireError("a varint is cut short or too long"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use prost::Message;

    use super::*;
    use crate::pb::Envelope;

    fn manifest_schema() -> &'static Schema {
        manifest()
    }

    fn key_of(number: u32, wire_type: u8) -> Vec<u8> {
        let mut out = Vec::new();
        let wire_type = prost::encoding::WireType::try_from(u64::from(wire_type)).expect("0-5");
        prost::encoding::encode_key(number, wire_type, &mut out);
        out
    }

    /// prost's verdict on `bytes` as a manifest in an envelope (one level down, as stored).
    fn prost_verdict(bytes: &[u8]) -> bool {
        let mut envelope = Vec::new();
        prost::encoding::bytes::encode(8, &bytes.to_vec(), &mut envelope);
        Envelope::decode(envelope.as_slice()).is_ok()
    }

    fn encoded_samples() -> Vec<Vec<u8>> {
        crate::pb::sample_manifests()
            .into_iter()
            .map(|(_, manifest)| manifest.encode_to_vec())
            .collect()
    }

    #[test]
    fn every_sample_checks_as_it_decodes() {
        let schema = manifest_schema();
        for bytes in encoded_samples() {
            assert_eq!(schema.check_field_value(&bytes), Ok(()));
            assert!(prost_verdict(&bytes));
        }
    }

    #[test]
    fn varints_follow_prost() {
        for (bytes, ok) in [
            (&[0x00][..], true),
            (&[0x80, 0x01], true),
            (&[0x80], false),
            (&[0xff; 9][..], false),
            (
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                true,
            ),
            (
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
                false,
            ),
            (&[0xff; 11][..], false),
        ] {
            let mut rest = bytes;
            let ours = varint(&mut rest).is_ok();
            let mut buf = bytes;
            let theirs = prost::encoding::decode_varint(&mut buf).is_ok();
            assert_eq!((ours, theirs), (ok, ok), "{bytes:x?}");
        }
    }

    /// Hand-made cases at the rules' edges: groups, depth, packed and unpacked numbers,
    /// strings, wire types.
    #[test]
    fn edge_cases_get_prost_s_verdict() {
        let schema = manifest_schema();
        let sample = encoded_samples().swap_remove(0);
        let nested = |depth: usize, inner: &[u8]| {
            // Unknown groups recurse as they are skipped (field 1000: not the manifest's).
            let mut out = key_of(1000, START_GROUP).repeat(depth);
            out.extend_from_slice(inner);
            out.extend(key_of(1000, END_GROUP).repeat(depth));
            out
        };
        // Field 99 is not the manifest's: skipped, as prost skips it.
        let unknown = |wire_type: u8, rest: &[u8]| [key_of(99, wire_type), rest.to_vec()].concat();
        let mut cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x00],
            unknown(END_GROUP, &[]),
            [key_of(99, VARINT), vec![0]].concat(),
            vec![0x9e, 0x06, 0], // field 99, wire type 6
            vec![0x9f, 0x06, 0], // field 99, wire type 7
            unknown(START_GROUP, &key_of(98, END_GROUP)),
            unknown(START_GROUP, &key_of(99, END_GROUP)),
            unknown(START_GROUP, &[]),
            unknown(FIXED32, &[1, 2, 3]),
            unknown(FIXED32, &[1, 2, 3, 4]),
            unknown(FIXED64, &[1, 2, 3, 4, 5, 6, 7, 8]),
            unknown(FIXED64, &[1, 2, 3, 4, 5, 6, 7]),
            unknown(LENGTH_DELIMITED, &[3, 1, 2]),
            vec![0xf8, 0xff, 0xff, 0xff, 0x0f, 0],
            vec![0xf8, 0xff, 0xff, 0xff, 0x1f, 0],
        ];
        for depth in [97, 98, 99, 100] {
            cases.push(nested(depth / 2, &[]));
            cases.push(nested(depth, &[]));
            cases.push(nested(depth, &[(5 << 3) | VARINT, 1]));
        }
        // The manifest's fields (and some it lacks) with each wire type and a few bodies.
        for number in 1..40u32 {
            for body in [
                &[VARINT, 1][..],
                &[FIXED32, 1, 2, 3, 4],
                &[FIXED64, 1, 2, 3, 4, 5, 6, 7, 8],
                &[LENGTH_DELIMITED, 0],
                &[LENGTH_DELIMITED, 2, 0xc3, 0x28],
                &[LENGTH_DELIMITED, 2, 0x08, 0x01],
                &[LENGTH_DELIMITED, 3, 0x80, 0x80, 0x01],
                &[LENGTH_DELIMITED, 3, 0x80, 0x80, 0x80],
                &[LENGTH_DELIMITED, 8, 1, 2, 3, 4, 5, 6, 7, 8],
                &[LENGTH_DELIMITED, 5, 1, 2, 3, 4, 5],
                &[LENGTH_DELIMITED, 9, 1],
            ] {
                let mut case = sample.clone();
                case.extend(key_of(number, body[0]));
                case.extend_from_slice(&body[1..]);
                cases.push(case);
            }
            let mut group = sample.clone();
            group.extend(key_of(number, START_GROUP));
            group.extend(key_of(number, END_GROUP));
            cases.push(group);
        }
        for case in cases {
            assert_eq!(
                schema.check_field_value(&case).is_ok(),
                prost_verdict(&case),
                "{case:x?}"
            );
        }
    }

    /// A sample's encoding with one of a few kinds of damage.
    fn mutated() -> impl Strategy<Value = Vec<u8>> {
        let samples = encoded_samples();
        (
            0..samples.len(),
            0..6u8,
            any::<prop::sample::Index>(),
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 1..12),
        )
            .prop_map(move |(sample, kind, at, byte, insert)| {
                let mut bytes = samples[sample].clone();
                let i = at.index(bytes.len());
                match kind {
                    0 => bytes[i] = byte,
                    1 => bytes[i] ^= 1 << (byte % 8),
                    2 => bytes.truncate(i),
                    3 => {
                        bytes.splice(i..i, insert);
                    }
                    4 => {
                        bytes.remove(i);
                    }
                    _ => {
                        // A length byte's worth of the message moved: lengths that disagree.
                        let end = (i + usize::from(byte)).min(bytes.len());
                        let cut: Vec<u8> = bytes.drain(i..end).collect();
                        let to = at.index(bytes.len() + 1);
                        bytes.splice(to..to, cut);
                    }
                }
                bytes
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        #[test]
        fn verdicts_are_prost_s_on_damaged_manifests(bytes in mutated()) {
            let schema = manifest_schema();
            prop_assert_eq!(schema.check_field_value(&bytes).is_ok(), prost_verdict(&bytes));
        }
    }
}
