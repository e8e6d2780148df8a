//! XML Schema validation without a DOM: [`compile`] turns an XSD into element declarations,
//! content-model state machines and compiled simple types; [`Schema::validate`] checks a
//! document in one streaming pass over quick-xml events. [`Schema::validate_with`] also hands
//! each element's content, as validated, to a [`Content`] sink, so a document is read into
//! another form in the same pass.
//!
//! Hostile input is refused early and cheaply: a document over the size limit is not parsed;
//! a DOCTYPE (so any DTD, entity declaration or external resource), an entity reference other
//! than the five predefined, a non-UTF-8 encoding, characters XML forbids, too deep nesting, too
//! many elements or attributes, or too long text end the pass with a coded finding.
//! `xsi:schemaLocation` is ignored: nothing is ever fetched.

mod compile;
pub mod types;

use std::collections::HashMap;

use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

pub use self::compile::{SchemaError, compile};
use self::types::SimpleType;

const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

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

/// Where the pass is inside one open element.
struct Frame {
    /// `None` for an element being skipped (unexpected, or inside a simple value).
    decl: Option<usize>,
    /// The element's name when it has no declaration (rare: only for findings).
    undeclared_name: Option<String>,
    /// Position among same-named siblings, from 1 (the `[n]` of paths).
    index: u32,
    state: ModelState,
    /// Whether non-whitespace text appeared in element-only content.
    stray_text: bool,
    /// Where this element's children's counts start in [`Pass::counts`].
    counts_start: usize,
    /// Byte offset of the start tag, for findings about the element as a whole.
    offset: usize,
}

impl Frame {
    fn holds_text(&self, schema: &Schema) -> bool {
        self.decl.is_some_and(|d| match schema.element(d).ty {
            TypeRef::Simple(_) => true,
            TypeRef::Complex(id) => schema.complex[id].simple_content.is_some(),
        })
    }
}

/// Progress through a content model.
#[derive(Default)]
enum ModelState {
    #[default]
    None,
    Sequence {
        position: usize,
        count: u32,
    },
    Choice {
        chosen: Option<usize>,
        count: u32,
    },
    All {
        seen: Vec<u32>,
    },
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
        let mut pass = Pass {
            schema: self,
            limits,
            content,
            report: XmlReport::default(),
            text: "",
            frames: Vec::new(),
            counts: Vec::new(),
            value: String::new(),
            line_starts: None,
        };
        pass.run(xml);
        pass.report
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

struct Pass<'s, 'c> {
    schema: &'s Schema,
    limits: &'s Limits,
    content: &'c mut dyn Content,
    report: XmlReport,
    text: &'s str,
    frames: Vec<Frame>,
    /// Children seen per declaration, for their `[n]`: each open element's, one after another.
    counts: Vec<(usize, u32)>,
    /// The text of the simple value being read (values do not nest).
    value: String,
    /// Offsets where lines start, built at the first finding (so a valid document never pays).
    line_starts: Option<Vec<usize>>,
}

/// Ends the pass: the document cannot be read further.
struct Fatal;

impl<'s> Pass<'s, '_> {
    /// Line and column (in characters) of a byte offset.
    fn position(&mut self, offset: usize) -> (usize, usize) {
        let text = self.text.as_bytes();
        let starts = self.line_starts.get_or_insert_with(|| {
            std::iter::once(0)
                .chain(
                    text.iter()
                        .enumerate()
                        .filter(|&(_, &b)| b == b'\n')
                        .map(|(i, _)| i + 1),
                )
                .collect()
        });
        let offset = offset.min(text.len());
        let line = starts.partition_point(|&start| start <= offset);
        let line_start = starts[line - 1];
        let column = 1 + String::from_utf8_lossy(&text[line_start..offset])
            .chars()
            .count();
        (line, column)
    }

    fn path(&self) -> String {
        let mut path = String::new();
        for (depth, frame) in self.frames.iter().enumerate() {
            path.push('/');
            match (frame.decl, &frame.undeclared_name) {
                (Some(decl), _) => path.push_str(&self.schema.element(decl).name),
                (None, Some(name)) => path.push_str(name),
                (None, None) => path.push('?'),
            }
            if depth > 0 {
                path.push_str(&format!("[{}]", frame.index));
            }
        }
        path
    }

    fn find(&mut self, offset: usize, code: XmlCode, message: String) {
        let path = self.path();
        self.find_at(offset, path, code, message);
    }

    fn find_at(&mut self, offset: usize, path: String, code: XmlCode, message: String) {
        // The finding that ends the pass is always kept, past the cap: it says why it stopped.
        let ends_pass = matches!(
            code,
            XmlCode::NotWellFormed | XmlCode::Forbidden | XmlCode::Limit
        );
        if self.report.findings.len() >= self.limits.max_findings && !ends_pass {
            self.report.truncated = true;
            return;
        }
        let (line, column) = self.position(offset);
        self.report.findings.push(XmlFinding {
            line,
            column,
            path,
            code,
            message,
        });
    }

    fn run(&mut self, xml: &'s [u8]) {
        if xml.len() > self.limits.max_bytes {
            self.report.findings.push(XmlFinding {
                line: 1,
                column: 1,
                path: String::new(),
                code: XmlCode::Limit,
                message: format!(
                    "the document has {} bytes; the limit is {}",
                    xml.len(),
                    self.limits.max_bytes
                ),
            });
            return;
        }
        let text = match std::str::from_utf8(xml) {
            Ok(text) => text,
            Err(e) => {
                self.text = std::str::from_utf8(&xml[..e.valid_up_to()]).unwrap_or_default();
                self.find(
                    e.valid_up_to(),
                    XmlCode::NotWellFormed,
                    "the document is not valid UTF-8".into(),
                );
                return;
            }
        };
        self.text = text;
        if let Some(offset) = forbidden_char(text.as_bytes()) {
            self.find(
                offset,
                XmlCode::NotWellFormed,
                "the document contains a character XML forbids".into(),
            );
            return;
        }
        let _ = self.events(text);
    }

    fn events(&mut self, text: &'s str) -> Result<(), Fatal> {
        let mut reader = NsReader::from_str(text);
        let mut elements = 0usize;
        let mut root_seen = false;
        loop {
            let offset = reader.buffer_position() as usize;
            // Namespaces are resolved for start tags only (in `start`): resolving every event
            // moved each one through the resolver, for nothing but end tags.
            let event = match reader.read_event() {
                Ok(event) => event,
                Err(e) => {
                    let at = (reader.error_position() as usize).max(offset);
                    self.find(at, XmlCode::NotWellFormed, format!("not well-formed: {e}"));
                    return Err(Fatal);
                }
            };
            match event {
                Event::Decl(decl) => {
                    if let Some(Ok(encoding)) = decl.encoding()
                        && !encoding.eq_ignore_ascii_case("utf-8")
                    {
                        self.find(
                            offset,
                            XmlCode::Forbidden,
                            format!("encoding {encoding:?}: only UTF-8 is accepted"),
                        );
                        return Err(Fatal);
                    }
                }
                Event::DocType(_) => {
                    self.find(
                        offset,
                        XmlCode::Forbidden,
                        "a DOCTYPE (DTD, entity declarations) is not accepted".into(),
                    );
                    return Err(Fatal);
                }
                Event::Start(ref e) | Event::Empty(ref e) => {
                    let empty = matches!(event, Event::Empty(_));
                    if root_seen && self.frames.is_empty() {
                        self.find(
                            offset,
                            XmlCode::NotWellFormed,
                            "more than one document element".into(),
                        );
                        return Err(Fatal);
                    }
                    root_seen = true;
                    elements += 1;
                    if elements > self.limits.max_elements {
                        self.find(
                            offset,
                            XmlCode::Limit,
                            format!("more than {} elements", self.limits.max_elements),
                        );
                        return Err(Fatal);
                    }
                    if self.frames.len() >= self.limits.max_depth {
                        self.find(
                            offset,
                            XmlCode::Limit,
                            format!("nesting deeper than {}", self.limits.max_depth),
                        );
                        return Err(Fatal);
                    }
                    let (ns, _) = reader.resolver().resolve_element(e.name());
                    let in_target = matches!(ns, ResolveResult::Bound(n) if n.into_inner() == self.schema.target_namespace);
                    self.start(&reader, e, in_target, offset)?;
                    if empty {
                        self.end(offset);
                    }
                }
                Event::End(_) => self.end(offset),
                Event::Text(t) => {
                    let content = t.xml10_content();
                    self.text_content(&content, offset)?;
                }
                Event::CData(c) => {
                    let content: String = c.as_ref().to_owned();
                    self.text_content(&content, offset)?;
                }
                Event::GeneralRef(r) => {
                    let Some(c) = resolve_reference(&r) else {
                        let name: &str = r.as_ref();
                        self.find(
                            offset,
                            XmlCode::Forbidden,
                            format!(
                                "&{name}; is not a predefined entity or a valid character reference"
                            ),
                        );
                        return Err(Fatal);
                    };
                    self.text_content(&c.to_string(), offset)?;
                }
                Event::Eof => {
                    if !self.frames.is_empty() {
                        let message = format!("the document ends inside {}", self.path());
                        self.find(offset, XmlCode::NotWellFormed, message);
                    } else if !root_seen {
                        self.find(offset, XmlCode::NotWellFormed, "no document element".into());
                    }
                    return Ok(());
                }
                // Ignored, but bounded like text: a 3 MB comment is no filing.
                Event::Comment(c) if c.len() > self.limits.max_text => {
                    let limit = self.limits.max_text;
                    self.find(
                        offset,
                        XmlCode::Limit,
                        format!("comment longer than {limit} bytes"),
                    );
                    return Err(Fatal);
                }
                Event::PI(pi) if pi.len() > self.limits.max_text => {
                    let limit = self.limits.max_text;
                    let message = format!("processing instruction longer than {limit} bytes");
                    self.find(offset, XmlCode::Limit, message);
                    return Err(Fatal);
                }
                Event::Comment(_) | Event::PI(_) => {}
            }
        }
    }

    fn text_content(&mut self, content: &str, offset: usize) -> Result<(), Fatal> {
        let Some(frame) = self.frames.last() else {
            if !content.trim_matches([' ', '\t', '\n', '\r']).is_empty() {
                self.find(
                    offset,
                    XmlCode::NotWellFormed,
                    "text outside the document element".into(),
                );
                return Err(Fatal);
            }
            return Ok(());
        };
        let holds_text = frame.holds_text(self.schema);
        let frame = self.frames.last_mut().expect("checked above");
        if !holds_text {
            if !content.trim_matches([' ', '\t', '\n', '\r']).is_empty() {
                frame.stray_text = true;
            }
            return Ok(());
        }
        self.value.push_str(content);
        if self.value.len() > self.limits.max_text {
            let limit = self.limits.max_text;
            self.find(
                offset,
                XmlCode::Limit,
                format!("text longer than {limit} bytes"),
            );
            return Err(Fatal);
        }
        Ok(())
    }

    fn start(
        &mut self,
        reader: &NsReader<&[u8]>,
        e: &BytesStart<'_>,
        in_target: bool,
        offset: usize,
    ) -> Result<(), Fatal> {
        let local = e.local_name().into_inner();
        let decl = self.child_decl(local, in_target, offset);
        let index = match (self.frames.last(), decl) {
            (Some(parent), Some(decl)) => {
                let siblings = &mut self.counts[parent.counts_start..];
                match siblings.iter_mut().find(|(d, _)| *d == decl) {
                    Some((_, n)) => {
                        *n += 1;
                        *n
                    }
                    None => {
                        self.counts.push((decl, 1));
                        1
                    }
                }
            }
            _ => 1,
        };
        self.frames.push(Frame {
            decl,
            undeclared_name: decl.is_none().then(|| local.to_owned()),
            index,
            state: ModelState::None,
            stray_text: false,
            counts_start: self.counts.len(),
            offset,
        });
        let Some(decl) = decl else {
            return Ok(());
        };
        let ty = self.schema.element(decl).ty;
        let frame = self.frames.last_mut().expect("just pushed");
        if frame.holds_text(self.schema) {
            self.value.clear();
        } else {
            self.content.open(decl);
        }
        if let TypeRef::Complex(id) = ty {
            frame.state = match &self.schema.complex[id].model {
                Model::Empty => ModelState::None,
                Model::Sequence(_) => ModelState::Sequence {
                    position: 0,
                    count: 0,
                },
                Model::Choice(_) => ModelState::Choice {
                    chosen: None,
                    count: 0,
                },
                Model::All(parts) => ModelState::All {
                    seen: vec![0; parts.len()],
                },
            };
        }
        self.attributes(reader, e, ty, offset)
    }

    /// The declaration of a new element, advancing its parent's content model; `None` (after a
    /// finding) when the element is not allowed here.
    fn child_decl(&mut self, local: &str, in_target: bool, offset: usize) -> Option<usize> {
        let target = self.schema.target_namespace.as_str();
        let Some(parent) = self.frames.last() else {
            if !in_target {
                self.find_at(
                    offset,
                    format!("/{local}"),
                    XmlCode::Namespace,
                    format!("the document element must be in namespace {target}"),
                );
                return None;
            }
            let root = self.schema.roots.get(local).copied();
            if root.is_none() {
                self.find_at(
                    offset,
                    format!("/{local}"),
                    XmlCode::UnexpectedElement,
                    format!("<{local}> is not a document element of this schema"),
                );
            }
            return root;
        };
        let parent_decl = parent.decl?;
        if !in_target {
            self.find(
                offset,
                XmlCode::Namespace,
                format!("<{local}> is not in namespace {target}"),
            );
            return None;
        }
        let TypeRef::Complex(type_id) = self.schema.element(parent_decl).ty else {
            self.find(
                offset,
                XmlCode::UnexpectedElement,
                format!("<{local}> inside a simple value"),
            );
            return None;
        };
        let complex = &self.schema.complex[type_id];
        let schema = self.schema;
        let frame = self.frames.last_mut().expect("a parent");
        let outcome = advance(schema, &complex.model, &mut frame.state, local);
        match outcome {
            Ok(id) => Some(id),
            Err(message) => {
                self.find(offset, XmlCode::UnexpectedElement, message);
                None
            }
        }
    }

    fn attributes(
        &mut self,
        reader: &NsReader<&[u8]>,
        e: &BytesStart<'_>,
        ty: TypeRef,
        offset: usize,
    ) -> Result<(), Fatal> {
        let declared: &[Attribute] = match ty {
            TypeRef::Complex(id) => &self.schema.complex[id].attributes,
            TypeRef::Simple(_) => &[],
        };
        let mut seen = vec![false; declared.len()];
        let mut count = 0;
        for attr in e.attributes() {
            let attr = match attr {
                Ok(attr) => attr,
                Err(err) => {
                    self.find(offset, XmlCode::NotWellFormed, format!("attribute: {err}"));
                    return Err(Fatal);
                }
            };
            count += 1;
            if count > self.limits.max_attributes {
                let limit = self.limits.max_attributes;
                self.find(
                    offset,
                    XmlCode::Limit,
                    format!("more than {limit} attributes"),
                );
                return Err(Fatal);
            }
            let key: &str = attr.key.as_ref();
            if key == "xmlns" || key.starts_with("xmlns:") {
                continue;
            }
            let (ns, local) = reader.resolver().resolve_attribute(attr.key);
            let local = local.into_inner();
            match ns {
                ResolveResult::Bound(n) if n.into_inner() == XSI => {
                    if !matches!(local, "schemaLocation" | "noNamespaceSchemaLocation") {
                        self.find(
                            offset,
                            XmlCode::UnknownAttribute,
                            format!("xsi:{local} is not supported"),
                        );
                    }
                    continue;
                }
                ResolveResult::Unbound => {}
                _ => {
                    self.find(
                        offset,
                        XmlCode::UnknownAttribute,
                        format!("attribute {key} is not declared"),
                    );
                    continue;
                }
            }
            let Some(i) = declared.iter().position(|a| a.name == local) else {
                self.find(
                    offset,
                    XmlCode::UnknownAttribute,
                    format!("attribute {key} is not declared"),
                );
                continue;
            };
            seen[i] = true;
            let value = match attr.normalized_value(quick_xml::XmlVersion::Implicit1_0) {
                Ok(value) => value,
                Err(err) => {
                    self.find(
                        offset,
                        XmlCode::NotWellFormed,
                        format!("attribute {key}: {err}"),
                    );
                    return Err(Fatal);
                }
            };
            let simple = &self.schema.simple[declared[i].simple];
            if let Err(why) = simple.check(&value) {
                self.find(
                    offset,
                    XmlCode::InvalidValue,
                    format!("attribute {key}: {value:?} {why}"),
                );
            }
        }
        for (attribute, seen) in declared.iter().zip(seen) {
            if !seen && attribute.required && attribute.default.is_none() {
                let name = attribute.name.clone();
                self.find(
                    offset,
                    XmlCode::MissingAttribute,
                    format!("attribute {name} is required"),
                );
            }
        }
        Ok(())
    }

    /// Closes the innermost element, forgetting its children's counts.
    fn pop(&mut self) {
        if let Some(frame) = self.frames.pop() {
            self.counts.truncate(frame.counts_start);
        }
    }

    fn end(&mut self, offset: usize) {
        let Some(decl) = self.frames.last().and_then(|f| f.decl) else {
            self.pop();
            return;
        };
        let ty = self.schema.element(decl).ty;
        let (simple, model_end) = match ty {
            TypeRef::Simple(id) => (Some(id), None),
            TypeRef::Complex(id) => {
                let complex = &self.schema.complex[id];
                (complex.simple_content, Some(id))
            }
        };
        let frame = self.frames.last().expect("open element");
        let start = frame.offset;
        let value_problem = match simple {
            Some(simple) => {
                let simple = &self.schema.simple[simple];
                let value = types::normalize(&self.value, simple.whitespace);
                match simple.check_normalized(&value) {
                    Ok(()) => {
                        self.content.value(decl, &value);
                        None
                    }
                    Err(why) => {
                        let shown: String = self.value.chars().take(64).collect();
                        Some((XmlCode::InvalidValue, format!("{shown:?} {why}")))
                    }
                }
            }
            None if frame.stray_text => Some((
                XmlCode::TextNotAllowed,
                "text is not allowed here, only elements".to_owned(),
            )),
            None => None,
        };
        let missing = model_end
            .map(|type_id| {
                missing_at_end(
                    self.schema,
                    &self.schema.complex[type_id].model,
                    &frame.state,
                )
            })
            .unwrap_or_default();
        if let Some((code, message)) = value_problem {
            self.find(start, code, message);
        }
        for name in missing {
            self.find(
                offset,
                XmlCode::MissingElement,
                format!("<{name}> is missing"),
            );
        }
        if simple.is_none() {
            self.content.close(decl);
        }
        self.pop();
    }
}

/// Moves a content model past a child named `name`; the child's declaration, or why it is not
/// allowed here.
fn advance(
    schema: &Schema,
    model: &Model,
    state: &mut ModelState,
    name: &str,
) -> Result<usize, String> {
    match (model, state) {
        (Model::Sequence(parts), ModelState::Sequence { position, count }) => loop {
            let Some(&id) = parts.get(*position) else {
                return Err(format!("<{name}> is not expected here"));
            };
            let decl = schema.element(id);
            if decl.name == name {
                if decl.max.is_none_or(|max| *count < max) {
                    *count += 1;
                    return Ok(id);
                }
                *position += 1;
                *count = 0;
                continue;
            }
            if *count >= decl.min {
                *position += 1;
                *count = 0;
                continue;
            }
            let missing = decl.name.clone();
            // Skip past the missing element, so the rest is still checked.
            if let Some(offset) = parts[*position..]
                .iter()
                .position(|&p| schema.element(p).name == name)
            {
                *position += offset;
                *count = 1;
                return Err(format!("<{missing}> is missing before <{name}>"));
            }
            return Err(format!(
                "<{name}> is not expected here (<{missing}> is missing)"
            ));
        },
        (Model::Choice(parts), ModelState::Choice { chosen, count }) => {
            let found = parts
                .iter()
                .copied()
                .find(|&p| schema.element(p).name == name);
            match (found, *chosen) {
                (Some(id), None) => {
                    *chosen = Some(id);
                    *count = 1;
                    Ok(id)
                }
                (Some(id), Some(c))
                    if c == id && schema.element(id).max.is_none_or(|m| *count < m) =>
                {
                    *count += 1;
                    Ok(id)
                }
                _ => Err(format!("<{name}> is not expected here")),
            }
        }
        (Model::All(parts), ModelState::All { seen }) => {
            match parts.iter().position(|&p| schema.element(p).name == name) {
                Some(i) if seen[i] == 0 => {
                    seen[i] = 1;
                    Ok(parts[i])
                }
                _ => Err(format!("<{name}> is not expected here")),
            }
        }
        _ => Err(format!(
            "<{name}> is not expected here (no child elements are allowed)"
        )),
    }
}

/// The elements still required when a content model ends.
fn missing_at_end(schema: &Schema, model: &Model, state: &ModelState) -> Vec<String> {
    match (model, state) {
        (Model::Sequence(parts), ModelState::Sequence { position, count }) => parts
            .iter()
            .enumerate()
            .skip(*position)
            .filter(|&(i, &id)| {
                let already = if i == *position { *count } else { 0 };
                already < schema.element(id).min
            })
            .map(|(_, &id)| schema.element(id).name.clone())
            .collect(),
        (Model::Choice(parts), ModelState::Choice { chosen, count }) => match chosen {
            Some(id) if *count < schema.element(*id).min => vec![schema.element(*id).name.clone()],
            Some(_) => Vec::new(),
            None if parts.iter().all(|&p| schema.element(p).min > 0) => {
                vec![
                    parts
                        .iter()
                        .map(|&p| schema.element(p).name.clone())
                        .collect::<Vec<_>>()
                        .join(" or "),
                ]
            }
            None => Vec::new(),
        },
        (Model::All(parts), ModelState::All { seen }) => parts
            .iter()
            .zip(seen)
            .filter(|&(&id, &n)| n < schema.element(id).min)
            .map(|(&id, _)| schema.element(id).name.clone())
            .collect(),
        _ => Vec::new(),
    }
}

/// The offset of the first character XML 1.0 forbids: C0 controls other than tab, newline and
/// carriage return, and U+FFFE / U+FFFF (UTF-8 EF BF BE / EF BF BF). Surrogates cannot occur in
/// valid UTF-8.
fn forbidden_char(bytes: &[u8]) -> Option<usize> {
    // The common case, checked in a loop the compiler vectorizes: nothing suspicious at all.
    let suspicious = |b: &u8| *b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r') || *b == 0xef;
    if !bytes.iter().any(suspicious) {
        return None;
    }
    bytes.iter().enumerate().find_map(|(i, &b)| match b {
        0x00..=0x08 | 0x0b | 0x0c | 0x0e..=0x1f => Some(i),
        0xef if bytes.get(i + 1) == Some(&0xbf)
            && matches!(bytes.get(i + 2), Some(0xbe | 0xbf)) =>
        {
            Some(i)
        }
        _ => None,
    })
}

/// The character a reference stands for: one of the five predefined entities, or a character
/// reference to a character XML allows. `None` for anything else (no other entity is defined:
/// documents have no DTD).
pub fn resolve_reference(reference: &quick_xml::events::BytesRef<'_>) -> Option<char> {
    if reference.is_char_ref() {
        return reference
            .resolve_char_ref()
            .ok()
            .flatten()
            .filter(|&c| is_xml_char(c));
    }
    match reference.as_ref() {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => None,
    }
}

/// XML 1.0's Char production.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{a}' | '\u{d}' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..='\u{10ffff}')
}
