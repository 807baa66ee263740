//! Text that vessel did not write (SIF descriptor names, plugin manifests,
//! plugin messages, image data) made inert before it reaches a terminal: a
//! hostile string must not move the cursor, rewrite earlier lines, forge a
//! new line, or hide characters. It lives in this lowest crate so the SIF
//! tools and the runtime share one implementation.

use std::borrow::Cow;

/// Characters that render as nothing or reorder text around them (zero-width
/// and bidirectional controls, the BOM); `char::is_control` misses them.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}'
        | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}'
        | '\u{E0000}'..='\u{E007F}')
}

/// `s` with every control and invisible character written as an escape
/// (`\n`, `\t`, `\r`, `\u{1b}`), so it prints as exactly one visible line.
/// Borrowed when there is nothing to escape.
pub fn inert(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() || invisible(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || invisible(c) => {
                out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `s` cut to at most `max` bytes (at a character boundary), saying how
/// much was cut: a plugin's message is data, and 50 MB of it is no message.
pub fn capped(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}… ({} more bytes cut)", &s[..end], s.len() - end))
}

#[cfg(test)]
mod tests {
    use super::{capped, inert};

    #[test]
    fn control_and_invisible_characters_are_escaped() {
        assert_eq!(inert("plain text, ünïcode"), "plain text, ünïcode");
        assert_eq!(
            inert("a\nb\tc\rd\u{1b}[2J\u{7f}\u{9b}"),
            "a\\nb\\tc\\rd\\u{1b}[2J\\u{7f}\\u{9b}"
        );
        assert_eq!(inert("x\u{200b}y\u{202e}z"), "x\\u{200b}y\\u{202e}z");
    }

    #[test]
    fn long_text_is_capped_at_a_character_boundary() {
        assert_eq!(capped("short", 10), "short");
        assert_eq!(capped("ééé", 3), "é… (4 more bytes cut)");
    }
}
