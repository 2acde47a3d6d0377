//! (being written)

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use super::target::WireTarget;
use super::{CaseFuture, Needs, WireCase};
use crate::report::Case;

pub(super) fn cases() -> Vec<WireCase> {
    Vec::new()
}

/// `text` as a string that lives as long as the program, the same one for equal texts: ids and
/// titles of cases made at run time, however often the list is made.
pub(super) fn intern(text: String) -> &'static str {
    static ALL: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut all = ALL
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = all.get(text.as_str()) {
        return known;
    }
    let leaked: &'static str = Box::leak(text.into_boxed_str());
    all.insert(leaked);
    leaked
}

/// A family of cases made by construction: one per entry of a table, each running `run` with
/// the entry's index.
pub(super) struct Family {
    /// The rules every case of the family checks.
    pub(super) rules: &'static [&'static str],
    /// What the cases need of the target.
    pub(super) needs: Needs,
    /// Runs entry `param`.
    pub(super) run: for<'a> fn(&'a dyn WireTarget, u32) -> CaseFuture<'a>,
}

impl Family {
    /// The cases: entry `i` has the id and title `names` gives it and breaks `breaks(i)`. An
    /// entry whose id an earlier one has is left out (two limits may share a valid value).
    pub(super) fn cases(
        &self,
        names: impl Iterator<Item = (String, String)>,
        breaks: impl Fn(usize) -> Option<&'static str>,
    ) -> Vec<WireCase> {
        let mut seen = HashSet::new();
        names
            .enumerate()
            .filter_map(|(i, (id, title))| {
                let id = intern(id);
                if !seen.insert(id) {
                    return None;
                }
                let case = Case::new(id, self.rules, intern(title));
                Some(WireCase {
                    case: match breaks(i) {
                        Some(rule) => case.breaking(rule),
                        None => case,
                    },
                    needs: self.needs,
                    param: u32::try_from(i).unwrap_or(u32::MAX),
                    run: self.run,
                })
            })
            .collect()
    }
}
