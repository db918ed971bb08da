//! A deterministic scenario kit for tower services (work in progress).
