//! Which SPEC rules the cases of a run check, and how many of those cases send invalid input.
//!
//! A case checks the rules it cites. It sends invalid input when what it sends breaks a rule on
//! purpose ([`Case::breaks`]): a broken frame, a value one past its limit, a peer that stays
//! silent where it must speak. A rule is checked with invalid input when at least one case that
//! cites it sends invalid input; every MUST rule of the bindings a run exercises must be.
//!
//! ```
//! use acm_conformance::coverage::{RuleCoverage, coverage};
//! use acm_conformance::Case;
//!
//! let cases = [Case::new("wire/FRAME-2/bad-magic", &["FRAME-2"], "bad magic").breaking("FRAME-2")];
//! let table = coverage(cases.iter());
//! let frame_2 = table.iter().find(|row| row.rule == "FRAME-2").unwrap();
//! assert_eq!((frame_2.cases, frame_2.invalid, frame_2.broken), (1, 1, 1));
//! ```

use std::fmt::Write as _;

use crate::report::Case;
use crate::rules;

/// How a run covers one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleCoverage {
    /// The rule id.
    pub rule: &'static str,
    /// Whether its text says MUST or MUST NOT.
    pub must: bool,
    /// How many cases check it.
    pub cases: usize,
    /// How many of those send invalid input.
    pub invalid: usize,
    /// How many cases send input that breaks this rule itself.
    pub broken: usize,
}

/// The prefixes of rules whose binding the main job does not exercise, and what does.
pub const NOT_EXERCISED: &[(&str, &str)] = &[(
    "BLE-",
    "the Bluetooth LE binding: .ci/ble tests it against virtual controllers",
)];

/// MUST rules that no peer can break on the wire, since they bind what a side derives, decides
/// or keeps for itself, and what checks each instead. The gate does not ask them for a case
/// with invalid input.
pub const NO_WIRE_INPUT: &[(&str, &str)] = &[
    (
        "SEC-6",
        "the pairing code is derived, not received: wire/SEC-6/test-vectors and acm-secure's tests check the derivation",
    ),
    (
        "SEC-8",
        "the profile trusts on first use (section 15), so no confirmation reaches the suite: acm-secure's tests refuse unknown devices and rejected pairings",
    ),
    (
        "SEC-12",
        "key files on the device, not the wire: acm-secure's tests check their modes",
    ),
    (
        "SEC-13",
        "binds what a side announces: wire/SEC-13/announced-frame-size checks the implementation's HELLO",
    ),
];

/// Whether `rule` is one of [`NO_WIRE_INPUT`].
pub fn takes_no_wire_input(rule: &str) -> bool {
    NO_WIRE_INPUT.iter().any(|(listed, _)| *listed == rule)
}

/// Whether the main job exercises the binding of `rule`.
pub fn exercised(rule: &str) -> bool {
    !NOT_EXERCISED
        .iter()
        .any(|(prefix, _)| rule.starts_with(prefix))
}

/// Every rule of SPEC.md in its order, with how `cases` cover it.
pub fn coverage<'a>(cases: impl Iterator<Item = &'a Case> + Clone) -> Vec<RuleCoverage> {
    rules::RULES
        .iter()
        .map(|(rule, text)| {
            let citing = cases.clone().filter(|c| c.rules.contains(rule));
            RuleCoverage {
                rule,
                must: text.contains("MUST"),
                cases: citing.clone().count(),
                invalid: citing.filter(|c| c.breaks.is_some()).count(),
                broken: cases.clone().filter(|c| c.breaks == Some(*rule)).count(),
            }
        })
        .collect()
}

/// The MUST rules of exercised bindings that no case checks with invalid input.
pub fn gaps(table: &[RuleCoverage]) -> Vec<&'static str> {
    table
        .iter()
        .filter(|row| row.must && exercised(row.rule) && row.invalid == 0)
        .filter(|row| !takes_no_wire_input(row.rule))
        .map(|row| row.rule)
        .collect()
}

/// The table as text: one line per rule.
pub fn render(table: &[RuleCoverage]) -> String {
    let mut out = String::from("rule       kind    cases  invalid input  breaking it\n");
    for row in table {
        let kind = if row.must { "MUST" } else { "other" };
        let _ = write!(
            out,
            "{:<10} {kind:<6} {:>6} {:>14} {:>12}",
            row.rule, row.cases, row.invalid, row.broken
        );
        if !exercised(row.rule) {
            out.push_str("  (binding not run here)");
        } else if row.must && row.invalid == 0 && takes_no_wire_input(row.rule) {
            out.push_str("  (no input on the wire)");
        } else if row.must && row.invalid == 0 {
            out.push_str("  NO INVALID-INPUT CASE");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cases_invalid_input_and_the_rule_broken() {
        let cases = [
            Case::new("a", &["FRAME-2", "FRAME-5"], "a").breaking("FRAME-2"),
            Case::new("b", &["FRAME-5"], "b"),
            Case::new("c", &["FRAME-5", "BLE-1"], "c").breaking("FRAME-5"),
        ];
        let table = coverage(cases.iter());
        let row = |id: &str| *table.iter().find(|r| r.rule == id).unwrap();
        assert_eq!(
            (
                row("FRAME-2").cases,
                row("FRAME-2").invalid,
                row("FRAME-2").broken
            ),
            (1, 1, 1)
        );
        assert_eq!(
            (
                row("FRAME-5").cases,
                row("FRAME-5").invalid,
                row("FRAME-5").broken
            ),
            (3, 2, 1)
        );
        assert_eq!(row("FRAME-6").cases, 0);
        let gaps = gaps(&table);
        assert!(gaps.contains(&"FRAME-6") && !gaps.contains(&"FRAME-5"));
        assert!(!gaps.iter().any(|r| r.starts_with("BLE-")));
        // Rules no peer can break on the wire are not gaps, and say why not.
        assert!(!gaps.contains(&"SEC-12") && gaps.contains(&"SEC-9"));
        let text = render(&table);
        assert!(text.contains("(no input on the wire)"));
        assert!(text.contains("FRAME-6") && text.contains("NO INVALID-INPUT CASE"));
    }
}
