//! A small pool of large message buffers. A binary message from a client is
//! unmasked into a buffer on a runtime thread and handed to JS without a
//! copy; JS frees it at a later garbage collection, on its own thread. With
//! a fresh allocation per message, those bursts of frees let the runtime
//! threads' malloc arenas shrink and grow again, faulting pages in for
//! nearly every 16 KiB message. Buffers given back here are reused instead.

use parking_lot::Mutex;

/// Messages at least this large use the pool; smaller ones are cheap to
/// allocate.
pub const MIN: usize = 4 * 1024;
/// Buffers above this size are not kept.
const MAX: usize = 1024 * 1024;
/// At most this many buffers wait in the pool.
const KEEP: usize = 64;

static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty buffer with room for `len` bytes: a pooled one when one fits
/// (without being more than twice as large), else a new one.
pub fn take(len: usize) -> Vec<u8> {
    if len >= MIN {
        let mut pool = POOL.lock();
        if let Some(i) = pool
            .iter()
            .position(|b| b.capacity() >= len && b.capacity() <= 2 * len)
        {
            let mut buf = pool.swap_remove(i);
            buf.clear();
            return buf;
        }
    }
    Vec::with_capacity(len)
}

/// Gives a buffer back for reuse (or frees it, if it is too small or too
/// large, or the pool is full).
pub fn give(buf: Vec<u8>) {
    if (MIN..=MAX).contains(&buf.capacity()) {
        let mut pool = POOL.lock();
        if pool.len() < KEEP {
            pool.push(buf);
        }
    }
}

/// `data` as bytes the engine keeps: for a large message, copied into a
/// pooled buffer that goes back to the pool when the bytes are dropped
/// (after the write, on a runtime thread). A fresh allocation per message
/// faults its pages in nearly every time, as the receive path's did before
/// the pool: in a 16 KiB echo that cost more than the copy itself.
pub fn copy(data: &[u8]) -> bytes::Bytes {
    if data.len() < MIN {
        return bytes::Bytes::copy_from_slice(data);
    }
    let mut buf = take(data.len());
    buf.extend_from_slice(data);
    bytes::Bytes::from_owner(Pooled(buf))
}

/// A pooled buffer that goes back to the pool when dropped.
struct Pooled(Vec<u8>);

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_buffers_of_a_fitting_size() {
        // A size no other test uses, since tests share the pool.
        let len = 700_000;
        let mut a = take(len);
        a.extend_from_slice(&[1; 100]);
        let ptr = a.as_ptr();
        give(a);
        let b = take(len);
        assert!(b.is_empty());
        assert_eq!(b.as_ptr(), ptr);
        // Too small or too large to be pooled.
        give(Vec::with_capacity(100));
        give(Vec::with_capacity(MAX + 1));
        assert!(take(100).capacity() >= 100);
        give(b);
    }

    #[test]
    fn copies_go_back_to_the_pool_when_dropped() {
        let len = 300_000;
        let data = vec![7u8; len];
        let bytes = copy(&data);
        assert_eq!(&bytes[..], &data[..]);
        let ptr = bytes.as_ptr();
        drop(bytes);
        // The copy's buffer is the one a take of that size gets next.
        let again = take(len);
        assert_eq!(again.as_ptr(), ptr);
        give(again);
        // Small data is copied plainly.
        assert_eq!(&copy(b"abc")[..], b"abc");
    }
}
