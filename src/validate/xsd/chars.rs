//! The characters XML forbids, and the five predefined entities: what the pass checks a
//! document and its references against.

/// The offset of the first character XML 1.0 forbids: C0 controls other than tab, newline and
/// carriage return, and U+FFFE / U+FFFF (UTF-8 EF BF BE / EF BF BF). Surrogates cannot occur in
/// valid UTF-8.
pub(super) fn forbidden_char(bytes: &[u8]) -> Option<usize> {
    const BLOCK: usize = 256;
    // The common case: nothing suspicious at all. Checked a block at a time, each block
    // without an early exit so that the compiler vectorizes it (`any` over the bytes stops at
    // each one and was 8 % of the schema-only validation's time; this ~1 %); then byte by byte
    // from the first block holding something suspicious.
    let suspicious = |b: u8| {
        u8::from(b < 0x20) & u8::from(b != b'\t') & u8::from(b != b'\n') & u8::from(b != b'\r')
            | u8::from(b == 0xef)
    };
    let clean = |block: &[u8]| block.iter().fold(0u8, |found, &b| found | suspicious(b)) == 0;
    let first_suspicious = bytes.chunks(BLOCK).position(|block| !clean(block))? * BLOCK;
    bytes
        .iter()
        .enumerate()
        .skip(first_suspicious)
        .find_map(|(i, &b)| match b {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain definition, byte by byte.
    fn first_forbidden(bytes: &[u8]) -> Option<usize> {
        (0..bytes.len()).find(|&i| match bytes[i] {
            0x00..=0x08 | 0x0b | 0x0c | 0x0e..=0x1f => true,
            0xef => {
                bytes.get(i + 1) == Some(&0xbf) && matches!(bytes.get(i + 2), Some(0xbe | 0xbf))
            }
            _ => false,
        })
    }

    #[test]
    fn the_blockwise_check_finds_what_a_plain_scan_finds() {
        let text = "<a>\tx\r\n é €  中</a>".as_bytes().repeat(40);
        assert_eq!(forbidden_char(&text), None);
        let planted: [&[u8]; 7] = [
            b"\x00",
            b"\x08",
            b"\x0b",
            b"\x1f",
            "\u{fffe}".as_bytes(),
            "\u{ffff}".as_bytes(),
            "\u{fffd}\u{feff}".as_bytes(),
        ];
        for at in [
            0,
            1,
            254,
            255,
            256,
            257,
            511,
            512,
            text.len() - 1,
            text.len(),
        ] {
            for bad in planted {
                // Also behind a harmless suspicious character two blocks earlier.
                let mut bytes = text.clone();
                bytes.splice(at..at, bad.iter().copied());
                bytes.splice(0..0, "\u{feff}".bytes());
                assert_eq!(
                    forbidden_char(&bytes),
                    first_forbidden(&bytes),
                    "{bad:?} after a BOM"
                );
                let mut bytes = text.clone();
                bytes.splice(at..at, bad.iter().copied());
                assert_eq!(
                    forbidden_char(&bytes),
                    first_forbidden(&bytes),
                    "{bad:?} at {at}"
                );
            }
        }
    }
}
