//! The XML form of a `Manifest` (`schemas/aci-manifest-2.xsd`, and version 1's
//! `aci-manifest-1.xsd` still read): reading a schema-valid document into the message, and
//! writing a message as a document of the current version. Both are driven by the descriptors:
//! an element is the field of the same name in UpperCamelCase, in field order; enums drop their
//! type prefix (`TRANSPORT_MODE_SEA` is `SEA`); times are `xs:dateTime` in UTC.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::xsd::{Content, Limits, Schema, XmlReport};
use crate::pb::{self, Manifest};
use prost::Message;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, Value,
};

/// The namespace of the cargo report's XML form.
pub use super::xml_schema::NAMESPACE;
/// The namespace of the first version, still read.
pub const NAMESPACE_V1: &str = "urn:aci-gateway:manifest:1";

/// Whether a document's element is in version 1's namespace. Reads no further than the first
/// element's start tag; anything unreadable is left to the schema pass to report.
pub fn is_version_1(xml: &[u8]) -> bool {
    super::xsd::document_namespace(xml).is_some_and(|namespace| namespace == NAMESPACE_V1)
}

/// Why a (schema-valid) document could not be read as a manifest.
#[derive(Debug, thiserror::Error)]
#[error("XML mapping: {0}")]
pub struct MappingError(String);

/// A field's element name: `place_of_loading` is `PlaceOfLoading`.
pub(super) fn camel(name: &str) -> String {
    name.split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or(String::new(), |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// The prefix an enum's value names carry (`TransportMode`: `TRANSPORT_MODE_`).
pub(super) fn enum_prefix(name: &str) -> String {
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

#[derive(Debug, Clone)]
struct FieldMap {
    number: u32,
    kind: FieldKind,
}

#[derive(Debug, Clone)]
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

/// How each element declaration of a schema maps to a manifest field, compiled once per schema
/// (by declaration, so reading a document costs no name lookups).
#[derive(Debug)]
pub struct Mapping {
    /// The document element's declaration.
    root: usize,
    /// By declaration: the field an element is. `None` for the document element.
    fields: Vec<Option<FieldMap>>,
}

/// Why a document could not be read as a manifest.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The document breaks the schema: every finding.
    #[error("the document breaks the schema ({} findings)", .0.findings.len())]
    Invalid(XmlReport),
    #[error(transparent)]
    Mapping(#[from] MappingError),
}

impl Mapping {
    /// Pairs the schema's declarations with the manifest's fields, by name.
    pub fn new(schema: &Schema) -> Result<Mapping, MappingError> {
        let maps = &*MAPS;
        let root = schema
            .root("Manifest")
            .ok_or_else(|| MappingError("the schema has no <Manifest> element".into()))?;
        let mut fields = vec![None; schema.declarations()];
        pair(schema, maps, root, maps.root, &mut fields)?;
        Ok(Mapping { root, fields })
    }

    /// Validates a document against `schema` (the one this mapping was made from) and reads it
    /// into a manifest in the same pass.
    pub fn read(
        &self,
        schema: &Schema,
        xml: &[u8],
        limits: &Limits,
    ) -> Result<Manifest, ReadError> {
        let mut reader = ManifestReader {
            mapping: self,
            open: Vec::new(),
            spare: Vec::new(),
            done: None,
            error: None,
        };
        let report = schema.validate_with(xml, limits, &mut reader);
        if !report.findings.is_empty() {
            return Err(ReadError::Invalid(report));
        }
        if let Some(error) = reader.error {
            return Err(error.into());
        }
        let bytes = reader
            .done
            .ok_or_else(|| MappingError("no document element".into()))?;
        Ok(Manifest::decode(bytes.as_slice()).map_err(|e| MappingError(e.to_string()))?)
    }
}

/// Records the field of every child of `decl` (read as message `map`), depth first.
fn pair(
    schema: &Schema,
    maps: &Maps,
    decl: usize,
    map: usize,
    fields: &mut [Option<FieldMap>],
) -> Result<(), MappingError> {
    for &child in schema.children(decl) {
        let name = schema.name(child);
        let field = maps.messages[map]
            .by_element
            .get(name)
            .ok_or_else(|| MappingError(format!("no field for <{name}>")))?;
        let is_message = matches!(field.kind, FieldKind::Message(_));
        if is_message == schema.has_value(child) {
            return Err(MappingError(format!(
                "<{name}> and its field disagree on holding a value"
            )));
        }
        match &fields[child] {
            // A declaration of a shared type: already paired, the same way.
            Some(known) if known.number == field.number => continue,
            Some(_) => {
                return Err(MappingError(format!("<{name}> is two different fields")));
            }
            None => fields[child] = Some(field.clone()),
        }
        if let FieldKind::Message(inner) = field.kind {
            pair(schema, maps, child, inner, fields)?;
        }
    }
    Ok(())
}

/// Reads a document into a `Manifest` (tools and tests; the gateway keeps a [`Mapping`]): an
/// error if it breaks the schema.
pub fn from_xml(schema: &Schema, xml: &[u8]) -> Result<Manifest, MappingError> {
    let mapping = Mapping::new(schema)?;
    match mapping.read(schema, xml, &Limits::default()) {
        Ok(manifest) => Ok(manifest),
        Err(ReadError::Mapping(e)) => Err(e),
        Err(ReadError::Invalid(report)) => Err(MappingError(format!(
            "not schema-valid: {}",
            report
                .findings
                .first()
                .map_or("", |finding| finding.message.as_str())
        ))),
    }
}

/// Writes validated content straight into protobuf wire format (one buffer per open message),
/// which prost then decodes.
struct ManifestReader<'m> {
    mapping: &'m Mapping,
    /// Open messages: their encoded fields so far, and their field number in the parent.
    open: Vec<(Vec<u8>, u32)>,
    /// Buffers of closed messages, for reuse.
    spare: Vec<Vec<u8>>,
    done: Option<Vec<u8>>,
    /// The first problem; the rest of the document is still validated.
    error: Option<MappingError>,
}

impl<'m> ManifestReader<'m> {
    fn fail(&mut self, error: MappingError) {
        self.error.get_or_insert(error);
    }

    fn field(&self, decl: usize) -> Option<&'m FieldMap> {
        self.mapping.fields.get(decl).and_then(Option::as_ref)
    }
}

impl Content for ManifestReader<'_> {
    fn open(&mut self, decl: usize) {
        let number = if decl == self.mapping.root && self.open.is_empty() {
            0
        } else {
            match self.field(decl) {
                Some(FieldMap {
                    number,
                    kind: FieldKind::Message(_),
                }) => *number,
                _ => {
                    return self.fail(MappingError(format!("no message field for element {decl}")));
                }
            }
        };
        let mut bytes = self.spare.pop().unwrap_or_default();
        bytes.clear();
        self.open.push((bytes, number));
    }

    fn value(&mut self, decl: usize, text: &str) {
        let Some(field) = self.field(decl) else {
            return self.fail(MappingError(format!("no field for element {decl}")));
        };
        let Some((out, _)) = self.open.last_mut() else {
            return self.fail(MappingError("a value outside the document element".into()));
        };
        if let Err(e) = encode_value(field, text, out) {
            self.fail(e);
        }
    }

    fn close(&mut self, _decl: usize) {
        let Some((bytes, number)) = self.open.pop() else {
            return self.fail(MappingError("unbalanced".into()));
        };
        match self.open.last_mut() {
            Some((parent, _)) => {
                length_delimited(number, &bytes, parent);
                self.spare.push(bytes);
            }
            None => self.done = Some(bytes),
        }
    }
}

fn varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Bytes `varint` writes for `value`.
fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

fn key(number: u32, wire_type: u8, out: &mut Vec<u8>) {
    varint(u64::from(number) << 3 | u64::from(wire_type), out);
}

fn length_delimited(number: u32, bytes: &[u8], out: &mut Vec<u8>) {
    key(number, 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Encodes one schema-valid value as its field.
fn encode_value(field: &FieldMap, text: &str, out: &mut Vec<u8>) -> Result<(), MappingError> {
    let bad = |what: &str| MappingError(format!("{text:?} is not {what}"));
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
            varint(u64::from(matches!(text, "true" | "1")), out);
        }
        FieldKind::Enum(values) => {
            let number = *values.get(text).ok_or_else(|| bad("a known value"))?;
            key(field.number, 0, out);
            varint(number as u64, out);
        }
        FieldKind::Timestamp => {
            let t =
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| bad("a date and time with a zone"))?;
            // google.protobuf.Timestamp: seconds (int64) = 1, nanos (int32) = 2; zeros omitted.
            let seconds = t.unix_timestamp() as u64;
            let nanos = u64::from(t.nanosecond());
            let size = |value: u64| if value == 0 { 0 } else { 1 + varint_len(value) };
            key(field.number, 2, out);
            varint((size(seconds) + size(nanos)) as u64, out);
            if seconds != 0 {
                key(1, 0, out);
                varint(seconds, out);
            }
            if nanos != 0 {
                key(2, 0, out);
                varint(nanos, out);
            }
        }
        FieldKind::Message(_) => return Err(bad("a value")),
    }
    Ok(())
}

/// Writes a manifest as a document of the current XML schema, one element per line, indented
/// by two spaces a level (version 1 forms are written as their successors).
pub fn to_xml(manifest: &Manifest) -> String {
    let mut manifest = manifest.clone();
    super::upgrade(&mut manifest);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!("<Manifest xmlns=\"{NAMESPACE}\">\n"));
    write_message(&pb::to_dynamic(&manifest), 1, &mut out);
    out.push_str("</Manifest>\n");
    out
}

fn write_message(message: &DynamicMessage, depth: usize, out: &mut String) {
    for field in message.descriptor().fields() {
        if !message.has_field(&field) || super::xml_schema::is_deprecated(&field) {
            continue;
        }
        let name = camel(field.name());
        match message.get_field(&field).as_ref() {
            Value::List(items) => {
                for item in items {
                    write_value(&field, &name, item, depth, out);
                }
            }
            value => write_value(&field, &name, value, depth, out),
        }
    }
}

fn write_value(field: &FieldDescriptor, name: &str, value: &Value, depth: usize, out: &mut String) {
    let indent = "  ".repeat(depth);
    out.push_str(&indent);
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
        (_, Value::Message(inner)) => {
            out.push('\n');
            write_message(inner, depth + 1, out);
            out.push_str(&indent);
        }
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
    out.push_str(">\n");
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
