#![doc = include_str!("../README.md")]
// Feature-gated items carry their feature on docs.rs (`--cfg docsrs`, see Cargo.toml).
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "access-log")]
pub mod access_log;
pub mod client;
mod config;
mod future;
mod id_only;
pub mod metrics;
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "prometheus")]
pub mod prometheus;
pub mod propagation;
mod recorder;
mod route;
pub mod server;
mod tracer;

pub use client::{ClientTrace, ClientTraceLayer};
pub use config::TraceConfig;
pub use future::{ResponseFuture, TracedBody};
pub use id_only::{IdOnlySpan, IdOnlyTracer, IdOnlyTracerProvider};
pub use recorder::RequestRecorder;
pub use route::RouteTemplate;
pub use server::{ServerTrace, ServerTraceLayer};
