//! XML Schema validation without a DOM: [`compile`] turns an XSD into element declarations,
//! content-model state machines (`model`) and compiled simple types ([`types`]);
//! [`Schema::validate`] checks a document in one streaming pass over its tokens (`pass`, reading
//! `lexer`, with the character rules of `chars`). [`Schema::validate_with`] also hands
//! each element's content, as validated, to a [`Content`] sink, so a document is read into
//! another form in the same pass.
//!
//! Hostile input is refused early and cheaply: a document over the size limit is not parsed;
//! a DOCTYPE (so any DTD, entity declaration or external resource), an entity reference other
//! than the five predefined, a non-UTF-8 encoding, characters XML forbids, too deep nesting, too
//! many elements or attributes, or too long text end the pass with a coded finding.
//! `xsi:schemaLocation` is ignored: nothing is ever fetched.

mod chars;
mod compile;
mod lexer;
mod model;
mod pass;
pub mod types;

use std::collections::HashMap;

pub use self::compile::{SchemaError, compile};
use self::types::SimpleType;

const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// The namespace of a document's element, read no further than its start tag and only in the
/// first [`Limits::max_text`] bytes (a longer prolog is refused by the pass anyway); `None` when
/// it has none or the document cannot be read that far.
pub fn document_namespace(xml: &[u8]) -> Option<String> {
    let head = &xml[..xml.len().min(Limits::default().max_text)];
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).ok()?,
    };
    let mut lexer = lexer::Lexer::new(text, Limits::default().max_attributes);
    loop {
        match lexer.next_token().ok()? {
            lexer::Token::Start { name, .. } => {
                return lexer.namespace(name.prefix).map(str::to_owned);
            }
            lexer::Token::Eof => return None,
            _ => {}
        }
    }
}

/// A compiled schema.
#[derive(Debug)]
pub struct Schema {
    pub target_namespace: String,
    /// Global elements, by local name: the possible document elements.
    roots: HashMap<String, usize>,
    elements: Vec<ElementDecl>,
    complex: Vec<ComplexType>,
    simple: Vec<SimpleType>,
}

#[derive(Debug)]
struct ElementDecl {
    name: String,
    ty: TypeRef,
    min: u32,
    /// `None`: unbounded.
    max: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
enum TypeRef {
    Simple(usize),
    Complex(usize),
}

#[derive(Debug, Default)]
struct ComplexType {
    model: Model,
    attributes: Vec<Attribute>,
    /// Text content of this simple type (simpleContent); otherwise element-only content.
    simple_content: Option<usize>,
}

#[derive(Debug, Default)]
enum Model {
    #[default]
    Empty,
    Sequence(Vec<usize>),
    Choice(Vec<usize>),
    All(Vec<usize>),
}

#[derive(Debug)]
struct Attribute {
    name: String,
    simple: usize,
    required: bool,
    default: Option<String>,
}

/// Bounds on what a document may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_elements: usize,
    pub max_attributes: usize,
    pub max_text: usize,
    /// Findings reported before the report says it is truncated.
    pub max_findings: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 4 * 1024 * 1024,
            max_depth: 32,
            max_elements: 100_000,
            max_attributes: 16,
            max_text: 64 * 1024,
            max_findings: 200,
        }
    }
}

/// What kind of problem a finding is; the stable codes are [`XmlCode::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XmlCode {
    NotWellFormed,
    Forbidden,
    Limit,
    Namespace,
    UnexpectedElement,
    MissingElement,
    InvalidValue,
    UnknownAttribute,
    MissingAttribute,
    TextNotAllowed,
}

impl XmlCode {
    pub fn as_str(self) -> &'static str {
        match self {
            XmlCode::NotWellFormed => "xml.not_well_formed",
            XmlCode::Forbidden => "xml.forbidden",
            XmlCode::Limit => "xml.limit",
            XmlCode::Namespace => "xsd.namespace",
            XmlCode::UnexpectedElement => "xsd.unexpected_element",
            XmlCode::MissingElement => "xsd.missing_element",
            XmlCode::InvalidValue => "xsd.invalid_value",
            XmlCode::UnknownAttribute => "xsd.unknown_attribute",
            XmlCode::MissingAttribute => "xsd.missing_attribute",
            XmlCode::TextNotAllowed => "xsd.text_not_allowed",
        }
    }
}

/// One problem with a document, where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlFinding {
    pub line: usize,
    pub column: usize,
    /// Element path, e.g. `/Manifest/Consignments[1]/GoodsItems[3]/HsCode`.
    pub path: String,
    pub code: XmlCode,
    pub message: String,
}

/// Every finding about a document.
#[derive(Debug, Clone, Default)]
pub struct XmlReport {
    pub findings: Vec<XmlFinding>,
    /// More findings existed than the limit.
    pub truncated: bool,
}

impl XmlReport {
    pub fn is_valid(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Receives a document's content during validation, element by element, by declaration (see
/// [`Schema::name`]). Undeclared elements are not reported; what a sink builds from a document
/// with findings is meaningless and is to be discarded.
pub trait Content {
    /// An element with element content opens.
    fn open(&mut self, decl: usize);
    /// An element with a simple value ends; `value` is whitespace-normalized as its type says.
    fn value(&mut self, decl: usize, value: &str);
    /// The element opened last closes.
    fn close(&mut self, decl: usize);
}

/// A sink that keeps nothing.
struct Discard;

impl Content for Discard {
    fn open(&mut self, _: usize) {}
    fn value(&mut self, _: usize, _: &str) {}
    fn close(&mut self, _: usize) {}
}

impl Schema {
    /// Compiles an XSD document.
    pub fn compile(xsd: &str) -> Result<Schema, SchemaError> {
        compile(xsd)
    }

    /// Validates a document against the schema: all findings, in document order.
    pub fn validate(&self, xml: &[u8], limits: &Limits) -> XmlReport {
        self.validate_with(xml, limits, &mut Discard)
    }

    /// Validates a document and hands its content to `content` in the same pass.
    pub fn validate_with(
        &self,
        xml: &[u8],
        limits: &Limits,
        content: &mut dyn Content,
    ) -> XmlReport {
        pass::validate(self, xml, limits, content)
    }

    fn element(&self, id: usize) -> &ElementDecl {
        &self.elements[id]
    }

    /// How many element declarations the schema has (declarations are `0..declarations()`).
    pub fn declarations(&self) -> usize {
        self.elements.len()
    }

    /// The element name a declaration declares.
    pub fn name(&self, decl: usize) -> &str {
        &self.element(decl).name
    }

    /// The declarations of the children an element declared as `decl` may have.
    pub fn children(&self, decl: usize) -> &[usize] {
        let TypeRef::Complex(id) = self.element(decl).ty else {
            return &[];
        };
        match &self.complex[id].model {
            Model::Sequence(parts) | Model::Choice(parts) | Model::All(parts) => parts,
            Model::Empty => &[],
        }
    }

    /// Whether an element declared as `decl` has a simple value (rather than element content).
    pub fn has_value(&self, decl: usize) -> bool {
        self.whitespace(decl).is_some()
    }

    /// The declaration of a document element.
    pub fn root(&self, name: &str) -> Option<usize> {
        self.roots.get(name).copied()
    }

    /// How the text of an element with a simple value is normalized before it is checked.
    fn whitespace(&self, decl: usize) -> Option<types::Whitespace> {
        match self.element(decl).ty {
            TypeRef::Simple(id) => Some(self.simple[id].whitespace),
            TypeRef::Complex(id) => self.complex[id]
                .simple_content
                .map(|s| self.simple[s].whitespace),
        }
    }
}
