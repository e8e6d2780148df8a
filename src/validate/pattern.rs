//! Whole-value patterns, as the XML schema's `pattern` facets and the protobuf schema's field
//! constraints state them: a value matches or it does not, so only the engines that answer
//! that are built (no one-pass DFA or backtracker for capture groups, which were a third of
//! `validate`'s start-up, all of it compiling patterns).

use regex_automata::meta;

/// A compiled pattern that must match a whole value.
#[derive(Debug, Clone)]
pub struct Pattern(meta::Regex);

/// Why a pattern does not compile (boxed: the error is larger than any value it is beside).
pub type PatternError = Box<meta::BuildError>;

impl Pattern {
    /// Compiles `source` (Rust regex syntax, Unicode classes) anchored at both ends.
    pub fn whole(source: &str) -> Result<Pattern, PatternError> {
        meta::Regex::builder()
            .configure(meta::Config::new().onepass(false).backtrack(false))
            .build(&format!("^(?:{source})$"))
            .map(Pattern)
            .map_err(Box::new)
    }

    /// Whether all of `value` matches.
    pub fn is_match(&self, value: &str) -> bool {
        self.0.is_match(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_matches_whole_values_only_with_unicode_classes() {
        let code = Pattern::whole("[A-Z]{2}|\\d{3}").expect("compiles");
        assert!(code.is_match("GB"));
        assert!(code.is_match("123"));
        assert!(code.is_match("١٢٣"), "\\d is any Unicode digit, as in XSD");
        assert!(!code.is_match("GBR"));
        assert!(!code.is_match("xGB"));
        assert!(!code.is_match("12"));
        assert!(Pattern::whole("[a-").is_err());
    }
}
