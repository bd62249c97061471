//! `pods/exec` over a websocket, as the API server proxies it from the kubelet (and the kubelet's
//! own `/exec/{ns}/{pod}/{container}`, whose parameters are `input`, `output`, `error`): subprotocols
//! `v5.channel.k8s.io` (preferred) and `v4.channel.k8s.io`; every binary message starts with its
//! channel (0 stdin, 1 stdout, 2 stderr, 3 the final `Status` JSON, 4 resize, 255 close, v5 only).
//! The command runs through the test's [`ExecHandler`]; by default as a local process.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Request as HttpRequest, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt as _, StreamExt as _};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use crate::Shared;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const CLOSE: u8 = 255;
const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// Which container an exec goes into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecTarget {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod.
    pub pod: String,
    /// The container (`container` parameter; the pod's only container when omitted).
    pub container: String,
}

/// Runs the commands of `pods/exec`: given the container and the argv, the process to start.
/// Its stdin, stdout and stderr are piped by the server as the request asks.
pub trait ExecHandler: Send + Sync + std::fmt::Debug + 'static {
    /// The command standing for `argv` run in `target`.
    fn command(
        &self,
        target: &ExecTarget,
        argv: &[String],
    ) -> std::io::Result<tokio::process::Command>;
}

/// A handler for tests whose containers are host processes: runs `argv` locally, with the
/// `kill -N 1` the runtimes send a container's PID 1 aimed at the host PID set for that container
/// ([`Pid1Exec::set`]). Clones share the PIDs.
#[derive(Debug, Clone, Default)]
pub struct Pid1Exec(Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>>);

impl Pid1Exec {
    /// `container`'s PID 1 is host process `pid`.
    pub fn set(&self, container: &str, pid: u32) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(container.to_owned(), pid);
    }

    /// `argv` with `kill -N 1` aimed at `container`'s host PID, when one is set.
    pub fn rewrite(&self, container: &str, argv: &[String]) -> Vec<String> {
        let pid = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(container)
            .copied();
        argv.iter()
            .map(|arg| {
                match (
                    pid,
                    arg.strip_prefix("kill -")
                        .and_then(|a| a.strip_suffix(" 1")),
                ) {
                    (Some(pid), Some(signal)) => format!("kill -{signal} {pid}"),
                    _ => arg.clone(),
                }
            })
            .collect()
    }
}

impl ExecHandler for Pid1Exec {
    fn command(
        &self,
        target: &ExecTarget,
        argv: &[String],
    ) -> std::io::Result<tokio::process::Command> {
        let argv = self.rewrite(&target.container, argv);
        let (program, args) = argv.split_first().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "exec without a command")
        })?;
        let mut command = tokio::process::Command::new(program);
        command.args(args);
        Ok(command)
    }
}

/// An exec refused before any command starts (say, into a container that is not running): an
/// [`ExecHandler`] returns it as the error of [`ExecHandler::command`] (through
/// [`ExecRefusal::into_io`]), and the server sends `status` on channel 3 as it is.
#[derive(Debug, Clone)]
pub struct ExecRefusal {
    status: Value,
}

impl ExecRefusal {
    /// A refusal answered with this `Status` object.
    pub fn new(status: Value) -> Self {
        Self { status }
    }

    /// The refusal as the I/O error [`ExecHandler::command`] returns.
    pub fn into_io(self) -> std::io::Error {
        std::io::Error::other(self)
    }

    /// The status an error carries, when it is a refusal.
    fn of(error: &std::io::Error) -> Option<&Value> {
        error
            .get_ref()
            .and_then(|e| e.downcast_ref::<Self>())
            .map(|r| &r.status)
    }
}

impl std::fmt::Display for ExecRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exec refused: {}",
            self.status["message"].as_str().unwrap_or_default()
        )
    }
}

impl std::error::Error for ExecRefusal {}

/// The default handler: runs `argv` as a local process, in the container's directory when one is
/// set ([`LocalExec::dir`]), else in the server's.
#[derive(Debug, Clone, Default)]
pub struct LocalExec {
    dirs: Vec<(String, PathBuf)>,
}

impl LocalExec {
    /// Commands run in `container` start in `dir`.
    pub fn dir(mut self, container: &str, dir: impl Into<PathBuf>) -> Self {
        self.dirs.push((container.to_owned(), dir.into()));
        self
    }
}

impl ExecHandler for LocalExec {
    fn command(
        &self,
        target: &ExecTarget,
        argv: &[String],
    ) -> std::io::Result<tokio::process::Command> {
        let (program, args) = argv.split_first().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command")
        })?;
        let mut command = tokio::process::Command::new(program);
        command.args(args);
        if let Some((_, dir)) = self.dirs.iter().find(|(c, _)| *c == target.container) {
            command.current_dir(dir);
        }
        Ok(command)
    }
}

/// The query of an exec request (`command` repeats).
#[derive(Debug, Default)]
struct ExecParams {
    command: Vec<String>,
    container: Option<String>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
}

fn parse_query(query: &str) -> ExecParams {
    let mut params = ExecParams::default();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let flag = value == "true" || value == "1";
        match &*key {
            "command" => params.command.push(value.into_owned()),
            "container" => params.container = Some(value.into_owned()),
            "stdin" | "input" => params.stdin = flag,
            "stdout" | "output" => params.stdout = flag,
            "stderr" | "error" => params.stderr = flag,
            _ => {}
        }
    }
    params
}

/// `GET|POST /api/v1/namespaces/{ns}/pods/{name}/exec`, upgraded to a websocket.
pub(crate) async fn serve(
    State(shared): State<Arc<Shared>>,
    UrlPath((namespace, pod)): UrlPath<(String, String)>,
    request: HttpRequest,
) -> Response {
    let params = parse_query(request.uri().query().unwrap_or_default());
    upgrade(&shared, namespace, pod, params, request)
}

/// The kubelet's `GET|POST /exec/{ns}/{pod}/{container}`, upgraded to a websocket.
pub(crate) async fn serve_kubelet(
    State(shared): State<Arc<Shared>>,
    UrlPath((namespace, pod, container)): UrlPath<(String, String, String)>,
    request: HttpRequest,
) -> Response {
    let mut params = parse_query(request.uri().query().unwrap_or_default());
    params.container = Some(container);
    upgrade(&shared, namespace, pod, params, request)
}

fn upgrade(
    shared: &Shared,
    namespace: String,
    pod: String,
    params: ExecParams,
    mut request: HttpRequest,
) -> Response {
    let spec = shared
        .lock()
        .store
        .get("pods", &namespace, &pod)
        .map(|pod| pod["spec"]["containers"].clone());
    let Some(containers) = spec else {
        return crate::respond::status(404, &format!("pods \"{pod}\" not found"));
    };
    let names: Vec<&str> = containers
        .as_array()
        .map(|list| list.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    let container = match (&params.container, names.as_slice()) {
        (Some(c), _) if names.contains(&c.as_str()) => c.clone(),
        (None, [only]) => (*only).to_owned(),
        (Some(c), _) => {
            return crate::respond::status(
                400,
                &format!("container {c} is not valid for pod {pod}"),
            );
        }
        (None, _) => {
            return crate::respond::status(
                400,
                &format!("a container name must be specified for pod {pod}"),
            );
        }
    };
    if params.command.is_empty() {
        return crate::respond::status(400, "you must specify at least 1 command");
    }
    let offered = request
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let Some(protocol) = PROTOCOLS
        .iter()
        .find(|p| offered.split(',').any(|o| o.trim() == **p))
    else {
        return crate::respond::status(
            400,
            "upgrade request required: this server speaks v5.channel.k8s.io and v4.channel.k8s.io",
        );
    };
    let Some(key) = request.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return crate::respond::status(400, "websocket upgrade required (Sec-WebSocket-Key)");
    };
    let upgrade = hyper::upgrade::on(&mut request);
    let handler = Arc::clone(&shared.lock().exec);
    let target = ExecTarget {
        namespace,
        pod,
        container,
    };
    let v5 = protocol.starts_with("v5");
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else {
            return;
        };
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        run(socket, &*handler, &target, &params, v5).await;
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(protocol),
    );
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response.into_response()
}

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Starts the command, pumps its streams through the socket, ends with the status on channel 3.
async fn run(
    socket: Socket,
    handler: &dyn ExecHandler,
    target: &ExecTarget,
    params: &ExecParams,
    v5: bool,
) {
    let (mut sink, mut incoming) = socket.split();
    let status = match handler.command(target, &params.command) {
        Err(e) => start_failure(&params.command, &e),
        Ok(mut command) => {
            command
                .stdin(if params.stdin {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(if params.stdout {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stderr(if params.stderr {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .kill_on_drop(true);
            match command.spawn() {
                Err(e) => start_failure(&params.command, &e),
                Ok(mut child) => {
                    let (frames, mut outgoing) = mpsc::channel::<Vec<u8>>(16);
                    let mut pumps = Vec::new();
                    if let Some(out) = child.stdout.take() {
                        pumps.push(tokio::spawn(pump(out, STDOUT, frames.clone())));
                    }
                    if let Some(err) = child.stderr.take() {
                        pumps.push(tokio::spawn(pump(err, STDERR, frames.clone())));
                    }
                    drop(frames);
                    let mut stdin = child.stdin.take();
                    let mut client_open = true;
                    // Forward output until both pipes close, feeding stdin from the client.
                    loop {
                        tokio::select! {
                            frame = outgoing.recv() => match frame {
                                Some(frame) => {
                                    if sink.send(Message::binary(frame)).await.is_err() {
                                        return;
                                    }
                                }
                                None => break,
                            },
                            message = incoming.next(), if client_open => match message {
                                Some(Ok(Message::Binary(data))) => match data.first() {
                                    Some(&STDIN) => {
                                        if let Some(pipe) = stdin.as_mut() {
                                            let _ = pipe.write_all(&data[1..]).await;
                                        }
                                    }
                                    Some(&CLOSE) if v5 && data.get(1) == Some(&STDIN) => {
                                        stdin = None;
                                    }
                                    _ => {}
                                },
                                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                                    client_open = false;
                                    stdin = None;
                                }
                                Some(Ok(_)) => {}
                            },
                        }
                    }
                    drop(stdin);
                    match child.wait().await {
                        Ok(exit) => exit_status(&params.command, exit),
                        Err(e) => start_failure(&params.command, &e),
                    }
                }
            }
        }
    };
    let mut frame = vec![STATUS];
    frame.extend_from_slice(status.to_string().as_bytes());
    let _ = sink.send(Message::binary(frame)).await;
    // A normal closure with its code: kubectl takes a close without one (1005) for an error.
    let close = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let _ = sink.send(Message::Close(Some(close))).await;
    let _ = sink.close().await;
}

async fn pump(mut from: impl AsyncRead + Unpin, channel: u8, to: mpsc::Sender<Vec<u8>>) {
    let mut buffer = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut frame = Vec::with_capacity(n + 1);
                frame.push(channel);
                frame.extend_from_slice(&buffer[..n]);
                if to.send(frame).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The status the API server sends when the command ran to its end.
fn exit_status(argv: &[String], exit: std::process::ExitStatus) -> Value {
    use std::os::unix::process::ExitStatusExt as _;
    let code = exit
        .code()
        .or_else(|| exit.signal().map(|s| 128 + s))
        .unwrap_or(1);
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({"metadata": {}, "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {code}", argv.join(" ")),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
}

/// The status when the runtime could not start the command, as containerd and runc word it.
fn start_failure(argv: &[String], error: &std::io::Error) -> Value {
    if let Some(status) = ExecRefusal::of(error) {
        return status.clone();
    }
    let program = argv.first().map(String::as_str).unwrap_or_default();
    let why = if error.kind() == std::io::ErrorKind::NotFound {
        format!("exec: \"{program}\": executable file not found in $PATH")
    } else {
        format!("exec: \"{program}\": {error}")
    };
    json!({"metadata": {}, "status": "Failure",
        "message": format!("OCI runtime exec failed: exec failed: unable to start container process: {why}: unknown"),
        "reason": "InternalError", "code": 500})
}
