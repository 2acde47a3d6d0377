//! (being written)

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use super::WireCase;

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

/// [`intern`] for pairs of an id and a title.
pub(super) fn leak_names(
    names: impl Iterator<Item = (String, String)>,
) -> Vec<(&'static str, &'static str)> {
    names
        .map(|(id, title)| (intern(id), intern(title)))
        .collect()
}
