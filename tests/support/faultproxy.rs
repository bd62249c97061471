//! A TCP proxy in front of a test server that injects faults, one per accepted connection in the
//! order given, then passes traffic through: a connection closed before any answer, an HTTP 503
//! with S3's `SlowDown` code, or a response cut short after some bytes.

// Each test binary that includes this file uses a different part of it.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

/// What the proxy does with one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fault {
    /// Read the request, then close without answering.
    Close,
    /// Answer `503 Slow Down` with an S3 error body.
    SlowDown,
    /// Pass through, but cut the response after this many bytes.
    CutAfter(usize),
}

/// A running proxy; it stops accepting when dropped (its threads end with their connections).
pub(crate) struct FaultProxy {
    /// The proxy's port on 127.0.0.1.
    pub(crate) port: u16,
    faults: Arc<Mutex<VecDeque<Fault>>>,
    /// Connections accepted so far.
    pub(crate) accepted: Arc<Mutex<usize>>,
}

impl FaultProxy {
    /// A proxy to `127.0.0.1:upstream` that applies `faults` to the first connections.
    pub(crate) fn start(upstream: u16, faults: Vec<Fault>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let faults = Arc::new(Mutex::new(VecDeque::from(faults)));
        let accepted = Arc::new(Mutex::new(0));
        let (f, a) = (Arc::clone(&faults), Arc::clone(&accepted));
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                *a.lock().unwrap() += 1;
                let fault = f.lock().unwrap().pop_front();
                thread::spawn(move || serve(client, upstream, fault));
            }
        });
        Self {
            port,
            faults,
            accepted,
        }
    }

    /// Faults not yet used.
    pub(crate) fn remaining(&self) -> usize {
        self.faults.lock().unwrap().len()
    }
}

/// Reads until the end of the request headers (enough to know a request came).
fn read_head(client: &mut TcpStream) {
    let mut buf = [0u8; 8192];
    let mut seen = Vec::new();
    while let Ok(n) = client.read(&mut buf) {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
        if seen.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
}

fn serve(mut client: TcpStream, upstream: u16, fault: Option<Fault>) {
    match fault {
        Some(Fault::Close) => {
            read_head(&mut client);
            let _ = client.shutdown(Shutdown::Both);
        }
        Some(Fault::SlowDown) => {
            read_head(&mut client);
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
            let _ = write!(
                client,
                "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.shutdown(Shutdown::Both);
        }
        Some(Fault::CutAfter(limit)) => pipe(client, upstream, Some(limit)),
        None => pipe(client, upstream, None),
    }
}

fn pipe(client: TcpStream, upstream: u16, limit: Option<usize>) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    thread::spawn(move || {
        let _ = std::io::copy(&mut c_read, &mut s_write);
        let _ = s_write.shutdown(Shutdown::Write);
    });
    let (mut s_read, mut c_write) = (server, client);
    let mut sent = 0usize;
    let mut buf = [0u8; 16384];
    loop {
        let n = match s_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let n = match limit {
            Some(limit) if sent + n >= limit => {
                let _ = c_write.write_all(&buf[..limit - sent]);
                break;
            }
            _ => n,
        };
        if c_write.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n;
    }
    let _ = c_write.shutdown(Shutdown::Both);
    let _ = s_read.shutdown(Shutdown::Both);
}
