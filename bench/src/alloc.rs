//! A global allocator that counts: the system allocator underneath, with running totals of the
//! bytes and blocks in use and allocated, so that a measure can tell what a piece of work kept
//! or allocated.
//!
//! It counts only while a measure asks it to (see [`count`]). The counters are atomics that
//! every thread adds to; counting on every allocation would make the code under measure pay
//! for shared cache lines that its users never have, and only in the measures that time it
//! against a baseline that does not allocate.

// The one place of the workspace where `unsafe` is allowed: `GlobalAlloc` is an unsafe trait,
// and counting allocations needs a global allocator. The two methods only delegate to `System`
// and add to atomic counters; nothing else here is unsafe.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

/// The system allocator, counting.
pub struct Counting;

/// How many [`Counted`] guards live: the allocator counts while this is not zero.
static COUNTING: AtomicUsize = AtomicUsize::new(0);
/// Bytes allocated less bytes freed while counting. Blocks allocated before counting began may
/// be freed while it is on, so this can go below zero; only differences mean anything.
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed on unchanged to `System`, which upholds `GlobalAlloc`'s contract;
// the counters are plain atomics and never touch the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees for `layout` are passed on as they are.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() && COUNTING.load(Ordering::Relaxed) != 0 {
            let size = layout.size() as u64;
            LIVE_BYTES.fetch_add(size as i64, Ordering::Relaxed);
            ALLOCATED_BYTES.fetch_add(size, Ordering::Relaxed);
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `alloc` above (that is, by `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        if COUNTING.load(Ordering::Relaxed) != 0 {
            LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        }
    }
}

/// Counting is on while this lives (see [`count`]).
#[must_use = "counting stops when the guard is dropped"]
pub struct Counted(());

/// Turns counting on until the guard returned is dropped. Take it before the first
/// [`Snapshot::now`] of a measure and keep it past the last. Work that other threads do
/// because of what this thread does after it (tasks it spawns or wakes) synchronizes with it,
/// so those threads count too.
pub fn count() -> Counted {
    COUNTING.fetch_add(1, Ordering::SeqCst);
    Counted(())
}

impl Drop for Counted {
    fn drop(&mut self) {
        COUNTING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The allocator's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Bytes allocated less bytes freed while counting was on (only its differences mean
    /// anything).
    pub live_bytes: i64,
    /// Bytes allocated since the program started, freed or not.
    pub allocated_bytes: u64,
    /// Allocations since the program started (a reallocation counts as one).
    pub allocations: u64,
}

impl Snapshot {
    /// The counters now. Counting must be on (see [`count`]).
    pub fn now() -> Self {
        debug_assert!(
            COUNTING.load(Ordering::SeqCst) != 0,
            "a snapshot while the allocator does not count"
        );
        Self {
            live_bytes: LIVE_BYTES.load(Ordering::Relaxed),
            allocated_bytes: ALLOCATED_BYTES.load(Ordering::Relaxed),
            allocations: ALLOCATIONS.load(Ordering::Relaxed),
        }
    }

    /// Live bytes gained since `earlier` (negative when memory was freed).
    pub fn live_since(&self, earlier: &Self) -> i64 {
        self.live_bytes - earlier.live_bytes
    }

    /// Bytes allocated since `earlier`.
    pub fn allocated_since(&self, earlier: &Self) -> u64 {
        self.allocated_bytes.saturating_sub(earlier.allocated_bytes)
    }

    /// Allocations since `earlier`.
    pub fn allocations_since(&self, earlier: &Self) -> u64 {
        self.allocations.saturating_sub(earlier.allocations)
    }
}
