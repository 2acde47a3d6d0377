//! Version negotiation (SPEC `LINK-4`).

use std::ops::RangeInclusive;

use crate::pb::Hello;

/// The version a link uses: the highest version in both the local range and the range the
/// peer's HELLO announces, or `None` when they have none in common and the link must be closed
/// with `LINK_CLOSE_REASON_NO_COMMON_VERSION`.
///
/// ```
/// use acm_wire::{negotiate_version, pb::Hello};
///
/// let peer = Hello { min_version: 1, max_version: 3, ..Default::default() };
/// assert_eq!(negotiate_version(1..=2, &peer), Some(2));
/// assert_eq!(negotiate_version(4..=5, &peer), None);
/// ```
pub fn negotiate_version(local: RangeInclusive<u8>, peer: &Hello) -> Option<u8> {
    let high = u32::from(*local.end()).min(peer.max_version);
    let low = u32::from(*local.start()).max(peer.min_version);
    if low > high || high == 0 {
        return None;
    }
    u8::try_from(high).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(min: u32, max: u32) -> Hello {
        Hello {
            min_version: min,
            max_version: max,
            ..Default::default()
        }
    }

    #[test]
    fn link_4_highest_common_version_wins() {
        assert_eq!(negotiate_version(1..=1, &hello(1, 1)), Some(1));
        assert_eq!(negotiate_version(1..=4, &hello(2, 9)), Some(4));
        assert_eq!(negotiate_version(3..=7, &hello(1, 5)), Some(5));
    }

    #[test]
    fn link_4_disjoint_ranges_have_no_version() {
        assert_eq!(negotiate_version(1..=1, &hello(2, 3)), None);
        assert_eq!(negotiate_version(3..=4, &hello(1, 2)), None);
        assert_eq!(negotiate_version(1..=2, &hello(0, 0)), None);
    }
}
