//! Which pages of a script's memory were never touched, read from the kernel's page tables.
//!
//! A script memory is an anonymous private mapping (see `tunables.rs`). A page of such a mapping
//! that is neither present in RAM nor swapped out has never been written (or read) since it was
//! mapped: the kernel would fill it with zeros on first access. So its contents are known
//! without reading it. Every instance has at least 64 KiB of memory and a typical ship script
//! touches a few of its sixteen 4-KiB pages. Reading the rest to learn that it is zero cost most
//! of a checkpoint's capture at thousands of scripts, and the first read of each untouched page
//! is a page fault (which then maps the shared zero page, so the page counts as present from
//! then on).
//!
//! Linux reports this in `/proc/self/pagemap`: one 64-bit entry per page, bit 63 "present", bit
//! 62 "swapped". The page frame numbers are hidden from unprivileged processes, but these two
//! flags are not. One `pread` covers a memory (0.4-0.9 µs for 16 pages here). Where pagemap
//! cannot be read or does not show a page just written as present (another OS, a kernel
//! without it, an emulated /proc), every page counts as touched: callers read it all, as they
//! would without this module, and get the same results.

use std::fs::File;
use std::ops::Range;
use std::sync::OnceLock;

/// pagemap's "the page is in RAM" flag.
const PRESENT: u64 = 1 << 63;
/// pagemap's "the page is in swap" flag.
const SWAPPED: u64 = 1 << 62;

/// The pages of one memory slice that may hold data.
pub(crate) struct UntouchedPages {
    page_bytes: usize,
    /// How far into its first page the slice starts.
    start_offset: usize,
    /// Per page of the slice, from the one holding its first byte: whether it was ever touched.
    /// Empty when pagemap could not be read (every page then counts as touched).
    touched: Vec<bool>,
}

impl UntouchedPages {
    /// Reads the residency of `memory`'s pages. Only meaningful for anonymous private memory
    /// (script memories, the heap): a file mapping's untouched page holds the file's bytes.
    pub(crate) fn of(memory: &[u8]) -> Self {
        let Some(pagemap) = pagemap() else {
            return Self::unknown();
        };
        if memory.is_empty() {
            return Self::unknown();
        }
        let page_bytes = pagemap.page_bytes;
        let start = memory.as_ptr() as usize;
        let first_page = start / page_bytes;
        let last_page = (start + memory.len() - 1) / page_bytes;
        let mut entries = vec![0u8; (last_page - first_page + 1) * 8];
        if read_at(&pagemap.file, &mut entries, first_page as u64 * 8).is_err() {
            return Self::unknown();
        }
        let touched = entries
            .chunks_exact(8)
            .map(|entry| {
                let bits = u64::from_le_bytes(entry.try_into().expect("8-byte entries"));
                bits & (PRESENT | SWAPPED) != 0
            })
            .collect();
        Self {
            page_bytes,
            start_offset: start % page_bytes,
            touched,
        }
    }

    /// Residency not known: every page counts as touched.
    pub(crate) fn unknown() -> Self {
        Self {
            page_bytes: 1,
            start_offset: 0,
            touched: Vec::new(),
        }
    }

    /// Whether every byte of `range` (offsets into the memory) lies in pages never touched,
    /// and so is certainly zero.
    pub(crate) fn known_zero(&self, range: Range<usize>) -> bool {
        if self.touched.is_empty() || range.is_empty() {
            return false;
        }
        let first = (self.start_offset + range.start) / self.page_bytes;
        let last = (self.start_offset + range.end - 1) / self.page_bytes;
        self.touched
            .get(first..=last)
            .is_some_and(|pages| pages.iter().all(|touched| !touched))
    }

    /// How many of the memory's pages were ever touched (`None` when that is not known).
    #[cfg(test)]
    pub(crate) fn touched_count(&self) -> Option<usize> {
        (!self.touched.is_empty()).then(|| self.touched.iter().filter(|t| **t).count())
    }
}

struct Pagemap {
    file: File,
    page_bytes: usize,
}

/// This process's pagemap, opened once (`pread` on a shared file needs no lock).
fn pagemap() -> Option<&'static Pagemap> {
    static PAGEMAP: OnceLock<Option<Pagemap>> = OnceLock::new();
    PAGEMAP.get_or_init(open_pagemap).as_ref()
}

#[cfg(target_os = "linux")]
fn open_pagemap() -> Option<Pagemap> {
    let pagemap = Pagemap {
        file: File::open("/proc/self/pagemap").ok()?,
        page_bytes: rustix::param::page_size(),
    };
    // A pagemap that reports a page just written as absent (an emulated /proc, a kernel that
    // hides the flags) would make every page look untouched and lose script memory: trust it
    // only once it shows a written page as present.
    let written = vec![1u8; 2 * pagemap.page_bytes];
    let inside = written.as_ptr() as usize / pagemap.page_bytes + 1;
    let mut entry = [0u8; 8];
    read_at(&pagemap.file, &mut entry, inside as u64 * 8).ok()?;
    let present = u64::from_le_bytes(entry) & PRESENT != 0;
    std::hint::black_box(&written);
    present.then_some(pagemap)
}

#[cfg(not(target_os = "linux"))]
fn open_pagemap() -> Option<Pagemap> {
    None
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_at(_file: &File, _buf: &mut [u8], _offset: u64) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh zeroed allocation the allocator has to map on its own (glibc maps anything
    /// over 32 MiB directly), so its pages are untouched.
    fn fresh_zeroed() -> Vec<u8> {
        vec![0u8; 64 << 20]
    }

    #[test]
    fn pages_never_touched_are_known_zero_and_written_ones_are_not() {
        assert!(
            pagemap().is_some(),
            "/proc/self/pagemap cannot be read: checkpoints would read every page of every \
             script memory"
        );
        let page = pagemap().unwrap().page_bytes;
        let mut memory = fresh_zeroed();
        // Offsets of whole pages inside the allocation.
        let first = (page - memory.as_ptr() as usize % page) % page;
        let page_at = |n: usize| first + n * page..first + (n + 1) * page;
        memory[page_at(5).start + 7] = 1;
        memory[page_at(9).start] = 0; // a written zero still makes its page present
        let pages = UntouchedPages::of(&memory);
        assert!(!pages.known_zero(page_at(5)), "the written page is touched");
        assert!(
            !pages.known_zero(page_at(9)),
            "a page written with zero is touched"
        );
        assert!(
            pages.known_zero(page_at(20)),
            "an untouched page is known zero"
        );
        assert!(
            pages.known_zero(page_at(10).start..page_at(20).end),
            "a run of untouched pages is known zero"
        );
        assert!(
            !pages.known_zero(page_at(3).start..page_at(7).start),
            "a range reaching into a touched page is not known zero"
        );
        assert!(
            !pages.known_zero(page_at(5).start + 100..page_at(5).start + 200),
            "part of a touched page is not known zero"
        );
        // Reading an untouched page maps the zero page: from then on it counts as touched.
        assert_eq!(std::hint::black_box(&memory)[page_at(40).start], 0);
        assert!(!UntouchedPages::of(&memory).known_zero(page_at(40)));
    }

    #[test]
    fn unknown_residency_treats_everything_as_touched() {
        let pages = UntouchedPages::unknown();
        assert!(!pages.known_zero(0..10));
        assert_eq!(pages.touched_count(), None);
    }

    /// Instance-level: what checkpoints and state hashes rely on.
    mod instances {
        use crate::memory_image::MemoryImage;
        use crate::{CompilerKind, ScriptEngine, ScriptInstance, ScriptLimits};

        /// Two 64 KiB wasm pages. Each tick writes a counter at the start, a zero early in the
        /// second (touching a page without giving it data) and a marker near its end.
        const SCATTERED: &str = r#"(module
            (memory (export "memory") 2)
            (data (i32.const 300) "seed")
            (func (export "astroboids_abi") (result i32) i32.const 1)
            (func (export "sensor_ptr") (result i32) i32.const 1024)
            (func (export "command_ptr") (result i32) i32.const 4096)
            (func (export "tick")
              (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
              (i32.store (i32.const 70000) (i32.const 0))
              (i32.store (i32.const 120000) (i32.const 0x5eed))))"#;

        fn instance() -> ScriptInstance {
            let engine = ScriptEngine::new(ScriptLimits::default(), CompilerKind::Cranelift);
            let wasm = wasmer::wat2wasm(SCATTERED.as_bytes()).unwrap();
            ScriptInstance::new(&engine.load(&wasm).unwrap(), 1).unwrap()
        }

        fn run(instance: &mut ScriptInstance, ticks: u64) {
            for tick in 0..ticks {
                let report = instance.run_tick(100_000, tick, &Default::default());
                assert!(report.fault.is_none(), "{:?}", report.fault);
            }
        }

        #[test]
        fn state_and_digest_skip_untouched_pages_yet_equal_a_full_read() {
            let mut original = instance();
            run(&mut original, 3);
            let touched = original.touched_memory_pages().expect("pagemap readable");
            let state = original.state();
            let digest = original.state_digest();
            assert_eq!(state.digest(), digest, "the digest is the state's");
            assert_eq!(
                original.touched_memory_pages(),
                Some(touched),
                "taking the state and its digest touches no page"
            );
            assert!(
                touched < 8,
                "{touched} of 32 pages touched by three small writes"
            );

            let full = original.memory_read_in_full();
            assert_eq!(original.touched_memory_pages(), Some(full.len() / 4096));
            assert_eq!(
                state.memory,
                MemoryImage::of(&full),
                "same image as a full read"
            );
            assert_eq!(
                original.state_digest(),
                digest,
                "same digest as with every page read"
            );
        }

        #[test]
        fn a_restore_touches_only_pages_with_data_and_continues_the_same() {
            let mut original = instance();
            run(&mut original, 3);
            let saved = original.state();
            let mut restored = instance();
            let fresh = restored.touched_memory_pages().expect("pagemap readable");
            restored.restore_state(&saved).unwrap();
            let after = restored.touched_memory_pages().unwrap();
            assert!(
                after <= fresh + saved.memory.stored_bytes().div_ceil(1024),
                "a restore touches the pages it writes data to, not the whole memory \
                 ({fresh} pages touched before, {after} after)"
            );
            assert_eq!(restored.state(), saved);
            assert_eq!(restored.state_digest(), original.state_digest());
            run(&mut original, 2);
            run(&mut restored, 2);
            assert_eq!(
                restored.memory_read_in_full(),
                original.memory_read_in_full()
            );
        }
    }
}
