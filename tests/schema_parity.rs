//! The two schemas of the cargo report say the same thing: `proto/aci/v1/manifest.proto` (with
//! its `aci.v1.field` options) and `schemas/aci-manifest-2.xsd`. This reads both and compares,
//! field by field: element names and order, cardinality, every constraint as a facet, and the
//! WCO Data Model id of every leaf. The XSD is written from the proto
//! (`aci_gateway::validate::xml_schema`); the file must be what that writes (`ACI_BLESS=1`
//! rewrites it), and is then read back here independently of the writer.

use std::collections::{BTreeSet, HashMap};

use aci_gateway::pb::{self, FieldConstraints};
use aci_gateway::validate::Validator;
use aci_gateway::validate::codes::CodeLists;
use aci_gateway::validate::xml_schema::{self, WCO_ROLES_SOURCE, WCO_SOURCE, is_deprecated};
use prost_reflect::{Kind, MessageDescriptor};
use quick_xml::Reader;
use quick_xml::events::Event;

/// An element of the XSD, as a small tree (this test may build one; the validator may not).
#[derive(Debug, Default, Clone)]
struct Node {
    name: String,
    attrs: HashMap<String, String>,
    children: Vec<Node>,
    text: String,
}

impl Node {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }

    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    fn descendants<'a>(&'a self, name: &str, out: &mut Vec<&'a Node>) {
        for child in &self.children {
            if child.name == name {
                out.push(child);
            }
            child.descendants(name, out);
        }
    }
}

fn parse_xsd(text: &str) -> Node {
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut stack = vec![Node::default()];
    loop {
        match reader.read_event().expect("the XSD is well-formed") {
            Event::Start(e) => stack.push(node(&e)),
            Event::Empty(e) => {
                let leaf = node(&e);
                stack.last_mut().expect("open element").children.push(leaf);
            }
            Event::End(_) => {
                let done = stack.pop().expect("balanced");
                stack.last_mut().expect("parent").children.push(done);
            }
            Event::Text(t) => {
                let text = t.xml10_content();
                stack.last_mut().expect("open element").text.push_str(&text);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    stack.pop().expect("document").children.remove(0)
}

fn node(e: &quick_xml::events::BytesStart<'_>) -> Node {
    Node {
        name: e.local_name().into_inner().to_owned(),
        attrs: e
            .attributes()
            .map(|a| {
                let a = a.expect("attribute");
                (
                    a.key.local_name().into_inner().to_owned(),
                    a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .expect("attribute value")
                        .into_owned(),
                )
            })
            .collect(),
        children: Vec::new(),
        text: String::new(),
    }
}

fn camel(name: &str) -> String {
    name.split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or(String::new(), |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// The constraints an XSD element expresses, in the proto's terms.
fn constraints_of(
    element: &Node,
    types: &HashMap<String, &Node>,
) -> (FieldConstraints, Option<String>) {
    let mut c = FieldConstraints::default();
    let mut base_type = element.attr("type").map(str::to_owned);
    let restriction = element
        .child("simpleType")
        .and_then(|s| s.child("restriction"));
    if let Some(restriction) = restriction {
        base_type = restriction.attr("base").map(str::to_owned);
        for facet in &restriction.children {
            let value = facet.attr("value").unwrap_or_default();
            let number = || value.parse::<f64>().expect("numeric facet");
            match facet.name.as_str() {
                "minLength" => c.min_len = value.parse().expect("length"),
                "maxLength" => c.max_len = value.parse().expect("length"),
                "pattern" => c.pattern = value.to_owned(),
                "minInclusive" => c.min = Some(number()),
                "maxInclusive" => c.max = Some(number()),
                "fractionDigits" => c.fraction_digits = Some(value.parse().expect("digits")),
                other => panic!("unexpected facet {other}"),
            }
        }
    }
    // A named code-list type carries the list's name.
    if let Some(list) = base_type
        .as_deref()
        .and_then(|t| t.strip_prefix("CodeList."))
    {
        assert!(
            types.contains_key(&format!("CodeList.{list}")),
            "type CodeList.{list} is defined"
        );
        c.code_list = list.to_owned();
    }
    (c, base_type)
}

#[test]
fn the_xml_schema_and_the_proto_state_the_same_constraints() {
    let xsd = parse_xsd(include_str!("../schemas/aci-manifest-2.xsd"));
    let mut complex = Vec::new();
    xsd.descendants("complexType", &mut complex);
    let complex: HashMap<String, &Node> = complex
        .into_iter()
        .map(|t| (t.attr("name").expect("named").to_owned(), t))
        .collect();
    let simple: HashMap<String, &Node> = xsd
        .children
        .iter()
        .filter(|n| n.name == "simpleType")
        .map(|t| (t.attr("name").expect("named").to_owned(), t))
        .collect();
    let declared: HashMap<String, FieldConstraints> = Validator::standard()
        .constraints()
        .declared()
        .into_iter()
        .collect();

    let pool = pb::descriptor_pool();
    let root = pool
        .get_message_by_name("aci.v1.Manifest")
        .expect("Manifest");
    assert_eq!(
        xsd.child("element").and_then(|e| e.attr("type")),
        Some("ManifestType")
    );
    let mut compared = 0;
    compare(&root, "", &complex, &simple, &declared, &mut compared, 0);
    assert_eq!(
        compared,
        declared.len(),
        "every declared constraint was compared"
    );
}

fn compare(
    message: &MessageDescriptor,
    prefix: &str,
    complex: &HashMap<String, &Node>,
    simple: &HashMap<String, &Node>,
    declared: &HashMap<String, FieldConstraints>,
    compared: &mut usize,
    depth: usize,
) {
    let type_name = format!("{}Type", message.name());
    let xsd_type = complex
        .get(&type_name)
        .unwrap_or_else(|| panic!("the XSD defines {type_name}"));
    let elements: Vec<&Node> = xsd_type
        .child("sequence")
        .expect("a sequence")
        .children
        .iter()
        .collect();
    // Version 1 forms (deprecated fields) are not in version 2.
    for field in message.fields().filter(is_deprecated) {
        let name = camel(field.name());
        assert!(
            elements
                .iter()
                .all(|e| e.attr("name") != Some(name.as_str())),
            "{type_name}: {name} is a version 1 form"
        );
        if declared.contains_key(&format!("{prefix}{}", field.name())) {
            *compared += 1;
        }
    }
    let fields: Vec<_> = message.fields().filter(|f| !is_deprecated(f)).collect();
    let names: Vec<String> = fields.iter().map(|f| camel(f.name())).collect();
    let element_names: Vec<&str> = elements
        .iter()
        .map(|e| e.attr("name").unwrap_or(""))
        .collect();
    assert_eq!(
        element_names, names,
        "{type_name}: elements and fields, in order"
    );

    for (field, element) in fields.iter().zip(elements) {
        let path = format!("{prefix}{}", field.name());
        let proto = declared.get(&path).cloned().unwrap_or_default();
        let (xsd, base) = constraints_of(element, simple);
        let min_occurs: u32 = element
            .attr("minOccurs")
            .unwrap_or("1")
            .parse()
            .expect("minOccurs");
        let max_occurs = element.attr("maxOccurs").unwrap_or("1");
        if field.is_list() {
            assert_eq!(
                min_occurs, proto.min_items,
                "{path}: minOccurs vs min_items"
            );
            let max = if proto.max_items == 0 {
                "unbounded".to_owned()
            } else {
                proto.max_items.to_string()
            };
            assert_eq!(max_occurs, max, "{path}: maxOccurs vs max_items");
        } else {
            assert_eq!(max_occurs, "1", "{path}: a single field");
            // proto3 cannot tell an absent number from zero: a number whose zero is out of range
            // must be there, as if required (the `xml_mapping` fuzz target found the XSD saying
            // otherwise).
            let zero_out_of_range = matches!(field.kind(), Kind::Uint32 | Kind::Double)
                && (proto.min.is_some_and(|min| min > 0.0)
                    || proto.max.is_some_and(|max| max < 0.0));
            assert_eq!(
                min_occurs == 1,
                proto.required || zero_out_of_range,
                "{path}: minOccurs vs required"
            );
        }
        // A required string is non-empty: minLength 1 in the XSD unless a code list says more.
        let implied_min = u32::from(
            proto.required
                && proto.min_len == 0
                && proto.code_list.is_empty()
                && matches!(field.kind(), Kind::String),
        );
        assert_eq!(
            xsd.min_len,
            proto.min_len.max(implied_min),
            "{path}: minLength"
        );
        assert_eq!(xsd.max_len, proto.max_len, "{path}: maxLength");
        assert_eq!(xsd.pattern, proto.pattern, "{path}: pattern");
        assert_eq!(xsd.min, proto.min, "{path}: minInclusive");
        assert_eq!(xsd.max, proto.max, "{path}: maxInclusive");
        assert_eq!(
            xsd.fraction_digits, proto.fraction_digits,
            "{path}: fractionDigits"
        );
        assert_eq!(xsd.code_list, proto.code_list, "{path}: code list");
        // The ids are read from the descriptors: an option that only names them checks nothing,
        // so the compiled constraints leave it out.
        let named = aci_gateway::validate::constraints::declared_on(field);
        assert_eq!(
            appinfo(element, WCO_SOURCE),
            named.wco,
            "{path}: WCO Data Model id"
        );
        assert_eq!(
            appinfo(element, WCO_ROLES_SOURCE),
            named.wco_roles.join(" "),
            "{path}: WCO Data Model ids of the role"
        );
        let is_leaf = !matches!(field.kind(), Kind::Message(m) if m.package_name() == "aci.v1");
        assert!(
            !is_leaf || !named.wco.is_empty(),
            "{path}: a leaf names its WCO Data Model id"
        );
        if declared.contains_key(&path) {
            *compared += 1;
        }
        match field.kind() {
            Kind::Message(inner) if inner.package_name() == "aci.v1" => {
                assert_eq!(
                    base.as_deref(),
                    Some(format!("{}Type", inner.name()).as_str()),
                    "{path}: type"
                );
                if depth < 8 {
                    compare(
                        &inner,
                        &format!("{path}."),
                        complex,
                        simple,
                        declared,
                        compared,
                        depth + 1,
                    );
                }
            }
            Kind::Message(inner) => {
                assert_eq!(inner.full_name(), "google.protobuf.Timestamp", "{path}");
                // A time: xs:dateTime narrowed to what a Timestamp carries (UtcDateTime).
                assert_eq!(base.as_deref(), Some("UtcDateTime"), "{path}: a time");
            }
            Kind::Enum(values) => {
                assert_eq!(
                    base.as_deref(),
                    Some("TransportModeCode"),
                    "{path}: enum type"
                );
                let prefix = "TRANSPORT_MODE_";
                let proto_values: BTreeSet<String> = values
                    .values()
                    .filter(|v| v.number() != 0)
                    .map(|v| v.name().trim_start_matches(prefix).to_owned())
                    .collect();
                assert_eq!(
                    enumeration(simple, "TransportModeCode"),
                    proto_values,
                    "{path}: enum values"
                );
            }
            Kind::String if base.as_deref().is_some_and(|b| b.starts_with("CodeList.")) => {}
            Kind::String => assert_eq!(base.as_deref(), Some("xs:string"), "{path}: a string"),
            Kind::Uint32 => assert_eq!(base.as_deref(), Some("xs:unsignedInt"), "{path}"),
            Kind::Double => assert_eq!(base.as_deref(), Some("xs:decimal"), "{path}"),
            Kind::Bool => assert_eq!(base.as_deref(), Some("xs:boolean"), "{path}"),
            other => panic!("{path}: no XSD mapping for {other:?}"),
        }
    }
}

/// The text of an element's `xs:appinfo` from `source`, or nothing.
fn appinfo(element: &Node, source: &str) -> String {
    element
        .child("annotation")
        .into_iter()
        .flat_map(|a| &a.children)
        .filter(|info| info.name == "appinfo" && info.attr("source") == Some(source))
        .map(|info| info.text.clone())
        .collect()
}

fn enumeration(simple: &HashMap<String, &Node>, name: &str) -> BTreeSet<String> {
    simple[name]
        .child("restriction")
        .expect("restriction")
        .children
        .iter()
        .filter(|f| f.name == "enumeration")
        .map(|f| f.attr("value").expect("value").to_owned())
        .collect()
}

#[test]
fn code_list_types_enumerate_exactly_the_code_list_files() {
    let xsd = parse_xsd(include_str!("../schemas/aci-manifest-2.xsd"));
    let simple: HashMap<String, &Node> = xsd
        .children
        .iter()
        .filter(|n| n.name == "simpleType")
        .map(|t| (t.attr("name").expect("named").to_owned(), t))
        .collect();
    let lists = aci_gateway::validate::codes::CodeLists::builtin();
    let mut checked = 0;
    for name in simple.keys().filter_map(|n| n.strip_prefix("CodeList.")) {
        let list = lists
            .get(name)
            .unwrap_or_else(|| panic!("code list {name} exists"));
        let in_xsd = enumeration(&simple, &format!("CodeList.{name}"));
        assert_eq!(in_xsd.len(), list.len(), "{name}: as many codes");
        assert!(
            in_xsd.iter().all(|code| list.contains(code)),
            "{name}: the same codes"
        );
        checked += 1;
    }
    // Every code list a field names has its type.
    let named: BTreeSet<String> = Validator::standard()
        .constraints()
        .declared()
        .into_iter()
        .map(|(_, c)| c.code_list)
        .filter(|list| !list.is_empty())
        .collect();
    assert_eq!(checked, named.len(), "{named:?}");
}

#[test]
fn the_schema_file_is_what_the_proto_writes() {
    let written = xml_schema::write(pb::descriptor_pool(), CodeLists::builtin());
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/aci-manifest-2.xsd");
    if std::env::var_os("ACI_BLESS").is_some() {
        std::fs::write(&path, &written).expect("write the schema");
    }
    let on_disk = std::fs::read_to_string(&path).expect("read the schema");
    assert!(
        on_disk == written,
        "schemas/aci-manifest-2.xsd is not what the proto says: run `ACI_BLESS=1 cargo test --test schema_parity`"
    );
}

#[test]
fn every_leaf_of_every_path_resolves_to_a_wco_id() {
    // A leaf of a shared message says `role`: the field holding the message names its id.
    let ids = aci_gateway::validate::constraints::wco_ids();
    assert!(ids.len() > 100, "{}", ids.len());
    for (path, id) in &ids {
        assert!(!id.is_empty() && id != "role", "{path}: {id:?}");
    }
    let find = |path: &str| {
        ids.iter()
            .find(|(p, _)| p == path)
            .map(|(_, id)| id.as_str())
    };
    assert_eq!(find("declarant.name"), Some("R124"));
    assert_eq!(find("consignments.consignor.eori"), Some("R021"));
    assert_eq!(find("consignments.buyer.name"), Some("R009"));
    assert_eq!(find("consignments.consignor.address.city"), Some("241"));
    assert_eq!(find("consignments.master_document.number"), Some("D008"));
    assert_eq!(find("itinerary.place_of_unloading.locode"), Some("L013"));
    assert_eq!(find("transport_equipment.size_and_type"), Some("152"));
}
