//! A global allocator that counts: the system allocator underneath, with running totals of the
//! bytes and blocks in use and allocated, so that a measure can tell what a piece of work kept
//! or allocated.

// The one place of the workspace where `unsafe` is allowed: `GlobalAlloc` is an unsafe trait,
// and counting allocations needs a global allocator. The two methods only delegate to `System`
// and add to atomic counters; nothing else here is unsafe.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

/// The system allocator, counting.
pub struct Counting;

static LIVE_BYTES: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed on unchanged to `System`, which upholds `GlobalAlloc`'s contract;
// the counters are plain atomics and never touch the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees for `layout` are passed on as they are.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let size = layout.size() as u64;
            LIVE_BYTES.fetch_add(size, Ordering::Relaxed);
            ALLOCATED_BYTES.fetch_add(size, Ordering::Relaxed);
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `alloc` above (that is, by `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as u64, Ordering::Relaxed);
    }
}

/// The allocator's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Bytes allocated and not yet freed.
    pub live_bytes: u64,
    /// Bytes allocated since the program started, freed or not.
    pub allocated_bytes: u64,
    /// Allocations since the program started (a reallocation counts as one).
    pub allocations: u64,
}

impl Snapshot {
    /// The counters now.
    pub fn now() -> Self {
        Self {
            live_bytes: LIVE_BYTES.load(Ordering::Relaxed),
            allocated_bytes: ALLOCATED_BYTES.load(Ordering::Relaxed),
            allocations: ALLOCATIONS.load(Ordering::Relaxed),
        }
    }

    /// Live bytes gained since `earlier` (negative when memory was freed).
    pub fn live_since(&self, earlier: &Self) -> i64 {
        self.live_bytes as i64 - earlier.live_bytes as i64
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
