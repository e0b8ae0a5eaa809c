//! The C ABI of the conformance suite (`conformance/abi/coextra_abi.h`).
//!
//! Everything that crosses the boundary is here: the table, mirrored
//! field by field with `#[repr(C)]`, and the `extern "C"` entry points
//! that turn raw pointers into the safe types of the other modules (the
//! C free functions and hooks are wrapped in `callbacks`).  Each entry point
//! returns the C API's error value and leaves the error pending in the
//! calling thread (`errors`), from where `take_error` reads it.
//!
//! Handles: a `coextra_interp *` is an `Arc<Interp>` given away with
//! `Arc::into_raw` (taken back by `end_interpreter`); a `coextra_object *`
//! is an `ObjRef` given away with `ObjRef::into_raw` (taken back by
//! `drop`).  The suite's contract is that it passes back only pointers
//! it got from this table and still owns; every `unsafe` block below
//! relies on that and says where.

#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_long, c_void, CStr};
use std::mem::size_of;
use std::ptr;

use crate::callbacks::{CFreeFunc, CHook, FreeFn, HookFn};
use crate::errors::{self, Error, Result};
use crate::failure;
use crate::interp::{self, CopyKind, Interp};
use crate::object::{CodeObject, ObjHead, ObjRef};

/// `COEXTRA_ABI_VERSION`.
pub const ABI_VERSION: u32 = 1;

/// `COEXTRA_ABI_MINOR`: the table ends with the entries of this minor
/// version (1: `compare_exchange_extra`).
pub const ABI_MINOR: u32 = 1;

/// Every `COEXTRA_CAP_*` bit: release, inline-flag, storage-size,
/// sizeof, hooks, interpreters, finalize, threads, alloc-failure, copy,
/// compare-exchange, own-gil (each interpreter has its own lock),
/// live-blocks, exit-finalization.
pub const CAPABILITIES: u32 = (1 << 14) - 1;

const COPY_REPLACE: c_int = 0;
const COPY_MARSHAL: c_int = 1;

/// `coextra_interp`, opaque to C.
#[repr(C)]
pub struct CInterp {
    _private: [u8; 0],
}

/// `coextra_table`, field by field.
#[repr(C)]
pub struct Table {
    /// `COEXTRA_ABI_VERSION`.
    pub abi_version: u32,
    /// `sizeof(coextra_table)`.
    pub size: u32,
    /// The implementation's name.
    pub name: *const c_char,
    /// The implementation's version.
    pub version: *const c_char,
    /// `COEXTRA_CAP_*` bits.
    pub capabilities: u32,
    /// A fresh interpreter.
    pub new_interpreter: extern "C" fn() -> *mut CInterp,
    /// Finalize an interpreter.
    pub end_interpreter: unsafe extern "C" fn(*mut CInterp) -> c_int,
    /// Construct a code object with nested ones.
    pub new_code: unsafe extern "C" fn(*mut CInterp, c_int, u32) -> *mut ObjHead,
    /// A new reference to the i-th nested code object.
    pub get_nested: unsafe extern "C" fn(*mut ObjHead, c_int) -> *mut ObjHead,
    /// Copy a code object (replace or marshal).
    pub copy_code: unsafe extern "C" fn(*mut CInterp, *mut ObjHead, c_int) -> *mut ObjHead,
    /// An object that is not a code object.
    pub new_non_code: unsafe extern "C" fn(*mut CInterp) -> *mut ObjHead,
    /// Release a reference.
    pub drop: unsafe extern "C" fn(*mut ObjHead),
    /// The identity hooks record.
    pub code_id: unsafe extern "C" fn(*mut ObjHead) -> usize,
    /// The code object's co_flags.
    pub co_flags: unsafe extern "C" fn(*mut ObjHead) -> u32,
    /// PyUnstable_Eval_RequestCodeExtraIndex.
    pub request_index: unsafe extern "C" fn(*mut CInterp, Option<CFreeFunc>) -> isize,
    /// PyUnstable_Eval_ReleaseCodeExtraIndex.
    pub release_index: unsafe extern "C" fn(*mut CInterp, isize) -> c_int,
    /// PyUnstable_Code_GetExtra.
    pub get_extra:
        unsafe extern "C" fn(*mut CInterp, *mut ObjHead, isize, *mut *mut c_void) -> c_int,
    /// PyUnstable_Code_SetExtra.
    pub set_extra: unsafe extern "C" fn(*mut CInterp, *mut ObjHead, isize, *mut c_void) -> c_int,
    /// PyUnstable_Code_AddConstructorHook.
    pub add_hook: unsafe extern "C" fn(*mut CInterp, Option<CHook>, *mut c_void) -> c_int,
    /// PyUnstable_Code_RemoveConstructorHook.
    pub remove_hook: unsafe extern "C" fn(*mut CInterp, c_int) -> c_int,
    /// PyUnstable_Code_HasInlineExtra.
    pub has_inline_extra: unsafe extern "C" fn(*mut ObjHead) -> c_int,
    /// Bytes spent on extra storage.
    pub extra_bytes: unsafe extern "C" fn(*mut ObjHead) -> isize,
    /// What sys.getsizeof() would report.
    pub sizeof_code: unsafe extern "C" fn(*mut ObjHead) -> isize,
    /// Let `after` allocations succeed, then fail `count`.
    pub fail_allocations: extern "C" fn(c_long, c_long),
    /// Take the pending error's class name.
    pub take_error: unsafe extern "C" fn(*mut c_char, usize) -> c_int,
    /// Set a pending error by class name.
    pub set_error: unsafe extern "C" fn(*const c_char),
    /// Take the oldest unraisable error's class name.
    pub take_unraisable: unsafe extern "C" fn(*mut c_char, usize) -> c_int,
    /// PyUnstable_Code_CompareExchangeExtra (ABI minor 1).
    pub compare_exchange_extra: unsafe extern "C" fn(
        *mut CInterp,
        *mut ObjHead,
        isize,
        *mut *mut c_void,
        *mut c_void,
    ) -> c_int,
    /// ABI minor 2: heap blocks the library holds.
    pub live_blocks: extern "C" fn() -> isize,
}

/// The table as a static: raw pointers are not `Sync` by default.
struct SyncTable(Table);

// SAFETY: the table is immutable, and its pointers point to immutable
// static C strings and to functions, all safe to share between threads.
unsafe impl Sync for SyncTable {}

static TABLE: SyncTable = SyncTable(Table {
    abi_version: ABI_VERSION,
    size: size_of::<Table>() as u32,
    name: c"rust".as_ptr(),
    version: concat_version().as_ptr(),
    capabilities: CAPABILITIES,
    new_interpreter,
    end_interpreter,
    new_code,
    get_nested,
    copy_code,
    new_non_code,
    drop: drop_object,
    code_id,
    co_flags,
    request_index,
    release_index,
    get_extra,
    set_extra,
    add_hook,
    remove_hook,
    has_inline_extra,
    extra_bytes,
    sizeof_code,
    fail_allocations,
    take_error,
    set_error,
    take_unraisable,
    compare_exchange_extra,
    live_blocks,
});

const fn concat_version() -> &'static CStr {
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(version) => version,
        Err(_) => panic!("the package version contains a NUL byte"),
    }
}

/// The one exported symbol.
#[no_mangle]
pub extern "C" fn coextra_get_table() -> *const Table {
    &TABLE.0
}

// -- handles -----------------------------------------------------------------

/// Borrow an interpreter handle.
///
/// # Safety
///
/// `interp` is NULL or came from `new_interpreter` and was not ended.
unsafe fn interp_ref<'a>(interp: *mut CInterp) -> Result<&'a Interp> {
    // SAFETY: per the contract, a non-NULL pointer is a live
    // Arc<Interp>'s data pointer, alive until end_interpreter.
    unsafe { interp.cast::<Interp>().as_ref() }.ok_or(Error::System)
}

/// Borrow an object handle.
///
/// # Safety
///
/// `object` is NULL or a live object the caller holds a reference to.
unsafe fn object_ref<'a>(object: *mut ObjHead) -> Result<&'a ObjHead> {
    // SAFETY: per the contract, the caller's reference keeps it alive.
    unsafe { object.as_ref() }.ok_or(Error::System)
}

/// Borrow a code object handle (SystemError for any other object).
///
/// # Safety
///
/// As for `object_ref`.
unsafe fn code_ref<'a>(object: *mut ObjHead) -> Result<&'a CodeObject> {
    // SAFETY: forwarded contract.
    unsafe { object_ref(object) }?
        .as_code()
        .ok_or(Error::System)
}

/// Report `result` the C way: the value, or `error_value` with the error
/// left pending.
fn report<T>(result: Result<T>, error_value: T) -> T {
    result.unwrap_or_else(|error| {
        errors::set(error);
        error_value
    })
}

fn new_object(result: Result<ObjRef>) -> *mut ObjHead {
    report(result.map(ObjRef::into_raw), ptr::null_mut())
}

// -- object model --------------------------------------------------------------

extern "C" fn new_interpreter() -> *mut CInterp {
    std::sync::Arc::into_raw(Interp::new())
        .cast_mut()
        .cast::<CInterp>()
}

unsafe extern "C" fn end_interpreter(interp: *mut CInterp) -> c_int {
    if interp.is_null() {
        errors::set(Error::System);
        return -1;
    }
    // SAFETY: the pointer came from Arc::into_raw in new_interpreter and
    // the suite gives it back exactly once, here.
    let interp = unsafe { std::sync::Arc::from_raw(interp.cast::<Interp>().cast_const()) };
    interp.finalize();
    0
}

unsafe extern "C" fn new_code(interp: *mut CInterp, nested: c_int, flags: u32) -> *mut ObjHead {
    // SAFETY: handle contract (module docs).
    let result = unsafe { interp_ref(interp) }
        .and_then(|interp| interp.new_code(usize::try_from(nested).unwrap_or(0), flags));
    new_object(result)
}

unsafe extern "C" fn get_nested(code: *mut ObjHead, i: c_int) -> *mut ObjHead {
    // SAFETY: handle contract (module docs).
    let result = unsafe { code_ref(code) }.and_then(|code| {
        let i = usize::try_from(i).map_err(|_| Error::Index)?;
        code.consts().get(i).cloned().ok_or(Error::Index)
    });
    new_object(result)
}

unsafe extern "C" fn copy_code(
    interp: *mut CInterp,
    code: *mut ObjHead,
    how: c_int,
) -> *mut ObjHead {
    let how = match how {
        COPY_REPLACE => Ok(CopyKind::Replace),
        COPY_MARSHAL => Ok(CopyKind::Marshal),
        _ => Err(Error::System),
    };
    // SAFETY: handle contract (module docs).
    let result = unsafe { interp_ref(interp) }.and_then(|interp| {
        // SAFETY: handle contract (module docs).
        let code = unsafe { code_ref(code) }?;
        interp.copy_code(code, how?)
    });
    new_object(result)
}

unsafe extern "C" fn new_non_code(interp: *mut CInterp) -> *mut ObjHead {
    // SAFETY: handle contract (module docs).
    let result = unsafe { interp_ref(interp) }.map(|_| ObjRef::new_other());
    new_object(result)
}

unsafe extern "C" fn drop_object(object: *mut ObjHead) {
    // SAFETY: the caller gives back one reference it owns.
    drop(unsafe { ObjRef::from_raw(object) });
}

unsafe extern "C" fn code_id(code: *mut ObjHead) -> usize {
    code as usize
}

unsafe extern "C" fn co_flags(code: *mut ObjHead) -> u32 {
    // SAFETY: handle contract (module docs).
    report(unsafe { code_ref(code) }.map(CodeObject::flags), 0)
}

// -- the API of the PEP --------------------------------------------------------

unsafe extern "C" fn request_index(interp: *mut CInterp, free: Option<CFreeFunc>) -> isize {
    // SAFETY: handle contract (module docs).
    let result = unsafe { interp_ref(interp) }
        .and_then(|interp| interp.request_index(free.map(FreeFn::from_c)));
    report(result.map(|index| index as isize), -1)
}

unsafe extern "C" fn release_index(interp: *mut CInterp, index: isize) -> c_int {
    // SAFETY: handle contract (module docs).
    let result = unsafe { interp_ref(interp) }.and_then(|interp| interp.release_index(index));
    report(result.map(|()| 0), -1)
}

unsafe extern "C" fn get_extra(
    interp: *mut CInterp,
    code: *mut ObjHead,
    index: isize,
    extra: *mut *mut c_void,
) -> c_int {
    let result = (|| {
        // SAFETY: handle contract (module docs).
        let interp = unsafe { interp_ref(interp) }?;
        // SAFETY: handle contract (module docs).
        interp.get_extra(unsafe { object_ref(code) }?, index)
    })();
    if !extra.is_null() {
        // R-STORE-10: the output is NULL on error.
        let value = *result.as_ref().unwrap_or(&0);
        // SAFETY: a non-NULL `extra` points to a writable void * (the
        // C API's out parameter).
        unsafe { extra.write(value as *mut c_void) };
    }
    report(result.map(|_| 0), -1)
}

unsafe extern "C" fn set_extra(
    interp: *mut CInterp,
    code: *mut ObjHead,
    index: isize,
    extra: *mut c_void,
) -> c_int {
    let result = (|| {
        // SAFETY: handle contract (module docs).
        let interp = unsafe { interp_ref(interp) }?;
        // SAFETY: handle contract (module docs).
        interp.set_extra(unsafe { object_ref(code) }?, index, extra as usize)
    })();
    report(result.map(|()| 0), -1)
}

unsafe extern "C" fn compare_exchange_extra(
    interp: *mut CInterp,
    code: *mut ObjHead,
    index: isize,
    expected: *mut *mut c_void,
    desired: *mut c_void,
) -> c_int {
    if expected.is_null() {
        errors::set(Error::System);
        return -1;
    }
    // SAFETY: a non-NULL `expected` points to a readable and writable
    // void * (the C API's in-out parameter).
    let wanted = unsafe { expected.read() } as usize;
    let result = (|| {
        // SAFETY: handle contract (module docs).
        let interp = unsafe { interp_ref(interp) }?;
        // SAFETY: handle contract (module docs).
        interp.compare_exchange_extra(
            unsafe { object_ref(code) }?,
            index,
            wanted,
            desired as usize,
        )
    })();
    match result {
        Ok(None) => 1,
        Ok(Some(current)) => {
            // R-STORE-13: report the value the slot holds.
            // SAFETY: as above.
            unsafe { expected.write(current as *mut c_void) };
            0
        }
        Err(error) => {
            errors::set(error);
            -1
        }
    }
}

unsafe extern "C" fn add_hook(
    interp: *mut CInterp,
    hook: Option<CHook>,
    arg: *mut c_void,
) -> c_int {
    let result = (|| {
        // SAFETY: handle contract (module docs).
        let interp = unsafe { interp_ref(interp) }?;
        let hook = hook.ok_or(Error::System)?;
        interp.add_hook(HookFn::from_c(hook, arg))
    })();
    report(result, -1)
}

unsafe extern "C" fn remove_hook(interp: *mut CInterp, hook_id: c_int) -> c_int {
    // SAFETY: handle contract (module docs).
    let result = unsafe { interp_ref(interp) }.and_then(|interp| interp.remove_hook(hook_id));
    report(result.map(|()| 0), -1)
}

unsafe extern "C" fn has_inline_extra(code: *mut ObjHead) -> c_int {
    // SAFETY: handle contract (module docs).
    let result = unsafe { code_ref(code) }.map(|code| c_int::from(code.inline().is_some()));
    report(result, -1)
}

// -- observation -----------------------------------------------------------------

unsafe extern "C" fn extra_bytes(code: *mut ObjHead) -> isize {
    // SAFETY: handle contract (module docs).
    report(
        unsafe { code_ref(code) }.map(|code| interp::extra_bytes(code) as isize),
        -1,
    )
}

unsafe extern "C" fn sizeof_code(code: *mut ObjHead) -> isize {
    // SAFETY: handle contract (module docs).
    report(
        unsafe { code_ref(code) }.map(|code| interp::sizeof_code(code) as isize),
        -1,
    )
}

// c_long is 32 bits wide on some targets, where the conversion is real.
#[allow(clippy::useless_conversion)]
extern "C" fn fail_allocations(after: c_long, count: c_long) {
    failure::fail_allocations(i64::from(after), i64::from(count));
}

/// Copy an exception class name into a C buffer, NUL-terminated and
/// truncated to fit.
///
/// # Safety
///
/// `buf` is NULL or points to `size` writable bytes.
unsafe fn write_name(error: &Error, buf: *mut c_char, size: usize) {
    if buf.is_null() || size == 0 {
        return;
    }
    let name = error.class_name().as_bytes();
    let n = name.len().min(size - 1);
    // SAFETY: `n + 1 <= size` bytes are written into the caller's buffer.
    unsafe {
        ptr::copy_nonoverlapping(name.as_ptr(), buf.cast::<u8>(), n);
        buf.add(n).write(0);
    }
}

unsafe extern "C" fn take_error(buf: *mut c_char, size: usize) -> c_int {
    match errors::take() {
        Some(error) => {
            // SAFETY: forwarded buffer contract of take_error.
            unsafe { write_name(&error, buf, size) };
            1
        }
        None => 0,
    }
}

unsafe extern "C" fn set_error(exc_class: *const c_char) {
    let error = if exc_class.is_null() {
        Error::System
    } else {
        // SAFETY: a non-NULL argument is a NUL-terminated C string.
        Error::from_class_name(&unsafe { CStr::from_ptr(exc_class) }.to_string_lossy())
    };
    errors::set(error);
}

extern "C" fn live_blocks() -> isize {
    crate::blocks::live()
}

unsafe extern "C" fn take_unraisable(buf: *mut c_char, size: usize) -> c_int {
    match errors::take_unraisable() {
        Some(error) => {
            // SAFETY: forwarded buffer contract of take_unraisable.
            unsafe { write_name(&error, buf, size) };
            1
        }
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;
    use std::path::Path;
    use std::process::Command;

    /// Field names of `coextra_table` in declaration order, with their
    /// offsets in the Rust mirror.
    fn rust_offsets() -> Vec<(&'static str, usize)> {
        macro_rules! offsets {
            ($($field:ident),* $(,)?) => {
                vec![$((stringify!($field), offset_of!(Table, $field))),*]
            };
        }
        offsets!(
            abi_version,
            size,
            name,
            version,
            capabilities,
            new_interpreter,
            end_interpreter,
            new_code,
            get_nested,
            copy_code,
            new_non_code,
            drop,
            code_id,
            co_flags,
            request_index,
            release_index,
            get_extra,
            set_extra,
            add_hook,
            remove_hook,
            has_inline_extra,
            extra_bytes,
            sizeof_code,
            fail_allocations,
            take_error,
            set_error,
            take_unraisable,
            compare_exchange_extra,
            live_blocks,
        )
    }

    /// The mirror matches the C header: compile a probe printing every
    /// offset and the size with the system C compiler.  Skipped (with a
    /// message) when no compiler is installed.
    #[test]
    fn table_layout_matches_the_header() {
        let abi = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conformance/abi");
        let out = std::env::temp_dir().join(format!("coextra_rust_probe_{}", std::process::id()));
        let mut source = String::from(
            "#include <stdio.h>\n#include <stddef.h>\n#include \"coextra_abi.h\"\nint main(void) {\n",
        );
        for (field, _) in rust_offsets() {
            source += &format!("    printf(\"%zu\\n\", offsetof(coextra_table, {field}));\n");
        }
        source += "    printf(\"%zu\\n\", sizeof(coextra_table));\n    return 0;\n}\n";
        let c_file = out.with_extension("c");
        std::fs::write(&c_file, source).unwrap();
        let compiled = Command::new("cc")
            .arg("-I")
            .arg(&abi)
            .arg(&c_file)
            .arg("-o")
            .arg(&out)
            .status();
        match compiled {
            Ok(status) if status.success() => {}
            other => {
                eprintln!("skipped: no working C compiler ({other:?})");
                return;
            }
        }
        let printed = Command::new(&out).output().unwrap().stdout;
        let _ = std::fs::remove_file(&out);
        let _ = std::fs::remove_file(&c_file);
        let numbers: Vec<usize> = String::from_utf8(printed)
            .unwrap()
            .lines()
            .map(|line| line.parse().unwrap())
            .collect();
        let mut expected: Vec<usize> = rust_offsets().iter().map(|(_, at)| *at).collect();
        expected.push(size_of::<Table>());
        assert_eq!(
            numbers,
            expected,
            "offsets of {:?}, then the size",
            rust_offsets()
        );
    }

    #[test]
    fn table_header_fields() {
        let table = coextra_get_table();
        // SAFETY: the table is a static.
        let table = unsafe { &*table };
        assert_eq!(table.abi_version, 1);
        assert_eq!(table.size as usize, size_of::<Table>());
        assert_eq!(table.capabilities, 0x3FFF);
        // SAFETY: static NUL-terminated strings.
        let name = unsafe { CStr::from_ptr(table.name) };
        assert_eq!(name.to_str(), Ok("rust"));
        // SAFETY: as above.
        let version = unsafe { CStr::from_ptr(table.version) };
        assert_eq!(version.to_str(), Ok(env!("CARGO_PKG_VERSION")));
    }

    /// The C way of reporting: -1 or NULL and a pending class name,
    /// truncated to the buffer; the Get output cleared on error.
    #[test]
    fn errors_through_the_table() {
        let _guard = crate::failure::tests::serial();
        // SAFETY: the table is a static.
        let t = unsafe { &*coextra_get_table() };
        let interp = (t.new_interpreter)();
        // SAFETY: every pointer below comes from the table and is used
        // as the header's contract says.
        unsafe {
            let other = (t.new_non_code)(interp);
            let mut out = 0x5EED as *mut c_void;
            assert_eq!((t.get_extra)(interp, other, 0, &mut out), -1);
            assert!(out.is_null(), "R-STORE-10");
            let mut buf = [0 as c_char; 7];
            assert_eq!((t.take_error)(buf.as_mut_ptr(), buf.len()), 1);
            assert_eq!(CStr::from_ptr(buf.as_ptr()).to_str(), Ok("System"));
            assert_eq!((t.take_error)(buf.as_mut_ptr(), buf.len()), 0);
            assert_eq!((t.has_inline_extra)(other), -1);
            let mut big = [0 as c_char; 64];
            assert_eq!((t.take_error)(big.as_mut_ptr(), big.len()), 1);
            assert_eq!(CStr::from_ptr(big.as_ptr()).to_str(), Ok("SystemError"));
            assert_eq!((t.remove_hook)(interp, 3), -1);
            assert_eq!((t.take_error)(big.as_mut_ptr(), big.len()), 1);
            assert_eq!(CStr::from_ptr(big.as_ptr()).to_str(), Ok("ValueError"));
            (t.set_error)(c"KeyError".as_ptr());
            assert_eq!((t.take_error)(big.as_mut_ptr(), big.len()), 1);
            assert_eq!(CStr::from_ptr(big.as_ptr()).to_str(), Ok("KeyError"));
            let code = (t.new_code)(interp, 2, 0);
            let nested = (t.get_nested)(code, 1);
            assert!(!nested.is_null());
            assert!((t.get_nested)(code, 2).is_null());
            assert_eq!((t.take_error)(big.as_mut_ptr(), big.len()), 1);
            assert_eq!((t.code_id)(code), code as usize);
            assert_eq!(
                (t.sizeof_code)(code),
                crate::object::CODE_BASE_SIZE as isize
            );
            (t.drop)(nested);
            (t.drop)(code);
            (t.drop)(other);
            assert_eq!((t.end_interpreter)(interp), 0);
        }
    }
}
