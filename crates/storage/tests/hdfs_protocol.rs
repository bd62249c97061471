//! The HDFS driver at the protocol edge. No HDFS can run here (no Hadoop in any registry), so a
//! fake name node on 127.0.0.1 speaks just enough of Hadoop RPC (version 9, protobuf) to answer
//! `getFileInfo`: it checks the connection header (`hrpc`, version 9, simple auth), records the
//! user sent in the connection context and the calls made, and answers "a directory" for `/dir`
//! and "no such file" for anything else. Reading and writing file blocks (data nodes) is not
//! covered: that part of the driver is untested against a real cluster.

// A test fails by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use argoexec_storage::{AnyDriver, Driver as _, Error, MountedSecrets, StorageOptions};
use argoexec_template::ArtifactLocation;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// What the fake name node saw.
#[derive(Debug, Default)]
struct Seen {
    /// The 7-byte connection preamble of each connection.
    preambles: Vec<Vec<u8>>,
    /// The raw connection context frames (protobuf, holding the user).
    contexts: Vec<Vec<u8>>,
    /// `(method, path)` of each call.
    calls: Vec<(String, String)>,
}

/// A fake name node on a free port; returns its address and what it saw.
async fn fake_namenode() -> (String, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let state = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            tokio::spawn(serve(conn, Arc::clone(&state)));
        }
    });
    (address, seen)
}

async fn serve(mut conn: TcpStream, seen: Arc<Mutex<Seen>>) {
    let mut preamble = [0u8; 7];
    if conn.read_exact(&mut preamble).await.is_err() {
        return;
    }
    seen.lock().unwrap().preambles.push(preamble.to_vec());
    loop {
        let Ok(len) = conn.read_u32().await else {
            return;
        };
        let mut frame = vec![0u8; len as usize];
        conn.read_exact(&mut frame).await.unwrap();
        let mut rest = &frame[..];
        let rpc_header = delimited(&mut rest);
        let call_id = zigzag(field_varint(rpc_header, 3).unwrap());
        if call_id == -3 {
            seen.lock().unwrap().contexts.push(rest.to_vec());
            continue;
        }
        let method = field_bytes(delimited(&mut rest), 1).unwrap();
        let method = String::from_utf8(method.to_vec()).unwrap();
        let path = field_bytes(delimited(&mut rest), 1).unwrap_or_default();
        let path = String::from_utf8(path.to_vec()).unwrap();
        seen.lock()
            .unwrap()
            .calls
            .push((method.clone(), path.clone()));

        // RpcResponseHeaderProto { callId, status: SUCCESS }, then the response message.
        let mut header = vec![0x08];
        varint(call_id as u64, &mut header);
        header.extend([0x10, 0x00]);
        let body = match (method.as_str(), path.as_str()) {
            // GetFileInfoResponseProto { fs: HdfsFileStatusProto { fileType: IS_DIR } }
            ("getFileInfo", "/dir") => vec![0x0a, 0x02, 0x08, 0x01],
            // GetFileInfoResponseProto {}: no such file.
            ("getFileInfo", _) => vec![],
            _ => return,
        };
        let mut out = Vec::new();
        varint(header.len() as u64, &mut out);
        out.extend(&header);
        varint(body.len() as u64, &mut out);
        out.extend(&body);
        conn.write_u32(out.len() as u32).await.unwrap();
        conn.write_all(&out).await.unwrap();
    }
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(buf: &mut &[u8]) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = buf[0];
        *buf = &buf[1..];
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            break;
        }
    }
    v
}

fn zigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The next length-delimited message.
fn delimited<'a>(buf: &mut &'a [u8]) -> &'a [u8] {
    let len = read_varint(buf) as usize;
    let (msg, rest) = buf.split_at(len);
    *buf = rest;
    msg
}

/// Walks a message's fields, giving (number, varint value or bytes).
fn fields(mut msg: &[u8]) -> Vec<(u64, Result<u64, &[u8]>)> {
    let mut out = Vec::new();
    while !msg.is_empty() {
        let key = read_varint(&mut msg);
        let value = match key & 7 {
            0 => Ok(read_varint(&mut msg)),
            2 => Err(delimited(&mut msg)),
            1 => {
                msg = &msg[8..];
                Ok(0)
            }
            5 => {
                msg = &msg[4..];
                Ok(0)
            }
            wire => panic!("unexpected wire type {wire}"),
        };
        out.push((key >> 3, value));
    }
    out
}

fn field_varint(msg: &[u8], number: u64) -> Option<u64> {
    fields(msg)
        .into_iter()
        .find_map(|(n, v)| (n == number).then_some(v.ok()).flatten())
}

fn field_bytes(msg: &[u8], number: u64) -> Option<&[u8]> {
    fields(msg)
        .into_iter()
        .find_map(|(n, v)| (n == number).then_some(v.err()).flatten())
}

async fn driver(addresses: &[&str], path: &str) -> (AnyDriver, String) {
    let location: ArtifactLocation = serde_json::from_value(serde_json::json!({
        "hdfs": {"addresses": addresses, "path": path, "hdfsUser": "argo-tester"}
    }))
    .unwrap();
    AnyDriver::for_location(
        &location,
        &MountedSecrets::new("/nonexistent"),
        &StorageOptions::default(),
    )
    .await
    .unwrap()
}

/// The whole chain of an error, as `argoexec` prints it.
fn chain(err: &Error) -> String {
    let mut out = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(c) = cause {
        out.push_str(&format!(": {c}"));
        cause = c.source();
    }
    out
}

#[tokio::test]
async fn speaks_hadoop_rpc_as_the_configured_user() {
    let (address, seen) = fake_namenode().await;
    let (hdfs, key) = driver(&[&address], "/data/missing.tgz").await;
    assert_eq!(key, "/data/missing.tgz");

    let err = match hdfs.get(&key).await {
        Ok(_) => panic!("a file the name node does not know was read"),
        Err(err) => err,
    };
    assert!(err.is_not_found(), "{}", chain(&err));
    assert_eq!(
        err.to_string(),
        format!("hdfs: hdfs://{address}/data/missing.tgz not found")
    );

    let seen = seen.lock().unwrap();
    // "hrpc", version 9, service class 0, auth protocol 0 (simple).
    assert_eq!(seen.preambles, vec![b"hrpc\x09\x00\x00".to_vec()]);
    // IpcConnectionContextProto { userInfo { effectiveUser }, protocol }
    let context = seen.contexts[0].as_slice();
    let mut rest = context;
    let context = delimited(&mut rest);
    let user_info = field_bytes(context, 2).unwrap();
    assert_eq!(field_bytes(user_info, 1).unwrap(), b"argo-tester");
    assert_eq!(
        field_bytes(context, 3).unwrap(),
        b"org.apache.hadoop.hdfs.protocol.ClientProtocol"
    );
    assert_eq!(
        seen.calls,
        vec![("getFileInfo".to_owned(), "/data/missing.tgz".to_owned())]
    );
}

#[tokio::test]
async fn a_directory_is_refused_as_argo_refuses_it() {
    let (address, seen) = fake_namenode().await;
    let (hdfs, _) = driver(&[&address], "/dir").await;
    assert!(hdfs.is_dir("/dir").await.unwrap());
    assert!(!hdfs.is_dir("/other").await.unwrap());
    let err = match hdfs.get("/dir").await {
        Ok(_) => panic!("a directory was read as a file"),
        Err(err) => err,
    };
    let message = chain(&err);
    assert!(
        message.starts_with(&format!("load hdfs://{address}/dir: ")),
        "{message}"
    );
    assert!(
        message.contains("do not support directory copy"),
        "{message}"
    );
    assert_eq!(seen.lock().unwrap().calls.len(), 3);
}

#[tokio::test]
async fn several_addresses_fail_over_to_the_one_that_answers() {
    // A port with nothing listening on it: bind, note the port, close.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = closed.local_addr().unwrap().to_string();
    drop(closed);
    let (address, seen) = fake_namenode().await;

    let (hdfs, _) = driver(&[&dead, &address], "/data/x").await;
    let err = match hdfs.get("/data/x").await {
        Ok(_) => panic!("read a file that does not exist"),
        Err(err) => err,
    };
    assert!(err.is_not_found(), "{}", chain(&err));
    assert_eq!(
        err.to_string(),
        format!("hdfs: hdfs://{dead},{address}/data/x not found")
    );
    assert_eq!(seen.lock().unwrap().calls.len(), 1);
}

#[tokio::test]
async fn an_unreachable_name_node_is_named_and_transient() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = closed.local_addr().unwrap().to_string();
    drop(closed);
    let (hdfs, _) = driver(&[&dead], "/data/x").await;
    let err = match hdfs.get("/data/x").await {
        Ok(_) => panic!("read from a closed port"),
        Err(err) => err,
    };
    let message = chain(&err);
    assert!(
        message.starts_with(&format!("stat hdfs://{dead}/data/x: transient failure")),
        "{message}"
    );
    assert!(message.contains("Connection refused"), "{message}");
    assert!(argoexec_storage::Retryable::is_transient(&err));
}
