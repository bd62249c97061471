//! The executor's own pod: one GET, then a watch that follows it. kube-rs's watcher re-lists after
//! a dropped stream or an expired resourceVersion (410), with its default backoff; nothing polls.

use futures::{Stream, StreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};

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
        let config = watcher::Config::default().fields(&format!("metadata.name={}", self.name));
        let target = self.target.clone();
        watcher(self.api.clone(), config)
            .default_backoff()
            .applied_objects()
            .filter_map(move |event| {
                let pod = match event {
                    Ok(pod) => Some(pod),
                    Err(e) => {
                        tracing::warn!(pod = %target, error = %e, "Pod watch interrupted, resuming");
                        None
                    }
                };
                std::future::ready(pod)
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
