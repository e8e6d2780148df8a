//! The declarative field constraints (`aci.v1.field` options in `proto/`), compiled once from the
//! descriptors and enforced on any message by walking it: no hand-written per-field checks for
//! what an option can say.
//!
//! Findings: a missing required value is code 13 (`field.required`, or `field.items` for an empty
//! list that needs items); any other broken constraint is code 12 with the rule id of its kind.

use std::collections::HashMap;

use prost::Message;
use prost_reflect::{
    DescriptorPool, DynamicMessage, ExtensionDescriptor, FieldDescriptor, Kind, MessageDescriptor,
    ReflectMessage, Value,
};
use regex::Regex;

use super::codes::{CodeList, CodeLists};
use super::{Code, Finding, Report, Severity, quote};
use crate::pb::{FieldConstraints, Manifest};

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
        source: Box<regex::Error>,
    },
    #[error("{field}: unknown code list {list:?}")]
    CodeList { field: String, list: String },
}

/// One field's constraints, ready to check.
struct Compiled {
    constraints: FieldConstraints,
    pattern: Option<Regex>,
    code_list: Option<&'static CodeList>,
}

/// What to do with one field of a message type.
struct FieldCheck {
    field: FieldDescriptor,
    compiled: Option<Compiled>,
    /// The field holds messages of ours, to be walked in turn.
    walk: bool,
}

/// The constraints of every message type reachable from `Manifest`.
pub struct Constraints {
    root: MessageDescriptor,
    by_type: HashMap<String, Vec<FieldCheck>>,
}

impl std::fmt::Debug for Constraints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraints")
            .field("types", &self.by_type.len())
            .finish()
    }
}

impl Constraints {
    /// Compiles the constraints declared on `aci.v1.Manifest` and every type under it.
    pub fn compile(
        pool: &DescriptorPool,
        codes: &'static CodeLists,
    ) -> Result<Constraints, ConstraintError> {
        let option = pool
            .get_extension_by_name(OPTION)
            .ok_or_else(|| ConstraintError::Missing(OPTION.into()))?;
        let root = pool
            .get_message_by_name("aci.v1.Manifest")
            .ok_or_else(|| ConstraintError::Missing("aci.v1.Manifest".into()))?;
        let mut by_type = HashMap::new();
        let mut pending = vec![root.clone()];
        while let Some(message) = pending.pop() {
            if by_type.contains_key(message.full_name()) {
                continue;
            }
            let mut checks = Vec::new();
            for field in message.fields() {
                let walk = match field.kind() {
                    Kind::Message(inner) if inner.package_name() == "aci.v1" => {
                        pending.push(inner);
                        true
                    }
                    _ => false,
                };
                let compiled = compile_field(&field, &option, codes)?;
                checks.push(FieldCheck {
                    field,
                    compiled,
                    walk,
                });
            }
            by_type.insert(message.full_name().to_owned(), checks);
        }
        Ok(Constraints { root, by_type })
    }

    /// The constraints of one field, by its path from `Manifest` without indices
    /// (`consignments.goods_items.hs_code`), for comparison with other schemas.
    pub fn declared(&self) -> Vec<(String, FieldConstraints)> {
        let mut out = Vec::new();
        self.collect_declared(&self.root, String::new(), &mut out, 0);
        out
    }

    fn collect_declared(
        &self,
        message: &MessageDescriptor,
        prefix: String,
        out: &mut Vec<(String, FieldConstraints)>,
        depth: usize,
    ) {
        let Some(checks) = self.by_type.get(message.full_name()) else {
            return;
        };
        for check in checks {
            let path = format!("{prefix}{}", check.field.name());
            if let Some(compiled) = &check.compiled {
                out.push((path.clone(), compiled.constraints.clone()));
            }
            if check.walk
                && depth < 8
                && let Kind::Message(inner) = check.field.kind()
            {
                self.collect_declared(&inner, format!("{path}."), out, depth + 1);
            }
        }
    }

    /// Checks a manifest against every declared constraint.
    pub fn check(&self, manifest: &Manifest, report: &mut Report) {
        let dynamic =
            DynamicMessage::decode(self.root.clone(), manifest.encode_to_vec().as_slice())
                .expect("a manifest decodes against its own descriptor");
        self.walk(&dynamic, "", report);
    }

    fn walk(&self, message: &DynamicMessage, prefix: &str, report: &mut Report) {
        let Some(checks) = self.by_type.get(message.descriptor().full_name()) else {
            return;
        };
        for check in checks {
            let path = format!("{prefix}{}", check.field.name());
            let value = message.get_field(&check.field);
            if let Some(compiled) = &check.compiled {
                compiled.check(&check.field, message, &value, &path, report);
            }
            if !check.walk {
                continue;
            }
            match value.as_ref() {
                Value::Message(inner) if message.has_field(&check.field) => {
                    self.walk(inner, &format!("{path}."), report);
                }
                Value::List(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Value::Message(inner) = item {
                            self.walk(inner, &format!("{path}[{i}]."), report);
                        }
                    }
                }
                _ => {}
            }
        }
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
    let pattern = if constraints.pattern.is_empty() {
        None
    } else {
        Some(
            Regex::new(&format!("^(?:{})$", constraints.pattern)).map_err(|source| {
                ConstraintError::Pattern {
                    field: field.full_name().to_owned(),
                    pattern: constraints.pattern.clone(),
                    source: Box::new(source),
                }
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
    fn check(
        &self,
        field: &FieldDescriptor,
        message: &DynamicMessage,
        value: &Value,
        path: &str,
        report: &mut Report,
    ) {
        let c = &self.constraints;
        if let Value::List(items) = value {
            if items.is_empty() && (c.required || c.min_items > 0) {
                missing(report, "field.items", path, "at least one is required");
                return;
            }
            if (items.len() as u32) < c.min_items {
                incorrect(
                    report,
                    "field.items",
                    path,
                    &items.len().to_string(),
                    &format!("at least {} items are required", c.min_items),
                );
            }
            if c.max_items > 0 && items.len() as u32 > c.max_items {
                incorrect(
                    report,
                    "field.items",
                    path,
                    &items.len().to_string(),
                    &format!("at most {} items are allowed", c.max_items),
                );
            }
            for (i, item) in items.iter().enumerate() {
                self.check_scalar(item, &format!("{path}[{i}]"), report);
            }
            return;
        }
        let present = match value {
            Value::Message(_) => message.has_field(field),
            Value::String(text) => !text.is_empty(),
            Value::EnumNumber(number) => *number != 0,
            _ => true,
        };
        if !present {
            if c.required {
                missing(report, "field.required", path, "this is required");
            }
            return;
        }
        self.check_scalar(value, path, report);
    }

    fn check_scalar(&self, value: &Value, path: &str, report: &mut Report) {
        let c = &self.constraints;
        match value {
            Value::String(text) => {
                let length = text.chars().count() as u32;
                if length < c.min_len || (c.max_len > 0 && length > c.max_len) {
                    let bounds = match (c.min_len, c.max_len) {
                        (0, max) => format!("at most {max} characters"),
                        (min, 0) => format!("at least {min} characters"),
                        (min, max) => format!("{min} to {max} characters"),
                    };
                    incorrect(
                        report,
                        "field.length",
                        path,
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
                        path,
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
                        path,
                        text,
                        &format!("not in the code list {}", list.name),
                    );
                }
            }
            Value::F64(number) => self.check_number(*number, path, report),
            Value::F32(number) => self.check_number(f64::from(*number), path, report),
            Value::U32(number) => self.check_number(f64::from(*number), path, report),
            Value::U64(number) => self.check_number(*number as f64, path, report),
            Value::I32(number) => self.check_number(f64::from(*number), path, report),
            Value::I64(number) => self.check_number(*number as f64, path, report),
            _ => {}
        }
    }

    fn check_number(&self, number: f64, path: &str, report: &mut Report) {
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
                path,
                &number.to_string(),
                &format!("must be {range}"),
            );
            return;
        }
        if let Some(digits) = c.fraction_digits
            && decimals(number) > digits as usize
        {
            incorrect(
                report,
                "field.fraction_digits",
                path,
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
