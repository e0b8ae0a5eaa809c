//! An independent Rust implementation of PEP 9999: pay-for-use extra
//! storage on code objects and a code-constructor hook chain.
//!
//! The crate builds a C dynamic library exporting the conformance suite's
//! C ABI (`coextra_get_table`, see `ffi`).  It is written from the PEP's
//! text on a small object model of its own: interpreters with their
//! indices, hooks and out-of-line tables behind a mutex (`interp`),
//! reference-counted code objects whose inline storage exists only when
//! `CO_INLINE_EXTRA` is set (`object`), the free functions and hooks C
//! registers (`callbacks`), and the bookkeeping pieces (`index`, `hooks`,
//! `storage`, `errors`, `failure`).
//!
//! Modules import downwards only: `ffi` uses `interp`, which uses
//! `callbacks` and `object`; `object` uses neither.  Destroying a code
//! object frees its values through the function `interp` registers with
//! `object::on_code_destroyed`.
//!
//! `unsafe` code is confined to the modules that own the memory and
//! the calls crossing the C boundary, `ffi`, `callbacks`, `object` and
//! `blocks` (the counting allocator); every other
//! module is checked by `deny(unsafe_code)`.

#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod blocks;
pub mod callbacks;
pub mod errors;
pub mod failure;
pub mod ffi;
pub mod hooks;
pub mod index;
pub mod interp;
pub mod object;
pub mod storage;
