//! Hostile and broken XML is refused fast, with a clear code, and never panics; schemas using
//! constructs the compiler does not support are refused at load, naming the construct and line.

use std::time::{Duration, Instant};

use aci_gateway::validate::xsd::{Limits, Schema, XmlCode};

// Version 1 documents and schema: the validator is the same for both versions.
const XSD: &str = include_str!("../schemas/aci-manifest-1.xsd");
const SEA: &str = include_str!("../schemas/examples/v1/sea-f10.xml");

/// The code of the finding that ended the pass (hostile input stops it), checking it was quick.
fn first_code(schema: &Schema, doc: &[u8]) -> XmlCode {
    let started = Instant::now();
    let report = schema.validate(doc, &Limits::default());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    report.findings.last().map(|f| f.code).expect("refused")
}

#[test]
fn hostile_documents_are_refused_with_their_code() {
    let schema = Schema::compile(XSD).expect("schema");
    let billion_laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Manifest xmlns="urn:aci-gateway:manifest:1"><Lrn>&lol3;</Lrn></Manifest>"#;
    let external = r#"<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]><Manifest xmlns="urn:aci-gateway:manifest:1"><Lrn>&x;</Lrn></Manifest>"#;
    let undeclared_entity = SEA.replace("<Lrn>SEA", "<Lrn>&nope;SEA");
    let deep = format!(
        "<Manifest xmlns=\"urn:aci-gateway:manifest:1\">{}{}</Manifest>",
        "<Itinerary>".repeat(10_000),
        "</Itinerary>".repeat(10_000)
    );
    let huge_text = SEA.replace(
        "<Lrn>SEA-2026-000001</Lrn>",
        &format!("<Lrn>{}</Lrn>", "A".repeat(200_000)),
    );
    let many_attributes = SEA.replace(
        "<Lrn>",
        &format!(
            "<Lrn {}>",
            (0..100)
                .map(|i| format!("a{i}=\"1\""))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );
    let many_elements = format!(
        "<Manifest xmlns=\"urn:aci-gateway:manifest:1\">{}</Manifest>",
        "<Lrn>x</Lrn>".repeat(150_000)
    );
    let cases: Vec<(&str, Vec<u8>, XmlCode)> = vec![
        ("billion laughs", billion_laughs.into(), XmlCode::Forbidden),
        ("external entity", external.into(), XmlCode::Forbidden),
        (
            "undeclared entity",
            undeclared_entity.into(),
            XmlCode::Forbidden,
        ),
        ("deep nesting", deep.into(), XmlCode::Limit),
        ("huge text", huge_text.into(), XmlCode::Limit),
        ("many attributes", many_attributes.into(), XmlCode::Limit),
        ("many elements", many_elements.into(), XmlCode::Limit),
        (
            "invalid UTF-8",
            [SEA.as_bytes(), b"\xff\xfe"].concat(),
            XmlCode::NotWellFormed,
        ),
        (
            "NUL",
            SEA.replace("SEA-2026", "SEA\u{0}2026").into(),
            XmlCode::NotWellFormed,
        ),
        (
            "truncated",
            SEA[..SEA.len() / 2].into(),
            XmlCode::NotWellFormed,
        ),
        (
            "two roots",
            format!("{SEA}<Manifest xmlns=\"urn:aci-gateway:manifest:1\"/>").into(),
            XmlCode::NotWellFormed,
        ),
        (
            "mismatched tags",
            SEA.replace("</Lrn>", "</Lrx>").into(),
            XmlCode::NotWellFormed,
        ),
        (
            "latin-1",
            SEA.replace("encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\"")
                .into(),
            XmlCode::Forbidden,
        ),
        (
            "wrong namespace",
            SEA.replace("urn:aci-gateway:manifest:1", "urn:evil").into(),
            XmlCode::Namespace,
        ),
        ("empty", Vec::new(), XmlCode::NotWellFormed),
        (
            "lowercase doctype",
            format!("<!doctype Manifest>{SEA}").into(),
            XmlCode::Forbidden,
        ),
        (
            "malformed character reference",
            SEA.replace("<Lrn>SEA", "<Lrn>&#xZ;SEA").into(),
            XmlCode::Forbidden,
        ),
    ];
    for (name, doc, code) in cases {
        assert_eq!(first_code(&schema, &doc), code, "{name}");
    }
    // A start tag that cannot be read is reported at that element, not at its parent.
    let attributes = SEA.replace("<Lrn>", "<Lrn a='1' a='2'>");
    let report = schema.validate(attributes.as_bytes(), &Limits::default());
    let finding = report.findings.last().expect("refused");
    assert_eq!(
        (finding.code, finding.path.as_str()),
        (XmlCode::NotWellFormed, "/Manifest/Lrn"),
        "{finding:?}"
    );
    let oversize = vec![b' '; 5 * 1024 * 1024];
    assert_eq!(first_code(&schema, &oversize), XmlCode::Limit, "oversize");
    // After all that, a valid document is still valid.
    assert!(
        schema
            .validate(SEA.as_bytes(), &Limits::default())
            .is_valid()
    );
}

#[test]
fn findings_carry_line_column_and_path_and_are_all_reported() {
    let schema = Schema::compile(XSD).expect("schema");
    let doc = include_str!("../schemas/examples/invalid/sea-f10.xml");
    let report = schema.validate(doc.as_bytes(), &Limits::default());
    let found: Vec<(usize, &str, XmlCode)> = report
        .findings
        .iter()
        .map(|f| (f.line, f.path.as_str(), f.code))
        .collect();
    assert_eq!(
        found,
        [
            (
                37,
                "/Manifest/Itinerary[1]/PlaceOfFirstEntry[1]/Locode[1]",
                XmlCode::InvalidValue
            ),
            (
                83,
                "/Manifest/Consignments[1]/GoodsItems[1]/HsCode[1]",
                XmlCode::InvalidValue
            ),
        ]
    );
    assert!(report.findings.iter().all(|f| f.column > 1));
}

#[test]
fn unsupported_schema_constructs_are_refused_at_load() {
    let wrap = |body: &str| {
        format!(
            "<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" xmlns=\"urn:t\" targetNamespace=\"urn:t\" elementFormDefault=\"qualified\">\n{body}\n</xs:schema>"
        )
    };
    let cases = [
        (
            "<xs:element name=\"a\"><xs:complexType><xs:sequence><xs:any/></xs:sequence></xs:complexType></xs:element>",
            "xs:any",
        ),
        ("<xs:group name=\"g\"><xs:sequence/></xs:group>", "xs:group"),
        (
            "<xs:element name=\"a\" type=\"xs:duration\"/>",
            "xs:duration",
        ),
        (
            "<xs:simpleType name=\"l\"><xs:list itemType=\"xs:string\"/></xs:simpleType>",
            "xs:list",
        ),
        (
            "<xs:element name=\"a\" substitutionGroup=\"b\" type=\"xs:string\"/>",
            "substitutionGroup",
        ),
        (
            "<xs:simpleType name=\"p\"><xs:restriction base=\"xs:string\"><xs:pattern value=\"\\i\\c*\"/></xs:restriction></xs:simpleType>",
            "\\i",
        ),
    ];
    for (body, construct) in cases {
        let error = Schema::compile(&wrap(body)).expect_err(construct);
        let message = error.to_string();
        assert!(message.contains("line 2"), "{construct}: {message}");
        assert!(message.contains(construct), "{construct}: {message}");
    }
    assert!(Schema::compile(&wrap("<xs:element name=\"a\" type=\"xs:string\"/>")).is_ok());
}

/// Each element's namespace is the binding in scope where it stands: an inner element that
/// binds another default namespace is refused, its siblings after it are not, and a binding
/// written with character references is still the target namespace.
#[test]
fn each_element_is_read_in_the_namespace_bound_where_it_stands() {
    let schema = Schema::compile(XSD).expect("schema");
    let codes = |doc: &str| -> Vec<(XmlCode, String)> {
        let report = schema.validate(doc.as_bytes(), &Limits::default());
        report
            .findings
            .into_iter()
            .map(|f| (f.code, f.path))
            .collect()
    };
    assert_eq!(codes(SEA), []);
    let referenced = SEA.replace(
        "xmlns=\"urn:aci-gateway:manifest:1\"",
        "xmlns=\"urn&#58;aci-gateway:manifest&#x3A;1\"",
    );
    assert_ne!(referenced, SEA);
    assert_eq!(codes(&referenced), []);
    let rebound = SEA.replacen("<Lrn>", "<Lrn xmlns=\"urn:evil\">", 1);
    let found = codes(&rebound);
    let outside: Vec<_> = found
        .iter()
        .filter(|(code, _)| *code == XmlCode::Namespace)
        .collect();
    assert_eq!(
        outside,
        [&(XmlCode::Namespace, "/Manifest".to_owned())],
        "only the rebound element is outside the namespace: {found:?}"
    );
    let prefixed = SEA.replacen(
        "<Manifest xmlns=\"urn:aci-gateway:manifest:1\">",
        "<m:Manifest xmlns:m=\"urn:aci-gateway:manifest:1\" xmlns=\"urn:aci-gateway:manifest:1\">",
        1,
    );
    let prefixed = prefixed.replacen("</Manifest>", "</m:Manifest>", 1);
    assert_eq!(codes(&prefixed), []);
}
