#![doc = include_str!("../README.md")]

pub mod duplex;
mod metrics;
pub mod response;

pub use metrics::{Attributes, Kind, Metric, Point, TestMetrics};
