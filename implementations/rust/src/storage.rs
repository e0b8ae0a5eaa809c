//! Out-of-line storage of one interpreter (R-FLAG-4, R-INTERP-4).
//!
//! Every (interpreter, code object) pair that inline storage does not
//! cover -- a code object constructed before the consumer, by another
//! interpreter, or an index allocated after the code object -- is served
//! from a table keyed by the code object's address.  A table is a dense
//! vector of slots indexed by index number (indices are allocated lowest
//! first, so it stays short), created on the first non-NULL store and
//! removed when the code object is destroyed (R-FREE-8: a later object at
//! the same address starts empty) or when a release leaves it all NULL.

use std::collections::HashMap;
use std::mem::size_of;

use crate::errors::{Error, Result};
use crate::failure;

/// Bytes one table costs besides its slots: the map entry (key and
/// vector header).
pub const TABLE_HEADER_BYTES: usize = size_of::<(usize, Vec<usize>)>();

/// The out-of-line tables of one interpreter.
#[derive(Debug, Default)]
pub struct OutOfLine {
    tables: HashMap<usize, Vec<usize>>,
}

impl OutOfLine {
    /// Read a slot; a slot never written reads NULL (R-STORE-1).
    pub fn get(&self, code: usize, index: usize) -> usize {
        self.tables
            .get(&code)
            .and_then(|slots| slots.get(index))
            .copied()
            .unwrap_or(0)
    }

    /// Store `value` in a slot and return the value it replaces.
    ///
    /// Storing into a slot that does not exist yet is the PEP's "Set that
    /// needs new out-of-line storage": it consults the injected failures
    /// once and reserves memory before changing anything, so a failure is
    /// a `MemoryError` that leaves the slot as it was (R-ALLOC-1,
    /// R-ALLOC-2).  Clearing a slot that does not exist needs nothing.
    pub fn set(&mut self, code: usize, index: usize, value: usize) -> Result<usize> {
        if let Some(slot) = self.tables.get_mut(&code).and_then(|s| s.get_mut(index)) {
            return Ok(std::mem::replace(slot, value));
        }
        if value == 0 {
            return Ok(0);
        }
        if !failure::allow() {
            return Err(Error::Memory);
        }
        let fresh = !self.tables.contains_key(&code);
        if fresh {
            self.tables.try_reserve(1).map_err(|_| Error::Memory)?;
        }
        let mut grown = Vec::new();
        let slots = match self.tables.get_mut(&code) {
            Some(slots) => slots,
            None => &mut grown,
        };
        slots
            .try_reserve_exact(index + 1 - slots.len())
            .map_err(|_| Error::Memory)?;
        slots.resize(index + 1, 0);
        slots[index] = value;
        if fresh {
            // The map has room (reserved above): this insert cannot
            // allocate, so nothing after the checks can fail.
            self.tables.insert(code, grown);
        }
        Ok(0)
    }

    /// Empty slot `index` of every table (a release); return the
    /// (code, value) pairs that were not NULL.
    pub fn take_index(&mut self, index: usize) -> Vec<(usize, usize)> {
        let mut taken = Vec::new();
        self.tables.retain(|code, slots| {
            if let Some(slot) = slots.get_mut(index) {
                let value = std::mem::take(slot);
                if value != 0 {
                    taken.push((*code, value));
                }
            }
            slots.iter().any(|v| *v != 0)
        });
        taken
    }

    /// Remove the table of `code` (its destruction); return its slots,
    /// position = index.
    pub fn take_code(&mut self, code: usize) -> Vec<usize> {
        self.tables.remove(&code).unwrap_or_default()
    }

    /// Remove every table (finalization); return (code, slots) pairs.
    pub fn take_all(&mut self) -> Vec<(usize, Vec<usize>)> {
        self.tables.drain().collect()
    }

    /// How many code objects have a table here.
    pub fn table_count(&self) -> usize {
        self.tables.len()
    }

    /// Bytes spent on `code` here: 0 without a table.
    pub fn bytes(&self, code: usize) -> usize {
        self.tables.get(&code).map_or(0, |s| {
            TABLE_HEADER_BYTES + s.capacity() * size_of::<usize>()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::tests::serial;

    #[test]
    fn unset_slots_read_null_and_round_trip() {
        let _guard = serial();
        let mut ool = OutOfLine::default();
        assert_eq!(ool.get(0x1000, 3), 0);
        assert_eq!(ool.set(0x1000, 3, usize::MAX), Ok(0));
        assert_eq!(ool.get(0x1000, 3), usize::MAX);
        assert_eq!(ool.get(0x1000, 2), 0);
        assert_eq!(ool.get(0x2000, 3), 0);
        assert_eq!(ool.set(0x1000, 3, 5), Ok(usize::MAX));
    }

    #[test]
    fn clearing_an_absent_slot_allocates_nothing() {
        let _guard = serial();
        let mut ool = OutOfLine::default();
        failure::fail_allocations(0, 10);
        assert_eq!(ool.set(0x1000, 0, 0), Ok(0));
        failure::fail_allocations(0, 0);
        assert_eq!(ool.table_count(), 0);
        assert_eq!(ool.bytes(0x1000), 0);
    }

    #[test]
    fn injected_failure_changes_nothing() {
        let _guard = serial();
        let mut ool = OutOfLine::default();
        ool.set(0x1000, 0, 7).unwrap();
        failure::fail_allocations(0, 2);
        assert_eq!(ool.set(0x1000, 4, 9), Err(Error::Memory));
        assert_eq!(ool.set(0x2000, 0, 9), Err(Error::Memory));
        failure::fail_allocations(0, 0);
        assert_eq!(ool.get(0x1000, 0), 7);
        assert_eq!(ool.get(0x1000, 4), 0);
        assert_eq!(ool.table_count(), 1);
        // An existing slot is overwritten without allocating.
        failure::fail_allocations(0, 1);
        assert_eq!(ool.set(0x1000, 0, 8), Ok(7));
        failure::fail_allocations(0, 0);
    }

    #[test]
    fn release_empties_one_index_and_drops_empty_tables() {
        let _guard = serial();
        let mut ool = OutOfLine::default();
        ool.set(0x1000, 0, 1).unwrap();
        ool.set(0x1000, 1, 2).unwrap();
        ool.set(0x2000, 1, 3).unwrap();
        let mut taken = ool.take_index(1);
        taken.sort();
        assert_eq!(taken, [(0x1000, 2), (0x2000, 3)]);
        assert_eq!(ool.table_count(), 1);
        assert_eq!(ool.get(0x1000, 1), 0);
        assert_eq!(ool.take_code(0x1000), [1, 0]);
        assert_eq!(ool.get(0x1000, 0), 0, "a new object at the address");
    }

    #[test]
    fn bytes_count_header_and_slots() {
        let _guard = serial();
        let mut ool = OutOfLine::default();
        ool.set(0x1000, 2, 1).unwrap();
        assert!(ool.bytes(0x1000) >= TABLE_HEADER_BYTES + 3 * 8);
    }
}
