//! The XML form of a `Manifest` (`schemas/aci-manifest-1.xsd`): reading a schema-valid document
//! into the message, and writing a message as a document. Both are driven by the descriptors:
//! an element is the field of the same name in UpperCamelCase, in field order; enums drop their
//! type prefix (`TRANSPORT_MODE_SEA` is `SEA`); times are `xs:dateTime` in UTC.

use std::collections::HashMap;
use std::sync::LazyLock;

use prost::Message;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, Value,
};
use quick_xml::NsReader;
use quick_xml::events::Event;

use super::xsd::Schema;
use super::xsd::types::normalize;
use crate::pb::{self, Manifest};

/// The namespace of the cargo report's XML form.
pub const NAMESPACE: &str = "urn:aci-gateway:manifest:1";

/// Why a (schema-valid) document could not be read as a manifest.
#[derive(Debug, thiserror::Error)]
#[error("XML mapping: {0}")]
pub struct MappingError(String);

fn camel(name: &str) -> String {
    name.split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or(String::new(), |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

fn enum_prefix(name: &str) -> String {
    let mut prefix = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            prefix.push('_');
        }
        prefix.push(c.to_ascii_uppercase());
    }
    prefix.push('_');
    prefix
}

/// How each element of a message type maps to a field, compiled once from the descriptors.
struct MessageMap {
    by_element: HashMap<String, FieldMap>,
}

#[derive(Clone)]
struct FieldMap {
    number: u32,
    kind: FieldKind,
}

#[derive(Clone)]
enum FieldKind {
    String,
    Unsigned,
    Double,
    Bool,
    /// Enum value names without their type prefix → numbers.
    Enum(HashMap<String, i32>),
    Timestamp,
    /// A message of ours: index into the maps.
    Message(usize),
}

struct Maps {
    root: usize,
    messages: Vec<MessageMap>,
}

static MAPS: LazyLock<Maps> = LazyLock::new(|| {
    let root = pb::descriptor_pool()
        .get_message_by_name("aci.v1.Manifest")
        .expect("Manifest is in the descriptor set");
    let mut index = HashMap::new();
    let mut messages = Vec::new();
    let root = build_map(&root, &mut index, &mut messages);
    Maps { root, messages }
});

fn build_map(
    message: &MessageDescriptor,
    index: &mut HashMap<String, usize>,
    messages: &mut Vec<MessageMap>,
) -> usize {
    if let Some(&i) = index.get(message.full_name()) {
        return i;
    }
    let i = messages.len();
    index.insert(message.full_name().to_owned(), i);
    messages.push(MessageMap {
        by_element: HashMap::new(),
    });
    let mut by_element = HashMap::new();
    for field in message.fields() {
        let kind = match field.kind() {
            Kind::Message(m) if m.full_name() == "google.protobuf.Timestamp" => {
                FieldKind::Timestamp
            }
            Kind::Message(m) => FieldKind::Message(build_map(&m, index, messages)),
            Kind::Enum(e) => {
                let prefix = enum_prefix(e.name());
                FieldKind::Enum(
                    e.values()
                        .map(|v| {
                            (
                                v.name().trim_start_matches(prefix.as_str()).to_owned(),
                                v.number(),
                            )
                        })
                        .collect(),
                )
            }
            Kind::Double => FieldKind::Double,
            Kind::Bool => FieldKind::Bool,
            Kind::Uint32 | Kind::Uint64 => FieldKind::Unsigned,
            _ => FieldKind::String,
        };
        by_element.insert(
            camel(field.name()),
            FieldMap {
                number: field.number(),
                kind,
            },
        );
    }
    messages[i].by_element = by_element;
    i
}

/// Reads a document that passed schema validation into a `Manifest`: the events are written
/// straight into protobuf wire format (one buffer per open message), which prost then decodes.
pub fn from_xml(schema: &Schema, xml: &[u8]) -> Result<Manifest, MappingError> {
    let maps = &*MAPS;
    let text = std::str::from_utf8(xml).map_err(|e| MappingError(e.to_string()))?;
    let mut reader = NsReader::from_str(text);
    // Open messages: (encoded fields so far, message map, field number in the parent, declaration).
    let mut open: Vec<(Vec<u8>, usize, u32, usize)> = Vec::new();
    // The open leaf: (field, declaration, text).
    let mut leaf: Option<(FieldMap, usize, String)> = None;
    let mut done: Option<Vec<u8>> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| MappingError(e.to_string()))?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let name = e.local_name().into_inner();
                let Some((_, map, _, parent_decl)) = open.last() else {
                    let decl = schema
                        .root(name)
                        .ok_or_else(|| MappingError(format!("no root {name}")))?;
                    open.push((Vec::new(), maps.root, 0, decl));
                    continue;
                };
                let decl = schema
                    .child(*parent_decl, name)
                    .ok_or_else(|| MappingError(format!("unexpected <{name}>")))?;
                let field = maps.messages[*map]
                    .by_element
                    .get(name)
                    .cloned()
                    .ok_or_else(|| MappingError(format!("no field for <{name}>")))?;
                if let FieldKind::Message(inner) = field.kind {
                    open.push((Vec::new(), inner, field.number, decl));
                    if empty {
                        close(&mut open, &mut done)?;
                    }
                } else {
                    leaf = Some((field, decl, String::new()));
                    if empty {
                        write_leaf(schema, &mut open, leaf.take())?;
                    }
                }
            }
            Event::Text(t) => {
                if let Some((_, _, text)) = leaf.as_mut() {
                    text.push_str(&t.xml10_content());
                }
            }
            Event::CData(c) => {
                if let Some((_, _, text)) = leaf.as_mut() {
                    text.push_str(c.as_ref());
                }
            }
            Event::GeneralRef(r) => {
                if let Some((_, _, text)) = leaf.as_mut() {
                    let c = super::xsd::resolve_reference(&r)
                        .ok_or_else(|| MappingError("unknown entity".into()))?;
                    text.push(c);
                }
            }
            Event::End(_) => {
                if leaf.is_some() {
                    write_leaf(schema, &mut open, leaf.take())?;
                } else {
                    close(&mut open, &mut done)?;
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let bytes = done.ok_or_else(|| MappingError("no document element".into()))?;
    Manifest::decode(bytes.as_slice()).map_err(|e| MappingError(e.to_string()))
}

fn varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn key(number: u32, wire_type: u8, out: &mut Vec<u8>) {
    varint(u64::from(number) << 3 | u64::from(wire_type), out);
}

fn length_delimited(number: u32, bytes: &[u8], out: &mut Vec<u8>) {
    key(number, 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Closes the innermost open message into its parent (or finishes the document).
fn close(
    open: &mut Vec<(Vec<u8>, usize, u32, usize)>,
    done: &mut Option<Vec<u8>>,
) -> Result<(), MappingError> {
    let (bytes, _, number, _) = open
        .pop()
        .ok_or_else(|| MappingError("unbalanced".into()))?;
    match open.last_mut() {
        Some((parent, _, _, _)) => length_delimited(number, &bytes, parent),
        None => *done = Some(bytes),
    }
    Ok(())
}

fn write_leaf(
    schema: &Schema,
    open: &mut [(Vec<u8>, usize, u32, usize)],
    leaf: Option<(FieldMap, usize, String)>,
) -> Result<(), MappingError> {
    let Some((field, decl, raw)) = leaf else {
        return Ok(());
    };
    let text = match schema.whitespace(decl) {
        Some(whitespace) => normalize(&raw, whitespace).into_owned(),
        None => raw,
    };
    let bad = |what: &str| MappingError(format!("{text:?} is not {what}"));
    let (out, _, _, _) = open
        .last_mut()
        .ok_or_else(|| MappingError("no element".into()))?;
    match &field.kind {
        FieldKind::String => length_delimited(field.number, text.as_bytes(), out),
        FieldKind::Unsigned => {
            let value: u64 = text
                .trim_start_matches('+')
                .parse()
                .map_err(|_| bad("an unsigned integer"))?;
            key(field.number, 0, out);
            varint(value, out);
        }
        FieldKind::Double => {
            let value: f64 = text.parse().map_err(|_| bad("a number"))?;
            key(field.number, 1, out);
            out.extend_from_slice(&value.to_le_bytes());
        }
        FieldKind::Bool => {
            key(field.number, 0, out);
            varint(u64::from(matches!(text.as_str(), "true" | "1")), out);
        }
        FieldKind::Enum(values) => {
            let number = *values
                .get(text.as_str())
                .ok_or_else(|| bad("a known value"))?;
            key(field.number, 0, out);
            varint(number as u64, out);
        }
        FieldKind::Timestamp => {
            let t =
                time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| bad("a date and time with a zone"))?;
            let ts = prost_types::Timestamp {
                seconds: t.unix_timestamp(),
                nanos: t.nanosecond() as i32,
            };
            length_delimited(field.number, &ts.encode_to_vec(), out);
        }
        FieldKind::Message(_) => return Err(bad("a value")),
    }
    Ok(())
}

/// Writes a manifest as a document of the XML schema.
pub fn to_xml(manifest: &Manifest) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!("<Manifest xmlns=\"{NAMESPACE}\">"));
    write_message(&pb::to_dynamic(manifest), &mut out);
    out.push_str("</Manifest>\n");
    out
}

fn write_message(message: &DynamicMessage, out: &mut String) {
    for field in message.descriptor().fields() {
        if !message.has_field(&field) {
            continue;
        }
        let name = camel(field.name());
        match message.get_field(&field).as_ref() {
            Value::List(items) => {
                for item in items {
                    write_value(&field, &name, item, out);
                }
            }
            value => write_value(&field, &name, value, out),
        }
    }
}

fn write_value(field: &FieldDescriptor, name: &str, value: &Value, out: &mut String) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    match (field.kind(), value) {
        (Kind::Message(m), Value::Message(inner))
            if m.full_name() == "google.protobuf.Timestamp" =>
        {
            let ts: prost_types::Timestamp = inner.transcode_to().unwrap_or_default();
            let t = time::OffsetDateTime::from_unix_timestamp(ts.seconds)
                .map(|t| t + time::Duration::nanoseconds(i64::from(ts.nanos)))
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            out.push_str(
                &t.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
            );
        }
        (_, Value::Message(inner)) => write_message(inner, out),
        (Kind::Enum(e), Value::EnumNumber(n)) => {
            let prefix = enum_prefix(e.name());
            let name = e
                .get_value(*n)
                .map(|v| v.name().trim_start_matches(prefix.as_str()).to_owned());
            out.push_str(&name.unwrap_or_default());
        }
        (_, Value::String(s)) => escape(s, out),
        (_, Value::U32(n)) => out.push_str(&n.to_string()),
        (_, Value::U64(n)) => out.push_str(&n.to_string()),
        (_, Value::F64(n)) => out.push_str(&n.to_string()),
        (_, Value::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
        _ => {}
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}
