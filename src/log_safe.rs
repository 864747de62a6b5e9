//! Client-supplied identities made safe for a log line.

/// Longest identity written to a log line, in bytes (escapes included).
pub const MAX_LOGGED_IDENTITY: usize = 200;

/// A client-supplied identity made safe for a log line: only printable ASCII other than `\` is
/// kept; every other character — controls, white space, and all of non-ASCII, which holds the bidi
/// overrides and isolates (U+202E, U+2066–U+2069), zero-width and invisible "letters" (U+3164) — is
/// written as `\u{...}`, and `\` as `\\`, so a client can neither forge a log line nor make one
/// read differently from its bytes. At most [`MAX_LOGGED_IDENTITY`] bytes; a cut one ends in `...`.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_LOGGED_IDENTITY));
    for c in s.chars() {
        let piece = match c {
            '\\' => "\\\\".to_owned(),
            '!'..='~' => c.to_string(),
            _ => format!("\\u{{{:x}}}", u32::from(c)),
        };
        if out.len() + piece.len() > MAX_LOGGED_IDENTITY - 3 {
            out.push_str("...");
            return out;
        }
        out.push_str(&piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_safe_identities() {
        assert_eq!(printable("evil\nFailed login for root"), "evil\\u{a}Failed\\u{20}login\\u{20}for\\u{20}root");
        assert_eq!(printable(&"a".repeat(5000)).len(), MAX_LOGGED_IDENTITY);
        assert!(printable(&"a".repeat(5000)).ends_with("..."));
        assert_eq!(printable(&"a".repeat(200)), "a".repeat(197) + "...");
        assert_eq!(printable(&"a".repeat(197)), "a".repeat(197));
        // bidi overrides and isolates, invisible letters, zero-width characters are escaped
        for (c, shown) in [
            ('\u{202e}', "\\u{202e}"),
            ('\u{2066}', "\\u{2066}"),
            ('\u{2069}', "\\u{2069}"),
            ('\u{3164}', "\\u{3164}"),
            ('\u{200b}', "\\u{200b}"),
        ] {
            assert_eq!(printable(&format!("ab{c}cd")), format!("ab{shown}cd"));
        }
        assert_eq!(printable("m\u{e4}llory"), "m\\u{e4}llory");
        // a backslash cannot fake an escape
        assert_eq!(printable("a\\u{202e}b"), "a\\\\u{202e}b");
        let long = printable(&"\u{202e}".repeat(100));
        assert!(long.len() <= MAX_LOGGED_IDENTITY && long.ends_with("\\u{202e}..."), "{long}");
    }
}
