//! Interpreter states and the operations of the PEP.
//!
//! Each interpreter keeps its indices, hook chain, out-of-line tables and
//! the set of code objects it gave inline storage behind one `Mutex`
//! (the PEP's per-interpreter mutex; Get and Set take it too, which is
//! what linearises them with a release, R-INDEX-7, R-INDEX-10).  Inline
//! slots are atomics inside the code objects, swapped under that lock.
//!
//! The one rule that shapes every function here: free functions and
//! hooks are called with no lock held (they re-enter the API, R-FREE-10,
//! R-HOOK-9), so an operation first does all of its bookkeeping under the
//! lock, collects the values that left their slots, releases the lock
//! and only then calls out.  The same goes for dropping object references,
//! since the last one destroys the object, which takes locks.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::errors::{self, Error, Result};
use crate::failure;
use crate::ffi::{FreeFn, HookFn};
use crate::hooks::HookChain;
use crate::index::IndexTable;
use crate::object::{self, CodeObject, InlineOwned, ObjHead, ObjRef, CODE_BASE_SIZE};
use crate::storage::OutOfLine;

/// An interpreter: an ID that is never reused and its state.
pub struct Interp {
    id: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// False once finalization has started: no inline storage, no hooks.
    finalizing: bool,
    indices: IndexTable<FreeFn>,
    hooks: HookChain<HookFn>,
    out_of_line: OutOfLine,
    inline: InlineOwned,
}

/// How `copy_code` copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyKind {
    /// `code.replace()`: a new object sharing the constants.
    Replace,
    /// Unmarshalling: the constants are constructed again.
    Marshal,
}

/// Every live interpreter, so that destroying a code object can find the
/// out-of-line values of all of them (R-INTERP-3) and its owner's inline
/// values.
static REGISTRY: Mutex<Vec<Arc<Interp>>> = Mutex::new(Vec::new());

/// Interpreter IDs; 0 is never used.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Out-of-line tables in the process, over all interpreters.  While it is
/// 0, destroying a code object looks at its owner only (the PEP's
/// process-wide count that lets deallocation skip the lookup).
static OUT_OF_LINE_TABLES: AtomicUsize = AtomicUsize::new(0);

fn registry() -> MutexGuard<'static, Vec<Arc<Interp>>> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Keep OUT_OF_LINE_TABLES in step with one interpreter's table count.
fn count_tables(before: usize, after: usize) {
    if after > before {
        OUT_OF_LINE_TABLES.fetch_add(after - before, Ordering::SeqCst);
    } else if before > after {
        OUT_OF_LINE_TABLES.fetch_sub(before - after, Ordering::SeqCst);
    }
}

/// Call a free function for each non-NULL value, in order, with no lock
/// held and no error pending (R-FREE-4, R-INDEX-5).
fn run_frees(frees: impl IntoIterator<Item = (Option<FreeFn>, usize)>) {
    for (free, value) in frees {
        if let (Some(free), true) = (free, value != 0) {
            errors::isolated(|| {
                free.call(value);
                None
            });
        }
    }
}

impl Interp {
    /// A fresh interpreter, registered.
    pub fn new() -> Arc<Interp> {
        let interp = Arc::new(Interp {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            state: Mutex::new(State::default()),
        });
        registry().push(Arc::clone(&interp));
        interp
    }

    /// The interpreter's ID.
    pub fn id(&self) -> u64 {
        self.id
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic aborts the process (panic = "abort" at the C boundary),
        // so a poisoned lock cannot be observed with broken state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The inline slot serving (`self`, `code`, `index`), if inline
    /// storage covers it: owned by this interpreter and long enough.
    fn inline_slot<'a>(&self, code: &'a CodeObject, index: usize) -> Option<&'a AtomicUsize> {
        let inline = code.inline()?;
        if inline.owner != self.id {
            return None;
        }
        inline.slots.get(index)
    }

    // -- indices --------------------------------------------------------

    /// PyUnstable_Eval_RequestCodeExtraIndex.
    pub fn request_index(&self, free: Option<FreeFn>) -> Result<usize> {
        self.lock().indices.request(free)
    }

    /// PyUnstable_Eval_ReleaseCodeExtraIndex.
    ///
    /// The index is invalid from the moment the lock is taken, then every
    /// value under it is detached; the free calls happen after the lock
    /// is released, before returning (R-INDEX-7).  A free function that
    /// stores under the released index gets SystemError (R-INDEX-10).
    pub fn release_index(&self, index: isize) -> Result<()> {
        let (free, values) = {
            let mut state = self.lock();
            let free = state.indices.release(index)?;
            let index = index as usize;
            let mut values = state.inline.take_index(index);
            let before = state.out_of_line.table_count();
            values.extend(state.out_of_line.take_index(index).into_iter().map(|(_, v)| v));
            count_tables(before, state.out_of_line.table_count());
            (free, values)
        };
        run_frees(values.into_iter().map(|value| (free, value)));
        Ok(())
    }

    // -- storage --------------------------------------------------------

    /// PyUnstable_Code_GetExtra.
    pub fn get_extra(&self, object: &ObjHead, index: isize) -> Result<usize> {
        let code = object.as_code().ok_or(Error::System)?;
        let state = self.lock();
        state.indices.free_function(index)?;
        let index = index as usize;
        Ok(match self.inline_slot(code, index) {
            Some(slot) => slot.load(Ordering::Acquire),
            None => state.out_of_line.get(code.address(), index),
        })
    }

    /// PyUnstable_Code_SetExtra.
    ///
    /// Validate, make sure storage exists (the only step that can fail),
    /// store, unlock, then free the old value if it differs from the new
    /// one (R-FREE-1, R-FREE-2, R-FREE-5, R-FREE-9).
    pub fn set_extra(&self, object: &ObjHead, index: isize, value: usize) -> Result<()> {
        let code = object.as_code().ok_or(Error::System)?;
        let (free, old) = {
            let mut state = self.lock();
            let free = state.indices.free_function(index)?;
            let index = index as usize;
            let old = match self.inline_slot(code, index) {
                // R-FLAG-6: the inline path never allocates.
                Some(slot) => slot.swap(value, Ordering::AcqRel),
                None => {
                    let before = state.out_of_line.table_count();
                    let old = state.out_of_line.set(code.address(), index, value)?;
                    count_tables(before, state.out_of_line.table_count());
                    old
                }
            };
            (free, old)
        };
        if old != value {
            run_frees([(free, old)]);
        }
        Ok(())
    }

    // -- hooks ------------------------------------------------------------

    /// PyUnstable_Code_AddConstructorHook.
    pub fn add_hook(&self, hook: HookFn) -> Result<i32> {
        self.lock().hooks.add(hook)
    }

    /// PyUnstable_Code_RemoveConstructorHook.
    pub fn remove_hook(&self, hook_id: i32) -> Result<()> {
        self.lock().hooks.remove(hook_id)
    }

    /// Call the hooks registered now, in order, each once, with no lock
    /// held; a failure is reported as unraisable and the next hook runs
    /// (R-HOOK-8).
    fn run_hooks(&self, code: &CodeObject) {
        let chain = {
            let state = self.lock();
            if state.finalizing || state.hooks.is_empty() {
                return;
            }
            state.hooks.snapshot()
        };
        for hook in chain {
            errors::isolated(|| {
                if hook.call(code) < 0 {
                    // -1 without an exception is itself an error.
                    Some(errors::take().unwrap_or(Error::System))
                } else {
                    None
                }
            });
        }
    }

    // -- construction -------------------------------------------------------

    /// Construct one code object holding `consts`, then run the hooks.
    ///
    /// With a consumer active the object gets inline storage for every
    /// allocated index (R-FLAG-2, R-COPY-2); that is an allocation point,
    /// and its failure is a MemoryError before any hook (R-ALLOC-4).
    fn construct(&self, flags: u32, mut consts: Vec<ObjRef>) -> Result<ObjRef> {
        let made = {
            let mut state = self.lock();
            let len = if state.finalizing { 0 } else { state.indices.inline_len() };
            if len > 0 && !failure::allow() {
                Err(Error::Memory)
            } else {
                let inline = (len > 0).then_some((self.id, len));
                CodeObject::alloc(flags, &mut consts, inline).inspect(|made| {
                    if let (Some(code), true) = (made.as_code(), len > 0) {
                        state.inline.insert(code);
                    }
                })
            }
        };
        // On failure the constants are still in `consts`: they are
        // dropped here, after the lock was released.
        drop(consts);
        let made = made?;
        if let Some(code) = made.as_code() {
            // R-HOOK-5: the object is complete, storage and flag included.
            self.run_hooks(code);
        }
        Ok(made)
    }

    /// Construct a code object with `nested` code constants, inner ones
    /// first as a compiler does (R-HOOK-2).
    pub fn new_code(&self, nested: usize, flags: u32) -> Result<ObjRef> {
        let mut consts = Vec::with_capacity(nested);
        for _ in 0..nested {
            consts.push(self.construct(0, Vec::new())?);
        }
        self.construct(flags, consts)
    }

    /// Copy a code object (R-COPY-*, R-HOOK-3): a new construction that
    /// starts empty and gets inline storage by its own rule.
    pub fn copy_code(&self, code: &CodeObject, how: CopyKind) -> Result<ObjRef> {
        let consts = match how {
            CopyKind::Replace => code.consts().to_vec(),
            CopyKind::Marshal => {
                let mut copies = Vec::with_capacity(code.consts().len());
                for inner in code.consts() {
                    let inner = inner.as_code().ok_or(Error::System)?;
                    copies.push(self.copy_code(inner, CopyKind::Marshal)?);
                }
                copies
            }
        };
        self.construct(code.flags(), consts)
    }

    // -- finalization -------------------------------------------------------

    /// Finalize: empty the hook chain, free every value stored under this
    /// interpreter's indices (R-FREE-11, R-INTERP-5), forget the indices
    /// and unregister.  Free functions may store again meanwhile, so the
    /// values are collected until none is left; the indices are cleared
    /// in the same critical section as the last, empty collection.
    pub fn finalize(&self) {
        {
            let mut state = self.lock();
            state.finalizing = true;
            state.hooks.clear();
        }
        loop {
            let frees = {
                let mut state = self.lock();
                let frees = state.take_every_value();
                if frees.is_empty() {
                    state.indices.clear();
                    break;
                }
                frees
            };
            run_frees(frees);
        }
        registry().retain(|other| other.id != self.id);
    }
}

impl State {
    /// Empty every slot of this interpreter; return the frees to make,
    /// per code object in ascending index order (R-FREE-7).
    fn take_every_value(&mut self) -> Vec<(Option<FreeFn>, usize)> {
        let mut per_code: BTreeMap<usize, BTreeMap<usize, usize>> = BTreeMap::new();
        let before = self.out_of_line.table_count();
        let inline = self.inline.take_all();
        for (code, slots) in inline.into_iter().chain(self.out_of_line.take_all()) {
            per_code.entry(code).or_default().extend(non_null(slots));
        }
        count_tables(before, self.out_of_line.table_count());
        per_code
            .into_values()
            .flat_map(|slots| slots.into_iter())
            .map(|(index, value)| (self.indices.free_function(index as isize).ok().flatten(), value))
            .collect()
    }

    /// Detach the values of `code` in this interpreter (its
    /// destruction); `owner` says whether the inline slots are ours.
    fn take_code_values(&mut self, code: &CodeObject, owner: bool) -> Vec<(Option<FreeFn>, usize)> {
        // Inline storage covers the low indices and the out-of-line
        // table may hold higher ones (allocated after construction), with
        // NULL below them: merge the non-NULL values by index.
        let mut slots = BTreeMap::new();
        // Only while the object is still recorded are its inline slots
        // ours to empty: a finalized owner has emptied them already.
        if owner && self.inline.remove(code) {
            slots.extend(non_null(object::take_slots(code)));
        }
        let before = self.out_of_line.table_count();
        slots.extend(non_null(self.out_of_line.take_code(code.address())));
        count_tables(before, self.out_of_line.table_count());
        slots
            .into_iter()
            .map(|(index, value)| (self.indices.free_function(index as isize).ok().flatten(), value))
            .collect()
    }
}

/// The (index, value) pairs of a slot vector whose value is not NULL.
fn non_null(slots: Vec<usize>) -> impl Iterator<Item = (usize, usize)> {
    slots.into_iter().enumerate().filter(|(_, value)| *value != 0)
}

/// A code object is being destroyed (its last reference went): detach
/// its values in every interpreter that may hold some, then call their
/// free functions, each interpreter's in ascending index order (R-FREE-3,
/// R-FREE-7), each value with its own interpreter's function (R-INTERP-3).
/// A later object at the same address starts empty (R-FREE-8).
pub(crate) fn code_destroyed(code: &CodeObject) {
    let owner = code.inline().map(|inline| inline.owner);
    let everyone = OUT_OF_LINE_TABLES.load(Ordering::SeqCst) > 0;
    if owner.is_none() && !everyone {
        return; // The common case: nothing to look up.
    }
    let interps: Vec<Arc<Interp>> = registry()
        .iter()
        .filter(|interp| everyone || Some(interp.id) == owner)
        .cloned()
        .collect();
    let mut frees = Vec::new();
    for interp in &interps {
        frees.extend(interp.lock().take_code_values(code, Some(interp.id) == owner));
    }
    run_frees(frees);
}

/// Bytes `code` spends on extra storage: its inline block plus every
/// interpreter's out-of-line table for it.
pub fn extra_bytes(code: &CodeObject) -> usize {
    let interps: Vec<Arc<Interp>> = registry().clone();
    code.inline_bytes()
        + interps
            .iter()
            .map(|interp| interp.lock().out_of_line.bytes(code.address()))
            .sum::<usize>()
}

/// What sys.getsizeof() would report: the object and its extra storage
/// (R-FLAG-9).
pub fn sizeof_code(code: &CodeObject) -> usize {
    CODE_BASE_SIZE + extra_bytes(code)
}
