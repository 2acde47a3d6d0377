//! One memory budget for a whole device (SPEC `DATA-7`, section 10).
//!
//! Each link's [`Reassembler`](crate::Reassembler) bounds what that link's unfinished
//! transfers may hold, but a device has many links, and a peer may open as many as it likes. A
//! [`MemoryBudget`] is shared by every link of a device: a transfer is admitted only if its
//! declared length fits in what the budget has left, and the bytes it was admitted for stay
//! charged until they are freed: while it is reassembled, then while the app holds the bytes
//! delivered to it (in an event stream or anywhere else), released when the last clone of those
//! bytes is dropped. Data the device's apps send is charged too while it waits to be sent,
//! without ever being refused: it is the app's own memory, but it leaves less room for what
//! peers send. The empty buffers a reassembler's [`BufferPool`](crate::BufferPool) keeps for
//! reuse are charged too, by their capacity, and give way to transfers: a transfer that does
//! not fit has the pool free buffers first (see [`Reassembler::with_budget`]).
//!
//! [`Reassembler::with_budget`]: crate::Reassembler::with_budget
//!
//! ```
//! use acm_wire::budget::MemoryBudget;
//!
//! let budget = MemoryBudget::new(1000);
//! let first = budget.try_charge(600).expect("room for 600 bytes");
//! assert!(budget.try_charge(600).is_none(), "only 400 left");
//! assert_eq!(budget.used(), 600);
//! drop(first);
//! assert_eq!(budget.used(), 0);
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

/// A device's memory budget: a maximum and what is charged against it now. Cloning gives
/// another handle to the same budget.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    max: u64,
    used: AtomicU64,
}

impl MemoryBudget {
    /// A budget of `max` bytes.
    pub fn new(max: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                max,
                used: AtomicU64::new(0),
            }),
        }
    }

    /// The most bytes that may be charged by [`MemoryBudget::try_charge`].
    pub fn max(&self) -> u64 {
        self.inner.max
    }

    /// The bytes charged now.
    pub fn used(&self) -> u64 {
        self.inner.used.load(Ordering::Acquire)
    }

    /// Whether `other` is a handle to this same budget.
    pub(crate) fn same_as(&self, other: &MemoryBudget) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The bytes [`MemoryBudget::try_charge`] may still take.
    pub fn available(&self) -> u64 {
        self.inner.max.saturating_sub(self.used())
    }

    /// Charges `bytes` if they fit in what is left; the charge is given back when the
    /// [`Charge`] is dropped.
    pub fn try_charge(&self, bytes: u64) -> Option<Charge> {
        if bytes == 0 {
            return Some(self.charge_of(0));
        }
        let max = self.inner.max;
        self.inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= max)
            })
            .ok()?;
        Some(self.charge_of(bytes))
    }

    /// Charges `bytes` whether or not they fit: memory that is held anyway (data an app sends)
    /// and must leave less room for what may be refused.
    pub fn charge(&self, bytes: u64) -> Charge {
        let _ = self
            .inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_add(bytes))
            });
        self.charge_of(bytes)
    }

    fn charge_of(&self, bytes: u64) -> Charge {
        Charge {
            inner: self.inner.clone(),
            bytes,
        }
    }
}

/// Bytes charged against a [`MemoryBudget`], given back when this is dropped.
#[derive(Debug)]
pub struct Charge {
    inner: Arc<Inner>,
    bytes: u64,
}

impl Charge {
    /// The bytes charged.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Splits `bytes` of this charge off (all of it if it holds fewer) into a charge of their
    /// own: the two together hold what this one held, and each gives its part back when
    /// dropped.
    pub fn split_off(&mut self, bytes: u64) -> Charge {
        let taken = bytes.min(self.bytes);
        self.bytes = self.bytes.saturating_sub(taken);
        Charge {
            inner: self.inner.clone(),
            bytes: taken,
        }
    }

    /// `bytes`, holding this charge until their last clone is dropped.
    pub fn attach(self, bytes: Bytes) -> Bytes {
        if bytes.is_empty() {
            return bytes;
        }
        Bytes::from_owner(Charged {
            _charge: self,
            bytes,
        })
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        let bytes = self.bytes;
        let _ = self
            .inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
    }
}

/// Bytes that hold a charge while they live. The charge is given back first (fields drop in
/// order), so that a buffer that returns to a [`BufferPool`](crate::BufferPool) as the bytes
/// are dropped finds the room it held free again.
struct Charged {
    _charge: Charge,
    bytes: Bytes,
}

impl AsRef<[u8]> for Charged {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_charge_is_refused_past_the_maximum_and_given_back_when_dropped() {
        let budget = MemoryBudget::new(100);
        let a = budget.try_charge(60).expect("fits");
        assert!(budget.try_charge(41).is_none());
        let b = budget.try_charge(40).expect("fits exactly");
        assert_eq!((budget.used(), budget.available()), (100, 0));
        drop(a);
        assert_eq!(budget.available(), 60);
        drop(b);
        assert_eq!(budget.used(), 0);
        assert!(budget.try_charge(u64::MAX).is_none());
    }

    #[test]
    fn a_forced_charge_goes_past_the_maximum_and_leaves_no_room() {
        let budget = MemoryBudget::new(100);
        let sent = budget.charge(150);
        assert_eq!((budget.used(), budget.available()), (150, 0));
        assert!(budget.try_charge(1).is_none());
        drop(sent);
        assert!(budget.try_charge(100).is_some());
    }

    #[test]
    fn a_charge_split_in_two_gives_back_each_part_when_it_is_dropped() {
        let budget = MemoryBudget::new(100);
        let mut whole = budget.try_charge(60).expect("fits");
        let part = whole.split_off(25);
        assert_eq!((whole.bytes(), part.bytes()), (35, 25));
        assert_eq!(budget.used(), 60, "splitting charges nothing more");
        drop(part);
        assert_eq!(budget.used(), 35);
        let rest = whole.split_off(1000);
        assert_eq!((whole.bytes(), rest.bytes()), (0, 35));
        drop(whole);
        assert_eq!(budget.used(), 35);
        drop(rest);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn bytes_hold_their_charge_until_the_last_clone_is_dropped() {
        let budget = MemoryBudget::new(100);
        let data = Bytes::from(vec![1u8; 50]);
        let at = data.as_ptr();
        let charged = budget.try_charge(50).expect("fits").attach(data);
        assert_eq!(charged.as_ptr(), at, "no copy");
        let clone = charged.slice(10..20);
        drop(charged);
        assert_eq!(budget.used(), 50, "a slice still holds the bytes");
        drop(clone);
        assert_eq!(budget.used(), 0);
    }
}
