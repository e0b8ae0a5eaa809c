//! The constructor hook chain of one interpreter (R-HOOK-*).
//!
//! An ordered list of (ID, hook) pairs.  Hooks run in the order they were
//! added (R-HOOK-4); IDs only identify registrations and are never reused
//! (a stale ID cannot remove another hook, R-HOOK-7).  A construction
//! runs over a [`HookChain::snapshot`] taken when its hook calls start,
//! so a hook added or removed meanwhile takes effect from the next
//! construction (R-HOOK-6, R-HOOK-11), and the chain can be changed by
//! the hooks themselves while no lock is held.

use crate::errors::{Error, Result};
use crate::failure;

/// Hooks one interpreter accepts; the PEP's minimum is 8 (R-HOOK-10).
pub const CAPACITY: usize = 64;

/// The hooks of one interpreter, in registration order.
#[derive(Debug)]
pub struct HookChain<H> {
    hooks: Vec<(i32, H)>,
    next_id: i32,
}

impl<H: Copy> Default for HookChain<H> {
    fn default() -> Self {
        HookChain {
            hooks: Vec::new(),
            next_id: 0,
        }
    }
}

impl<H: Copy> HookChain<H> {
    /// Append `hook`; return its new ID.
    ///
    /// A full chain is a `RuntimeError` (R-HOOK-10), a failed allocation
    /// a `MemoryError` (R-ALLOC-5); neither registers anything.
    pub fn add(&mut self, hook: H) -> Result<i32> {
        if self.hooks.len() >= CAPACITY || self.next_id == i32::MAX {
            return Err(Error::Runtime);
        }
        if !failure::allow() {
            return Err(Error::Memory);
        }
        self.hooks.try_reserve(1).map_err(|_| Error::Memory)?;
        let id = self.next_id;
        self.next_id += 1;
        self.hooks.push((id, hook));
        Ok(id)
    }

    /// Remove the hook registered under `id`; `ValueError` if there is
    /// none (R-HOOK-7).  Never allocates.
    pub fn remove(&mut self, id: i32) -> Result<()> {
        match self.hooks.iter().position(|(each, _)| *each == id) {
            Some(position) => {
                // Vec::remove shifts the tail down: the order of the
                // remaining hooks is kept (R-HOOK-6).
                self.hooks.remove(position);
                Ok(())
            }
            None => Err(Error::Value),
        }
    }

    /// The hooks to call for a construction whose hooks start now.
    pub fn snapshot(&self) -> Vec<H> {
        self.hooks.iter().map(|(_, hook)| *hook).collect()
    }

    /// Whether no hook is registered.
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// Remove every hook (interpreter finalization).
    pub fn clear(&mut self) {
        self.hooks.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::tests::serial;

    #[test]
    fn registration_order_survives_removal() {
        let _guard = serial();
        let mut chain = HookChain::default();
        let ids: Vec<i32> = ['a', 'b', 'c', 'd']
            .iter()
            .map(|h| chain.add(*h).unwrap())
            .collect();
        chain.remove(ids[1]).unwrap();
        chain.add('e').unwrap();
        assert_eq!(chain.snapshot(), ['a', 'c', 'd', 'e']);
    }

    #[test]
    fn ids_are_never_reused() {
        let _guard = serial();
        let mut chain = HookChain::default();
        let first = chain.add(1).unwrap();
        chain.remove(first).unwrap();
        let second = chain.add(2).unwrap();
        assert_ne!(first, second);
        assert_eq!(chain.remove(first), Err(Error::Value));
        assert_eq!(chain.remove(-1), Err(Error::Value));
        assert_eq!(chain.snapshot(), [2]);
    }

    #[test]
    fn capacity_then_runtime_error() {
        let _guard = serial();
        let mut chain = HookChain::default();
        for n in 0..CAPACITY {
            chain.add(n).unwrap();
        }
        assert_eq!(chain.add(0), Err(Error::Runtime));
        assert_eq!(chain.snapshot().len(), CAPACITY);
    }

    #[test]
    fn snapshot_is_unaffected_by_later_changes() {
        let _guard = serial();
        let mut chain = HookChain::default();
        let id = chain.add(1).unwrap();
        chain.add(2).unwrap();
        let running = chain.snapshot();
        chain.remove(id).unwrap();
        chain.add(3).unwrap();
        assert_eq!(running, [1, 2]);
        assert_eq!(chain.snapshot(), [2, 3]);
    }

    #[test]
    fn injected_failure_registers_nothing() {
        let _guard = serial();
        let mut chain = HookChain::default();
        failure::fail_allocations(0, 1);
        assert_eq!(chain.add(1), Err(Error::Memory));
        failure::fail_allocations(0, 0);
        assert!(chain.is_empty());
        assert_eq!(chain.add(2), Ok(0), "a failed add consumes no ID");
    }
}
