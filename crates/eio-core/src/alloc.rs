//! A global allocator that sends small and large blocks to two allocators.
//!
//! Why: a session is a few dozen small, long-lived blocks, which an
//! allocator with headerless size classes (jemalloc) packs tighter than
//! glibc's malloc (bench idle-mem: 3.5-3.7 instead of about 4.0 KiB per
//! WebSocket session). Message buffers are large, short-lived, allocated on a
//! runtime thread and freed on the JS thread once V8 collects them; jemalloc
//! keeps such pages for its decay time, which doubled the RSS under a
//! 16 KiB echo load (about 205 against 125 MiB with glibc). Each kind goes to
//! the allocator that suits it.

use std::alloc::{GlobalAlloc, Layout};

/// Blocks of at least this many bytes go to the large allocator: where
/// jemalloc's own large (page-run) classes begin. Smaller buffers that come
/// and go per request (hyper's 8 KiB reads) stay with jemalloc, which was
/// about 7% faster on the polling echo than with a 4 KiB line.
pub const LARGE: usize = 16 * 1024;

/// Blocks under [`LARGE`] bytes from `S`, the others from `L`.
pub struct Split<S, L> {
    /// The allocator of small blocks.
    pub small: S,
    /// The allocator of large blocks.
    pub large: L,
}

fn is_large(size: usize) -> bool {
    size >= LARGE
}

// SAFETY: every block is freed, grown or shrunk by the allocator that made
// it, which is decided by its size alone; `GlobalAlloc` hands `dealloc` and
// `realloc` the layout the block was allocated with, so the choice is the
// same each time. A `realloc` that crosses `LARGE` moves the block.
unsafe impl<S: GlobalAlloc, L: GlobalAlloc> GlobalAlloc for Split<S, L> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(layout.size()) {
            self.large.alloc(layout)
        } else {
            self.small.alloc(layout)
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_large(layout.size()) {
            self.large.alloc_zeroed(layout)
        } else {
            self.small.alloc_zeroed(layout)
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_large(layout.size()) {
            self.large.dealloc(ptr, layout)
        } else {
            self.small.dealloc(ptr, layout)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match (is_large(layout.size()), is_large(new_size)) {
            (true, true) => self.large.realloc(ptr, layout, new_size),
            (false, false) => self.small.realloc(ptr, layout, new_size),
            _ => {
                // SAFETY: the caller guarantees `new_size` with this
                // alignment is a valid layout.
                let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                let new = self.alloc(new_layout);
                if !new.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                new
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;
    use std::sync::atomic::{AtomicIsize, Ordering};

    /// The system allocator, counting the blocks it holds.
    #[derive(Default)]
    struct Counted(AtomicIsize);

    // SAFETY: every call goes to the system allocator with the caller's
    // arguments; the count beside it changes nothing about the blocks.
    unsafe impl GlobalAlloc for Counted {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            self.0.fetch_add(1, Ordering::SeqCst);
            System.alloc(layout)
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            self.0.fetch_sub(1, Ordering::SeqCst);
            System.dealloc(ptr, layout)
        }
    }

    fn held(a: &Split<Counted, Counted>) -> (isize, isize) {
        (
            a.small.0.load(Ordering::SeqCst),
            a.large.0.load(Ordering::SeqCst),
        )
    }

    #[test]
    fn blocks_go_by_size_and_move_when_a_realloc_crosses_the_line() {
        let a = Split {
            small: Counted::default(),
            large: Counted::default(),
        };
        // SAFETY: each block is used within its layout and freed once, with
        // the layout it has at that moment.
        unsafe {
            let small = Layout::from_size_align(100, 8).unwrap();
            let p = a.alloc(small);
            for i in 0..100 {
                *p.add(i) = i as u8;
            }
            assert_eq!(held(&a), (1, 0));

            // Grown past the line: moved to the large allocator, data kept.
            let p = a.realloc(p, small, LARGE + 10);
            assert_eq!(held(&a), (0, 1));
            assert!((0..100).all(|i| *p.add(i) == i as u8));

            // Grown within the large side: stays there.
            let grown = Layout::from_size_align(LARGE + 10, 8).unwrap();
            let p = a.realloc(p, grown, 2 * LARGE);
            assert_eq!(held(&a), (0, 1));

            // Shrunk below the line: back to the small one, data kept.
            let big = Layout::from_size_align(2 * LARGE, 8).unwrap();
            let p = a.realloc(p, big, 50);
            assert_eq!(held(&a), (1, 0));
            assert!((0..50).all(|i| *p.add(i) == i as u8));

            a.dealloc(p, Layout::from_size_align(50, 8).unwrap());
            assert_eq!(held(&a), (0, 0));

            let z = a.alloc_zeroed(Layout::from_size_align(LARGE, 64).unwrap());
            assert_eq!(z as usize % 64, 0);
            assert!((0..LARGE).all(|i| *z.add(i) == 0));
            assert_eq!(held(&a), (0, 1));
            a.dealloc(z, Layout::from_size_align(LARGE, 64).unwrap());
            assert_eq!(held(&a), (0, 0));
        }
    }
}
