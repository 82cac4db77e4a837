//! `noop`: does nothing; its output is its rendered params. Useful for fan-out tests and as a
//! DAG join point.

use super::TaskSpec;

/// A noop reads no kind-specific field.
pub const FIELDS: &[&str] = &[];

/// The spec.
pub fn spec() -> TaskSpec {
    TaskSpec::Noop
}
