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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::callbacks::{FreeFn, HookFn};
use crate::errors::{self, Error, Result};
use crate::failure;
use crate::hooks::HookChain;
use crate::index::{self, IndexTable};
use crate::object::{self, CodeObject, InlineOwned, ObjHead, ObjRef, CODE_BASE_SIZE};
use crate::storage::OutOfLine;

/// An interpreter: an ID that is never reused and its state.
pub struct Interp {
    id: u64,
    /// Whether each index is allocated: a copy of the index table that
    /// the inline path of Get reads without the lock.  Written only with
    /// the lock held, in step with `State::indices`.
    allocated: Box<[AtomicBool]>,
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
            allocated: (0..index::CAPACITY)
                .map(|_| AtomicBool::new(false))
                .collect(),
            state: Mutex::new(State::default()),
        });
        // Values live only in interpreters: once one exists, destroying
        // a code object has to free what they hold in it.
        object::on_code_destroyed(code_destroyed);
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
        let mut state = self.lock();
        let index = state.indices.request(free)?;
        self.allocated[index].store(true, Ordering::Release);
        Ok(index)
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
            // Invalid for the lock-free Get from here on (R-INDEX-10).
            self.allocated[index].store(false, Ordering::Release);
            let mut values = state.inline.take_index(index);
            let before = state.out_of_line.table_count();
            values.extend(
                state
                    .out_of_line
                    .take_index(index)
                    .into_iter()
                    .map(|(_, v)| v),
            );
            count_tables(before, state.out_of_line.table_count());
            (free, values)
        };
        run_frees(values.into_iter().map(|value| (free, value)));
        Ok(())
    }

    // -- storage --------------------------------------------------------

    /// PyUnstable_Code_GetExtra.
    ///
    /// The inline path takes no lock, as the PEP asks: the flag and the
    /// owner never change, and the index is checked against `allocated`.
    /// A Get racing with a release of the same index reads the value or
    /// NULL, never a value that was freed before the Get started.
    pub fn get_extra(&self, object: &ObjHead, index: isize) -> Result<usize> {
        let code = object.as_code().ok_or(Error::System)?;
        let position = usize::try_from(index).map_err(|_| Error::System)?;
        if let Some(slot) = self.inline_slot(code, position) {
            return match self.allocated.get(position) {
                Some(allocated) if allocated.load(Ordering::Acquire) => {
                    Ok(slot.load(Ordering::Acquire))
                }
                _ => Err(Error::System),
            };
        }
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

    /// PyUnstable_Code_CompareExchangeExtra.
    ///
    /// Validated and serialised like Set; the inline slot changes with one
    /// atomic compare-exchange, so lock-free readers see the old or the
    /// new value (R-THREAD-6).  `Ok(None)`: `desired` was stored and the
    /// previous value (`expected`) freed unless NULL or stored again
    /// (R-STORE-12); `Ok(Some(current))`: the slot held another value and
    /// nothing changed (R-STORE-13).  Among racing calls from NULL exactly
    /// one stores (R-THREAD-5).
    pub fn compare_exchange_extra(
        &self,
        object: &ObjHead,
        index: isize,
        expected: usize,
        desired: usize,
    ) -> Result<Option<usize>> {
        let code = object.as_code().ok_or(Error::System)?;
        let free = {
            let mut state = self.lock();
            let free = state.indices.free_function(index)?;
            let index = index as usize;
            match self.inline_slot(code, index) {
                Some(slot) => {
                    if let Err(current) = slot.compare_exchange(
                        expected,
                        desired,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        return Ok(Some(current));
                    }
                }
                None => {
                    let current = state.out_of_line.get(code.address(), index);
                    if current != expected {
                        return Ok(Some(current));
                    }
                    let before = state.out_of_line.table_count();
                    state.out_of_line.set(code.address(), index, desired)?;
                    count_tables(before, state.out_of_line.table_count());
                }
            }
            free
        };
        if expected != desired {
            run_frees([(free, expected)]);
        }
        Ok(None)
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
            let len = if state.finalizing {
                0
            } else {
                state.indices.inline_len()
            };
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
                    for allocated in self.allocated.iter() {
                        allocated.store(false, Ordering::Release);
                    }
                    break;
                }
                frees
            };
            run_frees(frees);
        }
        let mut interps = registry();
        interps.retain(|other| other.id != self.id);
        if interps.is_empty() {
            // No buffer is kept while no interpreter lives (see `blocks`).
            interps.shrink_to_fit();
        }
        drop(interps);
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
            .map(|(index, value)| {
                (
                    self.indices.free_function(index as isize).ok().flatten(),
                    value,
                )
            })
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
            .map(|(index, value)| {
                (
                    self.indices.free_function(index as isize).ok().flatten(),
                    value,
                )
            })
            .collect()
    }
}

/// The (index, value) pairs of a slot vector whose value is not NULL.
fn non_null(slots: Vec<usize>) -> impl Iterator<Item = (usize, usize)> {
    slots
        .into_iter()
        .enumerate()
        .filter(|(_, value)| *value != 0)
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
        frees.extend(
            interp
                .lock()
                .take_code_values(code, Some(interp.id) == owner),
        );
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

#[cfg(test)]
mod tests {
    //! The operations end to end, single-threaded unless said otherwise.
    //! Free functions and hooks are Rust `extern "C"` functions that
    //! record into thread-locals: they run in the calling thread.

    use super::*;
    use crate::failure::tests::serial;
    use crate::object::CO_INLINE_EXTRA;
    use std::cell::RefCell;
    use std::ffi::{c_int, c_void};

    thread_local! {
        static FREED: RefCell<Vec<(u8, usize)>> = const { RefCell::new(Vec::new()) };
        static HOOKED: RefCell<Vec<(usize, usize)>> = const { RefCell::new(Vec::new()) };
        /// What `free_probe` reads and what `hook_*` act on.
        static TARGET: RefCell<Option<(Arc<Interp>, ObjRef, isize)>> = const { RefCell::new(None) };
        static CHAIN: RefCell<Vec<i32>> = const { RefCell::new(Vec::new()) };
        static INSIDE: RefCell<bool> = const { RefCell::new(false) };
    }

    fn record(tag: u8, value: *mut c_void) {
        FREED.with(|f| f.borrow_mut().push((tag, value as usize)));
    }
    extern "C" fn free_1(value: *mut c_void) {
        record(1, value);
    }
    extern "C" fn free_2(value: *mut c_void) {
        record(2, value);
    }
    extern "C" fn free_3(value: *mut c_void) {
        record(3, value);
    }
    /// Records, then reads TARGET's slot and records what it read.
    extern "C" fn free_probe(value: *mut c_void) {
        record(9, value);
        TARGET.with(|t| {
            let t = t.borrow();
            let (interp, code, index) = t.as_ref().unwrap();
            let read = interp.get_extra(code.head(), *index).unwrap();
            record(10, read as *mut c_void);
        });
    }
    /// Re-enters the API: constructs a code object and stores on TARGET.
    extern "C" fn free_reentrant(value: *mut c_void) {
        record(4, value);
        TARGET.with(|t| {
            let t = t.borrow();
            let (interp, code, index) = t.as_ref().unwrap();
            drop(interp.new_code(1, 0).unwrap());
            interp.set_extra(code.head(), *index, 0x4444).unwrap();
        });
    }

    fn freed() -> Vec<(u8, usize)> {
        FREED.with(|f| std::mem::take(&mut *f.borrow_mut()))
    }

    fn hooked() -> Vec<(usize, usize)> {
        HOOKED.with(|h| std::mem::take(&mut *h.borrow_mut()))
    }

    fn f(free: extern "C" fn(*mut c_void)) -> Option<FreeFn> {
        Some(FreeFn::from_rust(free))
    }

    fn addr(code: &ObjRef) -> usize {
        code.as_code().unwrap().address()
    }

    extern "C" fn hook_record(code: *mut ObjHead, arg: *mut c_void) -> c_int {
        HOOKED.with(|h| h.borrow_mut().push((arg as usize, code as usize)));
        0
    }
    extern "C" fn hook_fail(code: *mut ObjHead, arg: *mut c_void) -> c_int {
        hook_record(code, arg);
        errors::set(Error::Runtime);
        -1
    }
    /// Removes the hooks whose IDs are in CHAIN from TARGET's interp.
    extern "C" fn hook_remove(code: *mut ObjHead, arg: *mut c_void) -> c_int {
        hook_record(code, arg);
        TARGET.with(|t| {
            let t = t.borrow();
            let interp = &t.as_ref().unwrap().0;
            for id in CHAIN.with(|c| std::mem::take(&mut *c.borrow_mut())) {
                interp.remove_hook(id).unwrap();
            }
        });
        0
    }
    /// Constructs one code object unless already inside itself.
    extern "C" fn hook_construct(code: *mut ObjHead, arg: *mut c_void) -> c_int {
        hook_record(code, arg);
        if INSIDE.with(|i| i.replace(true)) {
            return 0;
        }
        TARGET.with(|t| {
            let interp = Arc::clone(&t.borrow().as_ref().unwrap().0);
            drop(interp.new_code(0, 0).unwrap());
        });
        INSIDE.with(|i| *i.borrow_mut() = false);
        0
    }

    fn hook(func: extern "C" fn(*mut ObjHead, *mut c_void) -> c_int, arg: usize) -> HookFn {
        HookFn::from_rust(func, arg)
    }

    #[test]
    fn set_frees_the_old_value_once_and_never_null() {
        let _guard = serial();
        let interp = Interp::new();
        let early = interp.new_code(0, 0).unwrap();
        let index = interp.request_index(f(free_1)).unwrap() as isize;
        let inline = interp.new_code(0, 0).unwrap();
        for code in [&early, &inline] {
            let head = code.head();
            interp.set_extra(head, index, 0x11).unwrap();
            interp.set_extra(head, index, 0x11).unwrap();
            assert_eq!(freed(), [], "a re-store frees nothing (R-FREE-5)");
            interp.set_extra(head, index, 0x12).unwrap();
            assert_eq!(freed(), [(1, 0x11)]);
            interp.set_extra(head, index, 0).unwrap();
            interp.set_extra(head, index, 0).unwrap();
            assert_eq!(freed(), [(1, 0x12)], "NULL is never freed");
            assert_eq!(interp.get_extra(head, index), Ok(0));
        }
        drop((early, inline));
        assert_eq!(freed(), []);
        interp.finalize();
    }

    #[test]
    fn destruction_frees_in_ascending_index_order() {
        let _guard = serial();
        let interp = Interp::new();
        let early = interp.new_code(0, 0).unwrap();
        let low: Vec<isize> = [free_1, free_2]
            .iter()
            .map(|free| interp.request_index(f(*free)).unwrap() as isize)
            .collect();
        let inline = interp.new_code(0, 0).unwrap();
        let high = interp.request_index(f(free_3)).unwrap() as isize;
        for code in [early, inline] {
            for (index, value) in [(high, 0x33), (low[1], 0x22), (low[0], 0x11)] {
                interp.set_extra(code.head(), index, value).unwrap();
            }
            drop(code);
            assert_eq!(freed(), [(1, 0x11), (2, 0x22), (3, 0x33)]);
        }
        interp.finalize();
    }

    #[test]
    fn new_value_is_in_the_slot_during_the_free() {
        let _guard = serial();
        let interp = Interp::new();
        let index = interp.request_index(f(free_probe)).unwrap() as isize;
        for inline in [false, true] {
            let code = if inline {
                interp.new_code(0, 0).unwrap()
            } else {
                let other = Interp::new();
                let code = other.new_code(0, 0).unwrap();
                other.finalize();
                code
            };
            TARGET.with(|t| *t.borrow_mut() = Some((Arc::clone(&interp), code.clone(), index)));
            interp.set_extra(code.head(), index, 0x91).unwrap();
            interp.set_extra(code.head(), index, 0x92).unwrap();
            assert_eq!(freed(), [(9, 0x91), (10, 0x92)], "R-FREE-9");
            interp.set_extra(code.head(), index, 0).unwrap();
            assert_eq!(freed(), [(9, 0x92), (10, 0)]);
            TARGET.with(|t| t.borrow_mut().take());
        }
        interp.finalize();
    }

    #[test]
    fn free_functions_may_reenter_the_api() {
        let _guard = serial();
        let interp = Interp::new();
        let plain = interp.request_index(None).unwrap() as isize;
        let reentrant = interp.request_index(f(free_reentrant)).unwrap() as isize;
        let target = interp.new_code(0, 0).unwrap();
        TARGET.with(|t| *t.borrow_mut() = Some((Arc::clone(&interp), target.clone(), plain)));
        let code = interp.new_code(0, 0).unwrap();
        interp.set_extra(code.head(), reentrant, 0x41).unwrap();
        drop(code);
        assert_eq!(freed(), [(4, 0x41)]);
        assert_eq!(interp.get_extra(target.head(), plain), Ok(0x4444));
        TARGET.with(|t| t.borrow_mut().take());
        drop(target);
        interp.finalize();
    }

    #[test]
    fn release_frees_every_value_and_invalidates_the_index() {
        let _guard = serial();
        let interp = Interp::new();
        let early = interp.new_code(0, 0).unwrap();
        let index = interp.request_index(f(free_1)).unwrap() as isize;
        let inline = interp.new_code(2, 0).unwrap();
        let nested = inline.as_code().unwrap().consts()[0].clone();
        for (n, code) in [&early, &inline, &nested].into_iter().enumerate() {
            interp.set_extra(code.head(), index, 0x70 + n).unwrap();
        }
        interp.release_index(index).unwrap();
        let mut got = freed();
        got.sort();
        assert_eq!(got, [(1, 0x70), (1, 0x71), (1, 0x72)]);
        assert_eq!(interp.get_extra(early.head(), index), Err(Error::System));
        assert_eq!(
            interp.set_extra(inline.head(), index, 1),
            Err(Error::System)
        );
        assert_eq!(interp.release_index(index), Err(Error::System));
        assert_eq!(interp.request_index(f(free_2)), Ok(index as usize));
        for code in [&early, &inline, &nested] {
            assert_eq!(interp.get_extra(code.head(), index), Ok(0), "R-INDEX-8");
        }
        drop((early, inline, nested));
        assert_eq!(freed(), []);
        interp.finalize();
    }

    #[test]
    fn inline_storage_only_with_a_consumer() {
        let _guard = serial();
        let interp = Interp::new();
        let bare = interp.new_code(0, CO_INLINE_EXTRA).unwrap();
        assert_eq!(bare.as_code().unwrap().flags(), 0, "R-FLAG-7");
        assert_eq!(extra_bytes(bare.as_code().unwrap()), 0, "R-FLAG-1");
        let indices: Vec<usize> = (0..3)
            .map(|_| interp.request_index(None).unwrap())
            .collect();
        let rich = interp.new_code(0, 0).unwrap();
        let code = rich.as_code().unwrap();
        assert_eq!(code.flags(), CO_INLINE_EXTRA, "R-FLAG-2");
        assert_eq!(code.inline().unwrap().slots.len(), 3);
        let size = extra_bytes(code);
        for index in &indices {
            interp.set_extra(rich.head(), *index as isize, 5).unwrap();
        }
        assert_eq!(extra_bytes(code), size, "R-FLAG-6");
        interp.set_extra(bare.head(), 1, 5).unwrap();
        assert!(extra_bytes(bare.as_code().unwrap()) > 0, "out of line");
        assert_eq!(bare.as_code().unwrap().flags(), 0, "R-FLAG-5");
        for index in indices {
            interp.release_index(index as isize).unwrap();
        }
        let again = interp.new_code(1, 0).unwrap();
        assert_eq!(extra_bytes(again.as_code().unwrap()), 0, "R-FLAG-8");
        drop((bare, rich, again));
        interp.finalize();
    }

    #[test]
    fn injected_failures_leave_no_trace() {
        let _guard = serial();
        let interp = Interp::new();
        let early = interp.new_code(0, 0).unwrap();
        let kept = interp.request_index(f(free_1)).unwrap() as isize;
        interp.set_extra(early.head(), kept, 0x10).unwrap();
        interp.add_hook(hook(hook_record, 1)).unwrap();
        hooked();
        failure::fail_allocations(0, 1 << 20);
        let fresh = interp.request_index(f(free_2));
        let set = interp.set_extra(early.head(), kept + 1, 0x20);
        let made = interp.new_code(1, 0).err();
        let added = interp.add_hook(hook(hook_record, 2));
        // Inline and existing out-of-line slots need no memory.
        let inline_ok = interp.set_extra(early.head(), kept, 0x11);
        failure::fail_allocations(0, 0);
        assert_eq!(fresh, Err(Error::Memory), "R-ALLOC-3");
        assert_eq!(set, Err(Error::System), "index kept + 1 is not allocated");
        assert_eq!(made, Some(Error::Memory), "R-ALLOC-4");
        assert_eq!(added, Err(Error::Memory), "R-ALLOC-5");
        assert_eq!(inline_ok, Ok(()));
        assert_eq!(hooked(), [], "no hook for a failed construction");
        assert_eq!(freed(), [(1, 0x10)]);
        // Nothing was consumed: the next index is the next one.
        let fresh = interp.request_index(f(free_2)).unwrap() as isize;
        assert_eq!(fresh, kept + 1);
        failure::fail_allocations(0, 1);
        assert_eq!(
            interp.set_extra(early.head(), fresh, 0x20),
            Err(Error::Memory),
            "R-ALLOC-1"
        );
        assert_eq!(interp.get_extra(early.head(), fresh), Ok(0), "R-ALLOC-2");
        assert_eq!(freed(), []);
        let code = interp.new_code(0, 0).unwrap();
        assert_eq!(hooked(), [(1, addr(&code))], "only the first hook");
        drop((early, code));
        assert_eq!(freed(), [(1, 0x11)]);
        interp.finalize();
    }

    #[test]
    fn hooks_run_in_order_on_a_snapshot() {
        let _guard = serial();
        let interp = Interp::new();
        TARGET.with(|t| {
            let code = interp.new_code(0, 0).unwrap();
            *t.borrow_mut() = Some((Arc::clone(&interp), code, 0));
        });
        interp.add_hook(hook(hook_record, 1)).unwrap();
        interp.add_hook(hook(hook_remove, 2)).unwrap();
        let doomed = interp.add_hook(hook(hook_record, 3)).unwrap();
        interp.add_hook(hook(hook_fail, 4)).unwrap();
        interp.add_hook(hook(hook_record, 5)).unwrap();
        CHAIN.with(|c| c.borrow_mut().push(doomed));
        let first = interp.new_code(1, 0).unwrap();
        let inner = addr(&first.as_code().unwrap().consts()[0]);
        let outer = addr(&first);
        // The inner object's construction removed hook 3, but it had
        // started with it, so hook 3 still ran for it (R-HOOK-11) and
        // never again (R-HOOK-6); hook 4's failure stopped nothing.
        let expected: Vec<(usize, usize)> = [1, 2, 3, 4, 5]
            .iter()
            .map(|tag| (*tag, inner))
            .chain([1, 2, 4, 5].iter().map(|tag| (*tag, outer)))
            .collect();
        assert_eq!(hooked(), expected);
        let reported: Vec<Option<Error>> = (0..3).map(|_| errors::take_unraisable()).collect();
        assert_eq!(
            reported,
            [Some(Error::Runtime), Some(Error::Runtime), None],
            "R-HOOK-8"
        );
        assert_eq!(errors::take(), None, "nothing left pending");
        TARGET.with(|t| t.borrow_mut().take());
        drop(first);
        interp.finalize();
    }

    #[test]
    fn a_hook_may_construct_code() {
        let _guard = serial();
        let interp = Interp::new();
        TARGET.with(|t| {
            let code = interp.new_code(0, 0).unwrap();
            *t.borrow_mut() = Some((Arc::clone(&interp), code, 0));
        });
        interp.add_hook(hook(hook_record, 1)).unwrap();
        interp.add_hook(hook(hook_construct, 2)).unwrap();
        interp.add_hook(hook(hook_record, 3)).unwrap();
        let code = interp.new_code(0, 0).unwrap();
        let calls = hooked();
        let outer = addr(&code);
        let inner = calls[2].1;
        assert_ne!(inner, outer);
        assert_eq!(
            calls,
            [
                (1, outer),
                (2, outer),
                (1, inner),
                (2, inner),
                (3, inner),
                (3, outer)
            ]
        );
        TARGET.with(|t| t.borrow_mut().take());
        drop(code);
        interp.finalize();
    }

    #[test]
    fn finalization_frees_own_values_only_and_once() {
        let _guard = serial();
        let main = Interp::new();
        let other = Interp::new();
        let mine = main.request_index(f(free_1)).unwrap() as isize;
        let theirs = other.request_index(f(free_2)).unwrap() as isize;
        assert_eq!(mine, theirs, "indices are per interpreter (R-INTERP-1)");
        other.add_hook(hook(hook_record, 7)).unwrap();
        let shared = main.new_code(0, 0).unwrap();
        let owned = other.new_code(1, 0).unwrap();
        hooked();
        for code in [&shared, &owned] {
            main.set_extra(code.head(), mine, 0x100 + addr(code) % 16)
                .unwrap();
            other
                .set_extra(code.head(), theirs, 0x200 + addr(code) % 16)
                .unwrap();
        }
        other.finalize();
        let mut got = freed();
        got.sort();
        let mut expected = vec![
            (2, 0x200 + addr(&shared) % 16),
            (2, 0x200 + addr(&owned) % 16),
        ];
        expected.sort();
        assert_eq!(got, expected, "R-FREE-11, R-INTERP-5");
        assert_eq!(
            main.get_extra(owned.head(), mine),
            Ok(0x100 + addr(&owned) % 16)
        );
        drop(other);
        drop((shared, owned));
        let mut got = freed();
        got.sort();
        assert_eq!(got.len(), 2);
        assert!(
            got.iter().all(|(tag, _)| *tag == 1),
            "only main's values remain: {got:?}"
        );
        main.finalize();
    }

    #[test]
    fn concurrent_sets_on_one_slot_free_each_value_once() {
        use std::collections::HashSet;
        use std::sync::Mutex as StdMutex;
        static SEEN: StdMutex<Vec<usize>> = StdMutex::new(Vec::new());
        extern "C" fn free_shared(value: *mut c_void) {
            SEEN.lock().unwrap().push(value as usize);
        }
        let _guard = serial();
        let interp = Interp::new();
        let early = interp.new_code(0, 0).unwrap();
        let index = interp.request_index(f(free_shared)).unwrap() as isize;
        let inline = interp.new_code(0, 0).unwrap();
        for code in [&early, &inline] {
            std::thread::scope(|scope| {
                for thread in 0..4usize {
                    let (interp, code) = (&interp, code);
                    scope.spawn(move || {
                        for round in 0..500usize {
                            let value = (thread + 1) << 20 | round << 1 | 1;
                            interp.set_extra(code.head(), index, value).unwrap();
                        }
                    });
                }
            });
            let last = interp.get_extra(code.head(), index).unwrap();
            let seen: Vec<usize> = std::mem::take(&mut *SEEN.lock().unwrap());
            let unique: HashSet<usize> = seen.iter().copied().collect();
            assert_eq!(unique.len(), seen.len(), "no value freed twice");
            assert_eq!(seen.len(), 4 * 500 - 1, "every overwritten value freed");
            assert!(!unique.contains(&last), "the final value is kept");
        }
        drop((early, inline));
        interp.finalize();
    }
}
