//! Characters that change how text looks without being seen: the bidirectional
//! controls that reorder what follows them (`u\u{202E}evil@example.com`
//! shows as `umoc.elpmaxe@live`), and the invisible ones that make two names
//! that look the same different (`VIP\u{200B} customers` beside `VIP
//! customers`). These are Unicode's format characters (general category Cf),
//! refused in emails, tag names, field keys and segment names and
//! descriptions ([`hidden_character`]). The prepended concatenation marks
//! (Arabic and Syriac number signs and the like), which are Cf but drawn,
//! stay allowed; so do the zero-width joiner and non-joiner where a name
//! needs them, between two characters that are not ASCII (emoji sequences,
//! Persian and Indic words).

/// Whether a name may hold a zero-width joiner or non-joiner between two
/// characters that are not ASCII.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joiners {
    Allowed,
    Refused,
}

/// The first character of `text` that is invisible or changes the direction
/// of the text around it, if there is one.
pub fn hidden_character(text: &str, joiners: Joiners) -> Option<char> {
    let chars: Vec<char> = text.chars().collect();
    chars.iter().enumerate().find_map(|(i, &c)| {
        if !is_hidden(c) {
            return None;
        }
        if joiners == Joiners::Allowed && matches!(c, '\u{200C}' | '\u{200D}') {
            let joins = |n: Option<&char>| {
                n.is_some_and(|&n| !n.is_ascii() && !n.is_whitespace() && !is_hidden(n))
            };
            if joins(i.checked_sub(1).and_then(|p| chars.get(p))) && joins(chars.get(i + 1)) {
                return None;
            }
        }
        Some(c)
    })
}

/// The message a field's error gives for `c`.
pub fn hidden_character_message(c: char) -> String {
    format!(
        "must not contain invisible or direction-changing characters (U+{:04X})",
        u32::from(c)
    )
}

/// Unicode's format characters (Cf, as of Unicode 16), but the prepended
/// concatenation marks, which are drawn.
fn is_hidden(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'                      // soft hyphen
        | '\u{061C}'                    // Arabic letter mark
        | '\u{180E}'                    // Mongolian vowel separator
        | '\u{200B}'..='\u{200F}'       // zero-width space, (non-)joiner, LRM, RLM
        | '\u{202A}'..='\u{202E}'       // embeddings and overrides
        | '\u{2060}'..='\u{2064}'       // word joiner, invisible operators
        | '\u{2066}'..='\u{206F}'       // isolates, deprecated format characters
        | '\u{FEFF}'                    // zero-width no-break space (BOM)
        | '\u{FFF9}'..='\u{FFFB}'       // interlinear annotation
        | '\u{13430}'..='\u{1343F}'     // Egyptian hieroglyph format controls
        | '\u{1BCA0}'..='\u{1BCA3}'     // shorthand format controls
        | '\u{1D173}'..='\u{1D17A}'     // musical symbol format controls
        | '\u{E0001}'                   // language tag
        | '\u{E0020}'..='\u{E007F}' // tag characters
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_controls_and_invisible_characters_are_found() {
        for (text, hidden) in [
            ("u\u{202E}evil@example.com", '\u{202E}'),
            ("VIP\u{200B} customers", '\u{200B}'),
            ("\u{FEFF}lead", '\u{FEFF}'),
            ("a\u{2066}b\u{2069}", '\u{2066}'),
            ("left\u{200E}", '\u{200E}'),
            ("soft\u{00AD}hyphen", '\u{00AD}'),
            ("word\u{2060}joiner", '\u{2060}'),
            ("tag\u{E0041}", '\u{E0041}'),
        ] {
            assert_eq!(hidden_character(text, Joiners::Allowed), Some(hidden));
            assert_eq!(hidden_character(text, Joiners::Refused), Some(hidden));
        }
        for plain in ["VIP customers", "名前", "Straße", "ARABIC \u{0600}\u{0661}"] {
            assert_eq!(hidden_character(plain, Joiners::Refused), None, "{plain}");
        }
    }

    #[test]
    fn joiners_are_allowed_only_between_characters_that_need_them() {
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467} families";
        let persian = "\u{0645}\u{06CC}\u{200C}\u{062E}\u{0648}\u{0627}\u{0647}\u{0645}";
        let fire = "\u{2764}\u{FE0F}\u{200D}\u{1F525}";
        for needed in [family, persian, fire] {
            assert_eq!(hidden_character(needed, Joiners::Allowed), None, "{needed}");
            assert!(hidden_character(needed, Joiners::Refused).is_some());
        }
        for spoof in [
            "VIP\u{200D} customers",
            "VIP\u{200C}customers",
            "\u{200D}\u{1F468}",
            "\u{1F468}\u{200D}",
            "\u{1F468}\u{200D}\u{200D}\u{1F469}",
            "\u{1F468}\u{200D} x",
        ] {
            assert!(
                hidden_character(spoof, Joiners::Allowed).is_some(),
                "{spoof:?}"
            );
        }
    }

    #[test]
    fn the_message_names_the_character() {
        assert_eq!(
            hidden_character_message('\u{202E}'),
            "must not contain invisible or direction-changing characters (U+202E)"
        );
        assert!(hidden_character_message('\u{E0041}').ends_with("(U+E0041)"));
    }
}
