//! The XML form of a `Manifest` (`schemas/aci-manifest-1.xsd`): reading a schema-valid document
//! into the message, and writing a message as a document. Both are driven by the descriptors:
//! an element is the field of the same name in UpperCamelCase, in field order; enums drop their
//! type prefix (`TRANSPORT_MODE_SEA` is `SEA`); times are `xs:dateTime` in UTC.

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

/// Reads a document that passed schema validation into a `Manifest`.
pub fn from_xml(schema: &Schema, xml: &[u8]) -> Result<Manifest, MappingError> {
    let text = std::str::from_utf8(xml).map_err(|e| MappingError(e.to_string()))?;
    let root = pb::descriptor_pool()
        .get_message_by_name("aci.v1.Manifest")
        .ok_or_else(|| MappingError("no aci.v1.Manifest descriptor".into()))?;
    let mut reader = NsReader::from_str(text);
    // (message being filled, its declaration) and, for a leaf, (field, declaration, text).
    let mut messages: Vec<(DynamicMessage, Option<FieldDescriptor>, usize)> = Vec::new();
    let mut leaf: Option<(FieldDescriptor, usize, String)> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| MappingError(e.to_string()))?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let name = e.local_name().into_inner().to_owned();
                let Some((parent, _, parent_decl)) = messages.last() else {
                    let decl = schema
                        .root(&name)
                        .ok_or_else(|| MappingError(format!("no root {name}")))?;
                    messages.push((DynamicMessage::new(root.clone()), None, decl));
                    continue;
                };
                let decl = schema
                    .child(*parent_decl, &name)
                    .ok_or_else(|| MappingError(format!("unexpected <{name}>")))?;
                let field = field_for(&parent.descriptor(), &name)?;
                match field.kind() {
                    Kind::Message(inner) if inner.full_name() != "google.protobuf.Timestamp" => {
                        messages.push((DynamicMessage::new(inner), Some(field), decl));
                        if empty {
                            close_message(&mut messages)?;
                        }
                    }
                    _ => {
                        leaf = Some((field, decl, String::new()));
                        if empty {
                            set_leaf(schema, &mut messages, leaf.take())?;
                        }
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
                    let c = if r.is_char_ref() {
                        r.resolve_char_ref().ok().flatten()
                    } else {
                        match r.as_ref() {
                            "lt" => Some('<'),
                            "gt" => Some('>'),
                            "amp" => Some('&'),
                            "apos" => Some('\''),
                            "quot" => Some('"'),
                            _ => None,
                        }
                    };
                    text.push(c.ok_or_else(|| MappingError("unknown entity".into()))?);
                }
            }
            Event::End(_) => {
                if leaf.is_some() {
                    set_leaf(schema, &mut messages, leaf.take())?;
                } else if messages.len() > 1 {
                    close_message(&mut messages)?;
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let (manifest, _, _) = messages
        .into_iter()
        .next()
        .ok_or_else(|| MappingError("no document element".into()))?;
    manifest
        .transcode_to::<Manifest>()
        .map_err(|e| MappingError(e.to_string()))
}

fn field_for(message: &MessageDescriptor, element: &str) -> Result<FieldDescriptor, MappingError> {
    message
        .fields()
        .find(|f| camel(f.name()) == element)
        .ok_or_else(|| MappingError(format!("{} has no field for <{element}>", message.name())))
}

fn put(message: &mut DynamicMessage, field: &FieldDescriptor, value: Value) {
    if field.is_list() {
        if let Value::List(items) = message.get_field_mut(field) {
            items.push(value);
        }
    } else {
        message.set_field(field, value);
    }
}

fn close_message(
    messages: &mut Vec<(DynamicMessage, Option<FieldDescriptor>, usize)>,
) -> Result<(), MappingError> {
    let (message, field, _) = messages
        .pop()
        .ok_or_else(|| MappingError("unbalanced".into()))?;
    let field = field.ok_or_else(|| MappingError("the document element closed early".into()))?;
    let (parent, _, _) = messages
        .last_mut()
        .ok_or_else(|| MappingError("unbalanced".into()))?;
    put(parent, &field, Value::Message(message));
    Ok(())
}

fn set_leaf(
    schema: &Schema,
    messages: &mut [(DynamicMessage, Option<FieldDescriptor>, usize)],
    leaf: Option<(FieldDescriptor, usize, String)>,
) -> Result<(), MappingError> {
    let Some((field, decl, raw)) = leaf else {
        return Ok(());
    };
    let text = match schema.whitespace(decl) {
        Some(whitespace) => normalize(&raw, whitespace).into_owned(),
        None => raw,
    };
    let bad =
        |what: &str| MappingError(format!("<{}>: {text:?} is not {what}", camel(field.name())));
    let value = match field.kind() {
        Kind::String => Value::String(text.clone()),
        Kind::Uint32 => Value::U32(
            text.trim_start_matches('+')
                .parse()
                .map_err(|_| bad("an unsigned integer"))?,
        ),
        Kind::Uint64 => Value::U64(
            text.trim_start_matches('+')
                .parse()
                .map_err(|_| bad("an unsigned integer"))?,
        ),
        Kind::Double => Value::F64(text.parse().map_err(|_| bad("a number"))?),
        Kind::Bool => Value::Bool(matches!(text.as_str(), "true" | "1")),
        Kind::Enum(e) => {
            let full = format!("{}{text}", enum_prefix(e.name()));
            Value::EnumNumber(
                e.get_value_by_name(&full)
                    .ok_or_else(|| bad("a known value"))?
                    .number(),
            )
        }
        Kind::Message(m) if m.full_name() == "google.protobuf.Timestamp" => {
            let t =
                time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| bad("a date and time with a zone"))?;
            let ts = prost_types::Timestamp {
                seconds: t.unix_timestamp(),
                nanos: t.nanosecond() as i32,
            };
            Value::Message(ts.transcode_to_dynamic())
        }
        _ => return Err(bad("a supported type")),
    };
    let (message, _, _) = messages
        .last_mut()
        .ok_or_else(|| MappingError("no element".into()))?;
    put(message, &field, value);
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
