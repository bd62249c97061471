//! The executor's own pod: one GET, then a watch that follows it; nothing polls.
//!
//! The watch asks for `watch` alone, as Argo's executor does: the Roles users have (Argo's own,
//! ours in `manifests/rbac/`) grant pods `get` and `watch`, not `list`. So not kube-rs's watcher,
//! which starts with a LIST (403 there, forever): a watch without a resourceVersion, which the
//! API server starts with the pod's current state (an ADDED event), resumed from the last
//! resourceVersion seen after a dropped stream, and started afresh after 410 Gone.

use futures::stream::BoxStream;
use futures::{Stream, StreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, WatchEvent, WatchParams};

use crate::client::Kube;
use crate::error::Error;
use crate::retry::Backoff;

/// Gets and follows one pod.
#[derive(Debug, Clone)]
pub struct PodWatch {
    api: Api<Pod>,
    name: String,
    target: String,
    backoff: Backoff,
}

impl PodWatch {
    /// Follows pod `name` of the executor's namespace.
    pub fn new(kube: &Kube, name: &str, backoff: Backoff) -> Self {
        Self {
            api: Api::namespaced(kube.client().clone(), kube.namespace()),
            name: name.to_owned(),
            target: format!("{}/{name}", kube.namespace()),
            backoff,
        }
    }

    /// The pod as it is now.
    pub async fn get(&self) -> Result<Pod, Error> {
        self.backoff
            .run("get", &format!("pod {}", self.target), false, || {
                self.api.get(&self.name)
            })
            .await
    }

    /// Every version of the pod from now on, starting with the current one. Stream errors are
    /// logged and the watch resumes (after a backoff); the stream never ends by itself.
    pub fn changes(&self) -> impl Stream<Item = Pod> + Send + 'static {
        let follow = Follow {
            api: self.api.clone(),
            params: WatchParams::default().fields(&format!("metadata.name={}", self.name)),
            target: self.target.clone(),
            backoff: self.backoff,
            version: None,
            events: None,
            pause: None,
        };
        futures::stream::unfold(follow, |mut follow| async move {
            let pod = follow.next().await;
            Some((pod, follow))
        })
    }

    /// Waits until `done` holds for the pod, and returns that version.
    pub async fn wait_until(&self, mut done: impl FnMut(&Pod) -> bool) -> Result<Pod, Error> {
        let mut changes = std::pin::pin!(self.changes());
        while let Some(pod) = changes.next().await {
            if done(&pod) {
                return Ok(pod);
            }
        }
        Err(Error::Watch {
            target: self.target.clone(),
            source: "the watch ended".into(),
        })
    }

    /// Waits until every container named is terminated.
    pub async fn wait_terminated(&self, containers: &[String]) -> Result<Pod, Error> {
        self.wait_until(|pod| all_terminated(pod, containers)).await
    }
}

/// One watch of the pod after another.
struct Follow {
    api: Api<Pod>,
    params: WatchParams,
    target: String,
    backoff: Backoff,
    /// The last resourceVersion seen; `None`: start from the current state.
    version: Option<String>,
    events: Option<BoxStream<'static, Result<WatchEvent<Pod>, kube::Error>>>,
    /// The pause before the next watch, after a failure.
    pause: Option<std::time::Duration>,
}

impl Follow {
    /// The next version of the pod, however many watches it takes.
    async fn next(&mut self) -> Pod {
        loop {
            let Some(events) = self.events.as_mut() else {
                if let Some(pause) = self.pause {
                    tokio::time::sleep(pause).await;
                }
                let version = self.version.as_deref().unwrap_or_default();
                match self.api.watch(&self.params, version).await {
                    Ok(events) => self.events = Some(events.boxed()),
                    Err(e) => self.failed(&e.to_string(), is_gone(&e)),
                }
                continue;
            };
            match events.next().await {
                Some(Ok(WatchEvent::Added(pod) | WatchEvent::Modified(pod))) => {
                    self.version.clone_from(&pod.metadata.resource_version);
                    self.pause = None;
                    return pod;
                }
                Some(Ok(WatchEvent::Deleted(pod))) => {
                    self.version.clone_from(&pod.metadata.resource_version);
                }
                Some(Ok(WatchEvent::Bookmark(bookmark))) => {
                    self.version = Some(bookmark.metadata.resource_version);
                }
                Some(Ok(WatchEvent::Error(status))) => {
                    self.failed(&status.to_string(), status.code == 410);
                }
                Some(Err(e)) => self.failed(&e.to_string(), is_gone(&e)),
                // The server ended the watch (its timeout): resume where it stopped.
                None => self.events = None,
            }
        }
    }

    /// Drops the watch and sets the pause before the next; `gone`: the version expired (410),
    /// start again from the current state.
    fn failed(&mut self, error: &str, gone: bool) {
        tracing::warn!(pod = %self.target, error, "Pod watch interrupted, resuming");
        self.events = None;
        if gone {
            self.version = None;
        }
        self.pause = Some(match self.pause {
            None => self.backoff.first,
            Some(pause) => pause.mul_f64(self.backoff.factor).min(self.backoff.cap),
        });
    }
}

fn is_gone(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 410)
}

/// Whether every container of `names` has a terminated state in the pod's status.
pub(crate) fn all_terminated(pod: &Pod, names: &[String]) -> bool {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    names.iter().all(|name| {
        statuses
            .iter()
            .any(|c| &c.name == name && c.state.as_ref().is_some_and(|s| s.terminated.is_some()))
    })
}
