//! The downward-API annotations file: one `key="value"` line per annotation, the value a Go string
//! literal as `strconv.Quote` writes it, lines sorted by key (kubelet's format).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The annotations of a pod, as read from a downward-API file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations(BTreeMap<String, String>);

impl Annotations {
    /// The value of one annotation, unquoted.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Every annotation, by key.
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Renders the annotations as kubelet writes them: sorted, one `key="value"` line each, with
    /// values quoted as Go string literals.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (key, value) in &self.0 {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "{key}={}", quote_go(value));
        }
        out
    }
}

impl From<BTreeMap<String, String>> for Annotations {
    fn from(map: BTreeMap<String, String>) -> Self {
        Self(map)
    }
}

/// Why an annotations file could not be parsed. Lines and columns count from 1; the column is a
/// byte offset into the line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnnotationsError {
    /// A line is not of the form `key="value"`.
    #[error("line {line}: expected key=\"value\", found {found:?}")]
    Malformed {
        /// The line number.
        line: usize,
        /// The start of the offending line, cut to 40 characters.
        found: String,
    },
    /// The value of a line is not a valid Go string literal.
    #[error("line {line}, column {column}: value of {key:?} is not a valid Go string: {reason}")]
    BadValue {
        /// The line number.
        line: usize,
        /// Where in the line the problem starts.
        column: usize,
        /// The annotation key of the line.
        key: String,
        /// What is wrong.
        reason: UnquoteError,
    },
    /// Two lines have the same key.
    #[error("line {line}: annotation {key:?} appears twice")]
    Duplicate {
        /// The line number of the second occurrence.
        line: usize,
        /// The repeated key.
        key: String,
    },
}

/// Parses the text of a downward-API annotations file. The file is bytes as kubelet wrote them;
/// a line that is not UTF-8 is reported as malformed rather than decoded lossily.
pub fn parse_annotations(bytes: &[u8]) -> Result<Annotations, AnnotationsError> {
    let mut map = BTreeMap::new();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let malformed = || AnnotationsError::Malformed {
            line,
            found: String::from_utf8_lossy(raw).chars().take(40).collect(),
        };
        let text = std::str::from_utf8(raw).map_err(|_| malformed())?;
        let (key, quoted) = text.split_once('=').ok_or_else(malformed)?;
        if key.is_empty() || !quoted.starts_with('"') {
            return Err(malformed());
        }
        let value = unquote_go(quoted).map_err(|(offset, reason)| AnnotationsError::BadValue {
            line,
            column: key.len() + 2 + offset,
            key: key.to_owned(),
            reason,
        })?;
        if map.insert(key.to_owned(), value).is_some() {
            return Err(AnnotationsError::Duplicate {
                line,
                key: key.to_owned(),
            });
        }
    }
    Ok(Annotations(map))
}

/// What is wrong with a Go string literal.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum UnquoteError {
    /// The literal does not start and end with a double quote.
    #[error("not enclosed in double quotes")]
    NotQuoted,
    /// A double quote or a line break appears unescaped inside the literal.
    #[error("unescaped {0:?} inside the string")]
    Unescaped(char),
    /// A backslash escape that Go does not define, or one cut short.
    #[error("invalid escape sequence {0:?}")]
    BadEscape(String),
    /// A `\u` or `\U` escape naming a surrogate or a value beyond Unicode.
    #[error("escape {0:?} is not a Unicode scalar value")]
    BadCodePoint(String),
    /// Byte escapes (`\x..` or octal) that do not form UTF-8.
    #[error("byte escapes do not form valid UTF-8")]
    InvalidUtf8,
}

/// Unquotes a double-quoted Go string literal (`strconv.Unquote`): every escape form Go defines
/// (`\a \b \f \n \r \t \v \\ \"`, `\xHH`, octal `\NNN`, `\uHHHH`, `\UHHHHHHHH`). On error, returns the
/// byte offset into `literal` where the problem starts, with the reason.
pub fn unquote_go(literal: &str) -> Result<String, (usize, UnquoteError)> {
    let inner = literal
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .filter(|_| literal.len() >= 2)
        .ok_or((0, UnquoteError::NotQuoted))?;
    let bytes = inner.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let at = i + 1; // offset in `literal`, past the opening quote
        match bytes[i] {
            b'"' => return Err((at, UnquoteError::Unescaped('"'))),
            b'\n' => return Err((at, UnquoteError::Unescaped('\n'))),
            b'\\' => {
                let (consumed, decoded) = unescape(&bytes[i + 1..]).map_err(|e| (at, e))?;
                match decoded {
                    Decoded::Byte(b) => out.push(b),
                    Decoded::Char(c) => {
                        let mut buf = [0; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                }
                i += 1 + consumed;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| (0, UnquoteError::InvalidUtf8))
}

enum Decoded {
    Byte(u8),
    Char(char),
}

/// Decodes one escape; `rest` starts just after the backslash. Returns the bytes consumed.
fn unescape(rest: &[u8]) -> Result<(usize, Decoded), UnquoteError> {
    let shown = |n: usize| {
        let end = n.min(rest.len());
        format!("\\{}", String::from_utf8_lossy(&rest[..end]))
    };
    let Some(&first) = rest.first() else {
        return Err(UnquoteError::BadEscape("\\".into()));
    };
    let simple = match first {
        b'a' => Some(0x07),
        b'b' => Some(0x08),
        b'f' => Some(0x0c),
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        b't' => Some(b'\t'),
        b'v' => Some(0x0b),
        b'\\' => Some(b'\\'),
        b'"' => Some(b'"'),
        _ => None,
    };
    if let Some(b) = simple {
        return Ok((1, Decoded::Byte(b)));
    }
    let hex = |digits: usize| -> Result<u32, UnquoteError> {
        let field = rest
            .get(1..1 + digits)
            .ok_or_else(|| UnquoteError::BadEscape(shown(1 + digits)))?;
        let text = std::str::from_utf8(field).map_err(|_| UnquoteError::BadEscape(shown(1)))?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(UnquoteError::BadEscape(shown(1 + digits)));
        }
        u32::from_str_radix(text, 16).map_err(|_| UnquoteError::BadEscape(shown(1 + digits)))
    };
    match first {
        b'x' => {
            let v = hex(2)?;
            // Two hex digits never exceed 0xff.
            Ok((3, Decoded::Byte(u8::try_from(v).unwrap_or(u8::MAX))))
        }
        b'u' | b'U' => {
            let digits = if first == b'u' { 4 } else { 8 };
            let v = hex(digits)?;
            let c =
                char::from_u32(v).ok_or_else(|| UnquoteError::BadCodePoint(shown(1 + digits)))?;
            Ok((1 + digits, Decoded::Char(c)))
        }
        b'0'..=b'7' => {
            let field = rest
                .get(..3)
                .filter(|f| f.iter().all(|b| (b'0'..=b'7').contains(b)))
                .ok_or_else(|| UnquoteError::BadEscape(shown(3)))?;
            let v = field
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            let b = u8::try_from(v).map_err(|_| UnquoteError::BadEscape(shown(3)))?;
            Ok((3, Decoded::Byte(b)))
        }
        _ => Err(UnquoteError::BadEscape(shown(1))),
    }
}

/// Quotes a string as Go's `strconv.Quote` does: printable characters as they are, `"` and `\`
/// escaped, the usual short escapes, and other non-printable characters as `\xHH`, `\uHHHH` or
/// `\UHHHHHHHH`.
pub fn quote_go(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || c == '\u{feff}' || ('\u{2028}'..='\u{2029}').contains(&c) => {
                if (c as u32) <= 0xffff {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn unquotes_every_escape_form() {
        let literal = r#""a\"b\\c\n\t\r\a\b\f\v\x41\101\u00e9\U0001F600""#;
        assert_eq!(
            unquote_go(literal).as_deref(),
            Ok("a\"b\\c\n\t\r\x07\x08\x0c\x0bAA\u{e9}\u{1F600}")
        );
    }

    #[test]
    fn byte_escapes_combine_into_utf8() {
        assert_eq!(unquote_go(r#""\xc3\xa9""#).as_deref(), Ok("é"));
        assert_eq!(unquote_go(r#""\303\251""#).as_deref(), Ok("é"));
        assert_eq!(unquote_go(r#""\xc3""#), Err((0, UnquoteError::InvalidUtf8)));
    }

    #[test]
    fn rejects_broken_literals_with_their_offset() {
        assert_eq!(unquote_go("abc"), Err((0, UnquoteError::NotQuoted)));
        assert_eq!(unquote_go("\""), Err((0, UnquoteError::NotQuoted)));
        assert_eq!(
            unquote_go(r#""ab\q""#),
            Err((3, UnquoteError::BadEscape("\\q".into())))
        );
        assert_eq!(
            unquote_go(r#""a"b""#),
            Err((2, UnquoteError::Unescaped('"')))
        );
        assert_eq!(
            unquote_go(r#""\u12""#),
            Err((1, UnquoteError::BadEscape("\\u12".into())))
        );
        assert_eq!(
            unquote_go(r#""\ud800""#),
            Err((1, UnquoteError::BadCodePoint("\\ud800".into())))
        );
        assert_eq!(
            unquote_go(r#""\400""#),
            Err((1, UnquoteError::BadEscape("\\400".into())))
        );
        assert_eq!(
            unquote_go(r#""trailing\""#),
            Err((9, UnquoteError::BadEscape("\\".into())))
        );
    }

    #[test]
    fn parses_kubelet_file() {
        let file = b"kubernetes.io/config.seen=\"2019-01-01T00:00:00Z\"\nworkflows.argoproj.io/template=\"{\\\"name\\\":\\\"x\\\"}\"\n";
        let parsed = parse_annotations(file).unwrap();
        assert_eq!(
            parsed.get("workflows.argoproj.io/template"),
            Some(r#"{"name":"x"}"#)
        );
        assert_eq!(parsed.as_map().len(), 2);
    }

    #[test]
    fn reports_line_and_column_of_a_broken_escape() {
        let file = b"a=\"ok\"\nb=\"bad \\z escape\"\n";
        let err = parse_annotations(file).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2, column 8: value of \"b\" is not a valid Go string: invalid escape sequence \"\\\\z\""
        );
    }

    #[test]
    fn rejects_lines_without_quotes_or_key() {
        assert!(matches!(
            parse_annotations(b"novalue\n"),
            Err(AnnotationsError::Malformed { line: 1, .. })
        ));
        assert!(matches!(
            parse_annotations(b"a=\"x\"\n=\"y\"\n"),
            Err(AnnotationsError::Malformed { line: 2, .. })
        ));
        assert!(matches!(
            parse_annotations(b"a=unquoted\n"),
            Err(AnnotationsError::Malformed { line: 1, .. })
        ));
        assert!(matches!(
            parse_annotations(b"a=\"x\"\na=\"y\"\n"),
            Err(AnnotationsError::Duplicate { line: 2, .. })
        ));
        assert!(matches!(
            parse_annotations(b"a=\"\xff\"\n"),
            Err(AnnotationsError::Malformed { line: 1, .. })
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_annotations(&bytes);
        }

        #[test]
        fn arbitrary_lines_never_panic(text in "([a-z./]{0,8}=?\"?([^\"\\\\]|\\\\.|\\\\[0-7xuU][0-9a-fA-F]{0,8}){0,20}\"?\n?){0,6}") {
            let _ = parse_annotations(text.as_bytes());
        }

        #[test]
        fn rendered_annotations_parse_back(map in proptest::collection::btree_map("[a-z][a-z0-9./-]{0,20}", any::<String>(), 0..8)) {
            let annotations = Annotations::from(map);
            prop_assert_eq!(parse_annotations(annotations.render().as_bytes()), Ok(annotations));
        }

        #[test]
        fn quote_then_unquote_is_identity(value in any::<String>()) {
            prop_assert_eq!(unquote_go(&quote_go(&value)), Ok(value));
        }
    }
}
