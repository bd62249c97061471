//! The HTTP side: one fallback handler that parses Kubernetes REST paths (so new resources need
//! no routes), a middleware that logs requests and injects faults, watch and log streams.
//! `pods/exec` (a websocket upgrade) would be a route of its own before the fallback.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request as HttpRequest, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::store::{self, Change, Resource, Selector, WriteError};
use crate::{LogSource, Request, Shared};

type AppState = State<Arc<Shared>>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/api/v1/namespaces/{namespace}/pods/{pod}/exec",
            axum::routing::any(crate::exec::serve),
        )
        // The kubelet's API (what the kubelet runtime calls), beside the API server's.
        .route("/pods", axum::routing::get(kubelet_pods))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            axum::routing::get(kubelet_log),
        )
        .route(
            "/exec/{namespace}/{pod}/{container}",
            axum::routing::any(crate::exec::serve_kubelet),
        )
        .fallback(serve)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&shared),
            record_and_fault,
        ))
        .with_state(shared)
}

/// A parsed REST path: `/api/v1/...` or `/apis/<group>/<version>/...`.
#[derive(Debug, Default)]
struct Target {
    group: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        rest => (None, rest),
    };
    let (plural, name, subresource) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return None,
    };
    Some(Target {
        group: group.to_owned(),
        namespace,
        plural: plural.to_owned(),
        name: name.map(str::to_owned),
        subresource: subresource.map(str::to_owned),
    })
}

fn is_watch(query: &str) -> bool {
    query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1")
}

/// Whether `path` is one of the kubelet's endpoints, which the kubelet authorises as
/// `nodes/proxy` with the verb of the HTTP method.
fn is_kubelet(path: &str) -> bool {
    path == "/pods" || path.starts_with("/containerLogs/") || path.starts_with("/exec/")
}

fn verb(method: &Method, path: &str, query: &str) -> &'static str {
    if is_kubelet(path) {
        return match *method {
            Method::GET => "get",
            Method::POST => "create",
            _ => "other",
        };
    }
    let Some(target) = parse_path(path) else {
        return "discovery";
    };
    match *method {
        Method::GET if is_watch(query) => "watch",
        Method::GET if target.name.is_some() => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PATCH => "patch",
        Method::PUT => "update",
        Method::DELETE => "delete",
        _ => "other",
    }
}

/// Logs every request with the status answered; delays and fails as the test asked.
async fn record_and_fault(State(shared): AppState, request: HttpRequest, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let (latency, fault) = {
        let mut inner = shared.lock();
        let authorized = inner.token.as_deref().is_none_or(|token| {
            request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once(' '))
                .is_some_and(|(scheme, given)| {
                    scheme.eq_ignore_ascii_case("bearer") && given.trim() == token
                })
        });
        let fault = if !authorized {
            Some(401)
        } else {
            inner
                .faults
                .iter_mut()
                .find(|f| f.matches(method.as_str(), &path))
                .map(|f| {
                    if let Some(n) = f.times.as_mut() {
                        *n -= 1;
                    }
                    f.status
                })
        };
        (inner.latency, fault)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let response = match fault {
        Some(401) => status(401, "Unauthorized"),
        Some(code) => status(code, "injected by testkube"),
        None => next.run(request).await,
    };
    shared.lock().requests.push(Request {
        verb: verb(&method, &path, &query).to_owned(),
        method: method.to_string(),
        path,
        query,
        status: response.status().as_u16(),
    });
    response
}

/// A Kubernetes `Status` error answer.
pub(crate) fn status(code: u16, message: &str) -> Response {
    let reason = match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    };
    status_with_reason(code, reason, message)
}

fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn status_with_reason(code: u16, reason: &str, message: &str) -> Response {
    let code_status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code_status, json_body(&status_body(code, reason, message))).into_response()
}

fn json_body(value: &Value) -> ([(header::HeaderName, &'static str); 1], String) {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
}

fn ok(value: &Value) -> Response {
    json_body(value).into_response()
}

async fn serve(
    State(shared): AppState,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(doc) = discovery(uri.path()) {
        return ok(&doc);
    }
    if uri.path() == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
        && method == Method::POST
    {
        return access_review(&shared, &body);
    }
    let Some(target) = parse_path(uri.path()) else {
        return status(404, &format!("the server could not find {}", uri.path()));
    };
    let Some(resource) = store::resource(&target.group, &target.plural) else {
        return status(
            404,
            &format!(
                "the server could not find the requested resource ({})",
                target.plural
            ),
        );
    };
    let ns = target.namespace.clone().unwrap_or_default();
    let watch = is_watch(uri.query().unwrap_or_default());
    match (
        &method,
        target.name.as_deref(),
        target.subresource.as_deref(),
    ) {
        (&Method::GET, Some(name), Some("log")) if resource.plural == "pods" => {
            pod_log(&shared, &ns, name, &query)
        }
        (&Method::GET, None, None) if watch => watch_stream(&shared, resource, &target, &query),
        (&Method::GET, None, None) => list(&shared, resource, &target, &query),
        (&Method::GET, Some(name), None | Some("status")) => {
            match shared.lock().store.get(resource.plural, &ns, name) {
                Some(object) => ok(object),
                None => not_found(resource, name),
            }
        }
        (&Method::POST, None, None) => {
            let object = match serde_json::from_slice::<Value>(&body) {
                Ok(object) => object,
                Err(e) => return status(400, &format!("invalid JSON body: {e}")),
            };
            let name = object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let result = shared.lock().store.create(resource, &ns, object);
            write_result(&shared, resource, &name, result, StatusCode::CREATED)
        }
        (&Method::PUT, Some(name), None | Some("status")) => {
            let object = match serde_json::from_slice::<Value>(&body) {
                Ok(object) => object,
                Err(e) => return status(400, &format!("invalid JSON body: {e}")),
            };
            let result = shared.lock().store.replace(resource, &ns, name, object);
            write_result(&shared, resource, name, result, StatusCode::OK)
        }
        (&Method::PATCH, Some(name), None | Some("status")) => {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !matches!(
                content_type,
                "application/merge-patch+json" | "application/strategic-merge-patch+json"
            ) {
                return status(
                    415,
                    &format!(
                        "testkube supports merge and strategic-merge patches, not {content_type:?}"
                    ),
                );
            }
            let patch = match serde_json::from_slice::<Value>(&body) {
                Ok(patch) => patch,
                Err(e) => return status(400, &format!("invalid patch: {e}")),
            };
            let result = shared.lock().store.merge_patch(resource, &ns, name, &patch);
            write_result(&shared, resource, name, result, StatusCode::OK)
        }
        (&Method::DELETE, Some(name), None) => {
            let result = shared.lock().store.delete(resource.plural, &ns, name);
            write_result(&shared, resource, name, result, StatusCode::OK)
        }
        _ => status(405, &format!("{method} is not supported on {}", uri.path())),
    }
}

fn not_found(resource: Resource, name: &str) -> Response {
    let mut body = status_body(
        404,
        "NotFound",
        &format!(
            "{}.{} \"{name}\" not found",
            resource.plural, resource.group
        )
        .replace(". \"", " \""),
    );
    body["details"] = json!({"name": name, "group": resource.group, "kind": resource.plural});
    (StatusCode::NOT_FOUND, json_body(&body)).into_response()
}

fn write_result(
    shared: &Shared,
    resource: Resource,
    name: &str,
    result: Result<Change, WriteError>,
    success: StatusCode,
) -> Response {
    let what = if resource.group.is_empty() {
        resource.plural.to_owned()
    } else {
        format!("{}.{}", resource.plural, resource.group)
    };
    match result {
        Ok(change) => {
            let _ = shared.changes.send(change.clone());
            (success, json_body(&change.object)).into_response()
        }
        Err(WriteError::NotFound) => not_found(resource, name),
        Err(WriteError::AlreadyExists) => status_with_reason(
            409,
            "AlreadyExists",
            &format!("{what} \"{name}\" already exists"),
        ),
        Err(WriteError::Conflict(message)) => status_with_reason(
            409,
            "Conflict",
            &format!("Operation cannot be fulfilled on {what} \"{name}\": {message}"),
        ),
        Err(WriteError::Invalid(message)) => status_with_reason(
            422,
            "Invalid",
            &format!("{} \"{name}\" is invalid: {message}", resource.kind),
        ),
    }
}

/// The field and label selectors of a list or watch; an error says which term is unsupported.
fn selectors(query: &HashMap<String, String>) -> Result<(Selector, Selector), String> {
    let parse = |key: &str| Selector::parse(query.get(key).map_or("", String::as_str));
    Ok((parse("fieldSelector")?, parse("labelSelector")?))
}

fn list(
    shared: &Shared,
    resource: Resource,
    target: &Target,
    query: &HashMap<String, String>,
) -> Response {
    let (fields, labels) = match selectors(query) {
        Ok(s) => s,
        Err(message) => return status(400, &message),
    };
    let inner = shared.lock();
    let items: Vec<Value> = inner
        .store
        .list(resource.plural, target.namespace.as_deref())
        .into_iter()
        .filter(|o| fields.matches_fields(o) && labels.matches_labels(o))
        .collect();
    ok(&json!({
        "kind": format!("{}List", resource.kind),
        "apiVersion": resource.api_version(),
        "metadata": {"resourceVersion": inner.store.resource_version().to_string()},
        "items": items,
    }))
}

/// What a watch stream still has to do.
struct WatchState {
    replay: VecDeque<Value>,
    changes: tokio::sync::broadcast::Receiver<Change>,
    plural: &'static str,
    namespace: Option<String>,
    fields: Selector,
    labels: Selector,
    bookmarks: Option<tokio::time::Interval>,
    last_version: u64,
    kind: &'static str,
    api_version: String,
    until: tokio::time::Instant,
    done: bool,
}

impl WatchState {
    fn wants(&self, change: &Change) -> bool {
        change.plural == self.plural
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| ns == change.namespace)
            && self.fields.matches_fields(&change.object)
            && self.labels.matches_labels(&change.object)
    }

    fn event(change: &Change) -> Value {
        json!({"type": change.kind, "object": change.object})
    }

    async fn next_line(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        if let Some(event) = self.replay.pop_front() {
            return Some(line(&event));
        }
        loop {
            let bookmark = async {
                match self.bookmarks.as_mut() {
                    Some(interval) => interval.tick().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                change = self.changes.recv() => match change {
                    Ok(change) => {
                        if change.resource_version > self.last_version && self.wants(&change) {
                            self.last_version = change.resource_version;
                            return Some(line(&Self::event(&change)));
                        }
                    }
                    // Lagged or closed: end the stream; the client watches again from its version.
                    Err(_) => return None,
                },
                _ = bookmark => {
                    return Some(line(&json!({"type": "BOOKMARK", "object": {
                        "kind": self.kind, "apiVersion": self.api_version,
                        "metadata": {"resourceVersion": self.last_version.to_string()}}})));
                }
                () = tokio::time::sleep_until(self.until) => return None,
            }
        }
    }
}

fn line(value: &Value) -> Bytes {
    let mut text = value.to_string();
    text.push('\n');
    Bytes::from(text)
}

fn watch_stream(
    shared: &Shared,
    resource: Resource,
    target: &Target,
    query: &HashMap<String, String>,
) -> Response {
    let (fields, labels) = match selectors(query) {
        Ok(s) => s,
        Err(message) => return status(400, &message),
    };
    let since = query
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0")
        .map(|v| v.parse::<u64>());
    let since = match since {
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => return status(400, "resourceVersion: invalid value"),
        None => None,
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(1800);
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true");
    let mut inner = shared.lock();
    if inner.drop_watches > 0 {
        inner.drop_watches -= 1;
        // Headers, then a broken body: the connection is cut mid-stream.
        let broken = futures::stream::iter([Err::<Bytes, std::io::Error>(std::io::Error::other(
            "testkube dropped the watch",
        ))]);
        return (
            [(header::CONTENT_TYPE, "application/json")],
            Body::from_stream(broken),
        )
            .into_response();
    }
    if since.is_some() && inner.expire_watches > 0 {
        inner.expire_watches -= 1;
        let gone = json!({"type": "ERROR", "object": status_body(410, "Expired",
            "too old resource version: testkube expired it")});
        return (
            [(header::CONTENT_TYPE, "application/json")],
            line(&gone).to_vec(),
        )
            .into_response();
    }
    // Subscribe while holding the lock: no change can fall between the replay and the live feed.
    let changes = shared.changes.subscribe();
    let mut state = WatchState {
        replay: VecDeque::new(),
        changes,
        plural: resource.plural,
        namespace: target.namespace.clone(),
        fields,
        labels,
        bookmarks: None,
        last_version: inner.store.resource_version(),
        kind: resource.kind,
        api_version: resource.api_version(),
        until: tokio::time::Instant::now() + Duration::from_secs(timeout),
        done: false,
    };
    match since {
        Some(since) => {
            let replay: Vec<Value> = inner
                .store
                .history
                .iter()
                .filter(|c| c.resource_version > since && state.wants(c))
                .map(WatchState::event)
                .collect();
            state.replay.extend(replay);
        }
        None => {
            let current: Vec<Value> = inner
                .store
                .list(resource.plural, target.namespace.as_deref())
                .into_iter()
                .filter(|o| state.fields.matches_fields(o) && state.labels.matches_labels(o))
                .map(|o| json!({"type": "ADDED", "object": o}))
                .collect();
            state.replay.extend(current);
        }
    }
    if bookmarks {
        let every = inner.bookmark_interval;
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        state.bookmarks = Some(interval);
    }
    drop(inner);
    let stream = futures::stream::unfold(state, |mut state| async move {
        let line = state.next_line().await;
        if line.is_none() {
            state.done = true;
        }
        line.map(|l| (Ok::<_, std::io::Error>(l), state))
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

fn access_review(shared: &Shared, body: &[u8]) -> Response {
    let mut review: Value = match serde_json::from_slice(body) {
        Ok(review) => review,
        Err(e) => return status(400, &format!("invalid SelfSubjectAccessReview: {e}")),
    };
    let attrs = &review["spec"]["resourceAttributes"];
    let verb = attrs["verb"].as_str().unwrap_or_default().to_owned();
    let mut resource = attrs["resource"].as_str().unwrap_or_default().to_owned();
    if let Some(sub) = attrs["subresource"].as_str().filter(|s| !s.is_empty()) {
        resource = format!("{resource}/{sub}");
    }
    let denied = shared
        .lock()
        .denied
        .iter()
        .any(|(v, r)| (v == &verb || v == "*") && r == &resource);
    review["status"] = if denied {
        json!({"allowed": false, "reason": format!("testkube denies {verb} on {resource}")})
    } else {
        json!({"allowed": true})
    };
    (StatusCode::CREATED, json_body(&review)).into_response()
}

/// `pods/log`: the container's log source, whole or followed until the container terminates.
fn pod_log(shared: &Arc<Shared>, ns: &str, pod: &str, query: &HashMap<String, String>) -> Response {
    let inner = shared.lock();
    let Some(object) = inner.store.get("pods", ns, pod) else {
        return status(404, &format!("pods \"{pod}\" not found"));
    };
    let container = match query.get("container") {
        Some(c) => c.clone(),
        None => match object["spec"]["containers"].as_array().map(Vec::as_slice) {
            Some([only]) => only["name"].as_str().unwrap_or_default().to_owned(),
            _ => {
                return status(
                    400,
                    &format!("a container name must be specified for pod {pod}"),
                );
            }
        },
    };
    let Some(source) = inner
        .logs
        .get(&(ns.to_owned(), pod.to_owned(), container.clone()))
        .cloned()
    else {
        return status(
            400,
            &format!("container \"{container}\" in pod \"{pod}\" has no log"),
        );
    };
    drop(inner);
    let follow = query.get("follow").is_some_and(|v| v == "true");
    let timestamps = query.get("timestamps").is_some_and(|v| v == "true");
    let since = match query.get("sinceTime").map(|t| t.parse::<jiff::Timestamp>()) {
        Some(Ok(since)) => Some(since),
        Some(Err(e)) => return status(400, &format!("sinceTime: invalid RFC 3339 time: {e}")),
        None => None,
    };
    let changes = shared.changes.subscribe();
    let shared = Arc::clone(shared);
    let (ns, pod) = (ns.to_owned(), pod.to_owned());
    let stream = futures::stream::unfold(
        LogState {
            source,
            offset: 0,
            pending: Vec::new(),
            done: false,
            since,
            changes,
        },
        move |mut state| {
            let shared = Arc::clone(&shared);
            let (ns, pod, container) = (ns.clone(), pod.clone(), container.clone());
            async move {
                loop {
                    if state.done {
                        return None;
                    }
                    let terminated = container_terminated(&shared, &ns, &pod, &container);
                    let chunk = state.read().await;
                    match chunk {
                        Ok(bytes) if !bytes.is_empty() => {
                            let out = state.lines(bytes, timestamps);
                            if !out.is_empty() {
                                return Some((Ok::<_, std::io::Error>(Bytes::from(out)), state));
                            }
                        }
                        Ok(_) if !follow || terminated => {
                            state.done = true;
                            let rest = std::mem::take(&mut state.pending);
                            if rest.is_empty() || !state.visible() {
                                return None;
                            }
                            let out = stamp(&rest, timestamps);
                            return Some((Ok(Bytes::from(out)), state));
                        }
                        Ok(_) => state.idle().await,
                        Err(e) => return Some((Err(e), state)),
                    }
                }
            }
        },
    );
    (
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// The kubelet's `GET /pods`: every pod this server holds, as one PodList.
async fn kubelet_pods(State(shared): AppState) -> Response {
    let inner = shared.lock();
    let items = inner.store.list("pods", None);
    ok(&json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}))
}

/// The kubelet's `GET /containerLogs/{ns}/{pod}/{container}`: `pods/log` of that container.
async fn kubelet_log(
    State(shared): AppState,
    axum::extract::Path((namespace, pod, container)): axum::extract::Path<(String, String, String)>,
    Query(mut query): Query<HashMap<String, String>>,
) -> Response {
    query.insert("container".into(), container);
    pod_log(&shared, &namespace, &pod, &query)
}

fn container_terminated(shared: &Shared, ns: &str, pod: &str, container: &str) -> bool {
    shared
        .lock()
        .store
        .get("pods", ns, pod)
        .and_then(|p| p["status"]["containerStatuses"].as_array().cloned())
        .is_some_and(|list| {
            list.iter()
                .any(|c| c["name"] == container && c["state"].get("terminated").is_some())
        })
}

struct LogState {
    source: LogSource,
    offset: u64,
    pending: Vec<u8>,
    done: bool,
    /// Lines written before this time are left out (`sinceTime`).
    since: Option<jiff::Timestamp>,
    /// Wakes a followed log when the pod changes (its container may have terminated).
    changes: tokio::sync::broadcast::Receiver<Change>,
}

impl LogState {
    /// Whether lines written now are sent: a line's time is when this server read it.
    fn visible(&self) -> bool {
        self.since
            .is_none_or(|since| jiff::Timestamp::now() >= since)
    }

    /// Waits for more of a followed log: 50 ms, or less when the pod changes.
    async fn idle(&mut self) {
        let sleep = tokio::time::sleep(Duration::from_millis(50));
        tokio::pin!(sleep);
        tokio::select! {
            () = &mut sleep => {}
            received = self.changes.recv() => {
                if matches!(received, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    sleep.await;
                }
            }
        }
    }

    async fn read(&mut self) -> std::io::Result<Vec<u8>> {
        use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
        match &self.source {
            LogSource::Bytes(bytes) => {
                let start = usize::try_from(self.offset).unwrap_or(usize::MAX);
                let rest = bytes.get(start..).unwrap_or_default().to_vec();
                self.offset += rest.len() as u64;
                Ok(rest)
            }
            LogSource::File(path) => {
                let mut file = match tokio::fs::File::open(path).await {
                    Ok(file) => file,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => return Err(e),
                };
                file.seek(std::io::SeekFrom::Start(self.offset)).await?;
                let mut buf = Vec::new();
                file.take(1 << 20).read_to_end(&mut buf).await?;
                self.offset += buf.len() as u64;
                Ok(buf)
            }
        }
    }

    /// Whole lines of what was read so far (a partial last line waits for the rest).
    fn lines(&mut self, bytes: Vec<u8>, timestamps: bool) -> Vec<u8> {
        self.pending.extend(bytes);
        let Some(end) = self.pending.iter().rposition(|b| *b == b'\n') else {
            return Vec::new();
        };
        let whole: Vec<u8> = self.pending.drain(..=end).collect();
        if !self.visible() {
            return Vec::new();
        }
        stamp(&whole, timestamps)
    }
}

/// Prefixes each line with an RFC 3339 time, as kubelet does for `timestamps=true`.
fn stamp(text: &[u8], timestamps: bool) -> Vec<u8> {
    if !timestamps {
        return text.to_vec();
    }
    let now = jiff::Timestamp::now().strftime("%FT%T.%fZ").to_string();
    let mut out = Vec::with_capacity(text.len() + 40);
    for line in text.split_inclusive(|b| *b == b'\n') {
        out.extend_from_slice(now.as_bytes());
        out.push(b' ');
        out.extend_from_slice(line);
    }
    out
}

/// Discovery documents, enough for kubectl and kube-rs.
fn discovery(path: &str) -> Option<Value> {
    let resources = |group: &str| -> Vec<Value> {
        let mut list = Vec::new();
        for r in store::RESOURCES.iter().filter(|r| r.group == group) {
            list.push(
                json!({"name": r.plural, "singularName": r.kind.to_ascii_lowercase(),
                "namespaced": true, "kind": r.kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}),
            );
            if r.plural == "pods" {
                for (sub, verbs) in [
                    ("log", json!(["get"])),
                    ("status", json!(["get", "patch", "update"])),
                    ("exec", json!(["create", "get"])),
                ] {
                    list.push(json!({"name": format!("pods/{sub}"), "singularName": "",
                        "namespaced": true, "kind": if sub == "exec" { "PodExecOptions" } else { "Pod" },
                        "verbs": verbs}));
                }
            }
        }
        list
    };
    let group = |name: &str, version: &str| {
        let gv = format!("{name}/{version}");
        json!({"name": name, "versions": [{"groupVersion": gv, "version": version}],
               "preferredVersion": {"groupVersion": gv, "version": version}})
    };
    Some(match path.trim_end_matches('/') {
        "/version" => json!({"major": "1", "minor": "37", "gitVersion": "v1.37.0-testkube",
            "gitCommit": "", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"}),
        "/api" => json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        "/api/v1" => {
            json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": resources("")})
        }
        "/apis" => json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            group("argoproj.io", "v1alpha1"), group("authorization.k8s.io", "v1")]}),
        "/apis/argoproj.io/v1alpha1" => json!({"kind": "APIResourceList",
            "groupVersion": "argoproj.io/v1alpha1", "resources": resources("argoproj.io")}),
        "/apis/authorization.k8s.io/v1" => json!({"kind": "APIResourceList",
            "groupVersion": "authorization.k8s.io/v1", "resources": [{"name": "selfsubjectaccessreviews",
            "singularName": "", "namespaced": false, "kind": "SelfSubjectAccessReview", "verbs": ["create"]}]}),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_core_and_group_paths() {
        let t = parse_path("/api/v1/namespaces/ns/pods/p/log").unwrap();
        assert_eq!(
            (t.group.as_str(), t.namespace.as_deref(), t.plural.as_str()),
            ("", Some("ns"), "pods")
        );
        assert_eq!(
            (t.name.as_deref(), t.subresource.as_deref()),
            (Some("p"), Some("log"))
        );
        let t = parse_path("/apis/argoproj.io/v1alpha1/namespaces/ns/workflowtaskresults").unwrap();
        assert_eq!(t.group, "argoproj.io");
        assert!(t.name.is_none());
        assert_eq!(
            verb(&Method::GET, "/api/v1/namespaces/n/pods", "watch=true&x=1"),
            "watch"
        );
        assert_eq!(verb(&Method::GET, "/api", ""), "discovery");
    }
}
