//! A request body that can be sent again: the replay buffer behind retries of POST and PUT.
//!
//! A retry needs the request body a second time, but the first attempt consumed it while it was
//! streaming to the server. [`ReplayBody`] streams the body to the first attempt unchanged and
//! keeps a copy of every data frame, up to a cap (64 KiB by default, the Linkerd and Pingora
//! figure). A retry gets a fresh [`ReplayBody`] ([`ReplayBody::replay`]) that first replays the
//! copy and then continues with whatever the first attempt did not read: if a server answered
//! early and the first attempt was dropped halfway, the retry still sends every byte exactly once,
//! in order, followed by the trailers (linkerd2 issue 15649 is the bug class this rules out).
//!
//! When the body outgrows the cap the copy is dropped and the body stops being replayable; the
//! reason is kept in a [`ReplayStatus`] that the retry policy reads before deciding, so such a
//! request is simply not retried.
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use mesh_retry::body::{ReplayBody, ReplayStatus};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let first = ReplayBody::new(Full::new(Bytes::from_static(b"hello")), 64 * 1024);
//! let retry = first.replay().expect("nothing read yet, so it is replayable");
//!
//! let sent = first.collect().await.unwrap().to_bytes();
//! let resent = retry.collect().await.unwrap().to_bytes();
//! assert_eq!(sent, resent);
//! # }
//! ```

mod error;
mod replay;
mod shared;

pub use error::ReplayError;
pub use replay::{DEFAULT_REPLAY_CAP, ReplayBody, ReplayStatus};
