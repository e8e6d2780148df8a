//! Code lists: the data files in `schemas/codes/`, compiled into the binary and read once.
//!
//! Each file names its source and version in `#` comments; each other line is a code followed by
//! optional tab-separated columns (e.g. a filing type's transport mode).

use std::collections::HashMap;

/// Code lookups are a few per field of every filing: hashed with foldhash, not SipHash (the
/// tables are fixed at start, so a caller's codes cannot build long probe runs in them).
type Lookup<V> = HashMap<&'static str, V, foldhash::fast::RandomState>;
use std::sync::LazyLock;

/// One code list: code → its further columns.
#[derive(Debug)]
pub struct CodeList {
    pub name: &'static str,
    codes: Lookup<Vec<&'static str>>,
}

impl CodeList {
    fn parse(name: &'static str, text: &'static str) -> CodeList {
        let codes = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| {
                let mut columns = line.split('\t');
                let code = columns.next().unwrap_or_default().trim();
                (code, columns.map(str::trim).collect())
            })
            .collect();
        CodeList { name, codes }
    }

    pub fn contains(&self, code: &str) -> bool {
        self.codes.contains_key(code)
    }

    /// Column `index` (1 is the first after the code) of a code's line.
    pub fn column(&self, code: &str, index: usize) -> Option<&'static str> {
        self.codes.get(code)?.get(index.checked_sub(1)?).copied()
    }

    /// Every code, in no particular order.
    pub fn codes(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.codes.keys().copied()
    }

    pub fn len(&self) -> usize {
        self.codes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }
}

/// Every code list the gateway knows, by file name.
#[derive(Debug)]
pub struct CodeLists {
    lists: Lookup<CodeList>,
}

macro_rules! lists {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_str!(concat!("../../schemas/codes/", $name, ".txt")))),*]
    };
}

static BUILTIN: LazyLock<CodeLists> = LazyLock::new(|| CodeLists {
    lists: lists!(
        "countries",
        "package-types",
        "hs-chapters",
        "filing-types",
        "transport-document-types",
        "offices-of-first-entry",
        "representative-statuses",
        "types-of-person",
        "container-indicators",
        "transport-charges-methods",
        "supply-chain-roles",
        "container-packed-statuses",
        "container-supplier-types",
        "means-identification-types",
        "communication-types",
        "referral-request-types",
        "screening-methods",
        "screening-results",
    )
    .into_iter()
    .map(|(name, text)| (name, CodeList::parse(name, text)))
    .collect(),
});

/// The names of the code lists, as the proto's `code_list` options and rules use them.
pub const COUNTRIES: &str = "countries";
pub const PACKAGE_TYPES: &str = "package-types";
pub const HS_CHAPTERS: &str = "hs-chapters";
pub const FILING_TYPES: &str = "filing-types";
pub const DOCUMENT_TYPES: &str = "transport-document-types";
pub const CONTAINER_INDICATORS: &str = "container-indicators";
pub const REFERRAL_REQUEST_TYPES: &str = "referral-request-types";
pub const SCREENING_METHODS: &str = "screening-methods";
pub const SCREENING_RESULTS: &str = "screening-results";

impl CodeLists {
    /// The lists in `schemas/codes/`, as compiled in.
    pub fn builtin() -> &'static CodeLists {
        &BUILTIN
    }

    pub fn get(&self, name: &str) -> Option<&CodeList> {
        self.lists.get(name)
    }

    /// A list the code itself names; present by construction.
    pub fn list(&self, name: &str) -> &CodeList {
        self.lists
            .get(name)
            .unwrap_or_else(|| panic!("code list {name} is compiled in"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_load_with_their_sizes() {
        let lists = CodeLists::builtin();
        assert_eq!(lists.list(COUNTRIES).len(), 249 + 3);
        assert!(lists.list(COUNTRIES).contains("XI"));
        assert_eq!(lists.list(HS_CHAPTERS).len(), 96);
        assert!(!lists.list(HS_CHAPTERS).contains("77"));
        assert!(lists.list(PACKAGE_TYPES).contains("CT"));
        assert!(!lists.list(PACKAGE_TYPES).contains("SX"), "deleted code");
        assert_eq!(lists.list(FILING_TYPES).column("F23", 1), Some("air"));
        // ICS2's catalogue: inland waterway files with the sea types; F14 and F34 exist, F52 not.
        assert_eq!(
            lists.list(FILING_TYPES).column("F10", 1),
            Some("sea,inland_waterway")
        );
        assert!(lists.list(FILING_TYPES).contains("F14"));
        assert!(lists.list(FILING_TYPES).contains("F34"));
        assert!(!lists.list(FILING_TYPES).contains("F52"));
        assert_eq!(lists.list(DOCUMENT_TYPES).column("N741", 1), Some("m"));
    }
}
