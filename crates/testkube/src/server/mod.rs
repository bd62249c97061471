//! The HTTP side: one fallback handler that parses Kubernetes REST paths (so new resources need
//! no routes), a middleware that logs requests and injects faults, watch and log streams.
//! `pods/exec` (a websocket upgrade, `exec.rs`) is a route of its own, before the fallback.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request as HttpRequest, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::store::{self, Change, Resource, WriteError};
use crate::{Request, Shared};

mod logs;
mod watch;

use crate::respond::{json_body, not_found, ok, status, status_with_reason};
use logs::pod_log;
use watch::{selectors, watch_stream};

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
        (&Method::GET, None, None) if watch => {
            watch_stream(&shared, resource, target.namespace.clone(), &query)
        }
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
