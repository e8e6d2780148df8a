//! The characters XML allows, and the five predefined entities: what the pass checks text and
//! references against.

/// The offset of the first character XML 1.0 forbids: C0 controls other than tab, newline and
/// carriage return, and U+FFFE / U+FFFF (UTF-8 EF BF BE / EF BF BF). Surrogates cannot occur in
/// valid UTF-8.
pub(super) fn forbidden_char(bytes: &[u8]) -> Option<usize> {
    // The common case, checked in a loop the compiler vectorizes: nothing suspicious at all.
    let suspicious = |b: &u8| *b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r') || *b == 0xef;
    if !bytes.iter().any(suspicious) {
        return None;
    }
    bytes.iter().enumerate().find_map(|(i, &b)| match b {
        0x00..=0x08 | 0x0b | 0x0c | 0x0e..=0x1f => Some(i),
        0xef if bytes.get(i + 1) == Some(&0xbf)
            && matches!(bytes.get(i + 2), Some(0xbe | 0xbf)) =>
        {
            Some(i)
        }
        _ => None,
    })
}

/// The character a reference stands for: one of the five predefined entities, or a character
/// reference to a character XML allows. `None` for anything else (no other entity is defined:
/// documents have no DTD).
pub fn resolve_reference(reference: &quick_xml::events::BytesRef<'_>) -> Option<char> {
    if reference.is_char_ref() {
        return reference
            .resolve_char_ref()
            .ok()
            .flatten()
            .filter(|&c| is_xml_char(c));
    }
    match reference.as_ref() {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => None,
    }
}

/// XML 1.0's Char production.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{a}' | '\u{d}' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..='\u{10ffff}')
}
