//! Each content-model construct and facet the compiler supports, on a small schema that uses
//! them all, judged against libxml2 document by document.

use std::process::Command;

use aci_gateway::validate::xsd::{Limits, Schema};

const XSD: &str = r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns="urn:t" targetNamespace="urn:t" elementFormDefault="qualified">
  <xs:element name="Root" type="RootType"/>
  <xs:complexType name="RootType">
    <xs:sequence>
      <xs:element name="Pick" type="PickType"/>
      <xs:element name="Bag" type="BagType"/>
      <xs:element name="Amount" type="AmountType" minOccurs="0" maxOccurs="3"/>
      <xs:element name="Flag" type="xs:boolean" minOccurs="0"/>
      <xs:element name="Day" type="xs:date" minOccurs="0"/>
      <xs:element name="Year" type="xs:gYear" minOccurs="0"/>
      <xs:element name="Count" minOccurs="0">
        <xs:simpleType><xs:restriction base="xs:integer"><xs:minExclusive value="0"/><xs:maxExclusive value="100"/><xs:totalDigits value="2"/></xs:restriction></xs:simpleType>
      </xs:element>
      <xs:element name="Code" minOccurs="0">
        <xs:simpleType><xs:restriction base="xs:token"><xs:length value="3"/></xs:restriction></xs:simpleType>
      </xs:element>
      <xs:element name="Note" minOccurs="0">
        <xs:simpleType><xs:restriction base="xs:normalizedString"><xs:whiteSpace value="collapse"/><xs:maxLength value="5"/></xs:restriction></xs:simpleType>
      </xs:element>
      <xs:element name="Grade" type="Grade" minOccurs="0"/>
    </xs:sequence>
    <xs:attribute name="version" type="xs:positiveInteger" use="required"/>
    <xs:attribute name="lang" type="xs:token" default="en"/>
  </xs:complexType>
  <xs:complexType name="PickType">
    <xs:choice><xs:element name="A" type="xs:string"/><xs:element name="B" type="xs:int" maxOccurs="2"/></xs:choice>
  </xs:complexType>
  <xs:complexType name="BagType">
    <xs:all><xs:element name="X" type="xs:string"/><xs:element name="Y" type="xs:string" minOccurs="0"/></xs:all>
  </xs:complexType>
  <xs:complexType name="AmountType">
    <xs:simpleContent>
      <xs:extension base="xs:decimal">
        <xs:attribute name="currency" use="required">
          <xs:simpleType><xs:restriction base="xs:string"><xs:pattern value="[A-Z]{3}"/></xs:restriction></xs:simpleType>
        </xs:attribute>
      </xs:extension>
    </xs:simpleContent>
  </xs:complexType>
  <xs:simpleType name="Grade">
    <xs:restriction base="Letter"><xs:enumeration value="A"/><xs:enumeration value="B"/></xs:restriction>
  </xs:simpleType>
  <xs:simpleType name="Letter">
    <xs:restriction base="xs:string"><xs:pattern value="[A-Z]"/></xs:restriction>
  </xs:simpleType>
</xs:schema>"#;

fn doc(root_attrs: &str, body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Root xmlns=\"urn:t\" {root_attrs}>{body}</Root>"
    )
}

#[test]
fn every_construct_agrees_with_libxml2() {
    let schema = Schema::compile(XSD).expect("compiles");
    let base = "<Pick><A>a</A></Pick><Bag><X>x</X></Bag>";
    let cases: Vec<(&str, String)> = vec![
        ("minimal", doc("version=\"1\"", base)),
        ("no version", doc("", base)),
        ("version zero", doc("version=\"0\"", base)),
        ("lang given", doc("version=\"2\" lang=\"fr\"", base)),
        (
            "undeclared attribute",
            doc("version=\"1\" colour=\"red\"", base),
        ),
        (
            "choice B twice",
            doc(
                "version=\"1\"",
                "<Pick><B>1</B><B>2</B></Pick><Bag><X>x</X></Bag>",
            ),
        ),
        (
            "choice B thrice",
            doc(
                "version=\"1\"",
                "<Pick><B>1</B><B>2</B><B>3</B></Pick><Bag><X>x</X></Bag>",
            ),
        ),
        (
            "choice both",
            doc(
                "version=\"1\"",
                "<Pick><A>a</A><B>1</B></Pick><Bag><X>x</X></Bag>",
            ),
        ),
        (
            "choice empty",
            doc("version=\"1\"", "<Pick/><Bag><X>x</X></Bag>"),
        ),
        (
            "choice int out of range",
            doc(
                "version=\"1\"",
                "<Pick><B>2147483648</B></Pick><Bag><X>x</X></Bag>",
            ),
        ),
        (
            "all reordered",
            doc(
                "version=\"1\"",
                "<Pick><A>a</A></Pick><Bag><Y>y</Y><X>x</X></Bag>",
            ),
        ),
        (
            "all missing X",
            doc("version=\"1\"", "<Pick><A>a</A></Pick><Bag><Y>y</Y></Bag>"),
        ),
        (
            "all X twice",
            doc(
                "version=\"1\"",
                "<Pick><A>a</A></Pick><Bag><X>x</X><X>x</X></Bag>",
            ),
        ),
        (
            "amount",
            doc(
                "version=\"1\"",
                &format!("{base}<Amount currency=\"EUR\">12.50</Amount>"),
            ),
        ),
        (
            "amount no currency",
            doc("version=\"1\"", &format!("{base}<Amount>12.50</Amount>")),
        ),
        (
            "amount bad currency",
            doc(
                "version=\"1\"",
                &format!("{base}<Amount currency=\"eur\">1</Amount>"),
            ),
        ),
        (
            "amount not a number",
            doc(
                "version=\"1\"",
                &format!("{base}<Amount currency=\"EUR\">1,5</Amount>"),
            ),
        ),
        (
            "amount four times",
            doc(
                "version=\"1\"",
                &format!("{base}{}", "<Amount currency=\"EUR\">1</Amount>".repeat(4)),
            ),
        ),
        (
            "amount with child",
            doc(
                "version=\"1\"",
                &format!("{base}<Amount currency=\"EUR\"><X/></Amount>"),
            ),
        ),
        (
            "flag",
            doc("version=\"1\"", &format!("{base}<Flag>1</Flag>")),
        ),
        (
            "flag yes",
            doc("version=\"1\"", &format!("{base}<Flag>yes</Flag>")),
        ),
        (
            "day",
            doc("version=\"1\"", &format!("{base}<Day>2024-02-29</Day>")),
        ),
        (
            "day not leap",
            doc("version=\"1\"", &format!("{base}<Day>2023-02-29</Day>")),
        ),
        (
            "day with zone",
            doc("version=\"1\"", &format!("{base}<Day>2024-02-28Z</Day>")),
        ),
        (
            "year",
            doc("version=\"1\"", &format!("{base}<Year>2026</Year>")),
        ),
        (
            "year short",
            doc("version=\"1\"", &format!("{base}<Year>26</Year>")),
        ),
        (
            "count",
            doc("version=\"1\"", &format!("{base}<Count>99</Count>")),
        ),
        (
            "count zero",
            doc("version=\"1\"", &format!("{base}<Count>0</Count>")),
        ),
        (
            "count hundred",
            doc("version=\"1\"", &format!("{base}<Count>100</Count>")),
        ),
        (
            "count leading zeros",
            doc("version=\"1\"", &format!("{base}<Count>007</Count>")),
        ),
        (
            "code",
            doc("version=\"1\"", &format!("{base}<Code> ABC </Code>")),
        ),
        (
            "code long",
            doc("version=\"1\"", &format!("{base}<Code>ABCD</Code>")),
        ),
        (
            "note collapsed",
            doc("version=\"1\"", &format!("{base}<Note>  a   b  </Note>")),
        ),
        (
            "note long",
            doc("version=\"1\"", &format!("{base}<Note>abcdef</Note>")),
        ),
        (
            "grade",
            doc("version=\"1\"", &format!("{base}<Grade>A</Grade>")),
        ),
        (
            "grade not enumerated",
            doc("version=\"1\"", &format!("{base}<Grade>C</Grade>")),
        ),
        (
            "grade not a letter",
            doc("version=\"1\"", &format!("{base}<Grade>AA</Grade>")),
        ),
        (
            "order",
            doc(
                "version=\"1\"",
                &format!("{base}<Year>2026</Year><Day>2026-01-01</Day>"),
            ),
        ),
        (
            "text in element-only",
            doc("version=\"1\"", &format!("{base}stray")),
        ),
    ];
    let dir = tempfile::tempdir().expect("tmp");
    let xsd = dir.path().join("t.xsd");
    std::fs::write(&xsd, XSD).expect("write");
    let mut files = Vec::new();
    for (i, (_, text)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("{i:03}.xml"));
        std::fs::write(&file, text).expect("write");
        files.push(file.display().to_string());
    }
    let output = Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(&xsd)
        .args(&files)
        .output()
        .expect("xmllint is needed (apt-get install libxml2-utils)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut valid = 0;
    for ((name, text), file) in cases.iter().zip(&files) {
        let theirs = stderr.contains(&format!("{file} validates"));
        let ours = schema.validate(text.as_bytes(), &Limits::default());
        valid += usize::from(theirs);
        assert_eq!(ours.is_valid(), theirs, "{name}: ours {:?}", ours.findings);
    }
    assert!(
        valid >= 10 && valid <= cases.len() - 10,
        "both verdicts exercised: {valid}"
    );
}
