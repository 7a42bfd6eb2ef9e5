//! Plain slice access to a script instance's linear memory.
//!
//! wasmer's `MemoryView::read` and `write` copy with volatile loads and stores, a word at a
//! time, because a memory might be shared with other threads. A script's memory never is
//! (threads and shared memories are refused at validation), and at thousands of scripts those
//! copies were most of a checkpoint's capture, of the state digest and a visible part of
//! writing each tick's sensor block. Here the memory is lent as a slice instead, for no longer
//! than a borrow of the instance's store.
//!
//! One of the modules with `unsafe`: building the slice from wasmer's base pointer and size.
#![allow(unsafe_code)]

use wasmer::{Memory, Store};

/// The memory's bytes, for as long as `store` is borrowed.
pub(crate) fn bytes<'a>(memory: &Memory, store: &'a Store) -> &'a [u8] {
    let view = memory.view(store);
    let (base, len) = (view.data_ptr(), view.data_size() as usize);
    // SAFETY: `base` and `len` describe the memory's current accessible bytes. They stay valid
    // and unchanged while `store` is borrowed: growing the memory or running wasm code (the
    // only other writers) both need `&mut Store`, and the memory is not shared with any other
    // thread (the store is not `Send`).
    unsafe { std::slice::from_raw_parts(base, len) }
}

/// The memory's bytes, writable, for as long as `store` is mutably borrowed.
pub(crate) fn bytes_mut<'a>(memory: &Memory, store: &'a mut Store) -> &'a mut [u8] {
    let view = memory.view(store);
    let (base, len) = (view.data_ptr(), view.data_size() as usize);
    // SAFETY: as in `bytes`; the exclusive borrow of `store` also rules out any other slice of
    // this memory (every one borrows the store) for as long as this one lives.
    unsafe { std::slice::from_raw_parts_mut(base, len) }
}
