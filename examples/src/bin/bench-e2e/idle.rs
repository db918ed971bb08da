//! Memory per idle connection: open N plaintext keep-alive connections to a freshly started proxy,
//! send one request on each and read the answer (so the proxy holds per-connection state), keep
//! them open and idle, and compare the proxy's resident memory with its memory before.
//!
//! Connections are opened at most [`OPEN_PARALLELISM`] at a time, so the proxy's upstream pool to
//! the backend stays small and the figure is about client connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::netio;

/// Connections being opened at once.
const OPEN_PARALLELISM: usize = 64;

/// Opens `n` connections to `addr`, each with one answered request, within `timeout` each;
/// returns the ones that got a `200` (the rest are dropped) and the first error seen. They are
/// returned as non-blocking std streams, so they outlive the runtime that opened them.
pub(crate) async fn open(
    addr: SocketAddr,
    n: usize,
    timeout: Duration,
) -> (Vec<std::net::TcpStream>, Option<String>) {
    let permits = Arc::new(Semaphore::new(OPEN_PARALLELISM));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let permits = permits.clone();
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await.map_err(|e| e.to_string())?;
                tokio::time::timeout(timeout, one(addr))
                    .await
                    .map_err(|_| format!("no answer within {timeout:?}"))?
            })
        })
        .collect();
    let mut held = Vec::with_capacity(n);
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(Ok(stream)) => match stream.into_std() {
                Ok(stream) => held.push(stream),
                Err(e) => {
                    first_error.get_or_insert(e.to_string());
                }
            },
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    (held, first_error)
}

async fn one(addr: SocketAddr) -> Result<TcpStream, String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    netio::write_all(&mut stream, netio::get_keep_alive().as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    match netio::read_response(&mut stream, false).await {
        Ok(200) => Ok(stream),
        Ok(status) => Err(format!("status {status}")),
        Err(e) => Err(format!("read: {e}")),
    }
}

/// `count` keep-alive requests, one after the other on one connection (a warm-up).
pub(crate) async fn warm_up(addr: SocketAddr, count: usize) -> Result<(), String> {
    netio::sequential_gets(addr, count, 1)
        .await
        .map_err(|e| format!("warm-up: {e}"))
}
