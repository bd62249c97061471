//! `pods/log`: a container's log source, whole or followed until the container terminates, with
//! kubelet's timestamps and `sinceTime`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::respond::status;
use crate::store::Change;
use crate::{LogSource, Shared};

/// `pods/log`: the container's log source, whole or followed until the container terminates.
pub(super) fn pod_log(
    shared: &Arc<Shared>,
    ns: &str,
    pod: &str,
    query: &HashMap<String, String>,
) -> Response {
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
    // An empty sinceTime is no sinceTime, as the API server reads it (Argo 3.3 sends `sinceTime=`).
    let since_time = query.get("sinceTime").filter(|t| !t.is_empty());
    let since = match since_time.map(|t| t.parse::<jiff::Timestamp>()) {
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
