//! The content rules of a message body beyond its length: what a reader sees must be what was
//! sent, and something must be seen.
//!
//! - **No control characters**: C0 (U+0000-U+001F) other than `\n` and `\t`, DEL (U+007F) and
//!   C1 (U+0080-U+009F). They move cursors, ring bells or hide text in terminals and logs, and no
//!   chat client needs them; line breaks are `\n` (so `\r` is refused too).
//! - **Balanced bidirectional controls, per paragraph**: every embedding or override (U+202A,
//!   U+202B, U+202D, U+202E) is closed by U+202C and every isolate (U+2066-U+2068) by U+2069,
//!   properly nested, before the paragraph ends (`\n` or U+2029). An unclosed override would
//!   reverse the text around the message in clients that render it inline (the "Trojan Source"
//!   trick); a stray closer is refused too, since it can close a control outside the message.
//! - **Something visible**: a body of only whitespace, invisible format characters (zero-width
//!   space and joiners, word joiner, BOM, direction marks, Hangul fillers...) or combining marks
//!   shows nothing, or an empty bubble, and is a way to spam unnoticed.
//!
//! Normal text of any script passes: emoji ZWJ sequences have visible emoji around the joiners,
//! Arabic and Hebrew need no explicit controls (and balanced ones are fine), combining marks
//! follow their base letters.

/// Deepest nesting of bidirectional controls accepted (UAX #9's own limit).
const MAX_BIDI_DEPTH: usize = 125;

/// Why a body breaks a content rule: a sentence for the sender.
pub type ContentRefused = String;

/// Checks the content rules (see the module docs).
pub fn check_content(body: &str) -> Result<(), ContentRefused> {
    if let Some((index, c)) = body.char_indices().find(|(_, c)| is_forbidden_control(*c)) {
        return Err(format!(
            "the message body contains the control character U+{:04X} at byte {index}; only \
             line breaks (\\n) and tabs are allowed",
            u32::from(c)
        ));
    }
    check_bidi(body)?;
    if !body.chars().any(is_visible) {
        return Err(
            "the message body has nothing visible: only whitespace, zero-width or other \
             invisible characters, or combining marks without a base character"
                .into(),
        );
    }
    Ok(())
}

fn is_forbidden_control(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Opened {
    /// LRE, RLE, LRO or RLO; closed by PDF.
    Embedding,
    /// LRI, RLI or FSI; closed by PDI.
    Isolate,
}

fn check_bidi(body: &str) -> Result<(), ContentRefused> {
    for (number, paragraph) in body.split(['\n', '\u{2029}']).enumerate() {
        let mut open: Vec<Opened> = Vec::new();
        for c in paragraph.chars() {
            let closes = match c {
                '\u{202A}' | '\u{202B}' | '\u{202D}' | '\u{202E}' => {
                    open.push(Opened::Embedding);
                    None
                }
                '\u{2066}'..='\u{2068}' => {
                    open.push(Opened::Isolate);
                    None
                }
                '\u{202C}' => Some(Opened::Embedding),
                '\u{2069}' => Some(Opened::Isolate),
                _ => continue,
            };
            if open.len() > MAX_BIDI_DEPTH {
                return Err(format!(
                    "the message body nests bidirectional controls deeper than {MAX_BIDI_DEPTH}"
                ));
            }
            if let Some(closer) = closes {
                if open.pop() != Some(closer) {
                    return Err(format!(
                        "the message body has a U+{:04X} in paragraph {} that closes no \
                         matching bidirectional control (U+202C closes U+202A/B/D/E, U+2069 \
                         closes U+2066-U+2068, innermost first)",
                        u32::from(c),
                        number + 1
                    ));
                }
            }
        }
        if !open.is_empty() {
            return Err(format!(
                "the message body leaves {} bidirectional control(s) open at the end of \
                 paragraph {}: close each U+202A/B/D/E with U+202C and each U+2066-U+2068 with \
                 U+2069",
                open.len(),
                number + 1
            ));
        }
    }
    Ok(())
}

/// Characters that render as nothing by themselves (besides whitespace and combining marks).
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'                    // soft hyphen
            | '\u{034F}'              // combining grapheme joiner
            | '\u{061C}'              // Arabic letter mark
            | '\u{115F}' | '\u{1160}' // Hangul choseong/jungseong fillers
            | '\u{17B4}' | '\u{17B5}' // Khmer inherent vowels
            | '\u{180B}'..='\u{180F}' // Mongolian variation selectors and vowel separator
            | '\u{200B}'..='\u{200F}' // zero-width space, ZWNJ, ZWJ, LRM, RLM
            | '\u{202A}'..='\u{202E}' // bidirectional embeddings and overrides
            | '\u{2060}'..='\u{206F}' // word joiner, invisible operators, isolates, deprecated
            | '\u{2800}'              // Braille pattern blank
            | '\u{3164}'              // Hangul filler
            | '\u{FE00}'..='\u{FE0F}' // variation selectors
            | '\u{FEFF}'              // zero-width no-break space (BOM)
            | '\u{FFA0}'              // halfwidth Hangul filler
            | '\u{1D173}'..='\u{1D17A}' // musical symbol formatting
            | '\u{E0000}'..='\u{E007F}' // tags
            | '\u{E0100}'..='\u{E01EF}' // variation selectors supplement
    )
}

fn is_visible(c: char) -> bool {
    !c.is_whitespace()
        && !c.is_control()
        && !is_invisible_format(c)
        && !unicode_normalization::char::is_combining_mark(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: &str) -> bool {
        check_content(body).is_err()
    }

    #[test]
    fn normal_text_of_any_script_passes() {
        for body in [
            "hello, world",
            "line one\nline two\twith a tab",
            "👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 👍🏽 thumbs",
            "🇫🇷🇯🇵",
            "مرحبا بالعالم",
            "السَّلَامُ عَلَيْكُمْ",
            "שָׁלוֹם עולם",
            "mixed עברית and English",
            "你好，世界",
            "こんにちは、世界",
            "안녕하세요",
            "नमस्ते दुनिया",
            "e\u{301}te\u{301}",
            "\u{2067}مرحبا\u{2069} said Bob",
            "\u{202B}quoted\u{202C} and \u{2066}nested \u{2067}inner\u{2069}\u{2069}",
            "a zero\u{200B}width space between visible letters",
        ] {
            assert_eq!(check_content(body), Ok(()), "{body:?}");
        }
    }

    #[test]
    fn control_characters_are_refused_except_newline_and_tab() {
        for c in [
            '\0', '\u{1}', '\u{7}', '\u{8}', '\r', '\u{1B}', '\u{7F}', '\u{85}', '\u{9B}',
        ] {
            let body = format!("a{c}b");
            let err = check_content(&body).expect_err(&body);
            assert!(err.contains("control character"), "{err}");
        }
        assert!(!refused("a\nb\tc"));
    }

    #[test]
    fn unbalanced_bidirectional_controls_are_refused() {
        for body in [
            "\u{202E}reversed to the end",
            "\u{202A}\u{202B}one closed\u{202C}",
            "stray closer\u{202C}",
            "stray isolate closer\u{2069}",
            "\u{2066}isolate never closed",
            "\u{2068}first strong isolate",
            // Crossed: the isolate must close before the embedding.
            "\u{202B}a\u{2066}b\u{202C}c\u{2069}",
            // A PDF does not close an isolate, nor a PDI an embedding.
            "\u{2067}x\u{202C}",
            "\u{202D}x\u{2069}",
            // Balanced across a line break is not balanced: each paragraph stands alone.
            "\u{202E}first line\nsecond\u{202C}",
            "\u{2066}first\u{2029}second\u{2069}",
        ] {
            assert!(refused(body), "{body:?}");
        }
        let deep = format!("x{}{}", "\u{2066}".repeat(126), "\u{2069}".repeat(126));
        assert!(refused(&deep));
        let ok = format!("x{}{}", "\u{2066}".repeat(125), "\u{2069}".repeat(125));
        assert!(!refused(&ok));
    }

    #[test]
    fn a_body_with_nothing_visible_is_refused() {
        for body in [
            "\u{200B}",
            "\u{200B}\u{200C}\u{200D}",
            "\u{2060}\u{FEFF}",
            " \u{200B} \n\t",
            "\u{301}",
            "\u{301}\u{308}\u{20DD}",
            "\u{3164}\u{3164}",
            "\u{2800}",
            "\u{200E}\u{200F}",
            "\u{2066}\u{2069}",
            "\u{FE0F}",
            "\u{E0041}\u{E0042}",
        ] {
            let err = check_content(body).expect_err(body);
            assert!(err.contains("nothing visible"), "{body:?}: {err}");
        }
    }

    #[test]
    fn the_reason_names_the_character() {
        let err = check_content("bell\u{7}").expect_err("bell");
        assert!(err.contains("U+0007"), "{err}");
    }
}
