//! Showing text a script wrote (log lines, fault messages) on a terminal or in a panel.
//!
//! Hosts escape control characters when they capture script text, but a line from an older
//! store or server may still hold them: printed raw, a script could move the cursor, recolour
//! or clear the terminal, or start a line that looks like the host's own output. Every place
//! that shows script text passes it through [`escape_control`] as a second line of defence.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every control character (C0, DEL, C1) written as an escape: `\n`, `\r`, `\t`,
/// `\x1b` style for the rest of C0 and DEL, `\u{9b}` style for C1. A backslash stays as it
/// is, so text a host already escaped is shown unchanged. Borrows when there is nothing to
/// escape (the usual case).
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            '\0'..='\x1f' | '\x7f' => {
                let _ = write!(escaped, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(escaped, "\\u{{{:x}}}", c as u32);
            }
            c => escaped.push(c),
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for text in [
            "",
            "mining at (3, -4)",
            "naïve 🚀 ünïcødé",
            r"already \x1b escaped",
        ] {
            assert!(matches!(escape_control(text), Cow::Borrowed(t) if t == text));
        }
    }

    #[test]
    fn every_control_character_is_escaped() {
        assert_eq!(escape_control("a\nb\rc\td"), r"a\nb\rc\td");
        assert_eq!(
            escape_control("\x1b[2J\x1b]0;title\x07"),
            r"\x1b[2J\x1b]0;title\x07"
        );
        assert_eq!(escape_control("\0\x7f"), r"\x00\x7f");
        assert_eq!(escape_control("x\u{9b}31m\u{85}"), r"x\u{9b}31m\u{85}");
        for c in (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
            let shown = escape_control(&c.to_string()).into_owned();
            assert!(
                !shown.chars().any(char::is_control),
                "{c:?} shown as {shown:?}"
            );
            assert!(shown.starts_with('\\'), "{c:?} shown as {shown:?}");
        }
    }

    #[test]
    fn a_forged_line_stays_on_one_line() {
        let forged = "ok\nship 2 tick 9: FAULT out of fuel";
        let shown = escape_control(forged);
        assert_eq!(shown.lines().count(), 1);
        assert_eq!(shown, r"ok\nship 2 tick 9: FAULT out of fuel");
    }
}
