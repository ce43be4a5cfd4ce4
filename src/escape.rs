//! Strings from the host, its files, profiles and snapshots are shown to someone at a
//! terminal. A hostname or a sysctl.d comment holding `ESC ] 0 ;` or a bidi override
//! could retitle the terminal, hide a line or make `=` read as something else, so every
//! such string is escaped before it is printed: text output goes through [`safe`], JSON
//! through [`json`] (serde_json escapes only C0 controls).

use std::borrow::Cow;

/// Characters that change what a terminal shows without being text: C0 and C1 controls
/// and DEL (`char::is_control`), bidi embeddings, overrides, isolates and marks, and
/// zero-width characters (a `=` next to one reads as an ordinary line).
pub fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// `s` with every [`unsafe_char`] written as an escape: `\t`, `\n`, `\r`, `\x1b` below
/// 0x80, `\u{9b}` and `\u{202e}` above. A backslash is left alone, so escaping twice
/// changes nothing (messages that quote escaped strings are escaped again in `main`).
pub fn safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

/// [`safe`] on each line, keeping the line breaks: for multi-line messages (a profile
/// error quotes the offending line below the message).
pub fn safe_lines(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && unsafe_char(c)) {
        return Cow::Borrowed(s);
    }
    let lines: Vec<Cow<str>> = s.split('\n').map(safe).collect();
    Cow::Owned(lines.join("\n"))
}

fn push_escaped(out: &mut String, c: char) {
    use std::fmt::Write;
    if !unsafe_char(c) {
        out.push(c);
        return;
    }
    let _ = match c {
        '\t' => write!(out, "\\t"),
        '\n' => write!(out, "\\n"),
        '\r' => write!(out, "\\r"),
        c if (c as u32) < 0x80 => write!(out, "\\x{:02x}", c as u32),
        c => write!(out, "\\u{{{:x}}}", c as u32),
    };
}

/// serde_json's output with every [`unsafe_char`] it leaves raw (DEL, C1 controls, bidi
/// and zero-width characters) as a `\uXXXX` escape. Outside strings JSON is ASCII
/// punctuation, so any such character is inside a string and the document decodes to
/// the same values.
pub fn json(s: String) -> String {
    let raw = |c: char| c != '\n' && unsafe_char(c);
    if !s.chars().any(raw) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if raw(c) {
            use std::fmt::Write;
            // Every unsafe character is in the basic plane: one \uXXXX each.
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_bidi_and_zero_width() {
        assert_eq!(safe("plain host-1 ä ✓"), "plain host-1 ä ✓");
        assert!(matches!(safe("plain"), Cow::Borrowed(_)));
        assert_eq!(safe("a\x1b]0;x\x07b"), "a\\x1b]0;x\\x07b");
        assert_eq!(safe("tab\there\nnl\r"), "tab\\there\\nnl\\r");
        assert_eq!(safe("del\x7f c1\u{9b}"), "del\\x7f c1\\u{9b}");
        assert_eq!(safe("rtl\u{202e}fdp.exe"), "rtl\\u{202e}fdp.exe");
        assert_eq!(safe("iso\u{2066}x\u{2069}"), "iso\\u{2066}x\\u{2069}");
        assert_eq!(
            safe("zw\u{200b}\u{200d}\u{feff}"),
            "zw\\u{200b}\\u{200d}\\u{feff}"
        );
        // Idempotent: messages quoting escaped strings are escaped once more in main.
        let once = safe("x\x1by\u{202e}").into_owned();
        assert_eq!(safe(&once), once);
    }

    #[test]
    fn lines_keep_their_breaks() {
        assert_eq!(
            safe_lines("one\x1b\n  2 | two\u{9b}"),
            "one\\x1b\n  2 | two\\u{9b}"
        );
        assert_eq!(safe_lines("a\nb\n"), "a\nb\n");
    }

    #[test]
    fn json_escapes_what_serde_leaves_raw() {
        let raw = serde_json::to_string(&serde_json::json!({"h": "a\x1b\x7f\u{9b}\u{202e}z"})).unwrap();
        assert!(raw.contains('\u{9b}'), "serde_json leaves C1 raw: {raw}");
        let out = json(raw);
        assert_eq!(out, r#"{"h":"a\u001b\u007f\u009b\u202ez"}"#);
        let back: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back["h"], "a\x1b\x7f\u{9b}\u{202e}z");
    }
}
