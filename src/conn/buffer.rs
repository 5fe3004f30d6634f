//! Fixed-capacity byte buffers and the per-worker pool they come from.
//!
//! A buffer never grows on network input: its capacity is the bound on what
//! one direction of one connection can hold, which is what makes memory per
//! client bounded. Idle connections hand their buffers back to the pool, so
//! ten thousand idle keep-alive clients hold no buffers at all.

/// A fixed-size window `[start, end)` of valid bytes in a heap block.
#[derive(Debug)]
pub struct Buffer {
    mem: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Buffer {
    /// Valid bytes.
    pub fn data(&self) -> &[u8] {
        &self.mem[self.start..self.end]
    }

    /// Number of valid bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether no bytes are buffered.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Whether no more bytes fit, even after compaction.
    pub fn is_full(&self) -> bool {
        self.len() == self.mem.len()
    }

    /// Total capacity.
    pub fn capacity(&self) -> usize {
        self.mem.len()
    }

    /// Free space at the end, compacting first if that frees more. Valid
    /// bytes keep their relative offsets, so spans into `data()` stay valid.
    pub fn space(&mut self) -> &mut [u8] {
        if self.end == self.mem.len() && self.start > 0 {
            self.mem.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.mem[self.end..]
    }

    /// Marks `n` bytes written into `space()` as valid.
    pub fn fill(&mut self, n: usize) {
        debug_assert!(self.end + n <= self.mem.len());
        self.end = (self.end + n).min(self.mem.len());
    }

    /// Drops `n` bytes from the front.
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.start += n.min(self.len());
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }
}

/// A free list of equally sized blocks, so steady-state traffic allocates no
/// buffers.
#[derive(Debug)]
pub struct BufferPool {
    free: Vec<Box<[u8]>>,
    size: usize,
    max_free: usize,
}

impl BufferPool {
    /// A pool of `size`-byte buffers keeping at most `max_free` spares.
    pub fn new(size: usize, max_free: usize) -> Self {
        BufferPool {
            free: Vec::new(),
            size,
            max_free,
        }
    }

    /// An empty buffer (from the free list when possible).
    pub fn get(&mut self) -> Buffer {
        let mem = self
            .free
            .pop()
            .unwrap_or_else(|| vec![0u8; self.size].into_boxed_slice());
        Buffer {
            mem,
            start: 0,
            end: 0,
        }
    }

    /// Returns a buffer; its contents are discarded.
    pub fn put(&mut self, b: Buffer) {
        if self.free.len() < self.max_free && b.mem.len() == self.size {
            self.free.push(b.mem);
        }
    }

    /// Spare buffers held.
    pub fn spare(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_keeps_relative_offsets() {
        let mut pool = BufferPool::new(8, 4);
        let mut b = pool.get();
        b.space()[..8].copy_from_slice(b"abcdefgh");
        b.fill(8);
        assert!(b.is_full());
        b.consume(5);
        assert_eq!(b.space().len(), 5);
        assert_eq!(b.data(), b"fgh");
        b.consume(3);
        assert!(b.is_empty());
        pool.put(b);
        assert_eq!(pool.spare(), 1);
    }
}
