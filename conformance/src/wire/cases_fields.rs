//! (being written)

use super::WireCase;

pub(super) fn cases() -> Vec<WireCase> {
    Vec::new()
}
