//! Data sets per filing type: which elements each filing type requires, allows or does not
//! allow, the way ICS2 defines each F-type as its own message. The table is data
//! (`schemas/datasets.tsv`, read at start-up); the constraint walk ([`super::constraints`])
//! checks a filing against its type's column while it walks the encoding, so a data set costs no
//! second pass.

use std::fmt::Write as _;

/// The table shipped with the gateway.
pub const BUILTIN: &str = include_str!("../../schemas/datasets.tsv");

/// What a data set says of an element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// Required (R): missing is code 13.
    Required,
    /// Optional (O).
    Optional,
    /// Not allowed (N): present is code 15.
    NotAllowed,
}

impl Cell {
    fn parse(text: &str) -> Option<Cell> {
        match text {
            "R" => Some(Cell::Required),
            "O" => Some(Cell::Optional),
            "N" => Some(Cell::NotAllowed),
            _ => None,
        }
    }

    fn letter(self) -> &'static str {
        match self {
            Cell::Required => "R",
            Cell::Optional => "O",
            Cell::NotAllowed => "N",
        }
    }
}

/// One element of the table and what each data set says of it.
#[derive(Clone, Debug)]
pub struct Row {
    /// The element's path from `Manifest`, without indices (`consignments.master_document`).
    pub path: String,
    /// One cell per filing type, in the order of [`DataSets::types`].
    pub cells: Vec<Cell>,
}

/// The data-set table.
#[derive(Clone, Debug, Default)]
pub struct DataSets {
    /// The filing types, in column order.
    pub types: Vec<String>,
    pub rows: Vec<Row>,
}

#[derive(Debug, thiserror::Error)]
#[error("data sets, line {line}: {message}")]
pub struct DataSetError {
    pub line: usize,
    pub message: String,
}

impl DataSets {
    /// Reads a table: `#` comments, a header (`element`, then the filing types), then one row
    /// per element with R, O or N under each type.
    pub fn parse(text: &str) -> Result<DataSets, DataSetError> {
        let mut table = DataSets::default();
        let mut header = false;
        for (i, line) in text.lines().enumerate() {
            let error = |message: String| DataSetError {
                line: i + 1,
                message,
            };
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let mut columns = line.split('\t');
            let first = columns.next().unwrap_or_default().trim();
            if !header {
                if first != "element" {
                    return Err(error("the header starts with `element`".into()));
                }
                table.types = columns.map(|c| c.trim().to_owned()).collect();
                header = true;
                continue;
            }
            let cells = columns
                .map(|c| {
                    Cell::parse(c.trim()).ok_or_else(|| error(format!("{c:?} is not R, O or N")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if cells.len() != table.types.len() {
                return Err(error(format!(
                    "{first}: {} cells for {} filing types",
                    cells.len(),
                    table.types.len()
                )));
            }
            if table.rows.iter().any(|r| r.path == first) {
                return Err(error(format!("{first} is listed twice")));
            }
            table.rows.push(Row {
                path: first.to_owned(),
                cells,
            });
        }
        Ok(table)
    }

    /// The column of a filing type, if the table has one.
    pub fn column(&self, filing_type: &str) -> Option<usize> {
        self.types.iter().position(|t| t == filing_type)
    }

    /// The table as Markdown, for `aci-gateway rules` and `schemas/RULES.md`.
    /// The table in Markdown, each element with the WCO Data Model ids of its leaves (`ids`:
    /// leaf path → id, as [`super::constraints::wco_ids`] gives them).
    pub fn markdown(&self, ids: &[(String, String)]) -> String {
        let mut out = String::from("| element | WCO DM id |");
        for t in &self.types {
            let _ = write!(out, " {t} |");
        }
        out.push_str("\n|---|---|");
        out.push_str(&"---|".repeat(self.types.len()));
        out.push('\n');
        for row in &self.rows {
            let _ = write!(out, "| `{}` | {} |", row.path, ids_under(ids, &row.path));
            for cell in &row.cells {
                let _ = write!(out, " {} |", cell.letter());
            }
            out.push('\n');
        }
        out
    }
}

/// The distinct ids of the leaves at or under `path`, at most four named.
fn ids_under(ids: &[(String, String)], path: &str) -> String {
    let prefix = format!("{path}.");
    let mut found: Vec<&str> = Vec::new();
    for (leaf, id) in ids {
        if (leaf == path || leaf.starts_with(&prefix))
            && id != "gateway"
            && !id.starts_with("ICS2")
            && !found.contains(&id.as_str())
        {
            found.push(id);
        }
    }
    match found.len() {
        0 => "–".to_owned(),
        1..=4 => found.join(", "),
        n => format!("{}, … ({n})", found[..3].join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_table_reads_and_covers_every_filing_type() {
        let table = DataSets::parse(BUILTIN).expect("the shipped table");
        assert!(!table.rows.is_empty());
        let codes = crate::validate::codes::CodeLists::builtin();
        let catalogue = codes.list(crate::validate::codes::FILING_TYPES);
        for t in &table.types {
            assert!(catalogue.contains(t), "{t} is not in filing-types.txt");
        }
        assert_eq!(
            table.types.len(),
            catalogue.len(),
            "a column per filing type"
        );
    }

    #[test]
    fn a_bad_table_is_refused_with_its_line() {
        let error = DataSets::parse("element\tF10\nlrn\tX\n").expect_err("X");
        assert_eq!(error.line, 2);
        let error = DataSets::parse("element\tF10\tF11\nlrn\tR\n").expect_err("short");
        assert!(error.message.contains("1 cells for 2"), "{error}");
    }
}
