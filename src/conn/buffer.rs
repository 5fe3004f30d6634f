//! Fixed-capacity byte buffers and the per-worker pool they come from.
//!
//! A buffer never grows on network input: its capacity is the bound on what
//! one direction of one connection can hold, which is what makes memory per
//! client bounded. Idle connections hand their buffers back to the pool, so
//! ten thousand idle keep-alive clients hold no buffers at all; and the pool
//! gives back spares that a whole trim period left unused, so a one-off
//! peak (a slowloris flood) does not stay reserved forever.

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

/// A free list that knows which of its items went unused.
///
/// It remembers the smallest length it had since the last [`Spares::trim`]
/// (its low-water mark): that many items sat at the bottom of the stack
/// untouched for the whole period, so freeing them cannot make the traffic
/// of that period allocate. Items taken and returned within a period are
/// never freed: that is the hysteresis that keeps steady traffic
/// allocation-free while a one-off peak (a slowloris flood) is given back.
#[derive(Debug)]
pub struct Spares<T> {
    items: Vec<T>,
    max: usize,
    low_water: usize,
}

impl<T> Spares<T> {
    /// An empty list holding at most `max` items.
    pub fn new(max: usize) -> Self {
        Spares {
            items: Vec::new(),
            max,
            low_water: 0,
        }
    }

    /// Takes the most recently returned item.
    pub fn pop(&mut self) -> Option<T> {
        let t = self.items.pop();
        self.low_water = self.low_water.min(self.items.len());
        t
    }

    /// Keeps `t` for reuse, or drops it when the list is full.
    pub fn push(&mut self, t: T) {
        if self.items.len() < self.max {
            self.items.push(t);
        }
    }

    /// Items held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Frees the items that went unused since the last trim, keeping at
    /// least `floor`; returns how many were freed. Call it periodically.
    pub fn trim(&mut self, floor: usize) -> usize {
        self.trim_keeping_lowest(floor, |_| 0)
    }

    /// [`Spares::trim`], keeping the items with the lowest `key`.
    pub fn trim_keeping_lowest(&mut self, floor: usize, key: impl Fn(&T) -> usize) -> usize {
        let n = self.low_water.min(self.items.len().saturating_sub(floor));
        if n > 0 {
            // Highest keys last, where `truncate` cuts.
            self.items.sort_by_key(key);
            self.items.truncate(self.items.len() - n);
            // Give the list's own block back too, but keep room for the
            // floor so refilling up to it never reallocates. A fresh block
            // rather than `shrink_to`: shrinking in place would leave it
            // where the peak put it, at the top of the heap, pinning the
            // freed memory below it.
            let mut fresh = Vec::with_capacity(self.items.len().max(floor.min(self.max)));
            fresh.append(&mut self.items);
            self.items = fresh;
        }
        self.low_water = self.items.len();
        n
    }
}

/// Spare buffers a pool keeps however idle it is: enough for a burst of
/// new connections without touching the allocator.
pub const MIN_SPARE: usize = 64;

/// A free list of equally sized blocks, so steady-state traffic allocates no
/// buffers; trimmed back towards a bound when idle (see [`BufferPool::trim`]).
#[derive(Debug)]
pub struct BufferPool {
    free: Spares<Box<[u8]>>,
    size: usize,
    in_use: usize,
}

impl BufferPool {
    /// A pool of `size`-byte buffers keeping at most `max_free` spares.
    pub fn new(size: usize, max_free: usize) -> Self {
        BufferPool {
            free: Spares::new(max_free),
            size,
            in_use: 0,
        }
    }

    /// An empty buffer (from the free list when possible).
    pub fn get(&mut self) -> Buffer {
        self.in_use += 1;
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
        self.in_use = self.in_use.saturating_sub(1);
        if b.mem.len() == self.size {
            self.free.push(b.mem);
        }
    }

    /// Spare buffers held.
    pub fn spare(&self) -> usize {
        self.free.len()
    }

    /// Buffers handed out and not yet returned.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// How many spares an idle pool keeps: [`MIN_SPARE`], or twice what is
    /// in use, so traffic at the current level never waits on malloc.
    pub fn floor(&self) -> usize {
        MIN_SPARE.max(self.in_use.saturating_mul(2))
    }

    /// Frees spares unused since the last trim, down to [`Self::floor`];
    /// returns how many. The worker calls it every `tuning.pool_trim_ms`.
    ///
    /// The buffers kept are the lowest-addressed ones: an allocator such as
    /// glibc's returns memory to the OS only from the top of a heap, so
    /// keeping high ones would pin everything freed below them.
    pub fn trim(&mut self) -> usize {
        let floor = self.floor();
        self.free
            .trim_keeping_lowest(floor, |b| b.as_ptr() as usize)
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

    #[test]
    fn a_peak_is_given_back_after_one_idle_period() {
        let mut pool = BufferPool::new(8, 1024);
        let peak: Vec<Buffer> = (0..1000).map(|_| pool.get()).collect();
        assert_eq!(pool.in_use(), 1000);
        // Trims while the buffers are out free nothing (none are spare).
        assert_eq!(pool.trim(), 0);
        peak.into_iter().for_each(|b| pool.put(b));
        assert_eq!(pool.spare(), 1000);
        // The period in which they came back saw the list at 0: nothing
        // proves them unneeded yet.
        assert_eq!(pool.trim(), 0);
        // A whole period untouched: freed down to the floor.
        assert_eq!(pool.trim(), 1000 - MIN_SPARE);
        assert_eq!(pool.spare(), MIN_SPARE);
        assert_eq!(pool.trim(), 0);
    }

    #[test]
    fn steady_traffic_keeps_its_working_set() {
        let mut pool = BufferPool::new(8, 1024);
        let burst: Vec<Buffer> = (0..500).map(|_| pool.get()).collect();
        burst.into_iter().for_each(|b| pool.put(b));
        pool.trim();
        for _ in 0..10 {
            // Each period, 300 buffers are taken and returned.
            let held: Vec<Buffer> = (0..300).map(|_| pool.get()).collect();
            held.into_iter().for_each(|b| pool.put(b));
            pool.trim();
            // The 300 in use stay; only the untouched 200 above the floor go.
            assert!(pool.spare() >= 300, "{}", pool.spare());
        }
        assert_eq!(pool.spare(), 300);
    }

    #[test]
    fn the_floor_follows_what_is_in_use() {
        let mut pool = BufferPool::new(8, 1024);
        let all: Vec<Buffer> = (0..600).map(|_| pool.get()).collect();
        let mut all = all.into_iter();
        let held: Vec<Buffer> = all.by_ref().take(100).collect();
        all.for_each(|b| pool.put(b));
        pool.trim();
        pool.trim();
        // 100 in use: 200 spares kept, not 64.
        assert_eq!(pool.spare(), 200);
        held.into_iter().for_each(|b| pool.put(b));
        pool.trim();
        pool.trim();
        assert_eq!(pool.spare(), MIN_SPARE);
    }

    #[test]
    fn trimming_keeps_the_lowest_addresses() {
        let mut pool = BufferPool::new(8, 1024);
        let bs: Vec<Buffer> = (0..200).map(|_| pool.get()).collect();
        let mut addrs: Vec<usize> = bs.iter().map(|b| b.mem.as_ptr() as usize).collect();
        bs.into_iter().for_each(|b| pool.put(b));
        pool.trim();
        pool.trim();
        addrs.sort_unstable();
        let mut kept: Vec<usize> = pool
            .free
            .items
            .iter()
            .map(|m| m.as_ptr() as usize)
            .collect();
        kept.sort_unstable();
        assert_eq!(kept, addrs[..MIN_SPARE]);
    }

    #[test]
    fn the_cap_still_holds() {
        let mut pool = BufferPool::new(8, 4);
        let bs: Vec<Buffer> = (0..10).map(|_| pool.get()).collect();
        bs.into_iter().for_each(|b| pool.put(b));
        assert_eq!(pool.spare(), 4);
        assert_eq!(pool.in_use(), 0);
    }
}
