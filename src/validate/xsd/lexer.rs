//! The XML tokenizer the streaming pass reads: one walk over the bytes of a document already
//! known to be UTF-8 and free of characters XML forbids, yielding its markup and text as slices
//! of it. It checks what XML 1.0 and Namespaces in XML ask of each token: names, the syntax and
//! uniqueness of attributes, references, end tags matching their start tags, comments, CDATA,
//! processing instructions and the declaration. It keeps the namespace bindings in scope.
//!
//! quick-xml's event API (which the schema compiler still reads) checked each slice's UTF-8
//! again and copied text to normalize its line ends: about a third of the pass's time.

use std::borrow::Cow;

use memchr::memmem;

/// The namespace the `xml` prefix is bound to, always.
const XML_NAMESPACE: &str = "http://www.w3.org/XML/1998/namespace";

/// One piece of a document.
pub(super) enum Token<'a> {
    /// `<?xml …?>` at the start, with the encoding it names.
    Declaration {
        encoding: Option<&'a str>,
    },
    /// `<!DOCTYPE`: the document is not read further (a document type is never accepted).
    DocType,
    /// A start tag (`empty` for `<a/>`); its attributes are [`Lexer::attributes`] until the
    /// next token.
    Start {
        name: QName<'a>,
        empty: bool,
    },
    /// An end tag, already matched with its start tag.
    End,
    /// Character data, line ends normalized to `\n`.
    Text(Cow<'a, str>),
    /// A reference (`&lt;`, `&#65;`), resolved.
    Reference(char),
    /// A CDATA section's content, line ends normalized.
    CData(Cow<'a, str>),
    /// A comment or a processing instruction, with its length.
    Ignored {
        len: usize,
    },
    Eof,
}

/// What kind of problem ended the tokenizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LexErrorKind {
    /// Not well-formed XML.
    Syntax,
    /// A reference to an entity that is not predefined, or to a character XML forbids.
    Reference,
    /// More attributes on one element than the limit.
    TooManyAttributes,
}

/// Why the document cannot be read further, and where.
#[derive(Debug)]
pub(super) struct LexError {
    pub at: usize,
    pub kind: LexErrorKind,
    pub message: String,
    /// The element whose start tag it is in, if it is in one.
    pub element: Option<String>,
}

/// A name as Namespaces in XML reads it: `prefix:local`, or `local` alone (prefix `""`).
#[derive(Clone, Copy)]
pub(super) struct QName<'a> {
    pub full: &'a str,
    pub prefix: &'a str,
    pub local: &'a str,
}

/// One attribute of the start tag just read, its value normalized (XML 1.0 §3.3.3).
pub(super) struct Attribute<'a> {
    pub name: QName<'a>,
    pub value: Cow<'a, str>,
}

pub(super) struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    /// Where an XML declaration may stand: the start, after a byte order mark if any.
    declaration_at: usize,
    /// Names of the open elements, innermost last, to match end tags.
    open: Vec<&'a str>,
    /// The start tag just read was empty: its scope closes before the next token.
    close_pending: bool,
    attributes: Vec<Attribute<'a>>,
    /// Namespace bindings in scope (prefix, namespace; `""` the default), innermost last.
    bindings: Vec<(&'a str, Cow<'a, str>)>,
    /// Where each open element's bindings start in `bindings`.
    scopes: Vec<usize>,
    max_attributes: usize,
}

impl<'a> Lexer<'a> {
    pub fn new(text: &'a str, max_attributes: usize) -> Lexer<'a> {
        let declaration_at = if text.starts_with('\u{feff}') { 3 } else { 0 };
        Lexer {
            text,
            pos: declaration_at,
            declaration_at,
            open: Vec::new(),
            close_pending: false,
            attributes: Vec::new(),
            bindings: Vec::new(),
            scopes: Vec::new(),
            max_attributes,
        }
    }

    /// The byte offset of the next token.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The attributes of the last start tag, in document order.
    pub fn attributes(&self) -> &[Attribute<'a>] {
        &self.attributes
    }

    /// The namespace a prefix (`""`: the default) is bound to in the current scope, if any.
    pub fn namespace(&self, prefix: &str) -> Option<&str> {
        if prefix == "xml" {
            return Some(XML_NAMESPACE);
        }
        // Empty names are compared by length alone: `memcmp` of two empty slices (whose pointer
        // is dangling) costs over 100 ns on AVX-512 hosts, a third of a document's time here.
        self.bindings
            .iter()
            .rev()
            .find(|(bound, _)| {
                bound.len() == prefix.len() && (prefix.is_empty() || *bound == prefix)
            })
            .map(|(_, namespace)| namespace.as_ref())
            .filter(|namespace| !namespace.is_empty())
    }

    pub fn next_token(&mut self) -> Result<Token<'a>, LexError> {
        if self.close_pending {
            self.close_pending = false;
            self.close_scope();
        }
        let bytes = self.text.as_bytes();
        match bytes.get(self.pos) {
            None => Ok(Token::Eof),
            Some(b'<') => self.markup(),
            Some(b'&') => {
                let (c, len) = reference(&self.text[self.pos..], self.pos)?;
                self.pos += len;
                Ok(Token::Reference(c))
            }
            Some(_) => {
                let start = self.pos;
                let run = text_run(bytes, start);
                self.pos = run.end;
                let text = &self.text[start..run.end];
                if run.has_gt
                    && let Some(i) = memchr::memchr_iter(b'>', text.as_bytes())
                        .find(|&i| i >= 2 && &text.as_bytes()[i - 2..i] == b"]]")
                {
                    return Err(syntax(start + i - 2, "]]> in character data"));
                }
                Ok(Token::Text(if run.has_cr {
                    normalize_line_ends(text)
                } else {
                    text.into()
                }))
            }
        }
    }

    fn markup(&mut self) -> Result<Token<'a>, LexError> {
        let start = self.pos;
        let rest = &self.text.as_bytes()[start..];
        if rest.starts_with(b"</") {
            return self.end_tag();
        }
        if rest.starts_with(b"<?") {
            return self.processing_instruction();
        }
        if rest.starts_with(b"<!--") {
            let body = start + 4;
            let Some(i) = memmem::find(&self.text.as_bytes()[body..], b"--") else {
                return Err(syntax(start, "the document ends inside a comment"));
            };
            if self.text.as_bytes().get(body + i + 2) != Some(&b'>') {
                return Err(syntax(body + i, "-- inside a comment"));
            }
            self.pos = body + i + 3;
            return Ok(Token::Ignored { len: i });
        }
        if rest.starts_with(b"<![CDATA[") {
            if self.open.is_empty() {
                return Err(syntax(
                    start,
                    "a CDATA section outside the document element",
                ));
            }
            let body = start + 9;
            let Some(i) = memmem::find(&self.text.as_bytes()[body..], b"]]>") else {
                return Err(syntax(start, "the document ends inside a CDATA section"));
            };
            self.pos = body + i + 3;
            return Ok(Token::CData(normalize_line_ends(
                &self.text[body..body + i],
            )));
        }
        if rest.len() >= 9 && rest[..9].eq_ignore_ascii_case(b"<!DOCTYPE") {
            self.pos = self.text.len();
            return Ok(Token::DocType);
        }
        if rest.starts_with(b"<!") {
            return Err(syntax(
                start,
                "<! starts no comment, CDATA section or DOCTYPE",
            ));
        }
        self.start_tag()
    }

    fn start_tag(&mut self) -> Result<Token<'a>, LexError> {
        self.pos += 1;
        let name = self.qname()?;
        self.attributes.clear();
        self.scopes.push(self.bindings.len());
        let empty = self.start_tag_rest().map_err(|mut e| {
            e.element = Some(name.full.to_owned());
            e
        })?;
        if empty {
            self.close_pending = true;
        } else {
            self.open.push(name.full);
        }
        Ok(Token::Start { name, empty })
    }

    /// A start tag's attributes and its end; whether it was empty (`/>`).
    fn start_tag_rest(&mut self) -> Result<bool, LexError> {
        loop {
            let spaced = self.skip_space();
            match self.text.as_bytes().get(self.pos) {
                Some(b'>') => {
                    self.pos += 1;
                    return Ok(false);
                }
                Some(b'/') => {
                    if self.text.as_bytes().get(self.pos + 1) != Some(&b'>') {
                        return Err(syntax(self.pos, "/ not followed by > in a start tag"));
                    }
                    self.pos += 2;
                    return Ok(true);
                }
                None => return Err(syntax(self.pos, "the document ends inside a start tag")),
                Some(_) if !spaced => {
                    return Err(syntax(
                        self.pos,
                        "attributes must be separated by whitespace",
                    ));
                }
                Some(_) => self.attribute()?,
            }
        }
    }

    /// One `name="value"` of a start tag, with its namespace binding if it declares one.
    fn attribute(&mut self) -> Result<(), LexError> {
        let at = self.pos;
        if self.attributes.len() >= self.max_attributes {
            return Err(LexError {
                at,
                kind: LexErrorKind::TooManyAttributes,
                message: format!("more than {} attributes", self.max_attributes),
                element: None,
            });
        }
        let qname = self.qname()?;
        let name = qname.full;
        self.skip_space();
        if self.text.as_bytes().get(self.pos) != Some(&b'=') {
            return Err(syntax(
                self.pos,
                format!("attribute {name} has no = and value"),
            ));
        }
        self.pos += 1;
        self.skip_space();
        let raw = self.quoted()?;
        let value = attribute_value(raw, self.pos - raw.len() - 1)?;
        if self.attributes.iter().any(|a| a.name.full == name) {
            return Err(syntax(at, format!("attribute {name} appears twice")));
        }
        if name == "xmlns" {
            self.bindings.push(("", value.clone()));
        } else if qname.prefix == "xmlns" && !value.is_empty() {
            // `xmlns:p=""` binds nothing: libxml2 ignores it (with a namespace error that does
            // not fail validation), and so does this.
            self.bindings.push((qname.local, value.clone()));
        }
        self.attributes.push(Attribute { name: qname, value });
        Ok(())
    }

    fn end_tag(&mut self) -> Result<Token<'a>, LexError> {
        let start = self.pos;
        if self.closes_the_open_element() {
            self.open.pop();
            self.close_scope();
            return Ok(Token::End);
        }
        self.pos += 2;
        let name = self.qname()?.full;
        self.skip_space();
        if self.text.as_bytes().get(self.pos) != Some(&b'>') {
            return Err(syntax(
                self.pos,
                format!("end tag </{name} is not closed by >"),
            ));
        }
        self.pos += 1;
        match self.open.pop() {
            Some(open) if open == name => {
                self.close_scope();
                Ok(Token::End)
            }
            Some(open) => Err(syntax(start, format!("</{name}> closes <{open}>"))),
            None => Err(syntax(start, format!("</{name}> closes no element"))),
        }
    }

    /// Whether the end tag at the position is, byte for byte, the open element's name and
    /// then `>` (whitespace allowed before it); if so the position moves past it. The usual
    /// case, read without scanning the name again: the start tag checked it already.
    fn closes_the_open_element(&mut self) -> bool {
        let Some(open) = self.open.last() else {
            return false;
        };
        let bytes = self.text.as_bytes();
        let name_start = self.pos + 2;
        let name_end = name_start + open.len();
        if bytes.get(name_start..name_end) != Some(open.as_bytes()) {
            return false;
        }
        let close = name_end
            + bytes[name_end..]
                .iter()
                .take_while(|&&b| is_space_byte(b))
                .count();
        if bytes.get(close) != Some(&b'>') {
            return false;
        }
        self.pos = close + 1;
        true
    }

    /// `<?target …?>`: the declaration at the start, or an ignored instruction elsewhere.
    fn processing_instruction(&mut self) -> Result<Token<'a>, LexError> {
        let start = self.pos;
        self.pos += 2;
        let target = self.name()?.0;
        let body = self.pos;
        let Some(i) = memmem::find(&self.text.as_bytes()[body..], b"?>") else {
            return Err(syntax(
                start,
                "the document ends inside a processing instruction",
            ));
        };
        self.pos = body + i + 2;
        let content = &self.text[body..body + i];
        if !target.eq_ignore_ascii_case("xml") {
            if !content.is_empty() && !content.starts_with(is_space) {
                return Err(syntax(
                    body,
                    "a processing instruction's target must end with whitespace",
                ));
            }
            return Ok(Token::Ignored { len: i });
        }
        if start != self.declaration_at || target != "xml" {
            return Err(syntax(
                start,
                "an XML declaration must stand at the very start",
            ));
        }
        declaration(content, body).map(|encoding| Token::Declaration { encoding })
    }

    /// The bindings of the innermost element go out of scope.
    fn close_scope(&mut self) {
        if let Some(mark) = self.scopes.pop() {
            self.bindings.truncate(mark);
        }
    }

    /// Skips whitespace; whether there was any.
    fn skip_space(&mut self) -> bool {
        let start = self.pos;
        let bytes = self.text.as_bytes();
        while bytes.get(self.pos).is_some_and(|b| is_space_byte(*b)) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// A quoted value; the position moves past the closing quote.
    fn quoted(&mut self) -> Result<&'a str, LexError> {
        let bytes = self.text.as_bytes();
        let quote = match bytes.get(self.pos) {
            Some(&q @ (b'"' | b'\'')) => q,
            _ => return Err(syntax(self.pos, "an attribute value must be quoted")),
        };
        let body = self.pos + 1;
        let Some(i) = memchr::memchr(quote, &bytes[body..]) else {
            return Err(syntax(
                self.pos,
                "the document ends inside an attribute value",
            ));
        };
        self.pos = body + i + 1;
        Ok(&self.text[body..body + i])
    }

    /// A name with at most one colon, not at either end (a QName).
    fn qname(&mut self) -> Result<QName<'a>, LexError> {
        let at = self.pos;
        let (full, colons) = self.name()?;
        let qname = match colons {
            Colons::None => QName {
                full,
                prefix: "",
                local: full,
            },
            Colons::One(colon) if colon > 0 && full[colon + 1..].starts_with(is_name_start) => {
                QName {
                    full,
                    prefix: &full[..colon],
                    local: &full[colon + 1..],
                }
            }
            _ => return Err(syntax(at, format!("{full} is not a qualified name"))),
        };
        Ok(qname)
    }

    /// An XML Name, and where its colons are.
    fn name(&mut self) -> Result<(&'a str, Colons), LexError> {
        let start = self.pos;
        let (end, colons) = name_end(self.text, start);
        let name = &self.text[start..end];
        match name.chars().next() {
            Some(c) if is_name_start(c) => {
                self.pos = end;
                Ok((name, colons))
            }
            _ => Err(syntax(start, "a name was expected")),
        }
    }
}

/// A run of character data: where it ends (at the next `<` or `&`, or the document's end), and
/// whether it holds a `>` or a `\r`, which need a second look.
struct TextRun {
    end: usize,
    has_gt: bool,
    has_cr: bool,
}

/// The run of character data starting at `start`. Most runs are short (indentation, values):
/// their first bytes are read one by one, where three `memchr` calls cost more than the
/// reading; what is left of a longer run is searched with `memchr`.
fn text_run(bytes: &[u8], start: usize) -> TextRun {
    const SHORT: usize = 64;
    let rest = bytes.get(start..).unwrap_or_default();
    let (mut has_gt, mut has_cr) = (false, false);
    for (i, &b) in rest.iter().take(SHORT).enumerate() {
        match b {
            b'<' | b'&' => {
                return TextRun {
                    end: start + i,
                    has_gt,
                    has_cr,
                };
            }
            b'>' => has_gt = true,
            b'\r' => has_cr = true,
            _ => {}
        }
    }
    let Some(tail) = rest.get(SHORT..) else {
        return TextRun {
            end: bytes.len(),
            has_gt,
            has_cr,
        };
    };
    let tail_len = memchr::memchr2(b'<', b'&', tail).unwrap_or(tail.len());
    let tail = &tail[..tail_len];
    TextRun {
        end: start + SHORT + tail_len,
        has_gt: has_gt || memchr::memchr(b'>', tail).is_some(),
        has_cr: has_cr || memchr::memchr(b'\r', tail).is_some(),
    }
}

/// The colons in a name: a QName has at most one.
#[derive(Clone, Copy)]
enum Colons {
    None,
    /// One, at this offset in the name.
    One(usize),
    Several,
}

/// Where the name characters starting at `start` end, and the colons among them.
fn name_end(text: &str, start: usize) -> (usize, Colons) {
    let bytes = text.as_bytes();
    let mut i = start;
    let mut colons = Colons::None;
    while let Some(&b) = bytes.get(i) {
        if ASCII_NAME_CHARS[usize::from(b)] {
            i += 1;
        } else if b == b':' {
            colons = match colons {
                Colons::None => Colons::One(i - start),
                _ => Colons::Several,
            };
            i += 1;
        } else if b >= 0x80
            && let Some(c) = text[i..].chars().next()
            && is_name_char(c)
        {
            i += c.len_utf8();
        } else {
            break;
        }
    }
    (i, colons)
}

/// The ASCII bytes of XML 1.0's NameChar but the colon (which `name_end` counts): one load
/// per byte where the comparisons were a chain of branches.
const ASCII_NAME_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 128 {
        let byte = b as u8;
        table[b] = byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.');
        b += 1;
    }
    table
};

/// XML 1.0's NameStartChar.
fn is_name_start(c: char) -> bool {
    matches!(c, ':' | 'A'..='Z' | '_' | 'a'..='z' | '\u{c0}'..='\u{d6}' | '\u{d8}'..='\u{f6}'
        | '\u{f8}'..='\u{2ff}' | '\u{370}'..='\u{37d}' | '\u{37f}'..='\u{1fff}'
        | '\u{200c}'..='\u{200d}' | '\u{2070}'..='\u{218f}' | '\u{2c00}'..='\u{2fef}'
        | '\u{3001}'..='\u{d7ff}' | '\u{f900}'..='\u{fdcf}' | '\u{fdf0}'..='\u{fffd}'
        | '\u{10000}'..='\u{effff}')
}

/// XML 1.0's NameChar.
fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{b7}' | '\u{300}'..='\u{36f}' | '\u{203f}'..='\u{2040}')
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn is_space_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn syntax(at: usize, message: impl Into<String>) -> LexError {
    LexError {
        at,
        kind: LexErrorKind::Syntax,
        message: message.into(),
        element: None,
    }
}

/// `\r\n` and a lone `\r` read as `\n` (XML 1.0 §2.11).
fn normalize_line_ends(text: &str) -> Cow<'_, str> {
    if memchr::memchr(b'\r', text.as_bytes()).is_none() {
        return text.into();
    }
    text.replace("\r\n", "\n").replace('\r', "\n").into()
}

/// The reference `text` starts with (`&name;`, `&#n;`, `&#xh;`): the character it stands for
/// and its length. `at` is its offset, for errors. A reference ends at the first `;` before any
/// markup; what it names must then be one of the five predefined entities or a character XML
/// allows (else a [`LexErrorKind::Reference`], as before: the pass calls it forbidden).
fn reference(text: &str, at: usize) -> Result<(char, usize), LexError> {
    let end = memchr::memchr3(b';', b'<', b'&', &text.as_bytes()[1..])
        .map(|i| i + 1)
        .filter(|&end| text.as_bytes()[end] == b';')
        .ok_or_else(|| syntax(at, "& starts no reference (&name; or &#n;)"))?;
    let body = &text[1..end];
    let resolved = match body.strip_prefix('#') {
        Some(number) => {
            let (digits, radix) = match number.strip_prefix('x') {
                Some(hex) => (hex, 16),
                None => (number, 10),
            };
            // Checked first: `from_str_radix` would also read a sign.
            let numeric = !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix));
            numeric
                .then(|| u32::from_str_radix(digits, radix).ok())
                .flatten()
                .and_then(char::from_u32)
                .filter(|&c| is_xml_char(c))
        }
        None => super::chars::predefined_entity(body),
    };
    match resolved {
        Some(c) => Ok((c, end + 1)),
        None => {
            let shown: String = body.chars().take(32).collect();
            let cut = if shown.len() < body.len() { "…" } else { "" };
            Err(LexError {
                at,
                kind: LexErrorKind::Reference,
                message: format!(
                    "&{shown}{cut}; is not a predefined entity or a valid character reference"
                ),
                element: None,
            })
        }
    }
}

/// XML 1.0's Char production.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{a}' | '\u{d}' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..='\u{10ffff}')
}

/// An attribute's value as XML 1.0 §3.3.3 normalizes it: references resolved, each whitespace
/// character (a line end counting once) a space. `at` is the value's offset.
fn attribute_value(raw: &str, at: usize) -> Result<Cow<'_, str>, LexError> {
    let special = |b: &u8| matches!(b, b'&' | b'<' | b'\t' | b'\n' | b'\r');
    if !raw.as_bytes().iter().any(special) {
        return Ok(raw.into());
    }
    let mut value = String::with_capacity(raw.len());
    let mut chars = raw.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '<' => return Err(syntax(at + i, "< in an attribute value")),
            '&' => {
                let (resolved, len) = reference(&raw[i..], at + i)?;
                value.push(resolved);
                while chars.next_if(|&(j, _)| j < i + len).is_some() {}
            }
            '\r' => {
                value.push(' ');
                chars.next_if(|&(_, next)| next == '\n');
            }
            '\t' | '\n' => value.push(' '),
            c => value.push(c),
        }
    }
    Ok(value.into())
}

/// The declaration's pseudo-attributes (`content` follows `<?xml`): version, then optionally
/// encoding and standalone, in that order. Returns the encoding.
fn declaration(content: &str, at: usize) -> Result<Option<&str>, LexError> {
    let bad = |message: &str| syntax(at, format!("XML declaration: {message}"));
    let mut rest = content;
    let mut pseudo = |name: &str| -> Result<Option<&str>, LexError> {
        let trimmed = rest.trim_start_matches(is_space);
        if trimmed.len() == rest.len() || !trimmed.starts_with(name) {
            return Ok(None);
        }
        let after = trimmed[name.len()..].trim_start_matches(is_space);
        let after = after
            .strip_prefix('=')
            .ok_or_else(|| bad(&format!("{name} has no =")))?
            .trim_start_matches(is_space);
        let quote = after
            .chars()
            .next()
            .filter(|&q| q == '"' || q == '\'')
            .ok_or_else(|| bad(&format!("{name} is not quoted")))?;
        let end = after[1..]
            .find(quote)
            .ok_or_else(|| bad(&format!("{name} is not closed")))?;
        rest = &after[1 + end + 1..];
        Ok(Some(&after[1..1 + end]))
    };
    let version = pseudo("version")?.ok_or_else(|| bad("the version comes first"))?;
    let is_version_1 = version
        .strip_prefix("1.")
        .is_some_and(|minor| minor.bytes().all(|b| b.is_ascii_digit()));
    if !is_version_1 {
        return Err(bad(&format!("version {version:?} is not 1.x")));
    }
    let encoding = pseudo("encoding")?;
    if let Some(encoding) = encoding {
        let mut chars = encoding.chars();
        let well_formed = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !well_formed {
            return Err(bad(&format!(
                "encoding {encoding:?} is not an encoding name"
            )));
        }
    }
    if let Some(standalone) = pseudo("standalone")?
        && !matches!(standalone, "yes" | "no")
    {
        return Err(bad(&format!("standalone {standalone:?} is not yes or no")));
    }
    if !rest.trim_start_matches(is_space).is_empty() {
        return Err(bad("unexpected content"));
    }
    Ok(encoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every token of `doc` until the end, or the first error's message.
    fn lex(doc: &str) -> Result<Vec<String>, String> {
        let mut lexer = Lexer::new(doc, 16);
        let mut out = Vec::new();
        loop {
            let token = lexer.next_token().map_err(|e| e.message)?;
            out.push(match token {
                Token::Declaration { encoding } => format!("decl {encoding:?}"),
                Token::DocType => "doctype".into(),
                Token::Start { name, empty } => {
                    let attributes: Vec<String> = lexer
                        .attributes()
                        .iter()
                        .map(|a| format!("{}={}", a.name.full, a.value))
                        .collect();
                    let namespace = lexer.namespace(name.prefix);
                    format!("<{} {attributes:?} {namespace:?} {empty}>", name.full)
                }
                Token::End => "end".into(),
                Token::Text(t) => format!("text {t:?}"),
                Token::Reference(c) => format!("ref {c:?}"),
                Token::CData(t) => format!("cdata {t:?}"),
                Token::Ignored { len } => format!("ignored {len}"),
                Token::Eof => return Ok(out),
            });
        }
    }

    #[test]
    fn a_document_reads_as_its_tokens() {
        let doc = "\u{feff}<?xml version=\"1.0\" encoding='UTF-8' standalone=\"yes\"?>\r\n<!-- c -->\
                   <m:a xmlns:m=\"urn:x\" b=\"1&amp;2\t3\r\n4\"><b xmlns=\"urn:y\"/>x\r\ny&#65;&#x42;\
                   <![CDATA[<&>]]><?pi data?></m:a>";
        assert_eq!(
            lex(doc).expect("well-formed"),
            [
                "decl Some(\"UTF-8\")",
                "text \"\\n\"",
                "ignored 3",
                "<m:a [\"xmlns:m=urn:x\", \"b=1&2 3 4\"] Some(\"urn:x\") false>",
                "<b [\"xmlns=urn:y\"] Some(\"urn:y\") true>",
                "text \"x\\ny\"",
                "ref 'A'",
                "ref 'B'",
                "cdata \"<&>\"",
                "ignored 5",
                "end",
            ]
        );
    }

    #[test]
    fn bindings_go_out_of_scope_with_their_element() {
        let mut lexer = Lexer::new("<a xmlns='urn:a'><b xmlns='urn:b'/><c/></a>", 16);
        let mut seen = Vec::new();
        while let Ok(token) = lexer.next_token() {
            match token {
                Token::Start { name, .. } => {
                    seen.push((name.full, lexer.namespace("").map(str::to_owned)))
                }
                Token::Eof => break,
                _ => {}
            }
        }
        let expected = [("a", "urn:a"), ("b", "urn:b"), ("c", "urn:a")];
        let expected: Vec<_> = expected
            .iter()
            .map(|(n, u)| (*n, Some(u.to_string())))
            .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn malformed_markup_is_refused_with_a_reason() {
        let cases = [
            ("<a></b>", "</b> closes <a>"),
            ("<a b='1' b='2'/>", "attribute b appears twice"),
            (
                "<a b='1'c='2'/>",
                "attributes must be separated by whitespace",
            ),
            ("<a b=1/>", "an attribute value must be quoted"),
            ("<a b='<'/>", "< in an attribute value"),
            ("<a b/>", "attribute b has no = and value"),
            ("<1a/>", "a name was expected"),
            ("<a:b:c/>", "a:b:c is not a qualified name"),
            ("<:a/>", ":a is not a qualified name"),
            ("<a b:='1'/>", "b: is not a qualified name"),
            ("<a><!-- x -- y --></a>", "-- inside a comment"),
            ("<a>]]></a>", "]]> in character data"),
            ("<a>&amp</a>", "& starts no reference (&name; or &#n;)"),
            (
                "<a>&#xZ;</a>",
                "&#xZ; is not a predefined entity or a valid character reference",
            ),
            ("<a>&amp<b/>;</a>", "& starts no reference (&name; or &#n;)"),
            (
                "<a>&nope;</a>",
                "&nope; is not a predefined entity or a valid character reference",
            ),
            (
                "<a>&#0;</a>",
                "&#0; is not a predefined entity or a valid character reference",
            ),
            (
                " <?xml version='1.0'?><a/>",
                "an XML declaration must stand at the very start",
            ),
            (
                "<?xml encoding='UTF-8'?><a/>",
                "XML declaration: the version comes first",
            ),
            (
                "<?xml version='2.0'?><a/>",
                "XML declaration: version \"2.0\" is not 1.x",
            ),
            (
                "<![CDATA[x]]><a/>",
                "a CDATA section outside the document element",
            ),
            ("<a", "the document ends inside a start tag"),
            ("<a b='1", "the document ends inside an attribute value"),
            ("<a/ >", "/ not followed by > in a start tag"),
            (
                "<!ELEMENT a ANY>",
                "<! starts no comment, CDATA section or DOCTYPE",
            ),
            (
                "<?pi?x?><a/>",
                "a processing instruction's target must end with whitespace",
            ),
        ];
        for (doc, reason) in cases {
            assert_eq!(lex(doc).err().as_deref(), Some(reason), "{doc}");
        }
    }

    proptest::proptest! {
        /// A run read in two parts (bytes, then `memchr`) is the run read plainly, on either
        /// side of the part boundary.
        #[test]
        fn a_text_run_ends_where_markup_starts(
            // Markup rare enough that many runs pass the 64 bytes read one by one.
            bytes in proptest::collection::vec(proptest::prop_oneof![
                60 => proptest::strategy::Just(b'a'),
                1 => proptest::strategy::Just(b'<'),
                1 => proptest::strategy::Just(b'&'),
                2 => proptest::strategy::Just(b'>'),
                2 => proptest::strategy::Just(b'\r'),
            ], 0..300),
            start in 0usize..300,
        ) {
            let start = start.min(bytes.len());
            let rest = &bytes[start..];
            let len = rest.iter().position(|&b| b == b'<' || b == b'&').unwrap_or(rest.len());
            let run = text_run(&bytes, start);
            proptest::prop_assert_eq!(run.end, start + len);
            proptest::prop_assert_eq!(run.has_gt, rest[..len].contains(&b'>'));
            proptest::prop_assert_eq!(run.has_cr, rest[..len].contains(&b'\r'));
        }
    }

    #[test]
    fn the_ascii_name_table_is_name_char_without_the_colon() {
        for b in 0..=255u8 {
            let expected = b.is_ascii() && b != b':' && is_name_char(char::from(b));
            assert_eq!(ASCII_NAME_CHARS[usize::from(b)], expected, "byte {b:#04x}");
        }
    }

    /// An end tag that starts with the open element's name is read by comparing bytes; one
    /// that only starts like it falls back to the name and is refused as before.
    #[test]
    fn end_tags_close_exactly_their_element() {
        for doc in [
            "<a></a>",
            "<a></a \t\r\n>",
            "<p:a xmlns:p='urn:p'><b/></p:a >",
        ] {
            assert!(lex(doc).is_ok(), "{doc}");
        }
        let cases = [
            ("<a></ab>", "</ab> closes <a>"),
            ("<a></a:b>", "</a:b> closes <a>"),
            ("<a></a b>", "end tag </a is not closed by >"),
            ("<a></a", "end tag </a is not closed by >"),
            ("<ab></a>", "</a> closes <ab>"),
            ("<a><b></a></b>", "</a> closes <b>"),
            ("</a>", "</a> closes no element"),
        ];
        for (doc, reason) in cases {
            assert_eq!(lex(doc).err().as_deref(), Some(reason), "{doc}");
        }
    }

    #[test]
    fn a_doctype_ends_the_document() {
        assert_eq!(
            lex("<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>"),
            Ok(vec!["doctype".to_owned()])
        );
        assert_eq!(
            super::super::document_namespace(b"<!DOCTYPE a><a xmlns='urn:x'/>"),
            None
        );
        assert_eq!(
            super::super::document_namespace(b"<?xml version='1.0'?><!-- c --><a xmlns='urn:x'/>")
                .as_deref(),
            Some("urn:x")
        );
    }

    #[test]
    fn attributes_past_the_limit_end_the_tag() {
        let mut lexer = Lexer::new("<a b='1' c='2' d='3'/>", 2);
        let error = lexer.next_token().err().expect("too many");
        assert_eq!(error.kind, LexErrorKind::TooManyAttributes);
    }
}
