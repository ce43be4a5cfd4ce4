//! A bug must not end the process with Rust's exit code 101 and a backtrace banner, nor
//! take down every host of a fleet run: a panic becomes an internal error (exit 2, README
//! "Exit codes"), for the one host whose planning panicked when there are several.

use std::any::Any;
use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};

thread_local! {
    /// What the hook saw of the last panic on this thread: the message and where.
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replace the default hook (which prints `thread 'main' panicked at ...` itself) with one
/// that only remembers the message and location for [`catch`] to report.
pub fn install_hook() {
    panic::set_hook(Box::new(|info| {
        let mut message = payload_text(info.payload());
        if let Some(at) = info.location() {
            message.push_str(&format!(" (at {}:{})", at.file(), at.line()));
        }
        LAST.with(|last| *last.borrow_mut() = Some(message));
    }));
}

fn payload_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Run `f`; a panic in it is `Err(message)`. Callers must not reuse state `f` left half
/// changed: each use here throws away everything `f` touched.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        LAST.with(|last| last.borrow_mut().take())
            .unwrap_or_else(|| payload_text(&*payload))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_panic_is_its_message() {
        assert_eq!(super::catch(|| 7), Ok(7));
        let e = super::catch(|| -> u8 { panic!("rule {} broke", "x") }).unwrap_err();
        assert!(e.starts_with("rule x broke"), "{e}");
        let e = super::catch(|| -> u8 { std::panic::panic_any(5u8) }).unwrap_err();
        assert!(e.starts_with("a panic without a message"), "{e}");
    }
}
