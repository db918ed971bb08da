//! Consistent hashing (being written).
