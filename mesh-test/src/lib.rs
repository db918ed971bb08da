#![doc = include_str!("../README.md")]

mod metrics;
pub mod response;

pub use metrics::{Attributes, Kind, Metric, Point, TestMetrics};
