//! The characters XML forbids, and the five predefined entities: what the pass checks a
//! document and its references against.

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

/// The character one of the five predefined entities stands for (no other entity is defined:
/// documents have no DTD).
pub(super) fn predefined_entity(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => None,
    }
}
