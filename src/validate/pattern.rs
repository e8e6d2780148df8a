//! Whole-value patterns, as the XML schema's `pattern` facets and the protobuf schema's field
//! constraints state them: a value matches or it does not, so only the engines that answer
//! that are built (no one-pass DFA or backtracker for capture groups, which were a third of
//! `validate`'s start-up, all of it compiling patterns).
//!
//! Most of the schemas' patterns are ASCII classes in a row, each repeated some number of times
//! (`[A-Z]{2}[A-Z0-9]{1,15}`, `[0-9]{7}-[0-9]`). Those are matched by [`AsciiSequence`], a few
//! instructions a byte with no engine to set up per value (the regex engine's setup was most of
//! a short value's cost). Anything else (alternatives, groups, Unicode classes such as XSD's
//! `\d`) goes to the regex engine.

use regex_automata::meta;
use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// A compiled pattern that must match a whole value.
#[derive(Debug, Clone)]
pub struct Pattern {
    regex: meta::Regex,
    ascii: Option<AsciiSequence>,
}

/// Why a pattern does not compile (boxed: the error is larger than any value it is beside).
pub type PatternError = Box<meta::BuildError>;

impl Pattern {
    /// Compiles `source` (Rust regex syntax, Unicode classes) anchored at both ends. It is
    /// parsed once, by the engine's own parser with the engine's settings, and the one syntax
    /// tree serves both the engine and [`AsciiSequence`].
    pub fn whole(source: &str) -> Result<Pattern, PatternError> {
        let anchored = format!("^(?:{source})$");
        let mut builder = meta::Regex::builder();
        builder.configure(meta::Config::new().onepass(false).backtrack(false));
        match regex_automata::util::syntax::parse(&anchored) {
            Ok(hir) => Ok(Pattern {
                regex: builder.build_from_hir(&hir).map_err(Box::new)?,
                ascii: AsciiSequence::compile(&hir),
            }),
            // The same parse inside the engine fails the same way, and its error says why.
            Err(_) => builder
                .build(&anchored)
                .map(|regex| Pattern { regex, ascii: None })
                .map_err(Box::new),
        }
    }

    /// Whether all of `value` matches.
    pub fn is_match(&self, value: &str) -> bool {
        match &self.ascii {
            Some(sequence) => sequence.is_match(value.as_bytes()),
            None => self.regex.is_match(value),
        }
    }
}

/// A pattern that is a row of ASCII classes (a character is a class of one), each repeated
/// between a minimum and a maximum number of times, or without a maximum. It is matched as a
/// set of places in the row, one bit each: a place stands for one repetition of its class,
/// mandatory, optional or (the last of an unbounded one) repeated at will.
///
/// A non-ASCII character never matches: none of its bytes is in an ASCII class, as the
/// character is in none.
#[derive(Debug, Clone)]
struct AsciiSequence {
    /// For each ASCII byte, the places whose class holds it.
    accepts: [u64; 128],
    /// Places that may be passed over (optional repetitions).
    optional: u64,
    /// Places that may take another byte and stay (an unbounded repetition's last).
    repeating: u64,
    /// Where a value starts: the first place and those reached by passing over optional ones.
    start: u64,
    /// The place after the last: a value that ends there matches.
    end: u64,
}

impl AsciiSequence {
    /// Places at most: one bit each, and one for the end.
    const PLACES: usize = 63;

    /// The sequence of a pattern anchored at both ends (`^…$`), if it is a row of ASCII classes.
    fn compile(anchored: &Hir) -> Option<AsciiSequence> {
        let HirKind::Concat(items) = anchored.kind() else {
            return None;
        };
        let [start, items @ .., end] = items.as_slice() else {
            return None;
        };
        if *start.kind() != HirKind::Look(Look::Start) || *end.kind() != HirKind::Look(Look::End) {
            return None;
        }
        let mut places: Vec<([bool; 128], Repeat)> = Vec::new();
        for item in items {
            match item.kind() {
                HirKind::Literal(literal) => {
                    for &byte in literal.0.iter() {
                        places.push((one_byte(byte)?, Repeat::Once));
                    }
                }
                HirKind::Class(class) => places.push((ascii_class(class)?, Repeat::Once)),
                HirKind::Repetition(repetition) => {
                    let class = match repetition.sub.kind() {
                        HirKind::Class(class) => ascii_class(class)?,
                        HirKind::Literal(literal) if literal.0.len() == 1 => {
                            one_byte(literal.0[0])?
                        }
                        _ => return None,
                    };
                    let min = usize::try_from(repetition.min).ok()?;
                    for _ in 0..min.min(Self::PLACES + 1) {
                        places.push((class, Repeat::Once));
                    }
                    match repetition.max {
                        None => places.push((class, Repeat::AtWill)),
                        Some(max) => {
                            let optional = usize::try_from(max).ok()?.checked_sub(min)?;
                            for _ in 0..optional.min(Self::PLACES + 1) {
                                places.push((class, Repeat::Optional));
                            }
                        }
                    }
                }
                _ => return None,
            }
            if places.len() > Self::PLACES {
                return None;
            }
        }
        let mut sequence = AsciiSequence {
            accepts: [0; 128],
            optional: 0,
            repeating: 0,
            start: 0,
            end: 1 << places.len(),
        };
        for (place, (class, repeat)) in places.iter().enumerate() {
            let bit = 1u64 << place;
            for (byte, _) in class.iter().enumerate().filter(|(_, member)| **member) {
                sequence.accepts[byte] |= bit;
            }
            match repeat {
                Repeat::Once => {}
                Repeat::Optional => sequence.optional |= bit,
                Repeat::AtWill => {
                    sequence.optional |= bit;
                    sequence.repeating |= bit;
                }
            }
        }
        sequence.start = sequence.pass_optional(1);
        Some(sequence)
    }

    /// `places`, and every place reached from them by passing over optional ones.
    fn pass_optional(&self, mut places: u64) -> u64 {
        loop {
            let reached = places | ((places & self.optional) << 1);
            if reached == places {
                return places;
            }
            places = reached;
        }
    }

    fn is_match(&self, value: &[u8]) -> bool {
        let mut places = self.start;
        for &byte in value {
            let Some(&accepting) = self.accepts.get(usize::from(byte)) else {
                return false;
            };
            let took = places & accepting;
            if took == 0 {
                return false;
            }
            places = self.pass_optional((took << 1) | (took & self.repeating));
        }
        places & self.end != 0
    }
}

/// How often a place of an [`AsciiSequence`] is taken.
#[derive(Debug, Clone, Copy)]
enum Repeat {
    Once,
    Optional,
    AtWill,
}

/// The class of one ASCII byte (none for another byte: part of a longer character).
fn one_byte(byte: u8) -> Option<[bool; 128]> {
    let mut class = [false; 128];
    *class.get_mut(usize::from(byte))? = true;
    Some(class)
}

/// The members of a class that holds ASCII characters only (none for any other class).
fn ascii_class(class: &Class) -> Option<[bool; 128]> {
    let mut members = [false; 128];
    let mut add = |start: u32, end: u32| -> Option<()> {
        for code in start..=end {
            *members.get_mut(usize::try_from(code).ok()?)? = true;
        }
        Some(())
    };
    match class {
        Class::Unicode(class) => {
            for range in class.ranges() {
                add(u32::from(range.start()), u32::from(range.end()))?;
            }
        }
        Class::Bytes(class) => {
            for range in class.ranges() {
                add(u32::from(range.start()), u32::from(range.end()))?;
            }
        }
    }
    Some(members)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::{Just, Strategy};

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

    /// Patterns of the schemas and the awkward cases of a row of classes: optional places
    /// before mandatory ones of the same class, unbounded repeats, literals, an empty row.
    const ROWS: &[&str] = &[
        "[A-Z]{3}[UJZ][0-9]{7}",
        "[A-Z]{2}[A-Z0-9]{1,15}",
        "[A-Z0-9]{2}[A-Z]?[0-9]{1,4}[A-Z]?",
        "[1-4A-HK-NP][0245689C-FL-NP][GVBSRHUPTAK][0-9]",
        "[0-9]{7}-[0-9]",
        "[!-~]+",
        "[A-Z]?[A-Z]",
        "A{2,}B?[AB]*",
        "[a-c]{0,3}c{2}",
        "x*",
        "",
        "(?i)[a-c]{2}-q",
    ];

    #[test]
    fn rows_of_ascii_classes_skip_the_engine_and_others_do_not() {
        for row in ROWS {
            let pattern = Pattern::whole(row).expect("compiles");
            assert!(pattern.ascii.is_some(), "{row} is a row of ASCII classes");
        }
        for other in [
            "[A-Z]{2}|[0-9]{3}",
            "\\d{3}",
            "[0-9]{6}([0-9]{2}){0,2}",
            "é+",
            "[A-Z]{64}",
            "[A-Z]{0,200}",
            "^A$",
        ] {
            let pattern = Pattern::whole(other).expect("compiles");
            assert!(pattern.ascii.is_none(), "{other} goes to the engine");
        }
    }

    /// Values for a row: ones it matches, the same with one character changed, dropped or
    /// added, and any at all (made of characters in and out of the classes, non-ASCII ones
    /// among them).
    fn values(row: &'static str) -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let matching = || proptest::string::string_regex(row).expect("a generator for the row");
        let other = "[ABCJUZacq09 !~\\-é١]";
        prop_oneof![
            matching(),
            (matching(), any::<prop::sample::Index>(), 0..3u8, other).prop_map(
                |(value, at, edit, other)| {
                    let mut chars: Vec<char> = value.chars().collect();
                    let other = other.chars().next().unwrap_or('!');
                    let at = at.index(chars.len() + 1);
                    match edit {
                        0 if at < chars.len() => chars[at] = other,
                        1 if at < chars.len() => {
                            chars.remove(at);
                        }
                        _ => chars.insert(at, other),
                    }
                    chars.into_iter().collect()
                }
            ),
            "[ABCJUZacq09 !~\\-é١]{0,20}",
        ]
    }

    proptest::proptest! {
        /// A row of classes answers as the regex engine does.
        #[test]
        fn a_row_answers_as_the_engine_does(
            (row, value) in (0..ROWS.len()).prop_flat_map(|row| (Just(row), values(ROWS[row]))),
        ) {
            let pattern = Pattern::whole(ROWS[row]).expect("compiles");
            proptest::prop_assert_eq!(
                pattern.is_match(&value),
                pattern.regex.is_match(&value),
                "{} on {:?}", ROWS[row], value
            );
        }
    }
}
