#![doc = include_str!("../README.md")]

pub mod body;
pub mod breaker;
pub mod budget;
pub mod hedge;
pub mod limit;
pub mod retry;
pub mod timeout;
