//! Asking the API server, before any work, whether the service account may report outputs
//! (SelfSubjectAccessReview), so a missing Role rule fails wait at start-up, by name, instead of
//! after main has run.

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
    /// e.g. `workflowtaskresults`.
    pub resource: &'static str,
}

impl Access {
    const fn new(verb: &'static str, group: &'static str, resource: &'static str) -> Self {
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

/// Checks [`required_access`]; on a denial names the first missing permission of the first
/// alternative. A server that cannot answer (no SelfSubjectAccessReview, unreachable) is logged and
/// let pass: the report itself will say what is wrong.
pub async fn check_access(kube: &Kube, protocol: Protocol) -> Result<(), Error> {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(kube.client().clone());
    let mut first_denial = None;
    'alternatives: for alternative in required_access(protocol) {
        for access in alternative {
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        namespace: Some(kube.namespace().to_owned()),
                        verb: Some(access.verb.to_owned()),
                        group: Some(access.group.to_owned()),
                        resource: Some(access.resource.to_owned()),
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
                    return Ok(());
                }
            };
            let status = answer.status.unwrap_or_default();
            if !status.allowed {
                first_denial.get_or_insert(Error::Forbidden {
                    verb: access.verb.to_owned(),
                    resource: access.resource_name(),
                    namespace: kube.namespace().to_owned(),
                    reason: status.reason.filter(|r| !r.is_empty()),
                });
                continue 'alternatives;
            }
        }
        return Ok(());
    }
    match first_denial {
        Some(denial) => Err(denial),
        None => Ok(()),
    }
}
