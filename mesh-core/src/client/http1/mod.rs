//! HTTP/1.1: a bounded pool of keep-alive connections ([`pool`]), and the exchange of one request on
//! it ([`exchange`]).
//!
//! Invariants:
//! - a request in flight holds one semaphore permit (a slot, [`reservation`]) from `poll_ready` until its connection can take
//!   the next request (response body fully read) or is gone, so at most `max_connections` connections
//!   are busy;
//! - a new connection is opened only when no pooled one is usable, and a connection is back in the pool
//!   before its permit is released, so busy + idle never exceeds `max_connections` (short of
//!   connections already closing);
//! - a connection is handed out only when hyper says it can take a request at once, so a request
//!   fails on a pooled connection only when the server closed it in the meantime; such a request is
//!   handed back unsent by hyper and tried once more on a new connection.

//! - a request waits for a slot at most the pool wait timeout; past it, it fails with
//!   `PoolExhausted` without being sent, and so do later requests until a slot is taken again.

mod connection;
mod exchange;
mod pool;
mod reservation;

pub(crate) use connection::{ConnShared, Driven, Http1Sender};
pub(crate) use exchange::Http1Exchange;
pub(crate) use pool::Http1Pool;
pub(crate) use reservation::{Reservation, Reserved, exhausted};
