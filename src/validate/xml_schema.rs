//! Writes the XML schema of the cargo report (`schemas/aci-manifest-2.xsd`) from the proto's
//! descriptors and their `aci.v1.field` options, so the two cannot drift: one element per field
//! that is not deprecated, named in UpperCamelCase, in field order, with the field's cardinality,
//! its constraints as facets, its code list as an enumeration of the file in `schemas/codes/`,
//! and its WCO Data Model id as an `xs:appinfo`. The file is checked in for filers and their
//! tools; a test keeps it equal to what this writes (`ACI_BLESS=1` rewrites it), and
//! `tests/schema_parity.rs` reads it back and compares it with the proto field by field.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor};

use super::codes::CodeLists;
use super::constraints::declared_on;
use super::xml::{camel, enum_prefix};

/// The namespace of the current version.
pub const NAMESPACE: &str = "urn:aci-gateway:manifest:2";
/// Where an `xs:appinfo` holds a field's WCO Data Model id.
pub const WCO_SOURCE: &str = "urn:aci-gateway:wco";
/// Where an `xs:appinfo` holds the ids a shared message's fields take in one role.
pub const WCO_ROLES_SOURCE: &str = "urn:aci-gateway:wco-roles";

const TIMESTAMP: &str = "google.protobuf.Timestamp";

/// The schema document for the manifest as the descriptors describe it.
pub fn write(pool: &DescriptorPool, codes: &CodeLists) -> String {
    let root = pool
        .get_message_by_name("aci.v1.Manifest")
        .expect("Manifest is in the descriptor set");
    let mut messages = Vec::new();
    reachable(&root, &mut messages);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!--
  aci-manifest-2.xsd: the XML form of aci.v1.Manifest (proto/aci/v1/manifest.proto), version 2.
  Generated from the proto's descriptors (src/validate/xml_schema.rs); do not edit: change the
  proto and run `ACI_BLESS=1 cargo test` (the schema_parity test writes it).
  One element per field, named in UpperCamelCase, in field order, with the same cardinalities
  and the constraints of the aci.v1.field options as facets; code lists are enumerations of the
  files in schemas/codes/. Each leaf carries its WCO Data Model id in an xs:appinfo with source
  "{WCO_SOURCE}"; an element of a shared type (party, location, document) carries the ids its
  leaves take in that role in an xs:appinfo with source "{WCO_ROLES_SOURCE}".
  Version 1 documents (urn:aci-gateway:manifest:1, aci-manifest-1.xsd) are still accepted.
  Target namespace: {NAMESPACE}
-->
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
           xmlns="{NAMESPACE}"
           targetNamespace="{NAMESPACE}"
           elementFormDefault="qualified"
           version="2">

  <xs:element name="Manifest" type="ManifestType"/>
"#
    );
    let mut enums = Vec::new();
    let mut lists = BTreeSet::new();
    for message in &messages {
        let _ = write!(
            out,
            "\n  <xs:complexType name=\"{}Type\">\n    <xs:sequence>\n",
            message.name()
        );
        for field in message.fields().filter(|f| !is_deprecated(f)) {
            element(&field, &mut out, &mut enums, &mut lists);
        }
        out.push_str("    </xs:sequence>\n  </xs:complexType>\n");
    }
    out.push_str(
        r#"
  <!-- A google.protobuf.Timestamp: an xs:dateTime with a four-digit year, an hour below 24 and
       a zone (Z or an offset), which is what a Timestamp can carry and RFC 3339 reads. -->
  <xs:simpleType name="UtcDateTime">
    <xs:restriction base="xs:dateTime">
      <xs:pattern value="\d{4}-\d{2}-\d{2}T([01]\d|2[0-3]):\d{2}:\d{2}(\.\d+)?(Z|[+\-]\d{2}:\d{2})"/>
    </xs:restriction>
  </xs:simpleType>
"#,
    );
    for e in enums {
        let _ = write!(
            out,
            "\n  <!-- {}, without its unspecified value. -->\n  <xs:simpleType name=\"{}Code\">\n    <xs:restriction base=\"xs:token\">\n",
            e.full_name(),
            e.name()
        );
        let prefix = enum_prefix(e.name());
        for value in e.values().filter(|v| v.number() != 0) {
            let _ = writeln!(
                out,
                "      <xs:enumeration value=\"{}\"/>",
                value.name().trim_start_matches(prefix.as_str())
            );
        }
        out.push_str("    </xs:restriction>\n  </xs:simpleType>\n");
    }
    for name in lists {
        let _ = write!(
            out,
            "\n  <!-- schemas/codes/{name}.txt -->\n  <xs:simpleType name=\"CodeList.{name}\">\n    <xs:restriction base=\"xs:token\">\n"
        );
        let mut codes: Vec<&str> = codes.list(&name).codes().collect();
        codes.sort_unstable();
        for code in codes {
            let _ = writeln!(out, "      <xs:enumeration value=\"{code}\"/>");
        }
        out.push_str("    </xs:restriction>\n  </xs:simpleType>\n");
    }
    out.push_str("\n</xs:schema>\n");
    out
}

/// Message types of ours reachable from `message`, each once, in the order first reached.
fn reachable(message: &MessageDescriptor, out: &mut Vec<MessageDescriptor>) {
    if out.iter().any(|m| m.full_name() == message.full_name()) {
        return;
    }
    out.push(message.clone());
    for field in message.fields().filter(|f| !is_deprecated(f)) {
        if let Kind::Message(inner) = field.kind()
            && inner.full_name() != TIMESTAMP
        {
            reachable(&inner, out);
        }
    }
}

/// Whether a field is a first-version form (`[deprecated = true]`): not in version 2.
pub fn is_deprecated(field: &FieldDescriptor) -> bool {
    field
        .field_descriptor_proto()
        .options
        .as_ref()
        .is_some_and(|o| o.deprecated())
}

/// A number as a facet value: whole numbers without a decimal point.
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        value.to_string()
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
}

fn element(
    field: &FieldDescriptor,
    out: &mut String,
    enums: &mut Vec<prost_reflect::EnumDescriptor>,
    lists: &mut BTreeSet<String>,
) {
    let c = declared_on(field);
    let name = camel(field.name());
    let occurs = if field.is_list() {
        let max = if c.max_items == 0 {
            "unbounded".to_owned()
        } else {
            c.max_items.to_string()
        };
        format!(" minOccurs=\"{}\" maxOccurs=\"{max}\"", c.min_items)
    } else {
        // proto3 cannot tell an absent number from zero: a number whose zero is out of range must
        // be there, as if required.
        let zero_out_of_range = matches!(field.kind(), Kind::Uint32 | Kind::Double)
            && (c.min.is_some_and(|min| min > 0.0) || c.max.is_some_and(|max| max < 0.0));
        format!(
            " minOccurs=\"{}\"",
            u32::from(c.required || zero_out_of_range)
        )
    };
    let mut appinfo = String::new();
    if !c.wco.is_empty() {
        let _ = write!(
            appinfo,
            "<xs:appinfo source=\"{WCO_SOURCE}\">{}</xs:appinfo>",
            escape(&c.wco)
        );
    }
    if !c.wco_roles.is_empty() {
        let _ = write!(
            appinfo,
            "<xs:appinfo source=\"{WCO_ROLES_SOURCE}\">{}</xs:appinfo>",
            escape(&c.wco_roles.join(" "))
        );
    }
    let annotation = if appinfo.is_empty() {
        appinfo
    } else {
        format!("        <xs:annotation>{appinfo}</xs:annotation>\n")
    };
    let named_type = match field.kind() {
        Kind::Message(m) if m.full_name() == TIMESTAMP => Some("UtcDateTime".to_owned()),
        Kind::Message(m) => Some(format!("{}Type", m.name())),
        Kind::Enum(e) => {
            let type_name = format!("{}Code", e.name());
            if !enums.iter().any(|known| known.full_name() == e.full_name()) {
                enums.push(e.clone());
            }
            Some(type_name)
        }
        Kind::String if !c.code_list.is_empty() => {
            lists.insert(c.code_list.clone());
            Some(format!("CodeList.{}", c.code_list))
        }
        _ => None,
    };
    // An element of a named type: empty, or holding only its annotation.
    let typed = |out: &mut String, type_name: &str| {
        if annotation.is_empty() {
            let _ = writeln!(
                out,
                "      <xs:element name=\"{name}\" type=\"{type_name}\"{occurs}/>"
            );
        } else {
            let _ = write!(
                out,
                "      <xs:element name=\"{name}\" type=\"{type_name}\"{occurs}>\n{annotation}      </xs:element>\n"
            );
        }
    };
    if let Some(type_name) = named_type {
        typed(out, &type_name);
        return;
    }
    let base = match field.kind() {
        Kind::Uint32 | Kind::Uint64 => "xs:unsignedInt",
        Kind::Double => "xs:decimal",
        Kind::Bool => "xs:boolean",
        _ => "xs:string",
    };
    let mut facets = String::new();
    let implied_min = u32::from(c.required && matches!(field.kind(), Kind::String));
    let min_len = c.min_len.max(implied_min);
    if min_len > 0 {
        let _ = writeln!(facets, "            <xs:minLength value=\"{min_len}\"/>");
    }
    if c.max_len > 0 {
        let _ = writeln!(
            facets,
            "            <xs:maxLength value=\"{}\"/>",
            c.max_len
        );
    }
    if !c.pattern.is_empty() {
        let _ = writeln!(
            facets,
            "            <xs:pattern value=\"{}\"/>",
            escape(&c.pattern)
        );
    }
    if let Some(digits) = c.fraction_digits {
        let _ = writeln!(
            facets,
            "            <xs:fractionDigits value=\"{digits}\"/>"
        );
    }
    if let Some(min) = c.min {
        let _ = writeln!(
            facets,
            "            <xs:minInclusive value=\"{}\"/>",
            number(min)
        );
    }
    if let Some(max) = c.max {
        let _ = writeln!(
            facets,
            "            <xs:maxInclusive value=\"{}\"/>",
            number(max)
        );
    }
    if facets.is_empty() {
        typed(out, base);
        return;
    }
    let _ = write!(
        out,
        "      <xs:element name=\"{name}\"{occurs}>\n{annotation}        <xs:simpleType>\n          <xs:restriction base=\"{base}\">\n{facets}          </xs:restriction>\n        </xs:simpleType>\n      </xs:element>\n"
    );
}
