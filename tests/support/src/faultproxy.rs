//! A TCP proxy in front of a test server that injects faults, one per accepted connection in the
//! order given, then passes traffic through: a connection closed before any answer, an HTTP 503
//! (S3's `SlowDown`, or a plain one), a response cut short or reset after some bytes, or a
//! response that stalls after some bytes while the connection stays open.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What the proxy does with one connection.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Read the request, then close without answering.
    Close,
    /// Answer `503 Slow Down` with an S3 error body.
    SlowDown,
    /// Answer a plain `503 Service Unavailable` with a one-line text body.
    Unavailable,
    /// Pass through, but cut the response after this many bytes (a clean close, FIN).
    CutAfter(usize),
    /// Pass through, but reset the connection (RST) after this many bytes of the response.
    ResetAfter(usize),
    /// Pass through, but send nothing more after this many bytes of the response while keeping
    /// the connection open, until the client hangs up (or [`STALL_LIMIT`] passes). With 0, the
    /// request reaches the server but no answer ever comes.
    StallAfter(usize),
    /// Pass the request through, but stop reading it after this many bytes while keeping the
    /// connection open (a server that stopped taking an upload), for [`STALL_LIMIT`] at most.
    StallRequestAfter(usize),
}

/// How long a stalled connection is held at most, so that a test that never gives up still ends.
pub const STALL_LIMIT: Duration = Duration::from_secs(60);

/// What happens when a response reaches its byte limit.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Close,
    Reset,
    Stall,
}

/// A running proxy; it stops accepting when dropped (its threads end with their connections).
pub struct FaultProxy {
    /// The proxy's port on 127.0.0.1.
    pub port: u16,
    faults: Arc<Mutex<VecDeque<Fault>>>,
    /// Connections accepted so far.
    pub accepted: Arc<Mutex<usize>>,
}

impl FaultProxy {
    /// A proxy to `127.0.0.1:upstream` that applies `faults` to the first connections.
    pub fn start(upstream: u16, faults: Vec<Fault>) -> Self {
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
    pub fn remaining(&self) -> usize {
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
        Some(Fault::SlowDown) => respond(
            client,
            "503 Slow Down",
            "application/xml",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
        ),
        Some(Fault::Unavailable) => respond(
            client,
            "503 Service Unavailable",
            "text/plain",
            "fault proxy: try again later\n",
        ),
        Some(Fault::CutAfter(limit)) => pipe(client, upstream, Some((limit, Stop::Close))),
        Some(Fault::ResetAfter(limit)) => pipe(client, upstream, Some((limit, Stop::Reset))),
        Some(Fault::StallAfter(limit)) => pipe(client, upstream, Some((limit, Stop::Stall))),
        Some(Fault::StallRequestAfter(limit)) => stall_request(client, upstream, limit),
        None => pipe(client, upstream, None),
    }
}

/// Reads the request head, answers with `status` and `body`, and closes.
fn respond(mut client: TcpStream, status: &str, content_type: &str, body: &str) {
    read_head(&mut client);
    let _ = write!(
        client,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.shutdown(Shutdown::Both);
}

fn pipe(client: TcpStream, upstream: u16, limit: Option<(usize, Stop)>) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    // Says when the client has hung up (or shut down), which ends a stall.
    let (hung_up, client_gone) = mpsc::channel::<()>();
    thread::spawn(move || {
        let _ = std::io::copy(&mut c_read, &mut s_write);
        let _ = s_write.shutdown(Shutdown::Write);
        let _ = hung_up.send(());
    });
    let (mut s_read, mut c_write) = (server, client);
    let mut sent = 0usize;
    let mut stop = Stop::Close;
    let mut buf = [0u8; 16384];
    loop {
        let n = match s_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let n = match limit {
            Some((limit, how)) if sent + n >= limit => {
                let _ = c_write.write_all(&buf[..limit - sent]);
                stop = how;
                break;
            }
            _ => n,
        };
        if c_write.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n;
    }
    match stop {
        Stop::Close => {}
        Stop::Reset => {
            // Closing with a zero linger time sends RST instead of FIN: the client reads
            // "connection reset by peer". Shutting down the read side first wakes the thread
            // that holds the other handle, so the close happens now.
            let _ = socket2::SockRef::from(&c_write).set_linger(Some(Duration::ZERO));
            let _ = c_write.shutdown(Shutdown::Read);
            let _ = client_gone.recv_timeout(Duration::from_secs(5));
            drop(c_write);
            let _ = s_read.shutdown(Shutdown::Both);
            return;
        }
        Stop::Stall => {
            let _ = client_gone.recv_timeout(STALL_LIMIT);
        }
    }
    let _ = c_write.shutdown(Shutdown::Both);
    let _ = s_read.shutdown(Shutdown::Both);
}

/// Forwards the first `limit` bytes of the request, then reads no more: the client's sends fill
/// the socket buffers and block. Closes after [`STALL_LIMIT`].
fn stall_request(mut client: TcpStream, upstream: u16, limit: usize) {
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let mut forwarded = 0;
    let mut buf = [0u8; 16384];
    while forwarded < limit {
        let want = buf.len().min(limit - forwarded);
        match client.read(&mut buf[..want]) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if server.write_all(&buf[..n]).is_err() {
                    return;
                }
                forwarded += n;
            }
        }
    }
    thread::sleep(STALL_LIMIT);
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}
