//! The S1–S4 fault scenarios of the `scenario` binary (work in progress).
