//! The streaming pass: one walk over a document's tokens (`lexer`) that checks it against the
//! compiled schema (limits, structure, content models, attributes, simple values) and hands
//! its content to a [`super::Content`] sink. A finding does not stop the pass, so a document's
//! findings come back all at once; only what makes the rest unreadable ends it.

use super::chars::forbidden_char;
use super::lexer::{LexErrorKind, Lexer, Token};
use super::model::{ModelState, advance, missing_at_end};
use super::*;

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

/// Checks `xml` against `schema`, handing its content to `content`: every finding.
pub(super) fn validate(
    schema: &Schema,
    xml: &[u8],
    limits: &Limits,
    content: &mut dyn Content,
) -> XmlReport {
    let mut pass = Pass {
        schema,
        limits,
        content,
        report: XmlReport::default(),
        text: "",
        frames: Vec::new(),
        counts: Vec::new(),
        value: String::new(),
        line_starts: None,
        target_binding: None,
    };
    pass.run(xml);
    pass.report
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
    /// Where in the document the last binding found to be the target namespace is written
    /// (address and length): every element under it then compares by address, not by bytes.
    target_binding: Option<(usize, usize)>,
}

/// Ends the pass: the document cannot be read further.
struct Fatal;

/// Whether text is whitespace only.
fn is_blank(text: &str) -> bool {
    text.bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

impl<'s> Pass<'s, '_> {
    /// Line and column (in characters) of a byte offset.
    fn position(&mut self, offset: usize) -> (usize, usize) {
        let text = self.text.as_bytes();
        let starts = self.line_starts.get_or_insert_with(|| {
            std::iter::once(0)
                .chain(memchr::memchr_iter(b'\n', text).map(|i| i + 1))
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
        let mut lexer = Lexer::new(text, self.limits.max_attributes);
        let mut elements = 0usize;
        let mut root_seen = false;
        loop {
            let offset = lexer.position();
            let token = match lexer.next_token() {
                Ok(token) => token,
                Err(e) => {
                    let code = match e.kind {
                        LexErrorKind::Syntax => XmlCode::NotWellFormed,
                        LexErrorKind::Reference => XmlCode::Forbidden,
                        LexErrorKind::TooManyAttributes => XmlCode::Limit,
                    };
                    let message = match e.kind {
                        LexErrorKind::Syntax => format!("not well-formed: {}", e.message),
                        _ => e.message,
                    };
                    let path = match &e.element {
                        Some(element) => format!("{}/{element}", self.path()),
                        None => self.path(),
                    };
                    self.find_at(e.at, path, code, message);
                    return Err(Fatal);
                }
            };
            match token {
                Token::Declaration { encoding } => {
                    if let Some(encoding) = encoding
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
                Token::DocType => {
                    self.find(
                        offset,
                        XmlCode::Forbidden,
                        "a DOCTYPE (DTD, entity declarations) is not accepted".into(),
                    );
                    return Err(Fatal);
                }
                Token::Start { name, empty } => {
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
                    let in_target = self.is_target(lexer.namespace(name.prefix));
                    self.start(&lexer, name.local, in_target, offset);
                    if empty {
                        self.end(offset);
                    }
                }
                Token::End => self.end(offset),
                Token::Text(content) | Token::CData(content) => {
                    self.text_content(&content, offset)?;
                }
                Token::Reference(c) => {
                    if self.frames.is_empty() {
                        self.find(
                            offset,
                            XmlCode::NotWellFormed,
                            "a reference outside the document element".into(),
                        );
                        return Err(Fatal);
                    }
                    self.text_content(c.encode_utf8(&mut [0; 4]), offset)?;
                }
                Token::Eof => {
                    if !self.frames.is_empty() {
                        let message = format!("the document ends inside {}", self.path());
                        self.find(offset, XmlCode::NotWellFormed, message);
                    } else if !root_seen {
                        self.find(offset, XmlCode::NotWellFormed, "no document element".into());
                    }
                    return Ok(());
                }
                // Ignored, but bounded like text: a 3 MB comment is no filing.
                Token::Ignored { len } if len > self.limits.max_text => {
                    let limit = self.limits.max_text;
                    self.find(
                        offset,
                        XmlCode::Limit,
                        format!("comment or processing instruction longer than {limit} bytes"),
                    );
                    return Err(Fatal);
                }
                Token::Ignored { .. } => {}
            }
        }
    }

    /// Whether an element's namespace is the schema's target namespace.
    fn is_target(&mut self, namespace: Option<&str>) -> bool {
        let Some(namespace) = namespace else {
            return false;
        };
        let binding = (namespace.as_ptr() as usize, namespace.len());
        if self.target_binding == Some(binding) {
            return true;
        }
        let is_target = namespace == self.schema.target_namespace;
        // Only a binding written in the document is remembered: the document does not change
        // during the pass, so the same bytes are there whenever the address comes again. (A
        // value the lexer built is freed with its scope, and its address may be reused.)
        let in_document = self
            .text
            .as_bytes()
            .as_ptr_range()
            .contains(&namespace.as_ptr());
        if is_target && in_document {
            self.target_binding = Some(binding);
        }
        is_target
    }

    fn text_content(&mut self, content: &str, offset: usize) -> Result<(), Fatal> {
        let Some(frame) = self.frames.last() else {
            if !is_blank(content) {
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
            if !is_blank(content) {
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

    fn start(&mut self, lexer: &Lexer<'_>, local: &str, in_target: bool, offset: usize) {
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
            return;
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
        self.attributes(lexer, ty, offset);
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

    fn attributes(&mut self, lexer: &Lexer<'_>, ty: TypeRef, offset: usize) {
        let declared: &[Attribute] = match ty {
            TypeRef::Complex(id) => &self.schema.complex[id].attributes,
            TypeRef::Simple(_) => &[],
        };
        let mut seen = vec![false; declared.len()];
        for attr in lexer.attributes() {
            let (key, prefix, local) = (attr.name.full, attr.name.prefix, attr.name.local);
            if key == "xmlns" || prefix == "xmlns" {
                continue;
            }
            if !prefix.is_empty() {
                if lexer.namespace(prefix) == Some(XSI) {
                    if !matches!(local, "schemaLocation" | "noNamespaceSchemaLocation") {
                        self.find(
                            offset,
                            XmlCode::UnknownAttribute,
                            format!("xsi:{local} is not supported"),
                        );
                    }
                } else {
                    self.find(
                        offset,
                        XmlCode::UnknownAttribute,
                        format!("attribute {key} is not declared"),
                    );
                }
                continue;
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
            let value = &attr.value;
            let simple = &self.schema.simple[declared[i].simple];
            if let Err(why) = simple.check(value) {
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
