//! The callbacks an implementation calls back into: free functions
//! (`coextra_freefunc`) and constructor hooks (`coextra_hook`), as C
//! passes them in and as the interpreter keeps them.
//!
//! They sit below both `ffi`, which receives them from C, and `interp`,
//! which stores and calls them, so that neither has to import the
//! other's types.

#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};

use crate::object::{CodeObject, ObjHead};

/// A C free function, `coextra_freefunc`.
pub type CFreeFunc = unsafe extern "C" fn(value: *mut c_void);

/// A C constructor hook, `coextra_hook`.
pub type CHook = unsafe extern "C" fn(code: *mut ObjHead, arg: *mut c_void) -> c_int;

/// A registered free function.
#[derive(Clone, Copy, Debug)]
pub struct FreeFn(CFreeFunc);

impl FreeFn {
    /// Wrap a free function passed by C to request_index.
    pub fn from_c(free: CFreeFunc) -> FreeFn {
        FreeFn(free)
    }

    /// Wrap a Rust free function (safe to call with any value).
    pub fn from_rust(free: extern "C" fn(*mut c_void)) -> FreeFn {
        FreeFn(free)
    }

    /// Hand `value` to the free function.
    pub fn call(self, value: usize) {
        // SAFETY: the function was registered through request_index by C
        // code that promised (PEP 9999) it accepts every non-NULL value
        // stored under its index, and those are the only values passed.
        unsafe { (self.0)(value as *mut c_void) }
    }
}

/// A registered constructor hook and its argument.
#[derive(Clone, Copy, Debug)]
pub struct HookFn {
    hook: CHook,
    /// The registration's `arg`, kept as an address: it is only ever
    /// handed back to the hook, never dereferenced here.
    arg: usize,
}

impl HookFn {
    /// Wrap a hook and its argument passed by C to add_hook.
    pub fn from_c(hook: CHook, arg: *mut c_void) -> HookFn {
        HookFn {
            hook,
            arg: arg as usize,
        }
    }

    /// Wrap a Rust hook (safe to call with any code object).
    pub fn from_rust(
        hook: extern "C" fn(*mut ObjHead, *mut c_void) -> c_int,
        arg: usize,
    ) -> HookFn {
        HookFn { hook, arg }
    }

    /// Call the hook for a newly constructed code object.
    pub fn call(self, code: &CodeObject) -> c_int {
        let code = code as *const CodeObject as *mut ObjHead;
        // SAFETY: the hook was registered by C code through add_hook with
        // this `arg`; it receives a borrowed reference to a live code
        // object, as the PEP's constructor-hook contract says.
        unsafe { (self.hook)(code, self.arg as *mut c_void) }
    }
}
