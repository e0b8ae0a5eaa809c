//! The object model: reference-counted objects handed to C as pointers.
//!
//! This module, `ffi` and `callbacks` are the only ones allowed to use
//! `unsafe` (besides the allocator in `blocks`): they
//! own the raw memory that crosses the C ABI.  Everything else works with
//! the safe types defined here ([`ObjRef`], [`CodeObject`],
//! [`InlineOwned`]).
//!
//! # Layout and the zero-cost property
//!
//! Every object starts with an [`ObjHead`] (a kind tag and an atomic
//! reference count), which is how a `coextra_object *` is recognised as a
//! code object or not (R-STORE-8, R-STORE-9).  A code object is one heap
//! block:
//!
//! ```text
//! CodeObject { head, flags, consts }          always (40 bytes)
//! InlineHeader { owner, len }                 only with CO_INLINE_EXTRA
//! [AtomicUsize; len]                          only with CO_INLINE_EXTRA
//! ```
//!
//! The trailing part is allocated together with the object, and only
//! when a consumer is active in the constructing interpreter; the fixed
//! part has no pointer or field for extra storage at all, so a code object
//! constructed with no consumer spends 0 bytes on it (R-FLAG-1, R-FLAG-8)
//! and `extra_bytes` reports 0 for it.  With inline storage `extra_bytes`
//! reports the header (16 bytes) plus 8 bytes per slot, exactly the bytes
//! the block grew by.  The `CO_INLINE_EXTRA` bit in `flags` is set if and
//! only if the trailing part exists (R-FLAG-3), is decided at allocation
//! and never changes (R-FLAG-5), and is how the accessors find the part.

#![allow(unsafe_code)]

use std::alloc::{self, Layout};
use std::collections::HashSet;
use std::mem::size_of;
use std::ptr::{self, NonNull};
use std::sync::atomic::{fence, AtomicUsize, Ordering};
use std::sync::OnceLock;

use crate::errors::{Error, Result};

/// The co_flags bit that marks inline extra storage.
pub const CO_INLINE_EXTRA: u32 = 0x2000_0000;

const KIND_CODE: u32 = 0xC0DE_0001;
const KIND_OTHER: u32 = 0x0B1E_0002;

/// The header every object starts with.
#[repr(C)]
pub struct ObjHead {
    kind: u32,
    refcnt: AtomicUsize,
}

/// The fixed part of a code object.
#[repr(C)]
pub struct CodeObject {
    head: ObjHead,
    flags: u32,
    /// Nested code objects (the constants), owned references.
    consts: Box<[ObjRef]>,
}

/// What precedes the inline slots.
#[repr(C)]
struct InlineHeader {
    /// The ID of the interpreter that constructed the object; only its
    /// indices use the inline slots.
    owner: u64,
    /// The number of slots.
    len: usize,
}

/// An object that is not a code object.
#[repr(C)]
struct OtherObject {
    head: ObjHead,
}

/// The inline storage of a code object.
pub struct Inline<'a> {
    /// The interpreter whose indices the slots serve.
    pub owner: u64,
    /// One slot per index `0..len`.
    pub slots: &'a [AtomicUsize],
}

/// Byte offsets of the inline header and slots inside a code object's
/// block, and the block's layout for `len` slots (`None`: no storage).
fn code_layout(inline_len: Option<usize>) -> Result<(Layout, usize, usize)> {
    let base = Layout::new::<CodeObject>();
    let Some(len) = inline_len else {
        return Ok((base, 0, 0));
    };
    let (with_header, header_at) = base
        .extend(Layout::new::<InlineHeader>())
        .map_err(|_| Error::Memory)?;
    let slots = Layout::array::<AtomicUsize>(len).map_err(|_| Error::Memory)?;
    let (whole, slots_at) = with_header.extend(slots).map_err(|_| Error::Memory)?;
    Ok((whole.pad_to_align(), header_at, slots_at))
}

impl CodeObject {
    /// Allocate a code object with one reference.
    ///
    /// `flags` are the caller's: `CO_INLINE_EXTRA` in them is ignored
    /// (R-FLAG-7) and set only when `inline` asks for storage:
    /// `Some((owner, len))` with `len >= 1`.  `consts` is taken only on
    /// success, so that on failure the caller can drop them after it has
    /// released its locks.  A failed allocation is a `MemoryError`.
    pub fn alloc(
        flags: u32,
        consts: &mut Vec<ObjRef>,
        inline: Option<(u64, usize)>,
    ) -> Result<ObjRef> {
        let (layout, header_at, slots_at) = code_layout(inline.map(|(_, n)| n))?;
        let mut flags = flags & !CO_INLINE_EXTRA;
        if inline.is_some() {
            flags |= CO_INLINE_EXTRA;
        }
        // SAFETY: `layout` has a non-zero size (it contains CodeObject).
        // Every part of the block is written below before any reference
        // to it exists.
        let block = unsafe { alloc::alloc(layout) };
        let Some(block) = NonNull::new(block) else {
            return Err(Error::Memory);
        };
        let code = block.cast::<CodeObject>();
        // SAFETY: the block is fresh, large enough and aligned for a
        // CodeObject at offset 0 and (when inline is Some) an
        // InlineHeader at `header_at`, per `code_layout`.
        unsafe {
            ptr::write(
                code.as_ptr(),
                CodeObject {
                    head: ObjHead {
                        kind: KIND_CODE,
                        refcnt: AtomicUsize::new(1),
                    },
                    flags,
                    consts: std::mem::take(consts).into_boxed_slice(),
                },
            );
            if let Some((owner, len)) = inline {
                ptr::write(
                    block.as_ptr().add(header_at).cast::<InlineHeader>(),
                    InlineHeader { owner, len },
                );
                let slots = block.as_ptr().add(slots_at).cast::<AtomicUsize>();
                for i in 0..len {
                    // R-FREE-8: every slot of a new object starts NULL.
                    ptr::write(slots.add(i), AtomicUsize::new(0));
                }
            }
        }
        Ok(ObjRef(code.cast::<ObjHead>()))
    }

    /// The code object's flags (co_flags).
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Its nested code objects.
    pub fn consts(&self) -> &[ObjRef] {
        &self.consts
    }

    /// Its address: the identity hooks report and the key of
    /// out-of-line storage.
    pub fn address(&self) -> usize {
        self as *const CodeObject as usize
    }

    /// Its inline storage, if it has any (`CO_INLINE_EXTRA`).
    pub fn inline(&self) -> Option<Inline<'_>> {
        if self.flags & CO_INLINE_EXTRA == 0 {
            return None;
        }
        // The offsets do not depend on the slot count.
        let (_, header_at, slots_at) = code_layout(Some(0)).ok()?;
        let base = self as *const CodeObject as *const u8;
        // SAFETY: the flag is set only by `alloc`, which then allocated
        // and wrote an InlineHeader at `header_at` followed by `len`
        // zero-initialised AtomicUsize at `slots_at`, all inside this
        // object's block, which lives at least as long as `&self`.
        unsafe {
            let header = &*base.add(header_at).cast::<InlineHeader>();
            let slots =
                std::slice::from_raw_parts(base.add(slots_at).cast::<AtomicUsize>(), header.len);
            Some(Inline {
                owner: header.owner,
                slots,
            })
        }
    }

    /// Bytes the inline storage adds to the object (0 without it).
    pub fn inline_bytes(&self) -> usize {
        self.inline().map_or(0, |inline| {
            size_of::<InlineHeader>() + inline.slots.len() * size_of::<usize>()
        })
    }
}

/// The size of a code object without extra storage.
pub const CODE_BASE_SIZE: usize = size_of::<CodeObject>();

impl ObjHead {
    /// This object as a code object, or `None` for any other object.
    pub fn as_code(&self) -> Option<&CodeObject> {
        if self.kind == KIND_CODE {
            // SAFETY: KIND_CODE is written only by CodeObject::alloc,
            // into the head at offset 0 of a CodeObject (repr(C)).
            Some(unsafe { &*(self as *const ObjHead).cast::<CodeObject>() })
        } else {
            None
        }
    }
}

/// An owned (counted) reference to any object.
pub struct ObjRef(NonNull<ObjHead>);

// SAFETY: the reference count is atomic, the fixed fields of objects are
// immutable after construction, and inline slots are atomics, so objects
// can be shared and released from any thread.
unsafe impl Send for ObjRef {}
// SAFETY: as for Send: `&ObjRef` only gives shared access to the above.
unsafe impl Sync for ObjRef {}

impl ObjRef {
    /// A new object that is not a code object.
    pub fn new_other() -> ObjRef {
        let other = Box::new(OtherObject {
            head: ObjHead {
                kind: KIND_OTHER,
                refcnt: AtomicUsize::new(1),
            },
        });
        ObjRef(NonNull::from(Box::leak(other)).cast::<ObjHead>())
    }

    /// The object's header.
    pub fn head(&self) -> &ObjHead {
        // SAFETY: we own a reference, so the object is alive.
        unsafe { self.0.as_ref() }
    }

    /// The object as a code object, if it is one.
    pub fn as_code(&self) -> Option<&CodeObject> {
        self.head().as_code()
    }

    /// Give the reference to C.
    pub fn into_raw(self) -> *mut ObjHead {
        let raw = self.0.as_ptr();
        std::mem::forget(self);
        raw
    }

    /// Take back a reference given to C.
    ///
    /// # Safety
    ///
    /// `raw` must come from [`ObjRef::into_raw`] (or be an extra
    /// reference the caller owns) and not be used again by the caller.
    pub unsafe fn from_raw(raw: *mut ObjHead) -> Option<ObjRef> {
        NonNull::new(raw).map(ObjRef)
    }
}

impl Clone for ObjRef {
    fn clone(&self) -> Self {
        // Relaxed suffices for an increment: the new reference is derived
        // from one the caller already holds (as in Arc).
        self.head().refcnt.fetch_add(1, Ordering::Relaxed);
        ObjRef(self.0)
    }
}

impl Drop for ObjRef {
    fn drop(&mut self) {
        if self.head().refcnt.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Synchronise with every other thread's release of its
        // reference before tearing the object down (as in Arc).
        fence(Ordering::Acquire);
        // SAFETY: this was the last reference; nobody else can reach the
        // object any more except through InlineOwned sets, from which
        // `destroy` removes it before freeing the memory.
        unsafe { destroy(self.0) }
    }
}

/// What destroying a code object does before its memory goes: detach
/// and free the values every interpreter holds in it.  The interpreters
/// own those values, so `interp` provides it (`on_code_destroyed`) when
/// the first interpreter is created; before that no value exists and
/// there is nothing to do.  This keeps the object model free of any
/// dependency on the interpreters.
static CODE_DESTROYED: OnceLock<fn(&CodeObject)> = OnceLock::new();

/// Set what destroying a code object does first (once: later calls,
/// which must pass the same function, change nothing).
pub fn on_code_destroyed(teardown: fn(&CodeObject)) {
    CODE_DESTROYED.get_or_init(|| teardown);
}

/// Tear down an object whose last reference went.
///
/// # Safety
///
/// `object` is alive and unreachable through any reference.
unsafe fn destroy(object: NonNull<ObjHead>) {
    // SAFETY: the caller guarantees the object is alive.
    let head = unsafe { object.as_ref() };
    if let Some(code) = head.as_code() {
        // Detach and free the values of every interpreter (R-FREE-3);
        // this also removes the object from its owner's InlineOwned set.
        if let Some(teardown) = CODE_DESTROYED.get() {
            teardown(code);
        }
        // The layout is the one `alloc` used: it depends only on the flag
        // and the slot count, which never change.
        let len = code.inline().map(|inline| inline.slots.len());
        let layout = code_layout(len).map(|(l, _, _)| l);
        // SAFETY: the consts are moved out exactly once; the block is
        // freed below without running CodeObject's drop glue.
        let consts = unsafe { ptr::read(&code.consts) };
        // The constants go after the values, as with CPython's
        // code_dealloc; they may be destroyed in turn.
        drop(consts);
        if let Ok(layout) = layout {
            // SAFETY: allocated by `alloc` with this very layout, and no
            // reference to the object remains (see the caller).
            unsafe { alloc::dealloc(object.as_ptr().cast::<u8>(), layout) };
        }
    } else {
        debug_assert_eq!(head.kind, KIND_OTHER);
        // SAFETY: objects of any other kind are OtherObjects made by
        // `new_other` from a Box.
        drop(unsafe { Box::from_raw(object.as_ptr().cast::<OtherObject>()) });
    }
}

/// The live code objects with inline storage owned by one interpreter.
///
/// A release or a finalization has to find every inline value of its
/// interpreter, so the interpreter keeps the addresses of the code
/// objects it gave inline storage.  Invariant: an address is in the set
/// only while its object is alive.  It is inserted right after the object
/// is allocated and removed by the teardown `interp` registers with
/// [`on_code_destroyed`] (called from `destroy` before the memory is
/// freed); both happen, like every walk
/// below, with the interpreter's lock held, which is the only way to
/// reach the set (`&mut self`).
#[derive(Debug, Default)]
pub struct InlineOwned {
    live: HashSet<usize>,
}

impl InlineOwned {
    /// Record a new code object with inline storage owned here.
    pub fn insert(&mut self, code: &CodeObject) {
        self.live.insert(code.address());
    }

    /// Forget a code object being destroyed; false if it was not here
    /// (its owner was finalized meanwhile).
    pub fn remove(&mut self, code: &CodeObject) -> bool {
        self.live.remove(&code.address())
    }

    fn each(&self) -> impl Iterator<Item = &CodeObject> + '_ {
        self.live.iter().map(|address| {
            // SAFETY: by the invariant above, every address in the set
            // is a live CodeObject, kept alive until it is removed, which
            // needs `&mut self` (the interpreter's lock) we are borrowing.
            unsafe { &*(*address as *const CodeObject) }
        })
    }

    /// Empty slot `index` of every object (a release); return the
    /// non-NULL values.
    pub fn take_index(&mut self, index: usize) -> Vec<usize> {
        self.each()
            .filter_map(|code| {
                code.inline()?
                    .slots
                    .get(index)
                    .map(|s| s.swap(0, Ordering::AcqRel))
            })
            .filter(|value| *value != 0)
            .collect()
    }

    /// Empty every slot of every object and forget them all
    /// (finalization); return (address, slots) pairs.
    pub fn take_all(&mut self) -> Vec<(usize, Vec<usize>)> {
        let taken = self
            .each()
            .map(|code| (code.address(), take_slots(code)))
            .collect();
        self.live.clear();
        taken
    }

    /// How many objects are recorded.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no object is recorded.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

/// Empty every inline slot of `code`; return the values, position =
/// index.
pub fn take_slots(code: &CodeObject) -> Vec<usize> {
    code.inline().map_or_else(Vec::new, |inline| {
        inline
            .slots
            .iter()
            .map(|slot| slot.swap(0, Ordering::AcqRel))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_inline_storage_costs_nothing() {
        let code = CodeObject::alloc(CO_INLINE_EXTRA | 0x3, &mut Vec::new(), None).unwrap();
        let code = code.as_code().unwrap();
        assert_eq!(code.flags(), 0x3, "a forged flag is dropped");
        assert!(code.inline().is_none());
        assert_eq!(code.inline_bytes(), 0);
        let (layout, _, _) = code_layout(None).unwrap();
        assert_eq!(layout.size(), CODE_BASE_SIZE);
    }

    #[test]
    fn inline_storage_is_trailing_and_zeroed() {
        let made = CodeObject::alloc(0, &mut Vec::new(), Some((7, 5))).unwrap();
        let code = made.as_code().unwrap();
        assert_eq!(code.flags(), CO_INLINE_EXTRA);
        let inline = code.inline().unwrap();
        assert_eq!(inline.owner, 7);
        assert_eq!(inline.slots.len(), 5);
        assert!(inline.slots.iter().all(|s| s.load(Ordering::Relaxed) == 0));
        let (layout, _, _) = code_layout(Some(5)).unwrap();
        assert_eq!(layout.size(), CODE_BASE_SIZE + code.inline_bytes());
        assert_eq!(code.inline_bytes(), 16 + 5 * 8);
    }

    #[test]
    fn kinds_are_told_apart() {
        let other = ObjRef::new_other();
        assert!(other.as_code().is_none());
        let code = CodeObject::alloc(0, &mut Vec::new(), None).unwrap();
        assert!(code.as_code().is_some());
    }

    #[test]
    fn consts_are_taken_only_on_success() {
        let inner = CodeObject::alloc(0, &mut Vec::new(), None).unwrap();
        let mut consts = vec![inner.clone()];
        let outer = CodeObject::alloc(0, &mut consts, None).unwrap();
        assert!(consts.is_empty());
        let nested = &outer.as_code().unwrap().consts()[0];
        assert_eq!(nested.head().refcnt.load(Ordering::Relaxed), 2);
        drop(outer);
        assert_eq!(inner.head().refcnt.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn inline_owned_walks_and_forgets() {
        let made = CodeObject::alloc(0, &mut Vec::new(), Some((1, 3))).unwrap();
        let code = made.as_code().unwrap();
        let mut owned = InlineOwned::default();
        owned.insert(code);
        code.inline().unwrap().slots[1].store(0x11, Ordering::Relaxed);
        assert_eq!(owned.take_index(1), [0x11]);
        assert_eq!(owned.take_index(2), Vec::<usize>::new());
        code.inline().unwrap().slots[2].store(0x22, Ordering::Relaxed);
        assert_eq!(owned.take_all(), [(code.address(), vec![0, 0, 0x22])]);
        assert!(owned.is_empty());
        assert!(!owned.remove(code));
    }
}
