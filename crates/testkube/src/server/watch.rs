//! Watch streams: JSON lines replayed from a resourceVersion or from the current list, then live
//! changes, BOOKMARKs when asked, and the faults a test set (dropped streams, 410 Expired).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::Shared;
use crate::respond::{status, status_body};
use crate::store::{Change, Resource, Selector};

/// The field and label selectors of a list or watch; an error says which term is unsupported.
pub(super) fn selectors(query: &HashMap<String, String>) -> Result<(Selector, Selector), String> {
    let parse = |key: &str| Selector::parse(query.get(key).map_or("", String::as_str));
    Ok((parse("fieldSelector")?, parse("labelSelector")?))
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

pub(super) fn watch_stream(
    shared: &Shared,
    resource: Resource,
    namespace: Option<String>,
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
        namespace: namespace.clone(),
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
                .list(resource.plural, namespace.as_deref())
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
