//! The declarative field constraints (`aci.v1.field` options in `proto/`), compiled once from the
//! descriptors and enforced on any message by walking it: no hand-written per-field checks for
//! what an option can say.
//!
//! Findings: a missing required value is code 13 (`field.required`, or `field.items` for an empty
//! list that needs items); any other broken constraint is code 12 with the rule id of its kind.
//! The same walk checks the filing type's data set ([`super::datasets`]): code 13
//! `dataset.required`, code 15 `dataset.not_allowed`.

use std::collections::HashMap;

use crate::validate::pattern::{Pattern, PatternError};
use prost_reflect::{
    DescriptorPool, ExtensionDescriptor, FieldDescriptor, Kind, MessageDescriptor, Value,
};

use super::codes::{CodeList, CodeLists};
use super::datasets::{Cell, DataSets};
use super::{Code, Finding, Report, Severity, quote};
use crate::pb::FieldConstraints;

/// The name of the field option, as declared in `constraints.proto`.
const OPTION: &str = "aci.v1.field";

#[derive(Debug, thiserror::Error)]
pub enum ConstraintError {
    #[error("the descriptor set has no {0}")]
    Missing(String),
    #[error("{field}: pattern {pattern:?} does not compile: {source}")]
    Pattern {
        field: String,
        pattern: String,
        #[source]
        source: PatternError,
    },
    #[error("{field}: unknown code list {list:?}")]
    CodeList { field: String, list: String },
    #[error("data sets: {path} is not an element of the manifest")]
    DataSetPath { path: String },
}

/// One field's constraints, ready to check.
struct Compiled {
    constraints: FieldConstraints,
    pattern: Option<Pattern>,
    code_list: Option<&'static CodeList>,
}

/// How a field's values appear on the wire, as far as checking needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wire {
    String,
    /// A message of ours, walked in turn (index into `Constraints::types`).
    Message(usize),
    /// Any other message (e.g. a Timestamp): present or not, nothing inside is checked.
    OpaqueMessage,
    Unsigned,
    Signed,
    Enum,
    Double,
    Other,
}

/// What to do with one field of a message type.
struct FieldCheck {
    name: String,
    number: u32,
    wire: Wire,
    list: bool,
    compiled: Option<Compiled>,
}

/// The checks of one message type, and where each field number's check is.
struct TypeChecks {
    fields: Vec<FieldCheck>,
    /// Field number → position in `fields` (indexed by number: they are small, and a lookup is
    /// made for every field of every filing).
    by_number: Vec<Option<usize>>,
    /// The positions whose number of values can break a constraint (required, item counts, a
    /// number that is zero when absent), checked once the message is read; the other fields
    /// of a type, most of them, are not looked at again.
    counted: Vec<usize>,
}

/// The constraints of every message type reachable from `Manifest`, compiled for a walk over
/// the protobuf encoding itself: no intermediate message is built.
pub struct Constraints {
    root: usize,
    types: Vec<TypeChecks>,
    data_sets: DataSetTrie,
    /// The data sets as a version 1 XML document is held to them: an element version 1 cannot
    /// express is not required of it (during the transition).
    data_sets_v1: DataSetTrie,
}

/// The data-set table laid over the walk: a node per element path prefix, reached from its
/// parent by the field's position in its message's checks; a node of a table row holds the row.
#[derive(Clone, Default)]
struct DataSetTrie {
    types: Vec<String>,
    nodes: Vec<DataSetNode>,
}

#[derive(Clone, Default)]
struct DataSetNode {
    /// Field position → child node, in field order: a message's data-set findings come in the
    /// order of its fields, the same every time.
    children: std::collections::BTreeMap<usize, usize>,
    cells: Option<Vec<Cell>>,
}

/// What one walk checks.
#[derive(Clone, Copy)]
struct Scope<'s> {
    /// The declared constraints (not for a document the XML schema checked already).
    constraints: bool,
    /// The column of the filing's data set, if its type has one.
    data_set: Option<usize>,
    /// The table the data set is read from.
    trie: &'s DataSetTrie,
}

/// Which form of a filing is checked: the data sets hold a version 1 XML document only to
/// elements version 1 has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    Current,
    Version1,
}

impl std::fmt::Debug for Constraints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraints")
            .field("types", &self.types.len())
            .finish()
    }
}

impl Constraints {
    /// Compiles the constraints declared on `aci.v1.Manifest` and every type under it.
    pub fn compile(
        pool: &DescriptorPool,
        codes: &'static CodeLists,
        data_sets: &DataSets,
    ) -> Result<Constraints, ConstraintError> {
        let option = pool
            .get_extension_by_name(OPTION)
            .ok_or_else(|| ConstraintError::Missing(OPTION.into()))?;
        let root = pool
            .get_message_by_name("aci.v1.Manifest")
            .ok_or_else(|| ConstraintError::Missing("aci.v1.Manifest".into()))?;
        let mut compiler = Compiler {
            option,
            codes,
            index: HashMap::new(),
            types: Vec::new(),
        };
        let root = compiler.compile(&root)?;
        let mut constraints = Constraints {
            root,
            types: compiler
                .types
                .into_iter()
                .map(|t| t.expect("every type compiled"))
                .collect(),
            data_sets: DataSetTrie::default(),
            data_sets_v1: DataSetTrie::default(),
        };
        constraints.data_sets = constraints.lay_data_sets(data_sets)?;
        constraints.data_sets_v1 = constraints.data_sets.clone();
        Ok(constraints)
    }

    /// Holds version 1 documents to the data sets only for the elements `in_version_1` says
    /// version 1 has (by path from `Manifest`): a required element it cannot express is optional.
    pub fn with_version_1(
        mut self,
        data_sets: &DataSets,
        in_version_1: impl Fn(&str) -> bool,
    ) -> Result<Constraints, ConstraintError> {
        let mut lenient = data_sets.clone();
        for row in lenient
            .rows
            .iter_mut()
            .filter(|row| !in_version_1(&row.path))
        {
            for cell in row.cells.iter_mut().filter(|c| **c == Cell::Required) {
                *cell = Cell::Optional;
            }
        }
        self.data_sets_v1 = self.lay_data_sets(&lenient)?;
        Ok(self)
    }

    /// Resolves each data-set row's path to field positions, building the trie the walk follows.
    fn lay_data_sets(&self, data_sets: &DataSets) -> Result<DataSetTrie, ConstraintError> {
        let mut trie = DataSetTrie {
            types: data_sets.types.clone(),
            nodes: vec![DataSetNode::default()],
        };
        for row in &data_sets.rows {
            let unknown = || ConstraintError::DataSetPath {
                path: row.path.clone(),
            };
            let (mut type_index, mut node) = (Some(self.root), 0);
            for segment in row.path.split('.') {
                let checks = &self.types[type_index.ok_or_else(unknown)?];
                let position = checks
                    .fields
                    .iter()
                    .position(|f| f.name == segment)
                    .ok_or_else(unknown)?;
                type_index = match checks.fields[position].wire {
                    Wire::Message(inner) => Some(inner),
                    _ => None,
                };
                let next = trie.nodes.len();
                node = *trie.nodes[node].children.entry(position).or_insert(next);
                if node == next {
                    trie.nodes.push(DataSetNode::default());
                }
            }
            trie.nodes[node].cells = Some(row.cells.clone());
        }
        Ok(trie)
    }

    /// The column of a filing type's data set.
    fn data_set(&self, filing_type: &str) -> Option<usize> {
        self.data_sets.types.iter().position(|t| t == filing_type)
    }

    /// Every field's declared constraints, by its path from `Manifest` without indices
    /// (`consignments.goods_items.hs_code`), for comparison with other schemas.
    pub fn declared(&self) -> Vec<(String, FieldConstraints)> {
        let mut out = Vec::new();
        self.collect_declared(self.root, String::new(), &mut out, 0);
        out
    }

    fn collect_declared(
        &self,
        type_index: usize,
        prefix: String,
        out: &mut Vec<(String, FieldConstraints)>,
        depth: usize,
    ) {
        for check in &self.types[type_index].fields {
            let path = format!("{prefix}{}", check.name);
            if let Some(compiled) = &check.compiled {
                out.push((path.clone(), compiled.constraints.clone()));
            }
            if let Wire::Message(inner) = check.wire
                && depth < 8
            {
                self.collect_declared(inner, format!("{path}."), out, depth + 1);
            }
        }
    }

    /// Checks a manifest, given as its protobuf encoding, against every declared constraint
    /// and the data set of its filing type.
    pub fn check(&self, encoded: &[u8], filing_type: &str, form: Form, report: &mut Report) {
        let scope = Scope {
            constraints: true,
            data_set: self.data_set(filing_type),
            trie: self.trie(form),
        };
        let mut path = Path::new();
        self.walk(self.root, encoded, &mut path, report, scope, Some(0));
    }

    /// Checks a manifest against the data set of its filing type alone (its constraints were
    /// checked already, as the XML schema's).
    pub fn check_data_set(&self, encoded: &[u8], filing_type: &str, report: &mut Report) {
        let Some(data_set) = self.data_set(filing_type) else {
            return;
        };
        let scope = Scope {
            constraints: false,
            data_set: Some(data_set),
            trie: &self.data_sets,
        };
        let mut path = Path::new();
        self.walk(self.root, encoded, &mut path, report, scope, Some(0));
    }

    fn trie(&self, form: Form) -> &DataSetTrie {
        match form {
            Form::Current => &self.data_sets,
            Form::Version1 => &self.data_sets_v1,
        }
    }

    /// Checks one encoded message of type `type_index`: each value as it comes, then what is
    /// missing or how many items there are. Our own encoding is well-formed; should a value not
    /// decode, the rest of that message is left unchecked rather than misread.
    fn walk<'s>(
        &'s self,
        type_index: usize,
        mut bytes: &[u8],
        path: &mut Path<'s>,
        report: &mut Report,
        scope: Scope<'s>,
        node: Option<usize>,
    ) {
        let checks = &self.types[type_index];
        let frame = path.open_message(checks.fields.len());
        while !bytes.is_empty() {
            let Some(key) = varint(&mut bytes) else {
                path.close_message(frame);
                return;
            };
            let number = (key >> 3) as u32;
            let wire_type = (key & 7) as u8;
            let value = match wire_type {
                0 => varint(&mut bytes).map(Raw::Varint),
                1 => take(&mut bytes, 8)
                    .map(|b| Raw::Fixed64(u64::from_le_bytes(b.try_into().unwrap_or_default()))),
                2 => varint(&mut bytes)
                    .and_then(|len| usize::try_from(len).ok())
                    .and_then(|len| take(&mut bytes, len))
                    .map(Raw::Bytes),
                5 => take(&mut bytes, 4).map(|_| Raw::Other),
                _ => None,
            };
            let Some(value) = value else {
                path.close_message(frame);
                return;
            };
            let Some(&Some(position)) = usize::try_from(number)
                .ok()
                .and_then(|number| checks.by_number.get(number))
            else {
                continue;
            };
            let check = &checks.fields[position];
            let index = path.count(frame, position);
            path.push(&check.name, check.list.then_some(index));
            if let (true, Some(compiled)) = (scope.constraints, &check.compiled) {
                compiled.check_value(check.wire, &value, path, report);
            }
            if let (Wire::Message(inner), Raw::Bytes(body)) = (check.wire, &value) {
                let child = node.and_then(|n| scope.trie.nodes[n].children.get(&position));
                // Without constraints to check, only a message with data-set rows below is read.
                if scope.constraints || child.is_some() {
                    self.walk(inner, body, path, report, scope, child.copied());
                }
            }
            path.pop();
        }
        if scope.constraints {
            for &position in &checks.counted {
                let check = &checks.fields[position];
                if let Some(compiled) = &check.compiled {
                    let count = path.counts(frame)[position];
                    path.push(&check.name, None);
                    compiled.check_count(check.list, check.wire, count, path, report);
                    path.pop();
                }
            }
        }
        if let (Some(column), Some(node)) = (scope.data_set, node) {
            self.check_data_set_rows(scope.trie, checks, frame, node, column, path, report);
        }
        path.close_message(frame);
    }

    /// The data-set rows of the fields of one message: required ones present, others absent.
    #[allow(clippy::too_many_arguments)]
    fn check_data_set_rows<'s>(
        &'s self,
        trie: &'s DataSetTrie,
        checks: &'s TypeChecks,
        frame: Frame,
        node: usize,
        column: usize,
        path: &mut Path<'s>,
        report: &mut Report,
    ) {
        for (&position, &child) in &trie.nodes[node].children {
            let Some(cells) = &trie.nodes[child].cells else {
                continue;
            };
            let name = &checks.fields[position].name;
            let data_set = &trie.types[column];
            let (code, rule, message) = match (cells[column], path.counts(frame)[position]) {
                (Cell::Required, 0) => (
                    Code::Missing,
                    "dataset.required",
                    format!("data set {data_set} requires {name}"),
                ),
                (Cell::NotAllowed, 1..) => (
                    Code::NotAllowed,
                    "dataset.not_allowed",
                    format!("data set {data_set} does not allow {name}"),
                ),
                _ => continue,
            };
            path.push(name, None);
            report.push(Finding {
                code,
                rule,
                path: path.render(),
                message,
                severity: Severity::Error,
                value: String::new(),
            });
            path.pop();
        }
    }
}

/// A value as read off the wire.
enum Raw<'b> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'b [u8]),
    Other,
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    // Most keys and lengths take one byte.
    if let [byte @ 0..0x80, rest @ ..] = *bytes {
        *bytes = rest;
        return Some(u64::from(*byte));
    }
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *bytes = &bytes[i + 1..];
            return Some(value);
        }
    }
    None
}

fn take<'b>(bytes: &mut &'b [u8], len: usize) -> Option<&'b [u8]> {
    let (head, rest) = bytes.split_at_checked(len)?;
    *bytes = rest;
    Some(head)
}

/// Builds the type tables, each type once.
struct Compiler {
    option: ExtensionDescriptor,
    codes: &'static CodeLists,
    index: HashMap<String, usize>,
    types: Vec<Option<TypeChecks>>,
}

impl Compiler {
    fn compile(&mut self, message: &MessageDescriptor) -> Result<usize, ConstraintError> {
        if let Some(&index) = self.index.get(message.full_name()) {
            return Ok(index);
        }
        let index = self.types.len();
        self.index.insert(message.full_name().to_owned(), index);
        self.types.push(None);
        let mut fields = Vec::new();
        for field in message.fields() {
            let wire = match field.kind() {
                Kind::Message(inner) if inner.package_name() == "aci.v1" => {
                    Wire::Message(self.compile(&inner)?)
                }
                Kind::Message(_) => Wire::OpaqueMessage,
                Kind::String => Wire::String,
                Kind::Uint32 | Kind::Uint64 | Kind::Bool => Wire::Unsigned,
                Kind::Int32 | Kind::Int64 => Wire::Signed,
                Kind::Enum(_) => Wire::Enum,
                Kind::Double => Wire::Double,
                _ => Wire::Other,
            };
            let compiled = compile_field(&field, &self.option, self.codes)?;
            if compiled.is_some() && wire == Wire::Other {
                return Err(ConstraintError::Missing(format!(
                    "support for constraints on {} (type {:?})",
                    field.full_name(),
                    field.kind()
                )));
            }
            fields.push(FieldCheck {
                name: field.name().to_owned(),
                number: field.number(),
                wire,
                list: field.is_list(),
                compiled,
            });
        }
        let highest = fields.iter().map(|f| f.number as usize).max().unwrap_or(0);
        let mut by_number = vec![None; highest + 1];
        for (position, field) in fields.iter().enumerate() {
            by_number[field.number as usize] = Some(position);
        }
        let counted = (0..fields.len())
            .filter(|&position| {
                let field = &fields[position];
                field
                    .compiled
                    .as_ref()
                    .is_some_and(|compiled| compiled.counts_matter(field.list, field.wire))
            })
            .collect();
        self.types[index] = Some(TypeChecks {
            fields,
            by_number,
            counted,
        });
        Ok(index)
    }
}

/// Where the walk is: the fields it went down, kept as borrowed segments and rendered only for
/// a finding, and for each message on the way how often each of its fields was read so far (in
/// one buffer for the whole walk: a manifest has hundreds of messages).
#[derive(Default)]
struct Path<'a> {
    segments: Vec<(&'a str, Option<usize>)>,
    counts: Vec<usize>,
}

/// One message's field counts in [`Path::counts`].
#[derive(Clone, Copy)]
struct Frame {
    start: usize,
    fields: usize,
}

impl<'a> Path<'a> {
    /// Room for the manifests' depth and their messages' fields on the way down, so that a
    /// walk does not grow its buffers as it goes (it can, past that).
    fn new() -> Self {
        Path {
            segments: Vec::with_capacity(16),
            counts: Vec::with_capacity(256),
        }
    }

    /// Counts for a message with this many fields, all zero until it is closed.
    fn open_message(&mut self, fields: usize) -> Frame {
        let start = self.counts.len();
        self.counts.resize(start + fields, 0);
        Frame { start, fields }
    }

    /// How often the field at `position` was read before, counting this read.
    fn count(&mut self, frame: Frame, position: usize) -> usize {
        let slot = &mut self.counts[frame.start + position];
        let before = *slot;
        *slot += 1;
        before
    }

    fn counts(&self, frame: Frame) -> &[usize] {
        &self.counts[frame.start..frame.start + frame.fields]
    }

    /// Drops a message's counts (and any its fields left, which were closed before it).
    fn close_message(&mut self, frame: Frame) {
        self.counts.truncate(frame.start);
    }

    fn push(&mut self, name: &'a str, index: Option<usize>) {
        self.segments.push((name, index));
    }

    fn pop(&mut self) {
        self.segments.pop();
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (i, (name, index)) in self.segments.iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            out.push_str(name);
            if let Some(index) = index {
                out.push_str(&format!("[{index}]"));
            }
        }
        out
    }
}

fn compile_field(
    field: &FieldDescriptor,
    option: &ExtensionDescriptor,
    codes: &'static CodeLists,
) -> Result<Option<Compiled>, ConstraintError> {
    let options = field.options();
    if !options.has_extension(option) {
        return Ok(None);
    }
    let constraints: FieldConstraints = match options.get_extension(option).as_ref() {
        Value::Message(message) => message.transcode_to().map_err(|_| {
            ConstraintError::Missing(format!("readable {OPTION} on {}", field.full_name()))
        })?,
        _ => return Ok(None),
    };
    // An option that only names the field's WCO id checks nothing: the walk skips the field.
    let names_only = FieldConstraints {
        wco: String::new(),
        wco_roles: Vec::new(),
        ..constraints.clone()
    } == FieldConstraints::default();
    if names_only {
        return Ok(None);
    }
    let pattern = if constraints.pattern.is_empty() {
        None
    } else {
        Some(
            Pattern::whole(&constraints.pattern).map_err(|source| ConstraintError::Pattern {
                field: field.full_name().to_owned(),
                pattern: constraints.pattern.clone(),
                source,
            })?,
        )
    };
    let code_list = if constraints.code_list.is_empty() {
        None
    } else {
        Some(
            codes
                .get(&constraints.code_list)
                .ok_or_else(|| ConstraintError::CodeList {
                    field: field.full_name().to_owned(),
                    list: constraints.code_list.clone(),
                })?,
        )
    };
    Ok(Some(Compiled {
        constraints,
        pattern,
        code_list,
    }))
}

impl Compiled {
    /// Checks one value of the field (one item, for a list).
    fn check_value(&self, wire: Wire, value: &Raw<'_>, path: &Path<'_>, report: &mut Report) {
        let c = &self.constraints;
        match (wire, value) {
            (Wire::String, Raw::Bytes(bytes)) => {
                let Ok(text) = std::str::from_utf8(bytes) else {
                    incorrect(
                        report,
                        "field.pattern",
                        &path.render(),
                        "",
                        "not valid UTF-8",
                    );
                    return;
                };
                // Characters are counted only for a field with bounds.
                let length = (c.min_len > 0 || c.max_len > 0).then(|| text.chars().count() as u32);
                if let Some(length) = length
                    && (length < c.min_len || (c.max_len > 0 && length > c.max_len))
                {
                    let bounds = match (c.min_len, c.max_len) {
                        (0, max) => format!("at most {max} characters"),
                        (min, 0) => format!("at least {min} characters"),
                        (min, max) => format!("{min} to {max} characters"),
                    };
                    incorrect(
                        report,
                        "field.length",
                        &path.render(),
                        text,
                        &format!("must be {bounds}"),
                    );
                    return;
                }
                if let Some(pattern) = &self.pattern
                    && !pattern.is_match(text)
                {
                    incorrect(
                        report,
                        "field.pattern",
                        &path.render(),
                        text,
                        &format!("does not match the pattern {}", c.pattern),
                    );
                    return;
                }
                if let Some(list) = self.code_list
                    && !list.contains(text)
                {
                    incorrect(
                        report,
                        "field.code_list",
                        &path.render(),
                        text,
                        &format!("not in the code list {}", list.name),
                    );
                }
            }
            (Wire::Unsigned, Raw::Varint(n)) => self.check_number(*n as f64, path, report),
            (Wire::Signed, Raw::Varint(n)) => self.check_number(*n as i64 as f64, path, report),
            (Wire::Double, Raw::Fixed64(bits)) => {
                self.check_number(f64::from_bits(*bits), path, report)
            }
            _ => {}
        }
    }

    /// Whether [`Self::check_count`] can find anything wrong with some number of values: what
    /// it checks, and nothing else.
    fn counts_matter(&self, list: bool, wire: Wire) -> bool {
        let c = &self.constraints;
        if list {
            c.required || c.min_items > 0 || c.max_items > 0
        } else {
            c.required || matches!(wire, Wire::Unsigned | Wire::Signed | Wire::Double)
        }
    }

    /// Checks what the number of values says: presence of a required field, list sizes.
    /// (proto3 does not encode empty strings, zero enums or zero numbers: absent is default.)
    fn check_count(
        &self,
        list: bool,
        wire: Wire,
        count: usize,
        path: &Path<'_>,
        report: &mut Report,
    ) {
        let c = &self.constraints;
        if list {
            if count == 0 && (c.required || c.min_items > 0) {
                missing(
                    report,
                    "field.items",
                    &path.render(),
                    "at least one is required",
                );
            } else if (count as u32) < c.min_items {
                incorrect(
                    report,
                    "field.items",
                    &path.render(),
                    &count.to_string(),
                    &format!("at least {} items are required", c.min_items),
                );
            } else if c.max_items > 0 && count as u32 > c.max_items {
                incorrect(
                    report,
                    "field.items",
                    &path.render(),
                    &count.to_string(),
                    &format!("at most {} items are allowed", c.max_items),
                );
            }
        } else if count == 0 && c.required {
            missing(report, "field.required", &path.render(), "this is required");
        } else if count == 0 && matches!(wire, Wire::Unsigned | Wire::Signed | Wire::Double) {
            // A number not on the wire is zero, and zero may be out of range.
            self.check_number(0.0, path, report);
        }
    }

    fn check_number(&self, number: f64, path: &Path<'_>, report: &mut Report) {
        let c = &self.constraints;
        let below = c.min.is_some_and(|min| number < min);
        let above = c.max.is_some_and(|max| number > max);
        if !number.is_finite() || below || above {
            let range = match (c.min, c.max) {
                (Some(min), Some(max)) => format!("from {min} to {max}"),
                (Some(min), None) => format!("at least {min}"),
                (None, Some(max)) => format!("at most {max}"),
                (None, None) => "a finite number".into(),
            };
            incorrect(
                report,
                "field.range",
                &path.render(),
                &number.to_string(),
                &format!("must be {range}"),
            );
            return;
        }
        if let Some(digits) = c.fraction_digits
            && !has_at_most_decimals(number, digits)
        {
            incorrect(
                report,
                "field.fraction_digits",
                &path.render(),
                &number.to_string(),
                &format!("at most {digits} digits after the decimal point"),
            );
        }
    }
}

/// Digits after the decimal point in the shortest text that reads back as `number` (Rust's
/// `Display` for floats never uses an exponent), as the number is written in XML.
fn decimals(number: f64) -> usize {
    number
        .to_string()
        .split_once('.')
        .map_or(0, |(_, fraction)| fraction.len())
}

/// Whether `number` has at most `digits` [`decimals`], without writing it out when it has (as
/// almost every amount does; writing it was most of a number's check). `k / 10^digits`, with
/// `k` the number scaled and rounded, is exact in its parts and correctly rounded, so it is the
/// double nearest that decimal: if it is `number`, the decimal reads back as `number`, and the
/// shortest text that does has no more digits after the point. Otherwise the text decides.
fn has_at_most_decimals(number: f64, digits: u32) -> bool {
    /// Powers of ten up to the last one a double holds exactly.
    const POWERS: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    /// 2^53: every integer below it is a double.
    const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;
    if let Some(&scale) = POWERS.get(digits as usize) {
        let scaled = (number * scale).round();
        if scaled.abs() < EXACT_INTEGERS && scaled / scale == number {
            return true;
        }
    }
    decimals(number) <= digits as usize
}

fn missing(report: &mut Report, rule: &'static str, path: &str, message: &str) {
    report.push(Finding {
        code: Code::Missing,
        rule,
        path: path.to_owned(),
        message: message.to_owned(),
        severity: Severity::Error,
        value: String::new(),
    });
}

fn incorrect(report: &mut Report, rule: &'static str, path: &str, value: &str, message: &str) {
    report.push(Finding {
        code: Code::IncorrectValue,
        rule,
        path: path.to_owned(),
        message: message.to_owned(),
        severity: Severity::Error,
        value: quote(value),
    });
}

/// A field's `aci.v1.field` option, or the defaults where it has none.
pub fn declared_on(field: &FieldDescriptor) -> FieldConstraints {
    let Some(option) = crate::pb::descriptor_pool().get_extension_by_name(OPTION) else {
        return FieldConstraints::default();
    };
    match field.options().get_extension(&option).as_ref() {
        Value::Message(message) => message.transcode_to().unwrap_or_default(),
        _ => FieldConstraints::default(),
    }
}

/// Every leaf path of the manifest (`consignments.consignor.name`, without indices) with its WCO
/// Data Model id, a leaf of a shared message taking the id its role names (`wco_roles` on the
/// field holding the message). Deprecated fields (version 1 forms, read into their successors)
/// are left out.
pub fn wco_ids() -> Vec<(String, String)> {
    let Some(root) = crate::pb::descriptor_pool().get_message_by_name("aci.v1.Manifest") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    collect_wco(&root, "", &[], &mut out, 0);
    out
}

fn collect_wco(
    message: &MessageDescriptor,
    prefix: &str,
    roles: &[String],
    out: &mut Vec<(String, String)>,
    depth: usize,
) {
    for field in message
        .fields()
        .filter(|f| !super::xml_schema::is_deprecated(f))
    {
        let declared = declared_on(&field);
        let path = format!("{prefix}{}", field.name());
        match field.kind() {
            Kind::Message(inner) if inner.package_name() == "aci.v1" && depth < 8 => {
                collect_wco(
                    &inner,
                    &format!("{path}."),
                    &declared.wco_roles,
                    out,
                    depth + 1,
                );
            }
            _ => {
                let id = if declared.wco == "role" {
                    let wanted = format!("{}=", field.name());
                    roles
                        .iter()
                        .find_map(|role| role.strip_prefix(wanted.as_str()))
                        .unwrap_or("role")
                        .to_owned()
                } else {
                    declared.wco
                };
                out.push((path, id));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::datasets::{BUILTIN, DataSets};
    use proptest::prelude::*;

    proptest! {
        /// The shortcut answers as writing the number out does: for decimals of a few digits
        /// (amounts, weights), and for any double at all.
        #[test]
        fn the_decimals_shortcut_agrees_with_the_text(
            units in -10_000_000_000i64..10_000_000_000,
            places in 0u32..10,
            bits in any::<u64>(),
            digits in 0u32..25,
        ) {
            let decimal = units as f64 / 10f64.powi(places as i32);
            let any = f64::from_bits(bits);
            for number in [decimal, any] {
                if number.is_finite() {
                    prop_assert_eq!(
                        has_at_most_decimals(number, digits),
                        decimals(number) <= digits as usize,
                        "{} with {} digits", number, digits
                    );
                }
            }
        }

        /// The walk reads a varint as prost writes and reads it, whatever its length, and
        /// leaves what follows it; a varint cut short reads as none.
        #[test]
        fn a_varint_reads_as_prost_has_it(value in prop_oneof![0u64..0x80, any::<u64>()], tail in any::<u8>()) {
            let mut encoded = Vec::new();
            prost::encoding::encode_varint(value, &mut encoded);
            let len = encoded.len();
            encoded.push(tail);
            let mut bytes = encoded.as_slice();
            prop_assert_eq!(varint(&mut bytes), Some(value));
            prop_assert_eq!(bytes, &[tail][..]);
            let mut cut = &encoded[..len - 1];
            prop_assert_eq!(varint(&mut cut), None);
        }
    }

    /// The walk checks counts only for the fields in `counted`: every other constrained field
    /// must have nothing to say about any count of its values.
    #[test]
    fn a_field_left_uncounted_has_nothing_to_say_about_its_count() {
        let data_sets = DataSets::parse(BUILTIN).expect("the shipped table");
        let constraints = Constraints::compile(
            crate::pb::descriptor_pool(),
            CodeLists::builtin(),
            &data_sets,
        )
        .expect("compile");
        let (mut counted, mut uncounted) = (0, 0);
        for checks in &constraints.types {
            for (position, check) in checks.fields.iter().enumerate() {
                let Some(compiled) = &check.compiled else {
                    continue;
                };
                if checks.counted.contains(&position) {
                    counted += 1;
                    continue;
                }
                uncounted += 1;
                for count in [0, 1, 2, 1000] {
                    let mut report = Report::default();
                    let path = Path::default();
                    compiled.check_count(check.list, check.wire, count, &path, &mut report);
                    assert!(
                        report.findings().is_empty(),
                        "{} with {count} values: {:?}",
                        check.name,
                        report.findings()
                    );
                }
            }
        }
        // Both kinds exist, or the test shows nothing.
        assert!(
            counted > 10 && uncounted > 10,
            "{counted} counted, {uncounted} not"
        );
    }
}
