//! A pod's containers through the API server: run a command in one (`pods/exec`), read one's log
//! (`pods/log`). With [`PodWatch`](crate::PodWatch), what the `k8sapi` container runtime of
//! `argoexec-runtime` is built on.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, AttachedProcess, LogParams};
use tokio_util::compat::FuturesAsyncReadCompatExt as _;

use crate::client::Kube;
use crate::error::Error;

/// A container's log as it streams in.
pub type ContainerLog = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

impl Kube {
    /// Runs `argv` in `container` of pod `pod` of the namespace (`pods/exec`), its stdout and
    /// stderr attached, no stdin. One attempt: a command is never run again behind the caller's
    /// back.
    pub async fn exec(
        &self,
        pod: &str,
        container: &str,
        argv: Vec<String>,
    ) -> Result<AttachedProcess, Error> {
        let params = AttachParams::default()
            .container(container)
            .stdout(true)
            .stderr(true);
        let target = format!(
            "{argv:?} in container {container:?} of pod {}/{pod}",
            self.namespace()
        );
        self.pods()
            .exec(pod, argv, &params)
            .await
            .map_err(|source| Error::Api {
                action: "exec",
                target,
                attempts: 1,
                source,
            })
    }

    /// The whole log of `container` of pod `pod` of the namespace (`pods/log`): stdout and
    /// stderr interleaved, the only form the API serves.
    pub async fn container_log(&self, pod: &str, container: &str) -> Result<ContainerLog, Error> {
        let params = LogParams {
            container: Some(container.to_owned()),
            ..LogParams::default()
        };
        let log = self
            .pods()
            .log_stream(pod, &params)
            .await
            .map_err(|source| Error::Api {
                action: "get the log of",
                target: format!("container {container:?} of pod {}/{pod}", self.namespace()),
                attempts: 1,
                source,
            })?;
        Ok(Box::new(log.compat()))
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client().clone(), self.namespace())
    }
}
