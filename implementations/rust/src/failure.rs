//! Allocation-failure injection.
//!
//! One process-wide counter pair, set by the suite's `fail_allocations`,
//! is consulted at exactly the points where the PEP says an operation may
//! allocate: an index request, a `SetExtra` that needs new out-of-line
//! storage, the construction of a code object with inline storage, and a
//! hook registration.  Each of those asks [`allow`] once before it
//! changes anything, so an injected failure leaves no trace, like a real
//! one (real allocation failures are caught with `try_reserve` and the
//! checked allocator in `object`, and reported the same way).

use std::sync::Mutex;

struct Budget {
    /// Allocations that still succeed before failures start.
    after: i64,
    /// Allocations that fail after that; then allocation works again.
    count: i64,
}

static BUDGET: Mutex<Budget> = Mutex::new(Budget { after: 0, count: 0 });

/// Let the next `after` allocations succeed, then fail `count`.
pub fn fail_allocations(after: i64, count: i64) {
    let mut budget = BUDGET.lock().unwrap_or_else(|e| e.into_inner());
    budget.after = after.max(0);
    budget.count = count.max(0);
}

/// Consult the counter for one allocation: false means it fails.
pub fn allow() -> bool {
    let mut budget = BUDGET.lock().unwrap_or_else(|e| e.into_inner());
    if budget.after > 0 {
        budget.after -= 1;
        true
    } else if budget.count > 0 {
        budget.count -= 1;
        false
    } else {
        true
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::{Mutex, MutexGuard};

    /// Tests that touch process-wide state (this counter, the unraisable
    /// queue) hold this lock so that the test harness's threads do not
    /// interleave them.
    pub(crate) fn serial() -> MutexGuard<'static, ()> {
        static SERIAL: Mutex<()> = Mutex::new(());
        SERIAL.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[test]
    fn after_then_count_then_normal() {
        let _guard = serial();
        fail_allocations(2, 3);
        let got: Vec<bool> = (0..7).map(|_| allow()).collect();
        assert_eq!(got, [true, true, false, false, false, true, true]);
        fail_allocations(0, 0);
    }

    #[test]
    fn negative_arguments_mean_none() {
        let _guard = serial();
        fail_allocations(-5, -1);
        assert!(allow());
    }
}
