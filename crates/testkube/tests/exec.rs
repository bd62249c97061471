//! `pods/exec` with the older `v4.channel.k8s.io` subprotocol, spoken by hand (kube-rs and
//! kubectl offer v5 first; their tests are in `crates/runtime/tests/k8sapi.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use argoexec_testkube::{LocalExec, TestKube};
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

#[tokio::test]
async fn v4_sends_each_channel_and_the_exit_status_then_closes() {
    let server = TestKube::start().unwrap();
    server.apply(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"containers": [{"name": "main"}]}}));
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("f"), "in the container's dir").unwrap();
    server.set_exec(LocalExec::default().dir("main", work.path()));

    let address = server.url().trim_start_matches("http://").to_owned();
    // No `container`: the pod's only container.
    let url = format!(
        "ws://{address}/api/v1/namespaces/ns/pods/p/exec?command=sh&command=-c&command=cat+f%3B+echo+e+%3E%262%3B+exit+7&stdout=true&stderr=true"
    );
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v4.channel.k8s.io".parse().unwrap(),
    );
    let tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
    let (mut socket, response) = tokio_tungstenite::client_async(request, tcp).await.unwrap();
    assert_eq!(
        response.headers()["Sec-WebSocket-Protocol"],
        "v4.channel.k8s.io"
    );
    let (mut stdout, mut stderr, mut status) = (Vec::new(), Vec::new(), None);
    while let Some(message) = socket.next().await {
        match message.unwrap() {
            Message::Binary(data) => match data[0] {
                1 => stdout.extend_from_slice(&data[1..]),
                2 => stderr.extend_from_slice(&data[1..]),
                3 => status = Some(serde_json::from_slice::<Value>(&data[1..]).unwrap()),
                other => panic!("unexpected channel {other}"),
            },
            Message::Close(frame) => {
                assert_eq!(u16::from(frame.unwrap().code), 1000);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(stdout, b"in the container's dir");
    assert_eq!(stderr, b"e\n");
    let status = status.unwrap();
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(
        status["details"]["causes"][0],
        json!({"reason": "ExitCode", "message": "7"})
    );
}
