//! Identifiers as types: the MRN the gateway issues, the filer's LRN and EORI, the log sequence,
//! and the ISO 6346 check character that MRNs share with container numbers.

use std::fmt;

/// Position of a record in the gateway's log; the first record is 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seq(pub u64);

/// Whether `text` is a customs office code (an8: a country code and six letters or digits,
/// e.g. NL000396).
pub fn is_customs_office(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 8
        && bytes[..2].iter().all(u8::is_ascii_uppercase)
        && bytes[2..]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Whether `text` is a UN/LOCODE: a country code and three letters or digits 2-9.
pub fn is_locode(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 5
        && bytes[..2].iter().all(u8::is_ascii_uppercase)
        && bytes[2..]
            .iter()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'9').contains(b))
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A trader's EORI number as it identifies a filer: the owner of LRNs and of filings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Eori(String);

impl Eori {
    /// Reads an EORI: ISO 3166 alpha-2 country code followed by 1 to 15 upper-case alphanumerics.
    pub fn parse(text: &str) -> Option<Eori> {
        let bytes = text.as_bytes();
        let well_formed = (3..=17).contains(&bytes.len())
            && bytes[..2].iter().all(u8::is_ascii_uppercase)
            && bytes[2..]
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        well_formed.then(|| Eori(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Eori> for String {
    fn from(id: Eori) -> String {
        id.0
    }
}

impl fmt::Display for Eori {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Local reference number: the filer's own reference for a filing (1 to 35 printable ASCII
/// characters, no spaces), unique per filer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Lrn(String);

impl Lrn {
    /// The longest LRN this gateway ever took (filings now take at most 22, as ICS2 does: the
    /// manifest's constraint; older filings keep their longer LRNs and are still looked up).
    pub const MAX_LEN: usize = 35;

    pub fn parse(text: &str) -> Option<Lrn> {
        let well_formed =
            (1..=Self::MAX_LEN).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic());
        well_formed.then(|| Lrn(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Lrn> for String {
    fn from(id: Lrn) -> String {
        id.0
    }
}

impl fmt::Display for Lrn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Movement reference number, in the EU layout: 2-digit year, ISO 3166 alpha-2 country of the
/// issuing gateway, 13 alphanumerics, one check character (18 characters in all).
///
/// The gateway's 13 characters are its log sequence in base 36, zero-padded: unique for as long
/// as the data directory lives, and readable back to the record that registered the filing.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mrn(String);

/// Why a text is not an MRN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MrnError {
    #[error("an MRN has 18 characters, this has {0}")]
    Length(usize),
    #[error("an MRN is upper-case letters and digits only")]
    Alphabet,
    #[error("an MRN starts with a 2-digit year and a 2-letter country code")]
    Prefix,
    #[error("check character is {found}, expected {expected}")]
    CheckCharacter { found: char, expected: char },
}

impl Mrn {
    pub const LEN: usize = 18;
    const UNIQUE_LEN: usize = 13;

    /// Issues the MRN for the record at `seq`, registered in `year` by a gateway in `country`.
    pub fn issue(year: i32, country: &str, seq: Seq) -> Mrn {
        debug_assert!(country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()));
        // Written byte by byte (one per filing; `format!` showed in profiles).
        let mut body = Vec::with_capacity(Self::LEN);
        let year = year.rem_euclid(100) as u8;
        body.extend([b'0' + year / 10, b'0' + year % 10]);
        body.extend_from_slice(country.as_bytes());
        body.extend_from_slice(&base36(seq.0));
        let check = check_character(&body)
            .expect("digits and upper-case letters always have a check character");
        let mut mrn = String::from_utf8(body).expect("digits and the country's ASCII letters");
        mrn.push(check);
        Mrn(mrn)
    }

    /// The sequence of the record the MRN was issued for ([`Mrn::issue`]); `None` for one
    /// whose digits name a number past `u64` (well-formed, but never issued).
    pub fn sequence(&self) -> Option<Seq> {
        self.0.as_bytes()[4..4 + Self::UNIQUE_LEN]
            .iter()
            .try_fold(0u64, |n, &b| {
                let digit = char::from(b).to_digit(36)?;
                n.checked_mul(36)?.checked_add(u64::from(digit))
            })
            .map(Seq)
    }

    /// Reads an MRN and verifies its check character.
    pub fn parse(text: &str) -> Result<Mrn, MrnError> {
        let bytes = text.as_bytes();
        if bytes.len() != Self::LEN {
            return Err(MrnError::Length(text.chars().count()));
        }
        if !bytes
            .iter()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        {
            return Err(MrnError::Alphabet);
        }
        if !(bytes[..2].iter().all(u8::is_ascii_digit)
            && bytes[2..4].iter().all(u8::is_ascii_uppercase))
        {
            return Err(MrnError::Prefix);
        }
        let expected = check_character(&bytes[..17]).ok_or(MrnError::Alphabet)?;
        let found = char::from(bytes[17]);
        if found != expected {
            return Err(MrnError::CheckCharacter { found, expected });
        }
        Ok(Mrn(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Mrn> for String {
    fn from(id: Mrn) -> String {
        id.0
    }
}

impl fmt::Display for Mrn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The ISO 6346 value of a character: digits at face value, letters from A=10 upwards skipping
/// the multiples of 11 (so A=10, B=12 … K=21, L=23 … U=32, V=34 … Z=38).
pub fn iso6346_value(c: u8) -> Option<u32> {
    match c {
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        b'A'..=b'Z' => {
            let mut value = 10;
            for _ in b'A'..c {
                value += 1;
                if value % 11 == 0 {
                    value += 1;
                }
            }
            Some(value)
        }
        _ => None,
    }
}

/// The ISO 6346 check character over `chars`: Σ value(cᵢ)·2ⁱ mod 11, with 10 written as 0.
/// `None` when a character has no ISO 6346 value.
pub fn check_character(chars: &[u8]) -> Option<char> {
    let mut sum: u64 = 0;
    for (i, &c) in chars.iter().enumerate() {
        sum += u64::from(iso6346_value(c)?) << i;
    }
    let digit = u8::try_from(sum % 11 % 10).expect("a remainder below 10 fits a byte");
    Some(char::from(b'0' + digit))
}

/// `n` in base 36, zero-padded to the MRN's unique part (13 digits hold any `u64`).
fn base36(mut n: u64) -> [u8; Mrn::UNIQUE_LEN] {
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut out = [b'0'; Mrn::UNIQUE_LEN];
    for digit in out.iter_mut().rev() {
        *digit = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn letter_values_skip_multiples_of_eleven() {
        let expected = [
            (b'A', 10),
            (b'B', 12),
            (b'C', 13),
            (b'K', 21),
            (b'L', 23),
            (b'U', 32),
            (b'V', 34),
            (b'Z', 38),
        ];
        for (letter, value) in expected {
            assert_eq!(iso6346_value(letter), Some(value), "{}", char::from(letter));
        }
        assert_eq!(iso6346_value(b'7'), Some(7));
        assert_eq!(iso6346_value(b'a'), None);
    }

    #[test]
    fn container_test_vector_from_the_reference() {
        // CSQU3054383 is valid: the check digit of CSQU305438 is 3.
        assert_eq!(check_character(b"CSQU305438"), Some('3'));
    }

    #[test]
    fn issued_mrns_parse_back() {
        let mrn = Mrn::issue(2026, "GB", Seq(1));
        assert_eq!(mrn.as_str().len(), Mrn::LEN);
        assert!(mrn.as_str().starts_with("26GB0000000000001"));
        let padded = Mrn::issue(2005, "FR", Seq(36));
        assert!(padded.as_str().starts_with("05FR0000000000010"), "{padded}");
        assert_eq!(Mrn::parse(mrn.as_str()), Ok(mrn));
        let big = Mrn::issue(2099, "DE", Seq(u64::MAX));
        assert_eq!(big.sequence(), Some(Seq(u64::MAX)));
        assert_eq!(Mrn::parse(big.as_str()), Ok(big));
        // Well-formed, with digits past u64: names no sequence.
        let body = "26GBZZZZZZZZZZZZZ";
        let past = format!("{body}{}", check_character(body.as_bytes()).expect("check"));
        assert_eq!(Mrn::parse(&past).expect("well-formed").sequence(), None);
    }

    #[test]
    fn malformed_mrns_are_refused_with_the_reason() {
        assert_eq!(Mrn::parse("26GB1"), Err(MrnError::Length(5)));
        assert_eq!(Mrn::parse("26gb0000000000001X"), Err(MrnError::Alphabet));
        assert_eq!(Mrn::parse("A6GB00000000000010"), Err(MrnError::Prefix));
    }

    fn weighted_sum(chars: &[u8]) -> u64 {
        chars
            .iter()
            .enumerate()
            .map(|(i, &c)| u64::from(iso6346_value(c).expect("alphanumeric")) << i)
            .sum()
    }

    proptest! {
        #[test]
        fn issued_mrns_always_verify(year in 2000i32..2100, seq in 1u64..u64::MAX) {
            let mrn = Mrn::issue(year, "FR", Seq(seq));
            prop_assert_eq!(mrn.sequence(), Some(Seq(seq)));
            prop_assert_eq!(Mrn::parse(mrn.as_str()), Ok(mrn));
        }

        // A mod-11 check catches a substitution exactly when it changes the weighted sum mod 11
        // (values 11 apart, such as '1' and 'B', do not), and the MRN form folds remainder 10
        // onto 0. Every other single-character change must be refused.
        #[test]
        fn single_character_changes_are_detected(seq in 1u64..u64::MAX, pos in 4usize..18, replacement in "[0-9A-Z]") {
            let mrn = Mrn::issue(2026, "GB", Seq(seq));
            let mut bytes = mrn.as_str().as_bytes().to_vec();
            let new = replacement.as_bytes()[0];
            prop_assume!(bytes[pos] != new);
            let before = weighted_sum(&bytes[..17]) % 11;
            bytes[pos] = new;
            let after = weighted_sum(&bytes[..17]) % 11;
            let changed = String::from_utf8(bytes).expect("ascii");
            if pos == 17 || (before != after && before % 10 != after % 10) {
                prop_assert!(Mrn::parse(&changed).is_err(), "{} accepted", changed);
            }
        }
    }
}
