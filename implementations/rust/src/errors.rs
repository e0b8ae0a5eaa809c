//! Pending errors (one per thread) and the unraisable queue.
//!
//! The C API reports a failure by returning -1 and leaving an exception
//! set in the calling thread, as CPython does with its thread state.  The
//! suite reads the exception's class name back with `take_error`.  Errors
//! that nobody can receive (a failing constructor hook, a free function
//! that leaves an error set) go to a process-wide queue instead, the
//! equivalent of `PyErr_WriteUnraisable`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Mutex;

/// An exception class.  Only the class is specified by the PEP, never a
/// message, so that is all an error carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// C API misuse: a non-code object, an index that is not allocated.
    System,
    /// A finite resource (indices, hooks) is exhausted.
    Runtime,
    /// An unknown hook ID.
    Value,
    /// Memory could not be allocated.
    Memory,
    /// `get_nested` past the last constant.
    Index,
    /// Any other class, as set by a hook through `set_error`.
    Other(String),
}

impl Error {
    /// The exception class name the suite expects.
    pub fn class_name(&self) -> &str {
        match self {
            Error::System => "SystemError",
            Error::Runtime => "RuntimeError",
            Error::Value => "ValueError",
            Error::Memory => "MemoryError",
            Error::Index => "IndexError",
            Error::Other(name) => name,
        }
    }

    /// The error for a class name (the inverse of `class_name`).
    pub fn from_class_name(name: &str) -> Error {
        match name {
            "SystemError" => Error::System,
            "RuntimeError" => Error::Runtime,
            "ValueError" => Error::Value,
            "MemoryError" => Error::Memory,
            "IndexError" => Error::Index,
            other => Error::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.class_name())
    }
}

/// What every operation of the API returns.
pub type Result<T> = std::result::Result<T, Error>;

thread_local! {
    static PENDING: RefCell<Option<Error>> = const { RefCell::new(None) };
}

/// Leave `error` pending in the calling thread (replacing any other).
pub fn set(error: Error) {
    PENDING.with(|p| *p.borrow_mut() = Some(error));
}

/// Take (and clear) the calling thread's pending error.
pub fn take() -> Option<Error> {
    PENDING.with(|p| p.borrow_mut().take())
}

/// Put a previously taken error back (`None` leaves nothing pending).
pub fn restore(saved: Option<Error>) {
    PENDING.with(|p| *p.borrow_mut() = saved);
}

static UNRAISABLE: Mutex<VecDeque<Error>> = Mutex::new(VecDeque::new());

/// Report an error nobody can receive.
pub fn write_unraisable(error: Error) {
    lock_unraisable().push_back(error);
}

/// Take the oldest unraisable error, if any.
pub fn take_unraisable() -> Option<Error> {
    let mut queue = lock_unraisable();
    let oldest = queue.pop_front();
    if queue.is_empty() {
        // No buffer is kept while nothing is queued (see `blocks`).
        queue.shrink_to_fit();
    }
    oldest
}

fn lock_unraisable() -> std::sync::MutexGuard<'static, VecDeque<Error>> {
    // A poisoned queue only means that another thread panicked while
    // pushing; the queue itself is always in a consistent state.
    UNRAISABLE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Run `call` with no error pending, as the PEP requires for free
/// functions and hooks, and put the caller's pending error back after
/// it.  `call` returns the callback's own error, if it reported one; an
/// error it left pending without reporting is a bug of the callback and
/// is reported as unraisable too.
pub fn isolated<F: FnOnce() -> Option<Error>>(call: F) {
    let saved = take();
    if let Some(error) = call() {
        write_unraisable(error);
    }
    if let Some(stray) = take() {
        write_unraisable(stray);
    }
    restore(saved);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_error_is_per_thread_and_taken_once() {
        set(Error::Memory);
        let other = std::thread::spawn(take).join().unwrap();
        assert_eq!(other, None);
        assert_eq!(take(), Some(Error::Memory));
        assert_eq!(take(), None);
    }

    #[test]
    fn class_names_round_trip() {
        for name in [
            "SystemError",
            "RuntimeError",
            "ValueError",
            "MemoryError",
            "IndexError",
            "KeyError",
        ] {
            assert_eq!(Error::from_class_name(name).class_name(), name);
        }
    }

    #[test]
    fn isolated_saves_and_restores_the_pending_error() {
        set(Error::Value);
        isolated(|| {
            assert_eq!(take(), None, "callbacks start with no error");
            None
        });
        assert_eq!(take(), Some(Error::Value));
    }
}
