//! The schema compiler: reads an XSD with quick-xml and compiles it into element declarations,
//! content models and simple types ready for the streaming validator.
//!
//! Supported: global and local elements and types, `sequence`, `choice` and `all` of elements
//! with `minOccurs`/`maxOccurs`, attributes (required, optional, default), `simpleContent`
//! extension, simple-type restrictions with every facet of [`SimpleType`], the built-ins of
//! [`Builtin`], `annotation`. Anything else is refused with its name and line, never ignored.

use std::collections::{HashMap, HashSet};

use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

use super::types::{Builtin, Decimal, Enumeration, SimpleType, Whitespace, translate_pattern};
use super::{Attribute, ComplexType, ElementDecl, Model, Schema, TypeRef};

const XS: &str = "http://www.w3.org/2001/XMLSchema";

/// Why a schema could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error("schema line {line}: {message}")]
pub struct SchemaError {
    pub line: usize,
    pub message: String,
}

fn refuse<T>(line: usize, message: impl Into<String>) -> Result<T, SchemaError> {
    Err(SchemaError {
        line,
        message: message.into(),
    })
}

/// A schema element, as read.
#[derive(Debug)]
struct Node {
    name: String,
    attrs: HashMap<String, String>,
    children: Vec<Node>,
    line: usize,
}

impl Node {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }

    fn content(&self) -> impl Iterator<Item = &Node> {
        self.children.iter().filter(|c| c.name != "annotation")
    }
}

/// Line numbers of positions met in increasing order: each byte is counted once, so numbering
/// every event of a schema is linear in its length (counting from the start each time made the
/// schema's compilation a fifth of validating 2 000 filings).
struct LineCounter<'t> {
    text: &'t [u8],
    position: usize,
    line: usize,
}

impl<'t> LineCounter<'t> {
    fn new(text: &'t str) -> LineCounter<'t> {
        LineCounter {
            text: text.as_bytes(),
            position: 0,
            line: 1,
        }
    }

    /// The line of `position` (not before the last position asked about).
    fn line_of(&mut self, position: usize) -> usize {
        let position = position.min(self.text.len());
        if position > self.position {
            self.line += self.text[self.position..position]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            self.position = position;
        }
        self.line
    }
}

/// Reads the schema document; every element must be in the XML Schema namespace.
fn read(text: &str) -> Result<(Node, HashMap<String, String>), SchemaError> {
    let mut reader = NsReader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut stack: Vec<Node> = Vec::new();
    let mut prefixes = HashMap::new();
    let mut root = None;
    let mut lines = LineCounter::new(text);
    loop {
        let before = reader.buffer_position() as usize;
        let (ns, event) = reader.read_resolved_event().map_err(|e| SchemaError {
            line: lines.line_of(before),
            message: e.to_string(),
        })?;
        let in_schema_namespace = matches!(ns, ResolveResult::Bound(ref n) if n.as_ref() == XS);
        // The line of the tag's end: whitespace before it was skipped, not part of the event.
        let line = lines.line_of((reader.buffer_position() as usize).saturating_sub(1));
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                if !in_schema_namespace {
                    return refuse(
                        line,
                        format!("<{}> is not an XML Schema element", e.name().as_ref()),
                    );
                }
                let mut attrs = HashMap::new();
                for attr in e.attributes() {
                    let attr = attr.map_err(|err| SchemaError {
                        line,
                        message: err.to_string(),
                    })?;
                    let key = attr.key.as_ref().to_owned();
                    let value = attr
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|err| SchemaError {
                            line,
                            message: err.to_string(),
                        })?
                        .into_owned();
                    if let Some(prefix) = key.strip_prefix("xmlns:") {
                        prefixes.insert(prefix.to_owned(), value);
                    } else if key == "xmlns" {
                        prefixes.insert(String::new(), value);
                    } else {
                        attrs.insert(key, value);
                    }
                }
                let node = Node {
                    name: e.local_name().as_ref().to_owned(),
                    attrs,
                    children: Vec::new(),
                    line,
                };
                if matches!(event, Event::Empty(_)) {
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(node),
                        None => root = Some(node),
                    }
                } else {
                    stack.push(node);
                }
            }
            Event::End(_) => {
                let node = stack.pop().expect("quick-xml checks that tags balance");
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let root = root.ok_or(SchemaError {
        line: 1,
        message: "no schema element".into(),
    })?;
    if root.name != "schema" {
        return refuse(root.line, "the document element is not xs:schema");
    }
    Ok((root, prefixes))
}

/// Compiles an XSD document.
pub fn compile(text: &str) -> Result<Schema, SchemaError> {
    let (root, prefixes) = read(text)?;
    for (key, value) in &root.attrs {
        match key.as_str() {
            "targetNamespace" | "version" => {}
            "elementFormDefault" if value == "qualified" => {}
            "attributeFormDefault" if value == "unqualified" => {}
            other => {
                return refuse(
                    root.line,
                    format!("schema attribute {other}={value:?} is not supported"),
                );
            }
        }
    }
    let target = root.attr("targetNamespace").unwrap_or_default().to_owned();
    if target.is_empty() {
        return refuse(
            root.line,
            "a schema without targetNamespace is not supported",
        );
    }
    let mut compiler = Compiler {
        prefixes,
        target: target.clone(),
        named_simple: HashMap::new(),
        named_complex: HashMap::new(),
        schema: Schema {
            target_namespace: target,
            roots: HashMap::new(),
            elements: Vec::new(),
            complex: Vec::new(),
            simple: Vec::new(),
        },
        simple_nodes: HashMap::new(),
        complex_nodes: HashMap::new(),
        in_progress: HashSet::new(),
    };
    for child in root.content() {
        match child.name.as_str() {
            "simpleType" => {
                let name = child.attr("name").ok_or(SchemaError {
                    line: child.line,
                    message: "a global simpleType needs a name".into(),
                })?;
                compiler.simple_nodes.insert(name.to_owned(), child);
            }
            "complexType" => {
                let name = child.attr("name").ok_or(SchemaError {
                    line: child.line,
                    message: "a global complexType needs a name".into(),
                })?;
                compiler.complex_nodes.insert(name.to_owned(), child);
            }
            "element" => {}
            other => {
                return refuse(
                    child.line,
                    format!("xs:{other} is not supported at the top level"),
                );
            }
        }
    }
    for child in root.content().filter(|c| c.name == "element") {
        let id = compiler.element(child, true)?;
        let name = compiler.schema.elements[id].name.clone();
        compiler.schema.roots.insert(name, id);
    }
    // Compile named types nobody referenced too, so an error in them is not hidden.
    let simple_names: Vec<String> = compiler.simple_nodes.keys().cloned().collect();
    for name in simple_names {
        compiler.named_simple_type(&name, 0)?;
    }
    let complex_names: Vec<String> = compiler.complex_nodes.keys().cloned().collect();
    for name in complex_names {
        compiler.named_complex_type(&name, 0)?;
    }
    Ok(compiler.schema)
}

struct Compiler<'n> {
    prefixes: HashMap<String, String>,
    target: String,
    simple_nodes: HashMap<String, &'n Node>,
    complex_nodes: HashMap<String, &'n Node>,
    named_simple: HashMap<String, usize>,
    named_complex: HashMap<String, usize>,
    in_progress: HashSet<String>,
    schema: Schema,
}

/// A type reference resolved: a built-in, or a named type of this schema.
enum Named<'a> {
    Builtin(Builtin),
    Local(&'a str),
}

impl<'n> Compiler<'n> {
    fn resolve<'a>(&self, qname: &'a str, line: usize) -> Result<Named<'a>, SchemaError> {
        let (prefix, local) = qname.split_once(':').unwrap_or(("", qname));
        let ns = self
            .prefixes
            .get(prefix)
            .map(String::as_str)
            .unwrap_or_default();
        if ns == XS {
            return Builtin::from_name(local)
                .map(Named::Builtin)
                .ok_or_else(|| SchemaError {
                    line,
                    message: format!("built-in type xs:{local} is not supported"),
                });
        }
        if ns == self.target {
            return Ok(Named::Local(local));
        }
        refuse(
            line,
            format!("type {qname}: namespace {ns:?} is not this schema's"),
        )
    }

    fn type_ref(&mut self, qname: &str, line: usize, depth: usize) -> Result<TypeRef, SchemaError> {
        match self.resolve(qname, line)? {
            Named::Builtin(builtin) => {
                let id = self.push_simple(SimpleType::builtin(builtin, qname));
                Ok(TypeRef::Simple(id))
            }
            Named::Local(local) => {
                if self.simple_nodes.contains_key(local) {
                    Ok(TypeRef::Simple(self.named_simple_type(local, depth)?))
                } else if self.complex_nodes.contains_key(local) {
                    Ok(TypeRef::Complex(self.named_complex_type(local, depth)?))
                } else {
                    refuse(line, format!("type {qname} is not defined"))
                }
            }
        }
    }

    fn push_simple(&mut self, t: SimpleType) -> usize {
        self.schema.simple.push(t);
        self.schema.simple.len() - 1
    }

    fn named_simple_type(&mut self, name: &str, depth: usize) -> Result<usize, SchemaError> {
        if let Some(&id) = self.named_simple.get(name) {
            return Ok(id);
        }
        let node = self.simple_nodes[name];
        if !self.in_progress.insert(format!("s:{name}")) || depth > 32 {
            return refuse(node.line, format!("simpleType {name} derives from itself"));
        }
        let t = self.simple_type(node, name, depth + 1)?;
        let id = self.push_simple(t);
        self.named_simple.insert(name.to_owned(), id);
        Ok(id)
    }

    /// A `simpleType` element: a restriction of a built-in or of another named simple type.
    fn simple_type(
        &mut self,
        node: &Node,
        name: &str,
        depth: usize,
    ) -> Result<SimpleType, SchemaError> {
        let mut content = node.content();
        let Some(restriction) = content.next() else {
            return refuse(node.line, "an empty simpleType");
        };
        if restriction.name != "restriction" {
            return refuse(
                restriction.line,
                format!("xs:{} in a simpleType is not supported", restriction.name),
            );
        }
        if let Some(extra) = content.next() {
            return refuse(
                extra.line,
                format!("unexpected xs:{} in a simpleType", extra.name),
            );
        }
        let base = restriction.attr("base").ok_or(SchemaError {
            line: restriction.line,
            message: "a restriction needs a base (inline base types are not supported)".into(),
        })?;
        let mut t = match self.type_ref(base, restriction.line, depth)? {
            TypeRef::Simple(id) => self.schema.simple[id].clone(),
            TypeRef::Complex(_) => {
                return refuse(restriction.line, format!("{base} is a complex type"));
            }
        };
        t.name = name.to_owned();
        let mut enumeration: Option<Enumeration> = None;
        let mut patterns = Vec::new();
        for facet in restriction.content() {
            let value = facet.attr("value").ok_or(SchemaError {
                line: facet.line,
                message: format!("xs:{} needs a value", facet.name),
            })?;
            let count = || {
                value.parse::<usize>().map_err(|_| SchemaError {
                    line: facet.line,
                    message: format!("{} value {value:?} is not a count", facet.name),
                })
            };
            let number = || {
                Decimal::parse(value)
                    .map(Decimal::into_owned)
                    .ok_or(SchemaError {
                        line: facet.line,
                        message: format!("{} value {value:?} is not a number", facet.name),
                    })
            };
            let numeric_only = |t: &SimpleType| {
                if matches!(
                    t.builtin,
                    Builtin::Date
                        | Builtin::DateTime
                        | Builtin::GYear
                        | Builtin::String
                        | Builtin::NormalizedString
                        | Builtin::Token
                        | Builtin::Boolean
                ) {
                    refuse(
                        facet.line,
                        format!("xs:{} on a non-numeric type is not supported", facet.name),
                    )
                } else {
                    Ok(())
                }
            };
            match facet.name.as_str() {
                "length" => t.length = Some(count()?),
                "minLength" => t.min_length = Some(count()?),
                "maxLength" => t.max_length = Some(count()?),
                "pattern" => patterns.push(value.to_owned()),
                "enumeration" => {
                    enumeration
                        .get_or_insert_with(Enumeration::default)
                        .insert(value.to_owned());
                }
                "minInclusive" => {
                    numeric_only(&t)?;
                    t.min_inclusive = Some(number()?)
                }
                "maxInclusive" => {
                    numeric_only(&t)?;
                    t.max_inclusive = Some(number()?)
                }
                "minExclusive" => {
                    numeric_only(&t)?;
                    t.min_exclusive = Some(number()?)
                }
                "maxExclusive" => {
                    numeric_only(&t)?;
                    t.max_exclusive = Some(number()?)
                }
                "totalDigits" => t.total_digits = Some(count()?),
                "fractionDigits" => t.fraction_digits = Some(count()?),
                "whiteSpace" => {
                    t.whitespace = match value {
                        "preserve" => Whitespace::Preserve,
                        "replace" => Whitespace::Replace,
                        "collapse" => Whitespace::Collapse,
                        other => return refuse(facet.line, format!("whiteSpace {other:?}")),
                    }
                }
                other => return refuse(facet.line, format!("facet xs:{other} is not supported")),
            }
        }
        // Patterns of one step are alternatives; patterns of successive steps all apply.
        if !patterns.is_empty() {
            let joined = patterns.join("|");
            let regex = translate_pattern(&joined).map_err(|message| SchemaError {
                line: restriction.line,
                message,
            })?;
            t.patterns.push((joined, regex));
        }
        if enumeration.is_some() {
            t.enumeration = enumeration;
        }
        Ok(t)
    }

    fn named_complex_type(&mut self, name: &str, depth: usize) -> Result<usize, SchemaError> {
        if let Some(&id) = self.named_complex.get(name) {
            return Ok(id);
        }
        let node = self.complex_nodes[name];
        // Reserve the slot first: content models may refer back to their own type.
        let id = self.schema.complex.len();
        self.schema.complex.push(ComplexType::default());
        self.named_complex.insert(name.to_owned(), id);
        let t = self.complex_type(node, depth + 1)?;
        self.schema.complex[id] = t;
        Ok(id)
    }

    fn complex_type(&mut self, node: &Node, depth: usize) -> Result<ComplexType, SchemaError> {
        if depth > 64 {
            return refuse(node.line, "types nest too deeply");
        }
        for (key, value) in &node.attrs {
            match key.as_str() {
                "name" => {}
                "mixed" if value == "false" => {}
                other => {
                    return refuse(
                        node.line,
                        format!("complexType attribute {other}={value:?} is not supported"),
                    );
                }
            }
        }
        let mut t = ComplexType::default();
        for child in node.content() {
            match child.name.as_str() {
                "sequence" | "choice" | "all" => {
                    if !matches!(t.model, Model::Empty) {
                        return refuse(child.line, "a complexType has one content model");
                    }
                    t.model = self.model(child, depth)?;
                }
                "attribute" => t.attributes.push(self.attribute(child, depth)?),
                "simpleContent" => {
                    let extension = child
                        .content()
                        .next()
                        .filter(|e| e.name == "extension")
                        .ok_or(SchemaError {
                            line: child.line,
                            message: "simpleContent is supported with xs:extension only".into(),
                        })?;
                    let base = extension.attr("base").ok_or(SchemaError {
                        line: extension.line,
                        message: "an extension needs a base".into(),
                    })?;
                    match self.type_ref(base, extension.line, depth)? {
                        TypeRef::Simple(id) => t.simple_content = Some(id),
                        TypeRef::Complex(_) => {
                            return refuse(
                                extension.line,
                                "simpleContent extending a complex type is not supported",
                            );
                        }
                    }
                    for attribute in extension.content() {
                        if attribute.name != "attribute" {
                            return refuse(
                                attribute.line,
                                format!("xs:{} in an extension is not supported", attribute.name),
                            );
                        }
                        t.attributes.push(self.attribute(attribute, depth)?);
                    }
                }
                other => {
                    return refuse(
                        child.line,
                        format!("xs:{other} in a complexType is not supported"),
                    );
                }
            }
        }
        Ok(t)
    }

    fn occurs(node: &Node) -> Result<(u32, Option<u32>), SchemaError> {
        let bad = |what: &str, value: &str| SchemaError {
            line: node.line,
            message: format!("{what}={value:?}"),
        };
        let min = match node.attr("minOccurs") {
            None => 1,
            Some(v) => v.parse().map_err(|_| bad("minOccurs", v))?,
        };
        let max = match node.attr("maxOccurs") {
            None => Some(1),
            Some("unbounded") => None,
            Some(v) => Some(v.parse().map_err(|_| bad("maxOccurs", v))?),
        };
        if max.is_some_and(|max| max < min) {
            return refuse(node.line, "maxOccurs is below minOccurs");
        }
        Ok((min, max))
    }

    fn model(&mut self, node: &Node, depth: usize) -> Result<Model, SchemaError> {
        let (min, max) = Self::occurs(node)?;
        if (min, max) != (1, Some(1)) {
            return refuse(
                node.line,
                format!(
                    "xs:{} with minOccurs/maxOccurs other than 1 is not supported",
                    node.name
                ),
            );
        }
        let mut elements = Vec::new();
        let mut names = HashSet::new();
        for child in node.content() {
            if child.name != "element" {
                return refuse(
                    child.line,
                    format!(
                        "xs:{} inside xs:{} is not supported (only elements)",
                        child.name, node.name
                    ),
                );
            }
            let id = self.element(child, false)?;
            let name = self.schema.elements[id].name.clone();
            if !names.insert(name.clone()) {
                // Two particles with one name make the content model ambiguous here.
                return refuse(
                    child.line,
                    format!("element {name} appears twice in one content model"),
                );
            }
            if node.name == "all" && self.schema.elements[id].max.is_none_or(|m| m > 1) {
                return refuse(child.line, "elements of xs:all occur at most once");
            }
            elements.push(id);
        }
        let _ = depth;
        Ok(match node.name.as_str() {
            "sequence" => Model::Sequence(elements),
            "choice" => Model::Choice(elements),
            _ => Model::All(elements),
        })
    }

    fn attribute(&mut self, node: &Node, depth: usize) -> Result<Attribute, SchemaError> {
        let name = node.attr("name").ok_or(SchemaError {
            line: node.line,
            message: "an attribute needs a name (ref is not supported)".into(),
        })?;
        let required = match node.attr("use") {
            None | Some("optional") => false,
            Some("required") => true,
            Some(other) => {
                return refuse(
                    node.line,
                    format!("attribute use={other:?} is not supported"),
                );
            }
        };
        let simple = match (node.attr("type"), node.content().next()) {
            (Some(qname), None) => match self.type_ref(qname, node.line, depth)? {
                TypeRef::Simple(id) => id,
                TypeRef::Complex(_) => return refuse(node.line, "an attribute has a simple type"),
            },
            (None, Some(inline)) if inline.name == "simpleType" => {
                let t = self.simple_type(inline, name, depth + 1)?;
                self.push_simple(t)
            }
            (None, None) => self.push_simple(SimpleType::builtin(Builtin::String, name)),
            _ => {
                return refuse(
                    node.line,
                    "an attribute has either a type or an inline simpleType",
                );
            }
        };
        Ok(Attribute {
            name: name.to_owned(),
            simple,
            required,
            default: node.attr("default").map(str::to_owned),
        })
    }

    fn element(&mut self, node: &Node, global: bool) -> Result<usize, SchemaError> {
        if node.attr("ref").is_some() {
            return refuse(node.line, "element ref is not supported");
        }
        for key in node.attrs.keys() {
            if !matches!(key.as_str(), "name" | "type" | "minOccurs" | "maxOccurs") {
                return refuse(
                    node.line,
                    format!("element attribute {key} is not supported"),
                );
            }
        }
        let name = node
            .attr("name")
            .ok_or(SchemaError {
                line: node.line,
                message: "an element needs a name".into(),
            })?
            .to_owned();
        let (min, max) = if global {
            if node.attr("minOccurs").is_some() || node.attr("maxOccurs").is_some() {
                return refuse(node.line, "a global element has no occurrence bounds");
            }
            (1, Some(1))
        } else {
            Self::occurs(node)?
        };
        let ty = match (node.attr("type"), node.content().next()) {
            (Some(qname), None) => self.type_ref(qname, node.line, 0)?,
            (None, Some(inline)) if inline.name == "simpleType" => {
                let t = self.simple_type(inline, &name, 1)?;
                TypeRef::Simple(self.push_simple(t))
            }
            (None, Some(inline)) if inline.name == "complexType" => {
                let t = self.complex_type(inline, 1)?;
                self.schema.complex.push(t);
                TypeRef::Complex(self.schema.complex.len() - 1)
            }
            (None, None) => {
                return refuse(
                    node.line,
                    format!("element {name} has no type (anyType is not supported)"),
                );
            }
            _ => {
                return refuse(
                    node.line,
                    format!("element {name} has both a type and an inline type"),
                );
            }
        };
        self.schema
            .elements
            .push(ElementDecl { name, ty, min, max });
        Ok(self.schema.elements.len() - 1)
    }
}
