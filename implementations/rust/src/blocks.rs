//! The live-block count of ABI 1.1 (`live_blocks`, capability
//! `live-blocks`): the library's global allocator counts every block it
//! hands out and takes back, so the suite can see a leak of any Rust
//! allocation the implementation makes, not only of its own structures.
//!
//! Containers that live for the whole process (the interpreter registry,
//! the unraisable queue) give their buffers back when they become empty,
//! so that a process with no live interpreter holds no block of ours.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// The system allocator, counting.
pub struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees carry over; the counter is only
// bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract of GlobalAlloc::alloc.
        let block = unsafe { System.alloc(layout) };
        if !block.is_null() {
            LIVE.fetch_add(1, Ordering::Relaxed);
        }
        block
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract of GlobalAlloc::alloc_zeroed.
        let block = unsafe { System.alloc_zeroed(layout) };
        if !block.is_null() {
            LIVE.fetch_add(1, Ordering::Relaxed);
        }
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: forwarded contract of GlobalAlloc::dealloc.
        unsafe { System.dealloc(block, layout) }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // One block before, one after (or the old one kept on failure).
        // SAFETY: forwarded contract of GlobalAlloc::realloc.
        unsafe { System.realloc(block, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Blocks allocated and not yet freed, over the whole library.
pub fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_is_one_block_while_it_lives() {
        let _guard = crate::failure::tests::serial();
        // Other test threads allocate too: retry until a quiet window
        // shows the difference exactly.
        let seen = (0..1000).any(|_| {
            let before = live();
            let boxed = std::hint::black_box(Box::new([0u8; 64]));
            let during = live();
            drop(boxed);
            let after = live();
            during == before + 1 && after == before
        });
        assert!(seen, "a Box never counted as exactly one block");
    }
}
