//! The rules of SPEC.md, extracted at build time.

include!(concat!(env!("OUT_DIR"), "/rules.rs"));

/// The text of rule `id` (the paragraph it heads in SPEC.md), or `None` for an unknown id.
pub fn text(id: &str) -> Option<&'static str> {
    RULES
        .iter()
        .find(|(rule, _)| *rule == id)
        .map(|(_, text)| *text)
}

/// The rules that say MUST or MUST NOT: every one is covered by at least one case.
pub fn must_rules() -> impl Iterator<Item = &'static str> {
    RULES
        .iter()
        .filter(|(_, text)| text.contains("MUST"))
        .map(|(id, _)| *id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_holds_every_rule_of_the_spec_once() {
        let ids: Vec<&str> = RULES.iter().map(|(id, _)| *id).collect();
        for expected in [
            "FRAME-1", "FRAME-10", "LINK-11", "SESS-7", "DATA-7", "CTRL-4", "BLE-10",
        ] {
            assert!(ids.contains(&expected), "{expected} missing");
        }
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            ids.len(),
            "a rule id appears twice in SPEC.md"
        );
    }

    #[test]
    fn rule_text_is_the_paragraph_it_heads() {
        let frame_2 = text("FRAME-2").unwrap();
        assert!(
            frame_2.contains("AC 4D") && frame_2.contains("MUST"),
            "{frame_2}"
        );
        assert_eq!(text("NOPE-1"), None);
    }
}
