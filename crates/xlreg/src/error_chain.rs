//! Printing an error with its causes on one line.
//!
//! Why: every error of this crate says what was being done in its own
//! message and leaves the cause (an OS error, a parse error) to
//! [`std::error::Error::source`], so that `anyhow`'s `{:#}` prints each
//! text once. Code without `anyhow` — log lines, the Python bindings,
//! small programs — uses [`ErrorChain`] to print the same line.

use std::error::Error;
use std::fmt;

/// Displays an error followed by each of its sources, separated by `": "`,
/// like `anyhow`'s `{:#}`: `connecting to 127.0.0.1:1: Connection refused
/// (os error 111)`.
///
/// ```
/// let e = std::io::Error::other("disk on fire");
/// assert_eq!(xlreg::ErrorChain(&e).to_string(), "disk on fire");
/// ```
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading x.pem")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn each_link_is_printed_once_in_order() {
        let e = Outer(std::io::Error::from_raw_os_error(2));
        let s = ErrorChain(&e).to_string();
        assert!(s.starts_with("reading x.pem: "), "{s}");
        assert_eq!(s.matches("os error 2").count(), 1, "{s}");
    }
}
