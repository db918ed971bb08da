//! gRPC classification: status codes, code sets, server pushback and the classifier.

mod classifier;
mod code;
mod code_set;
mod pushback;

pub use classifier::{GRPC_STATUS, GrpcClassifier, GrpcEosClassifier};
pub use code::GrpcCode;
pub use code_set::GrpcCodeSet;
pub use pushback::{GRPC_RETRY_PUSHBACK_MS, Pushback};
