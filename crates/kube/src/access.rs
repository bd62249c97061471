//! Asking the API server, before any work, whether the service account may report outputs and
//! make the calls its container runtime makes (SelfSubjectAccessReview), so a missing Role rule
//! fails wait at start-up, by name, instead of after main has run (or, for the pod watch, never).

use argoexec_config::RuntimeKind;
use argoexec_template::Protocol;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use crate::client::Kube;
use crate::error::Error;

/// One permission: a verb on a resource of an API group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// e.g. `create`.
    pub verb: &'static str,
    /// `""` for the core group.
    pub group: &'static str,
    /// e.g. `workflowtaskresults`, or with its subresource, `pods/exec`.
    pub resource: &'static str,
}

impl Access {
    /// `verb` on `resource` (`pods/exec` form) of `group`.
    pub const fn new(verb: &'static str, group: &'static str, resource: &'static str) -> Self {
        Self {
            verb,
            group,
            resource,
        }
    }

    fn resource_name(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_owned()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

const PATCH_PODS: Access = Access::new("patch", "", "pods");
const GET_PODS: Access = Access::new("get", "", "pods");
const WATCH_PODS: Access = Access::new("watch", "", "pods");
const GET_LOGS: Access = Access::new("get", "", "pods/log");
// kube-rs execs over a websocket, a GET; Kubernetes 1.35+ asks for `create` on top.
const GET_EXEC: Access = Access::new("get", "", "pods/exec");
const CREATE_EXEC: Access = Access::new("create", "", "pods/exec");
const CREATE_RESULTS: Access = Access::new("create", "argoproj.io", "workflowtaskresults");
const PATCH_RESULTS: Access = Access::new("patch", "argoproj.io", "workflowtaskresults");

/// What reporting needs, as alternatives: the service account must hold every permission of at
/// least one. v3 may fall back to the pod annotation, so it has two.
pub fn required_access(protocol: Protocol) -> Vec<Vec<Access>> {
    match protocol {
        Protocol::V2 => vec![vec![PATCH_PODS]],
        Protocol::V3 => vec![vec![CREATE_RESULTS, PATCH_RESULTS], vec![PATCH_PODS]],
        Protocol::V4 => vec![vec![CREATE_RESULTS, PATCH_RESULTS]],
    }
}

/// What a container runtime calls on the API server, every one needed: the k8sapi runtime's pod
/// watch, `pods/exec` and `pods/log`. Nothing for the others: the kubelet runtime's calls are
/// authorised by the kubelet, which may not ask the API server.
pub fn runtime_access(runtime: RuntimeKind) -> Vec<Access> {
    match runtime {
        RuntimeKind::K8sApi => vec![GET_PODS, WATCH_PODS, GET_EXEC, CREATE_EXEC, GET_LOGS],
        _ => Vec::new(),
    }
}

/// [`check_access_for`] with reporting alone.
pub async fn check_access(kube: &Kube, protocol: Protocol) -> Result<(), Error> {
    check_access_for(kube, protocol, &[]).await
}

/// Checks [`required_access`] and then every permission of `runtime` ([`runtime_access`]); on a
/// denial names the first missing permission (of the first alternative, for reporting). A server
/// that cannot answer (no SelfSubjectAccessReview, unreachable) is logged and let pass: the calls
/// themselves will say what is wrong.
pub async fn check_access_for(
    kube: &Kube,
    protocol: Protocol,
    runtime: &[Access],
) -> Result<(), Error> {
    let mut alternatives = required_access(protocol).into_iter();
    let mut first_denial = None;
    loop {
        let Some(alternative) = alternatives.next() else {
            return first_denial.map_or(Ok(()), Err);
        };
        match first_refused(kube, &alternative).await {
            Ok(None) => break,
            Ok(Some(denial)) => {
                first_denial.get_or_insert(denial);
            }
            Err(()) => return Ok(()),
        }
    }
    match first_refused(kube, runtime).await {
        Ok(Some(denial)) => Err(denial),
        Ok(None) | Err(()) => Ok(()),
    }
}

/// The first of `accesses` the server refuses; `Err` when it cannot answer (logged).
async fn first_refused(kube: &Kube, accesses: &[Access]) -> Result<Option<Error>, ()> {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(kube.client().clone());
    for access in accesses {
        let (resource, subresource) = match access.resource.split_once('/') {
            Some((resource, sub)) => (resource, Some(sub.to_owned())),
            None => (access.resource, None),
        };
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(kube.namespace().to_owned()),
                    verb: Some(access.verb.to_owned()),
                    group: Some(access.group.to_owned()),
                    resource: Some(resource.to_owned()),
                    subresource,
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let answer = match reviews.create(&PostParams::default(), &review).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot check the service account's permissions; going on");
                return Err(());
            }
        };
        let status = answer.status.unwrap_or_default();
        if !status.allowed {
            return Ok(Some(Error::Forbidden {
                verb: access.verb.to_owned(),
                resource: access.resource_name(),
                namespace: kube.namespace().to_owned(),
                reason: status.reason.filter(|r| !r.is_empty()),
            }));
        }
    }
    Ok(None)
}
