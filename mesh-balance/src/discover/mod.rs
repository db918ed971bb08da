//! Discovery sources (being written).
