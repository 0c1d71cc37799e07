//! The appliance's memory allocator: mimalloc, returning freed memory to the system at once.
//!
//! Measured with `cargo xtask bench` (issue 18, 30 s sustained runs with journaling, two
//! interleaved rounds each): glibc's malloc spent about a quarter of the appliance's own CPU at
//! 4 KiB messages in arena locking and consolidation of message buffers freed on another runtime
//! thread. With mimalloc the appliance accepted 3,344–3,517 msg/s instead of 3,051–3,167 at 4 KiB
//! and 1,174–1,414 instead of 1,071–1,232 at 100 KiB, with a lower p99. mimalloc 3 by default
//! keeps freed pages for a second before returning them, which cost 18–30 MB more resident memory
//! under load (89 MB instead of 71 MB); purging at once kept its speed at glibc's footprint
//! (68–77 MB at 4 KiB, 88–89 MB at 100 KiB).

/// The allocator a binary installs: `#[global_allocator] static A: rampart_alloc::Allocator = rampart_alloc::ALLOCATOR;`.
pub type Allocator = mimalloc::MiMalloc;

/// The value to install as the global allocator.
pub const ALLOCATOR: Allocator = mimalloc::MiMalloc;

/// `mi_option_purge_delay`: its index in mimalloc's `mi_option_e` (the same in mimalloc 2 and 3;
/// the sys crate names it only for mimalloc 2, as `mi_option_reset_delay`'s successor).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc return freed pages to the system at once instead of after a second. Call it first
/// thing in `main`; calling it again is harmless.
pub fn return_freed_memory_at_once() {
    #[allow(unsafe_code)]
    // SAFETY: `mi_option_set` stores an integer in mimalloc's option table (an atomic store); it
    // takes no pointers and is valid on any thread at any time, before or after allocations.
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
    }
}

/// The purge delay in force, in milliseconds (for the test below and diagnostics).
pub fn purge_delay_ms() -> i64 {
    #[allow(unsafe_code)]
    // SAFETY: `mi_option_get` reads an integer from mimalloc's option table; no pointers.
    let ms = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
    #[allow(clippy::useless_conversion)] // `c_long` is 32 bits on some targets
    i64::from(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static A: Allocator = ALLOCATOR;

    #[test]
    fn option_fifteen_is_the_purge_delay_and_is_set_to_zero() {
        // mimalloc 3's default purge delay is 1000 ms (src/options.c): if the index were another
        // option's, this would read that option's default instead.
        assert_eq!(purge_delay_ms(), 1000);
        return_freed_memory_at_once();
        assert_eq!(purge_delay_ms(), 0);
        // Still allocates and frees after the change.
        let v: Vec<u8> = vec![7; 1 << 20];
        assert_eq!(v.iter().map(|b| usize::from(*b)).sum::<usize>(), 7 << 20);
    }
}
