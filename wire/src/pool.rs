//! Reusing the buffers that reassembled transfers are delivered in.
//!
//! A receiver that takes transfers one after another would otherwise allocate a fresh buffer for
//! each, which the allocator often returns to the system when the app drops it and faults back
//! in, page by page, for the next one: on a fast link that costs more than the copy into it. A
//! [`BufferPool`] keeps the buffers that delivered transfers leave behind, up to a bound, for
//! the next transfers to fill.
//!
//! The pool never allocates on its own: it only keeps buffers the reassembler allocated for
//! bytes that arrived, and it hands one out only for a transfer the limits have admitted.
//!
//! A pool charged to a device's [`MemoryBudget`] ([`BufferPool::charge_to`]) counts what it
//! keeps in that budget, by capacity: a buffer returns to it only if the budget has room for
//! it, and [`BufferPool::give_way`] frees kept buffers for data that needs the room. A buffer
//! handed out larger than the transfer it holds keeps the difference charged while it is out.

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytes::Bytes;

use crate::budget::{Charge, MemoryBudget};

/// The smallest buffer a pool keeps: smaller ones are cheap to allocate.
pub const MIN_POOLED: usize = 64 * 1024;

/// The most bytes a pool made by [`BufferPool::default`] keeps: 16 MiB, room for the buffers of
/// an app that reads a steady stream of 1 MiB transfers a few events behind (a dozen of them are
/// alive at once in `acm-bench`'s send_data measure). A device short of memory lowers it.
pub const DEFAULT_POOL_BYTES: usize = 16 * 1024 * 1024;

/// Buffers kept for reuse, up to a number of bytes. Cloning gives another handle to the same
/// pool, so that the links of one device can share one.
#[derive(Debug, Clone)]
pub struct BufferPool {
    shared: Arc<Mutex<Kept>>,
}

#[derive(Debug)]
struct Kept {
    /// Empty buffers, at least [`MIN_POOLED`] bytes each, and their capacities charged to
    /// `budget` if there is one.
    buffers: Vec<(Vec<u8>, Option<Charge>)>,
    /// The capacities of `buffers`, added up.
    bytes: usize,
    /// The most `bytes` may reach.
    max_bytes: usize,
    /// The budget the kept buffers count in, if any.
    budget: Option<MemoryBudget>,
}

impl Default for BufferPool {
    /// A pool that keeps up to [`DEFAULT_POOL_BYTES`].
    fn default() -> Self {
        Self::new(DEFAULT_POOL_BYTES)
    }
}

impl BufferPool {
    /// A pool that keeps buffers of up to `max_bytes` together. A pool of 0 bytes keeps
    /// nothing: every transfer gets a buffer of its own, freed when the app drops it.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            shared: Arc::new(Mutex::new(Kept {
                buffers: Vec::new(),
                bytes: 0,
                max_bytes,
                budget: None,
            })),
        }
    }

    /// Counts the buffers kept from now on in `budget`, by their capacity, for every handle
    /// to this pool: a buffer returns to the pool only if `budget` has room for it. Buffers
    /// already kept are let go.
    pub fn charge_to(&self, budget: &MemoryBudget) {
        let mut kept = lock(&self.shared);
        if kept.budget.as_ref().is_some_and(|b| b.same_as(budget)) {
            return;
        }
        kept.budget = Some(budget.clone());
        kept.buffers.clear();
        kept.bytes = 0;
    }

    /// Frees kept buffers, the oldest first, until the pool's budget has `bytes` available or
    /// the pool keeps nothing: data that needs the room comes before buffers kept for reuse.
    /// Says whether the budget then has the room. A pool not charged to a budget frees nothing.
    pub fn give_way(&self, bytes: u64) -> bool {
        let mut kept = lock(&self.shared);
        let Some(budget) = kept.budget.clone() else {
            return false;
        };
        let mut freed = 0;
        while budget.available() < bytes && freed < kept.buffers.len() {
            kept.bytes = kept.bytes.saturating_sub(kept.buffers[freed].0.capacity());
            freed = freed.saturating_add(1);
        }
        // Their charges are given back as they are dropped.
        kept.buffers.drain(..freed);
        budget.available() >= bytes
    }

    /// The bytes the pool keeps now, in buffers waiting to be reused.
    pub fn kept_bytes(&self) -> usize {
        lock(&self.shared).bytes
    }

    /// The number of buffers the pool keeps now.
    pub fn kept_buffers(&self) -> usize {
        lock(&self.shared).buffers.len()
    }

    /// An empty buffer for at least `len` bytes, if the pool keeps one that is not more than
    /// four times as large (a small transfer does not hold on to a large buffer). The smallest
    /// that fits is taken, and of those the one returned last, whose memory is the likeliest to
    /// be in a cache still.
    pub(crate) fn take(&self, len: usize) -> Option<PoolBuf> {
        if len < MIN_POOLED {
            return None;
        }
        let mut kept = lock(&self.shared);
        let largest = len.saturating_mul(4);
        let (at, _) = kept
            .buffers
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, (buf, _))| (len..=largest).contains(&buf.capacity()))
            .min_by_key(|(_, (buf, _))| buf.capacity())?;
        // The buffers stay in the order they returned in.
        let (buf, charge) = kept.buffers.remove(at);
        kept.bytes = kept.bytes.saturating_sub(buf.capacity());
        // The transfer's own charge counts `len` bytes: the buffer keeps the rest charged.
        let excess =
            charge.map(|mut charge| charge.split_off(buf.capacity().saturating_sub(len) as u64));
        Some(PoolBuf {
            buf,
            excess,
            pool: Arc::downgrade(&self.shared),
        })
    }

    /// A new buffer of `capacity` bytes that returns to this pool when dropped.
    pub(crate) fn fresh(&self, capacity: usize) -> PoolBuf {
        PoolBuf {
            buf: Vec::with_capacity(capacity),
            excess: None,
            pool: Arc::downgrade(&self.shared),
        }
    }
}

fn lock(shared: &Mutex<Kept>) -> MutexGuard<'_, Kept> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// A buffer that goes back to its pool when dropped, if the pool still exists and has room for
/// it. [`PoolBuf::freeze`] turns it into the [`Bytes`] an app receives; the buffer returns when
/// the last clone of those is dropped.
#[derive(Debug)]
pub(crate) struct PoolBuf {
    buf: Vec<u8>,
    /// For a buffer taken from a charged pool, the bytes of its capacity beyond the length it
    /// was taken for, which the transfer's own charge does not count.
    excess: Option<Charge>,
    pool: Weak<Mutex<Kept>>,
}

impl PoolBuf {
    /// The bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// The bytes the buffer holds room for.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Makes room for `additional` more bytes, exactly.
    pub(crate) fn reserve_exact(&mut self, additional: usize) {
        self.buf.reserve_exact(additional);
    }

    /// Appends `bytes`.
    pub(crate) fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The bytes written, shared without a copy.
    pub(crate) fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for PoolBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        self.excess = None;
        let capacity = self.buf.capacity();
        if capacity < MIN_POOLED {
            return;
        }
        let Some(shared) = self.pool.upgrade() else {
            return;
        };
        let mut kept = lock(&shared);
        let bytes = kept.bytes.saturating_add(capacity);
        if bytes > kept.max_bytes {
            return;
        }
        let charge = match &kept.budget {
            Some(budget) => match budget.try_charge(capacity as u64) {
                Some(charge) => Some(charge),
                // No room: the buffer is freed, as data needs the memory more.
                None => return,
            },
            None => None,
        };
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        kept.buffers.push((buf, charge));
        kept.bytes = bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(pool: &BufferPool, len: usize) -> Bytes {
        let mut buf = pool.take(len).unwrap_or_else(|| pool.fresh(len));
        buf.extend_from_slice(&vec![7; len]);
        buf.freeze()
    }

    #[test]
    fn a_delivered_buffer_returns_when_its_last_clone_is_dropped_and_is_reused() {
        let pool = BufferPool::new(1 << 20);
        let data = filled(&pool, MIN_POOLED);
        let clone = data.clone();
        let at = data.as_ptr();
        drop(data);
        assert_eq!(pool.kept_buffers(), 0, "a clone still holds it");
        drop(clone);
        assert_eq!((pool.kept_buffers(), pool.kept_bytes()), (1, MIN_POOLED));
        let again = pool.take(MIN_POOLED).expect("the kept buffer");
        assert_eq!(again.len(), 0, "a reused buffer starts empty");
        assert_eq!(again.buf.as_ptr(), at, "the same memory");
        assert_eq!(pool.kept_bytes(), 0);
    }

    #[test]
    fn the_pool_keeps_no_more_than_its_bytes() {
        let pool = BufferPool::new(3 * MIN_POOLED);
        let held: Vec<Bytes> = (0..4).map(|_| filled(&pool, MIN_POOLED)).collect();
        drop(held);
        assert_eq!(pool.kept_buffers(), 3);
        assert_eq!(pool.kept_bytes(), 3 * MIN_POOLED);
        let off = BufferPool::new(0);
        drop(filled(&off, MIN_POOLED));
        assert_eq!(off.kept_buffers(), 0);
    }

    #[test]
    fn small_buffers_are_not_kept_and_small_requests_are_not_served() {
        let pool = BufferPool::new(1 << 20);
        drop(filled(&pool, MIN_POOLED - 1));
        assert_eq!(pool.kept_buffers(), 0);
        drop(filled(&pool, MIN_POOLED));
        assert!(pool.take(MIN_POOLED - 1).is_none());
        assert_eq!(pool.kept_buffers(), 1);
    }

    #[test]
    fn the_smallest_fitting_buffer_is_taken_and_never_one_over_four_times_the_need() {
        let pool = BufferPool::new(1 << 24);
        let sizes = [MIN_POOLED, 2 * MIN_POOLED, 8 * MIN_POOLED];
        drop(sizes.map(|len| filled(&pool, len)));
        let got = pool.take(MIN_POOLED + 1).expect("a fitting buffer");
        assert_eq!(got.capacity(), 2 * MIN_POOLED);
        assert!(
            pool.take(MIN_POOLED + 1).is_none(),
            "8× is too large, 1× too small"
        );
        assert_eq!(
            pool.take(2 * MIN_POOLED).map(|b| b.capacity()),
            Some(8 * MIN_POOLED)
        );
    }

    #[test]
    fn of_buffers_of_one_size_the_one_returned_last_is_taken_first() {
        let pool = BufferPool::new(1 << 20);
        let (older, newer) = (filled(&pool, MIN_POOLED), filled(&pool, MIN_POOLED));
        let (older_at, newer_at) = (older.as_ptr(), newer.as_ptr());
        drop(older);
        drop(newer);
        let first = pool.take(MIN_POOLED).expect("two kept");
        assert_eq!(first.buf.as_ptr(), newer_at);
        let second = pool.take(MIN_POOLED).expect("one kept");
        assert_eq!(second.buf.as_ptr(), older_at);
    }

    #[test]
    fn a_buffer_outliving_its_pool_is_simply_freed() {
        let pool = BufferPool::new(1 << 20);
        let data = filled(&pool, MIN_POOLED);
        drop(pool);
        assert_eq!(data.len(), MIN_POOLED);
        drop(data);
    }
}
