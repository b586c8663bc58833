//! HL7 v2 encoding rules: delimiters, segments, fields, components and escape sequences.
//!
//! HL7 v2.6 chapter 2: message construction (segments end with a carriage return, fields are
//! split by the field separator, then repetitions, components, subcomponents) and §2.7 (escape
//! sequences in text). Everything here works on byte offsets of ASCII delimiters inside a UTF-8
//! `str`, so splitting never cuts a character.
//!
//! ## Why not the `hl7-parser` crate
//! `shared/DEPENDENCIES.md` recommends hl7-parser 0.3. Tried (0.3.0) and found unfit for a decoder
//! that must refuse rather than guess, and never panic:
//! * `Message::parse` stops at the first segment it cannot read and returns `Ok` with the
//!   segments before it: `MSH…\rPID|1\rOB|x\rOBX|…` parses as two segments, the OBX silently lost.
//! * Its escape decoder (`Separators::decode`) slices the text by character index as if it were a
//!   byte index: `"éé\\F\\"` panics ("byte index 3 is not a char boundary"). It also knows only
//!   `\X0A\` and `\X0D\` among hex escapes (`\X41\` becomes the text `X41`), drops the rest of a
//!   value after an unterminated escape, and cannot report a malformed one.
//! * It accepts any five ASCII characters as delimiters, `MSH||||||` included.
//!
//! What Vigil needs of the HL7 encoding is small (split on five delimiters, decode five escapes
//! and `\X..\`), so it is written here, with every refusal typed and positioned.

use std::borrow::Cow;

/// The segment terminator, always a carriage return (v2.6 chapter 2, "segments").
pub(crate) const SEGMENT_TERMINATOR: u8 = b'\r';

/// The five delimiters of a message: MSH-1 (field separator) and MSH-2 (component, repetition,
/// escape, subcomponent, in that order; v2.6 chapter 2, "message delimiters" and MSH-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodingCharacters {
    pub field: u8,
    pub component: u8,
    pub repetition: u8,
    pub escape: u8,
    pub subcomponent: u8,
}

impl Default for EncodingCharacters {
    /// The recommended `|^~\&`.
    fn default() -> Self {
        EncodingCharacters {
            field: b'|',
            component: b'^',
            repetition: b'~',
            escape: b'\\',
            subcomponent: b'&',
        }
    }
}

impl EncodingCharacters {
    /// MSH-2 as it is written: component, repetition, escape, subcomponent.
    pub fn msh2(&self) -> [u8; 4] {
        [
            self.component,
            self.repetition,
            self.escape,
            self.subcomponent,
        ]
    }

    fn all(&self) -> [u8; 5] {
        [
            self.field,
            self.component,
            self.repetition,
            self.escape,
            self.subcomponent,
        ]
    }
}

/// Why MSH-1/MSH-2 could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodingProblem {
    #[error("the message ends inside MSH-1/MSH-2")]
    Truncated,
    #[error(
        "MSH-2 must hold exactly four encoding characters in v2.5 and v2.6 (a fifth, the v2.7 \
         truncation character, is not defined there); {count} were sent"
    )]
    WrongCount { count: usize },
    #[error(
        "a delimiter must be a printable ASCII character that is neither a letter nor a digit \
         (byte 0x{byte:02X} is not)"
    )]
    NotADelimiter { byte: u8 },
    #[error("the five delimiters in MSH-1 and MSH-2 must all differ")]
    NotDistinct,
}

/// Checks one delimiter byte: printable ASCII, not alphanumeric (a letter would make segment IDs
/// and values ambiguous; a control character could be a segment terminator or MLLP byte).
fn usable_delimiter(b: u8) -> bool {
    b.is_ascii_graphic() && !b.is_ascii_alphanumeric()
}

/// Reads MSH-1 and MSH-2 from a message that starts with `MSH`. Returns the delimiters and MSH-2's
/// length (4, or 5 with a v2.7+ truncation character, which the caller refuses after it has looked
/// at the version so that a v2.7 sender hears "unsupported version").
pub(crate) fn read_encoding_characters(
    bytes: &[u8],
) -> Result<(EncodingCharacters, usize), EncodingProblem> {
    let field = *bytes.get(3).ok_or(EncodingProblem::Truncated)?;
    if !usable_delimiter(field) {
        return Err(EncodingProblem::NotADelimiter { byte: field });
    }
    let rest = &bytes[4..];
    let end = rest
        .iter()
        .position(|&b| b == field || b == SEGMENT_TERMINATOR)
        .unwrap_or(rest.len());
    let msh2 = &rest[..end];
    if end == rest.len() && end < 4 {
        return Err(EncodingProblem::Truncated);
    }
    if !(4..=5).contains(&msh2.len()) {
        return Err(EncodingProblem::WrongCount { count: msh2.len() });
    }
    if let Some(&byte) = msh2.iter().find(|&&b| !usable_delimiter(b)) {
        return Err(EncodingProblem::NotADelimiter { byte });
    }
    let enc = EncodingCharacters {
        field,
        component: msh2[0],
        repetition: msh2[1],
        escape: msh2[2],
        subcomponent: msh2[3],
    };
    let all = enc.all();
    let distinct = all
        .iter()
        .enumerate()
        .all(|(i, a)| all[i + 1..].iter().all(|b| a != b));
    // The truncation character must differ from the others too.
    let fifth_ok = msh2.get(4).is_none_or(|t| !all.contains(t));
    if !distinct || !fifth_ok {
        return Err(EncodingProblem::NotDistinct);
    }
    Ok((enc, msh2.len()))
}

/// One segment: its ID and its fields, unsplit below the field level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment<'a> {
    pub id: &'a str,
    /// Fields after the ID. For MSH, `raw_fields[0]` is MSH-2; otherwise `raw_fields[0]` is field 1.
    raw_fields: Vec<&'a str>,
}

impl<'a> Segment<'a> {
    /// Splits one segment (without its terminator). The ID must already have been checked.
    pub fn split(text: &'a str, enc: &EncodingCharacters) -> Segment<'a> {
        let id = &text[..3];
        let rest = text.get(4..).unwrap_or("");
        let raw_fields = if text.len() <= 3 {
            Vec::new()
        } else {
            rest.split(enc.field as char).collect()
        };
        Segment { id, raw_fields }
    }

    /// Field `n` (1-based, as the standard numbers them), raw (escapes not decoded); `""` when
    /// absent. MSH-1 is the field separator itself and MSH-2 the encoding characters (chapter 2, MSH).
    pub fn field(&self, n: usize) -> &'a str {
        if n == 0 {
            return "";
        }
        let index = if self.id == "MSH" {
            match n {
                1 => return "",
                _ => n - 2,
            }
        } else {
            n - 1
        };
        self.raw_fields.get(index).copied().unwrap_or("")
    }
}

/// The repetitions of a raw field. An empty field has one empty repetition.
pub(crate) fn repetitions<'a>(
    raw: &'a str,
    enc: &EncodingCharacters,
) -> impl Iterator<Item = &'a str> {
    raw.split(enc.repetition as char)
}

/// Component `n` (1-based) of one repetition, raw; `""` when absent.
pub(crate) fn component<'a>(raw: &'a str, n: usize, enc: &EncodingCharacters) -> &'a str {
    n.checked_sub(1)
        .and_then(|i| raw.split(enc.component as char).nth(i))
        .unwrap_or("")
}

/// Subcomponent `n` (1-based) of one component, raw; `""` when absent.
pub(crate) fn subcomponent<'a>(raw: &'a str, n: usize, enc: &EncodingCharacters) -> &'a str {
    n.checked_sub(1)
        .and_then(|i| raw.split(enc.subcomponent as char).nth(i))
        .unwrap_or("")
}

/// Why an escape sequence was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EscapeProblem {
    #[error("an escape sequence is not closed by a second escape character")]
    Unterminated,
    #[error("an empty escape sequence (two escape characters in a row) has no meaning")]
    Empty,
    #[error("a \\X..\\ escape must hold an even number of hexadecimal digits")]
    BadHex,
    #[error("the bytes of a \\X..\\ escape are not UTF-8 (MSH-18 names UTF-8 or ASCII)")]
    HexNotUtf8,
    #[error(
        "the escape sequence \\{0}..\\ (highlighting, formatting, character set switch or \
         locally defined) is not accepted in a coded or identifier value"
    )]
    Unsupported(char),
}

/// Decodes the escape sequences of v2.6 §2.7.1–2.7.3 that can occur in the coded and identifier
/// values Vigil reads: `\F\ \S\ \T\ \R\ \E\` (the delimiters) and `\Xhh..\` (bytes, which must be
/// UTF-8). Highlighting (`\H\ \N\`), formatting (`\.br\` …, only meaningful in FT), character set
/// switches (`\C..\ \M..\`) and locally defined (`\Z..\`) sequences are refused rather than
/// guessed at.
pub(crate) fn unescape<'a>(
    raw: &'a str,
    enc: &EncodingCharacters,
) -> Result<Cow<'a, str>, EscapeProblem> {
    let esc = enc.escape as char;
    if !raw.contains(esc) {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find(esc) {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after.find(esc).ok_or(EscapeProblem::Unterminated)?;
        let sequence = &after[..end];
        rest = &after[end + 1..];
        let mut chars = sequence.chars();
        let Some(kind) = chars.next() else {
            return Err(EscapeProblem::Empty);
        };
        let argument = chars.as_str();
        match (kind, argument.is_empty()) {
            ('F', true) => out.push(enc.field as char),
            ('S', true) => out.push(enc.component as char),
            ('T', true) => out.push(enc.subcomponent as char),
            ('R', true) => out.push(enc.repetition as char),
            ('E', true) => out.push(enc.escape as char),
            ('X', false) => out.push_str(&hex_text(argument)?),
            (other, _) => return Err(EscapeProblem::Unsupported(other)),
        }
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

fn hex_text(digits: &str) -> Result<String, EscapeProblem> {
    let digits = digits.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return Err(EscapeProblem::BadHex);
    }
    let bytes = digits
        .chunks(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16);
            let lo = (pair[1] as char).to_digit(16);
            match (hi, lo) {
                // Two hexadecimal digits make at most 255.
                (Some(hi), Some(lo)) => Ok((hi * 16 + lo) as u8),
                _ => Err(EscapeProblem::BadHex),
            }
        })
        .collect::<Result<Vec<u8>, _>>()?;
    String::from_utf8(bytes).map_err(|_| EscapeProblem::HexNotUtf8)
}

/// Writes `text` so that it is one value in a message with these delimiters: each delimiter
/// becomes its escape sequence and each control character a `\Xhh\` escape (v2.6 §2.7), so the
/// result never contains a segment terminator or an MLLP framing byte.
pub(crate) fn escape(text: &str, enc: &EncodingCharacters, out: &mut String) {
    let e = enc.escape as char;
    for c in text.chars() {
        let named = match u8::try_from(c) {
            Ok(b) if b == enc.field => Some('F'),
            Ok(b) if b == enc.component => Some('S'),
            Ok(b) if b == enc.subcomponent => Some('T'),
            Ok(b) if b == enc.repetition => Some('R'),
            Ok(b) if b == enc.escape => Some('E'),
            _ => None,
        };
        match named {
            Some(letter) => {
                out.push(e);
                out.push(letter);
                out.push(e);
            }
            None if c.is_control() => {
                let mut buf = [0u8; 4];
                out.push(e);
                out.push('X');
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("{b:02X}"));
                }
                out.push(e);
            }
            None => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc() -> EncodingCharacters {
        EncodingCharacters::default()
    }

    #[test]
    fn reads_the_default_and_other_delimiters() {
        assert_eq!(read_encoding_characters(b"MSH|^~\\&|A"), Ok((enc(), 4)));
        let (other, len) = read_encoding_characters(b"MSH#$%!*#A").unwrap();
        assert_eq!(len, 4);
        assert_eq!(
            (
                other.field,
                other.component,
                other.repetition,
                other.escape,
                other.subcomponent
            ),
            (b'#', b'$', b'%', b'!', b'*')
        );
        // A v2.7 truncation character is read, for the caller to refuse after the version check.
        assert_eq!(read_encoding_characters(b"MSH|^~\\&#|A").unwrap().1, 5);
    }

    #[test]
    fn refuses_unusable_delimiters() {
        assert_eq!(
            read_encoding_characters(b"MSH|^~\\|A"),
            Err(EncodingProblem::WrongCount { count: 3 })
        );
        assert_eq!(
            read_encoding_characters(b"MSH|^~\\&#$|A"),
            Err(EncodingProblem::WrongCount { count: 6 })
        );
        assert_eq!(
            read_encoding_characters(b"MSH||||||A"),
            Err(EncodingProblem::WrongCount { count: 0 })
        );
        assert_eq!(
            read_encoding_characters(b"MSH|^^\\&|A"),
            Err(EncodingProblem::NotDistinct)
        );
        assert_eq!(
            read_encoding_characters(b"MSH|^~\\&^|A"),
            Err(EncodingProblem::NotDistinct)
        );
        assert_eq!(
            read_encoding_characters(b"MSHA^~\\&A"),
            Err(EncodingProblem::NotADelimiter { byte: b'A' })
        );
        assert_eq!(
            read_encoding_characters(b"MSH|^~ &|"),
            Err(EncodingProblem::NotADelimiter { byte: b' ' })
        );
        assert_eq!(
            read_encoding_characters(b"MSH|^~\\\n|"),
            Err(EncodingProblem::NotADelimiter { byte: b'\n' })
        );
        assert_eq!(
            read_encoding_characters(b"MSH"),
            Err(EncodingProblem::Truncated)
        );
        assert_eq!(
            read_encoding_characters(b"MSH|^~"),
            Err(EncodingProblem::Truncated)
        );
    }

    #[test]
    fn numbers_msh_fields_as_the_standard_does() {
        let seg = Segment::split("MSH|^~\\&|APP|FAC|||||ORU^R01", &enc());
        assert_eq!(seg.id, "MSH");
        assert_eq!(seg.field(1), "");
        assert_eq!(seg.field(2), "^~\\&");
        assert_eq!(seg.field(3), "APP");
        assert_eq!(seg.field(4), "FAC");
        assert_eq!(seg.field(9), "ORU^R01");
        assert_eq!(seg.field(10), "");
        let obx = Segment::split("OBX|1|NM|x", &enc());
        assert_eq!((obx.field(1), obx.field(2), obx.field(3)), ("1", "NM", "x"));
        assert_eq!(obx.field(0), "");
        assert_eq!(obx.field(99), "");
        let bare = Segment::split("NTE", &enc());
        assert_eq!(bare.field(1), "");
    }

    #[test]
    fn splits_repetitions_components_and_subcomponents() {
        let e = enc();
        let reps: Vec<_> = repetitions("a^b&c~d", &e).collect();
        assert_eq!(reps, ["a^b&c", "d"]);
        assert_eq!(component("a^b&c", 2, &e), "b&c");
        assert_eq!(component("a^b&c", 3, &e), "");
        assert_eq!(component("a", 0, &e), "");
        assert_eq!(subcomponent("b&c", 2, &e), "c");
        assert_eq!(repetitions("", &e).collect::<Vec<_>>(), [""]);
    }

    #[test]
    fn decodes_delimiter_and_hex_escapes() {
        let e = enc();
        assert_eq!(
            unescape(r"A\F\B\S\C\T\D\R\E\E\", &e).unwrap(),
            "A|B^C&D~E\\"
        );
        assert_eq!(unescape(r"caf\XC3A9\", &e).unwrap(), "café");
        assert_eq!(unescape(r"\X41\\X42\", &e).unwrap(), "AB");
        assert!(matches!(
            unescape("plain", &e).unwrap(),
            Cow::Borrowed("plain")
        ));
        // Multibyte text before an escape (a panic in hl7-parser 0.3's decoder).
        assert_eq!(unescape("éé\\F\\", &e).unwrap(), "éé|");
    }

    #[test]
    fn refuses_escapes_it_cannot_honour() {
        let e = enc();
        assert_eq!(unescape(r"abc\F", &e), Err(EscapeProblem::Unterminated));
        assert_eq!(unescape(r"a\\b", &e), Err(EscapeProblem::Empty));
        assert_eq!(unescape(r"\X4\", &e), Err(EscapeProblem::BadHex));
        assert_eq!(unescape(r"\XZZ\", &e), Err(EscapeProblem::BadHex));
        assert_eq!(unescape(r"\XFF\", &e), Err(EscapeProblem::HexNotUtf8));
        assert_eq!(unescape(r"\X\", &e), Err(EscapeProblem::Unsupported('X')));
        assert_eq!(
            unescape(r"\H\bold\N\", &e),
            Err(EscapeProblem::Unsupported('H'))
        );
        assert_eq!(unescape(r"\.br\", &e), Err(EscapeProblem::Unsupported('.')));
        assert_eq!(
            unescape(r"\Zlocal\", &e),
            Err(EscapeProblem::Unsupported('Z'))
        );
        assert_eq!(
            unescape(r"\C2842\", &e),
            Err(EscapeProblem::Unsupported('C'))
        );
        assert_eq!(unescape(r"\FF\", &e), Err(EscapeProblem::Unsupported('F')));
    }

    #[test]
    fn other_escape_characters_are_honoured() {
        let (e, _) = read_encoding_characters(b"MSH#$%!*#").unwrap();
        assert_eq!(unescape("a!F!b!S!c", &e).unwrap(), "a#b$c");
        // The default escape character is plain text here.
        assert_eq!(unescape(r"a\F\b", &e).unwrap(), r"a\F\b");
    }

    #[test]
    fn escape_round_trips_through_unescape() {
        let e = enc();
        for text in [
            "plain",
            "a|b^c&d~e\\f",
            "line\rbreak\nand\u{0b}\u{1c}",
            "é|ü",
            "",
        ] {
            let mut out = String::new();
            escape(text, &e, &mut out);
            assert!(!out.bytes().any(|b| b.is_ascii_control()), "{out:?}");
            assert!(!out.contains(['|', '^', '&', '~']), "{out:?}");
            assert_eq!(unescape(&out, &e).unwrap(), text);
        }
    }
}
