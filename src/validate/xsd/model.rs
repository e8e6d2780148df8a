//! Content models as state machines: where a complex element's children are in its sequence,
//! choice or all group, which child may come next, and what is missing at its end.

use super::{Model, Schema};

/// Progress through a content model.
#[derive(Default)]
pub(super) enum ModelState {
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

/// Moves a content model past a child named `name`; the child's declaration, or why it is not
/// allowed here.
pub(super) fn advance(
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
pub(super) fn missing_at_end(schema: &Schema, model: &Model, state: &ModelState) -> Vec<String> {
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
