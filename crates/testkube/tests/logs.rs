//! `pods/log` query parameters as the real API server reads them, spoken over plain HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};

use argoexec_testkube::{LogSource, TestKube};
use serde_json::json;

/// Status line and body of `GET path`.
fn get(server: &TestKube, path: &str) -> (String, String) {
    let address = server.url().trim_start_matches("http://").to_owned();
    let mut tcp = std::net::TcpStream::connect(&address).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

#[test]
fn an_empty_or_null_since_time_is_no_filter_and_a_bad_one_is_refused() {
    let server = TestKube::start().unwrap();
    server.apply(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"containers": [{"name": "main"}]}}));
    server.set_log(
        "ns",
        "p",
        "main",
        LogSource::Bytes("hello\n".as_bytes().into()),
    );
    let log = "/api/v1/namespaces/ns/pods/p/log?container=main";
    // Argo v3.3's k8sapi executor sends `sinceTime=` (a zero metav1.Time).
    for since in ["", "null"] {
        let (status, body) = get(&server, &format!("{log}&sinceTime={since}"));
        assert!(status.contains(" 200 "), "sinceTime={since:?}: {status}");
        assert!(body.contains("hello"), "sinceTime={since:?}: {body}");
    }
    let (status, body) = get(&server, &format!("{log}&sinceTime=yesterday"));
    assert!(status.contains(" 400 "), "{status}");
    assert!(body.contains("sinceTime"), "{body}");
}
