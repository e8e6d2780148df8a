//! The data set of every filing type, walked from its table (`schemas/datasets.tsv`), not from
//! a hand-picked list: for each type and each element, a filing of that type without an element
//! its set requires is refused with code 13, one with an element its set does not allow with
//! code 15, each naming the element and the data set; an optional element is neither. Each
//! filing starts from the sample of its type (valid as it is), one element changed.

use std::time::SystemTime;

use aci_gateway::pb::{self, Manifest};
use aci_gateway::validate::Validator;
use aci_gateway::validate::codes::{CodeLists, FILING_TYPES};
use aci_gateway::validate::datasets::{BUILTIN, Cell, DataSets};
use prost_reflect::{DynamicMessage, Kind, ReflectMessage, Value};

/// The sample of a filing type (`schemas/examples/<mode>-<type>.json`, the first mode of the
/// type in the catalogue).
fn sample(mode: &str, filing_type: &str) -> Manifest {
    let name = match mode {
        "inland_waterway" => "inland",
        other => other,
    };
    let path = format!(
        "{}/schemas/examples/{name}-{}.json",
        env!("CARGO_MANIFEST_DIR"),
        filing_type.to_lowercase()
    );
    let json = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    pb::from_json(&json).expect("sample")
}

/// A value that is present: a default message, a one-item list, a non-empty text, a one.
fn present(kind: &Kind, list: bool) -> Value {
    let one = match kind {
        Kind::Message(message) => Value::Message(DynamicMessage::new(message.clone())),
        Kind::String => Value::String("X".into()),
        Kind::Bool => Value::Bool(true),
        Kind::Uint32 => Value::U32(1),
        Kind::Uint64 => Value::U64(1),
        Kind::Int32 | Kind::Enum(_) => Value::I32(1),
        Kind::Int64 => Value::I64(1),
        Kind::Double => Value::F64(1.0),
        other => panic!("no present value for {other:?}"),
    };
    if list { Value::List(vec![one]) } else { one }
}

/// Sets (`add`) or clears the element at `path` in every instance of its parent.
fn edit(message: &mut DynamicMessage, path: &[&str], add: bool) {
    let field = message
        .descriptor()
        .get_field_by_name(path[0])
        .unwrap_or_else(|| panic!("no field {}", path[0]));
    if path.len() == 1 {
        if add {
            message.set_field(&field, present(&field.kind(), field.is_list()));
        } else {
            message.clear_field(&field);
        }
        return;
    }
    match message.get_field_mut(&field) {
        Value::List(items) => {
            for item in items {
                if let Value::Message(inner) = item {
                    edit(inner, &path[1..], add);
                }
            }
        }
        Value::Message(inner) => edit(inner, &path[1..], add),
        other => panic!("{} is not a message: {other:?}", path[0]),
    }
}

#[test]
fn every_data_set_requires_and_refuses_what_its_table_says() {
    let validator = Validator::standard();
    let table = DataSets::parse(BUILTIN).expect("the table");
    let catalogue = CodeLists::builtin().list(FILING_TYPES);
    let now = SystemTime::now();
    let mut checked = 0;
    for (column, filing_type) in table.types.iter().enumerate() {
        let mode = catalogue
            .column(filing_type, 1)
            .and_then(|modes| modes.split(',').next())
            .expect("the type's mode");
        let base = sample(mode, filing_type);
        assert_eq!(&base.filing_type, filing_type);
        for row in &table.rows {
            let segments: Vec<&str> = row.path.split('.').collect();
            let name = segments.last().expect("a path");
            let findings_for = |add: bool| {
                let mut dynamic = pb::to_dynamic(&base);
                edit(&mut dynamic, &segments, add);
                let manifest: Manifest = dynamic.transcode_to().expect("a manifest");
                validator
                    .check(&manifest, now)
                    .findings()
                    .iter()
                    .filter(|f| f.rule.starts_with("dataset.") && f.path.ends_with(name))
                    .map(|f| (f.code.as_str(), f.rule, f.message.clone()))
                    .collect::<Vec<_>>()
            };
            let (without, with) = (findings_for(false), findings_for(true));
            let context = format!("{filing_type} / {}", row.path);
            match row.cells[column] {
                Cell::Required => {
                    assert!(with.is_empty(), "{context}: {with:?}");
                    assert!(
                        without.iter().any(|(code, rule, message)| *code == "13"
                            && *rule == "dataset.required"
                            && message.contains(filing_type.as_str())
                            && message.contains(name)),
                        "{context}: missing is not refused with 13: {without:?}"
                    );
                }
                Cell::NotAllowed => {
                    assert!(without.is_empty(), "{context}: {without:?}");
                    assert!(
                        with.iter().any(|(code, rule, message)| *code == "15"
                            && *rule == "dataset.not_allowed"
                            && message.contains(filing_type.as_str())
                            && message.contains(name)),
                        "{context}: present is not refused with 15: {with:?}"
                    );
                }
                Cell::Optional => {
                    assert!(without.is_empty() && with.is_empty(), "{context}");
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, table.types.len() * table.rows.len());
}

/// An XML filing is checked against its data set too (its constraints were the XML schema's).
#[test]
fn an_xml_filing_is_checked_against_its_data_set() {
    let validator = Validator::standard();
    let xml = String::from_utf8(include_bytes!("../schemas/examples/sea-f10.xml").to_vec())
        .expect("utf-8")
        .replace(
            "<FilingType>F10</FilingType>",
            "<FilingType>F15</FilingType>",
        );
    let refused = validator
        .validate_xml(
            xml.as_bytes(),
            &aci_gateway::validate::xsd::Limits::default(),
            SystemTime::now(),
        )
        .expect_err("an F15 without its master document");
    let finding = refused
        .findings()
        .iter()
        .find(|f| f.rule == "dataset.required")
        .expect("the data set's finding");
    assert_eq!(finding.path, "consignments[0].master_document");
    assert!(finding.message.contains("F15"), "{}", finding.message);
}
