//! Index allocation for one interpreter (R-INDEX-*).
//!
//! Indices are handed out lowest-free-first (R-INDEX-6), so the table is
//! dense and the inline storage of a code object, one slot per index up
//! to the highest allocated one, is as short as the consumers allow.  A
//! released index becomes free again and is reused by a later request
//! (R-INDEX-8).  Trailing free entries are trimmed, so that `inline_len`
//! shrinks back when the highest indices are released and reaches zero
//! when every index is (R-FLAG-8).

use crate::errors::{Error, Result};
use crate::failure;

/// Indices one interpreter offers: exactly the PEP's minimum,
/// `PyUnstable_CODE_EXTRA_MIN_INDICES` (R-INDEX-2).
pub const CAPACITY: usize = 255;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry<F> {
    Free,
    /// An allocated index and its free function (`None` for NULL).
    Allocated(Option<F>),
}

/// The indices of one interpreter and their free functions.
#[derive(Debug)]
pub struct IndexTable<F> {
    /// Entry `i` describes index `i`; never ends with a free entry.
    entries: Vec<Entry<F>>,
}

impl<F: Copy> Default for IndexTable<F> {
    fn default() -> Self {
        IndexTable {
            entries: Vec::new(),
        }
    }
}

impl<F: Copy> IndexTable<F> {
    /// Allocate the lowest free index for `free` (which may be `None`).
    ///
    /// Exhaustion is a `RuntimeError` (R-INDEX-3), a failed bookkeeping
    /// allocation a `MemoryError` (R-ALLOC-3); either way nothing changes
    /// (R-INDEX-4).
    pub fn request(&mut self, free: Option<F>) -> Result<usize> {
        let hole = self.entries.iter().position(|e| matches!(e, Entry::Free));
        if hole.is_none() && self.entries.len() >= CAPACITY {
            return Err(Error::Runtime);
        }
        // A request is one of the PEP's allocation points: it may need
        // to grow the table, so it consults the injected failures every
        // time, whether or not this particular request grows it.
        if !failure::allow() {
            return Err(Error::Memory);
        }
        let index = match hole {
            Some(index) => index,
            None => {
                self.entries.try_reserve(1).map_err(|_| Error::Memory)?;
                self.entries.push(Entry::Free);
                self.entries.len() - 1
            }
        };
        self.entries[index] = Entry::Allocated(free);
        Ok(index)
    }

    /// Release an allocated index; return its free function.
    ///
    /// An index that is not allocated is a `SystemError` and changes
    /// nothing (R-INDEX-9).  Never allocates.
    pub fn release(&mut self, index: isize) -> Result<Option<F>> {
        let free = self.free_function(index)?;
        self.entries[index as usize] = Entry::Free;
        while matches!(self.entries.last(), Some(Entry::Free)) {
            self.entries.pop();
        }
        Ok(free)
    }

    /// Validate `index` for Get and Set: the free function of an
    /// allocated index, or `SystemError` (R-STORE-6, R-STORE-7,
    /// R-INDEX-10).
    pub fn free_function(&self, index: isize) -> Result<Option<F>> {
        let position = usize::try_from(index).map_err(|_| Error::System)?;
        match self.entries.get(position) {
            Some(Entry::Allocated(free)) => Ok(*free),
            _ => Err(Error::System),
        }
    }

    /// Whether `index` is allocated.
    pub fn is_allocated(&self, index: usize) -> bool {
        matches!(self.entries.get(index), Some(Entry::Allocated(_)))
    }

    /// Inline slots a code object constructed now gets: the highest
    /// allocated index plus one, 0 when no consumer is active.
    pub fn inline_len(&self) -> usize {
        self.entries.len()
    }

    /// Whether a consumer is active (at least one index is allocated).
    pub fn any_allocated(&self) -> bool {
        !self.entries.is_empty()
    }

    /// Forget every index (interpreter finalization).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::tests::serial;

    type Table = IndexTable<u8>;

    #[test]
    fn lowest_free_first_and_dense() {
        let _guard = serial();
        let mut table = Table::default();
        let got: Vec<usize> = (0..5).map(|_| table.request(None).unwrap()).collect();
        assert_eq!(got, [0, 1, 2, 3, 4]);
        table.release(1).unwrap();
        table.release(3).unwrap();
        assert_eq!(table.request(Some(7)).unwrap(), 1);
        assert_eq!(table.request(None).unwrap(), 3);
        assert_eq!(table.request(None).unwrap(), 5);
        assert_eq!(table.free_function(1), Ok(Some(7)));
    }

    #[test]
    fn capacity_is_255_then_runtime_error() {
        let _guard = serial();
        let mut table = Table::default();
        for expected in 0..CAPACITY {
            assert_eq!(table.request(None), Ok(expected));
        }
        assert_eq!(table.request(None), Err(Error::Runtime));
        assert_eq!(table.inline_len(), CAPACITY);
        table.release(200).unwrap();
        assert_eq!(table.request(None), Ok(200));
    }

    #[test]
    fn bad_release_and_validation_are_system_errors() {
        let _guard = serial();
        let mut table = Table::default();
        assert_eq!(table.release(0), Err(Error::System));
        table.request(Some(1)).unwrap();
        for bad in [-1, 1, 1000, isize::MIN] {
            assert_eq!(table.release(bad), Err(Error::System));
            assert_eq!(table.free_function(bad), Err(Error::System));
        }
        table.release(0).unwrap();
        assert_eq!(table.release(0), Err(Error::System));
        assert_eq!(table.free_function(0), Err(Error::System));
    }

    #[test]
    fn inline_len_shrinks_to_zero_after_last_release() {
        let _guard = serial();
        let mut table = Table::default();
        for _ in 0..4 {
            table.request(None).unwrap();
        }
        table.release(3).unwrap();
        assert_eq!(table.inline_len(), 3);
        table.release(1).unwrap();
        assert_eq!(table.inline_len(), 3, "index 2 still allocated");
        table.release(2).unwrap();
        assert_eq!(table.inline_len(), 1);
        table.release(0).unwrap();
        assert_eq!(table.inline_len(), 0);
        assert!(!table.any_allocated());
    }

    #[test]
    fn injected_failure_consumes_nothing() {
        let _guard = serial();
        let mut table = Table::default();
        table.request(None).unwrap();
        failure::fail_allocations(0, 2);
        assert_eq!(table.request(None), Err(Error::Memory));
        assert_eq!(table.request(None), Err(Error::Memory));
        assert_eq!(table.request(None), Ok(1));
        failure::fail_allocations(0, 0);
    }

    #[test]
    fn exhaustion_is_reported_before_memory() {
        let _guard = serial();
        let mut table = Table::default();
        for _ in 0..CAPACITY {
            table.request(None).unwrap();
        }
        failure::fail_allocations(0, 1);
        assert_eq!(table.request(None), Err(Error::Runtime));
        // The failure budget was not spent by the exhausted request.
        assert!(!failure::allow());
        failure::fail_allocations(0, 0);
    }
}
