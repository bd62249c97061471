//! The six actions, as `kubectl ACTION [FLAGS] -f MANIFEST -o json` does them for Argo, through
//! kube-rs: the object's resource type comes from discovery (its `apiVersion` and `kind`, or a
//! `KIND` given in the flags), its namespace from the manifest, else `-n`, else the client's.

use std::fmt;
use std::str::FromStr;

use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, PropagationPolicy, ValidationDirective,
};
use kube::core::TypeMeta;
use kube::discovery::{self, ApiCapabilities, Discovery, Scope};
use serde_json::Value;

use crate::error::{Error, status};
use crate::flags::{Cascade, Flags, Validation};

/// The field manager of every write (kubectl's would be `kubectl-create`, `kubectl-client-side-apply`...).
pub const FIELD_MANAGER: &str = "argoexec";

/// A resource template's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read the object.
    Get,
    /// Create it; an existing one is an error.
    Create,
    /// Server-side apply, forced, as field manager `argoexec`.
    Apply,
    /// Delete it (missing is fine, as Argo passes `--ignore-not-found`), and wait until it is gone.
    Delete,
    /// Replace it whole.
    Replace,
    /// Patch it (`mergeStrategy`).
    Patch,
}

impl Action {
    /// The action's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Create => "create",
            Self::Apply => "apply",
            Self::Delete => "delete",
            Self::Replace => "replace",
            Self::Patch => "patch",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An action that is not one of the six.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown resource action {0:?}: expected get, create, apply, delete, replace or patch")]
pub struct UnknownAction(pub String);

impl FromStr for Action {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "get" => Self::Get,
            "create" => Self::Create,
            "apply" => Self::Apply,
            "delete" => Self::Delete,
            "replace" => Self::Replace,
            "patch" => Self::Patch,
            other => return Err(UnknownAction(other.to_owned())),
        })
    }
}

/// The patch type of `patch` (`mergeStrategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MergeStrategy {
    /// Strategic merge patch (built-in kinds only), the default.
    #[default]
    Strategic,
    /// JSON merge patch (RFC 7386).
    Merge,
    /// JSON patch (RFC 6902): the manifest is the list of operations.
    Json,
}

impl FromStr for MergeStrategy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" | "strategic" => Ok(Self::Strategic),
            "merge" => Ok(Self::Merge),
            "json" => Ok(Self::Json),
            other => Err(Error::Usage {
                action: "patch",
                message: format!(
                    "unknown mergeStrategy {other:?}: expected strategic, merge or json"
                ),
            }),
        }
    }
}

/// What to do: the action, the manifest, the flags.
#[derive(Debug, Clone)]
pub struct Request {
    /// The action.
    pub action: Action,
    /// The manifest's one document, if any.
    pub manifest: Option<Value>,
    /// The template's flags.
    pub flags: Flags,
    /// `mergeStrategy` (patch).
    pub merge_strategy: MergeStrategy,
}

/// One object of one resource type.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its resource type.
    pub resource: ApiResource,
    /// Its namespace; `None` for a cluster-scoped type.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

impl Target {
    /// Argo's name for it: `KIND.GROUP/NAME` with the kind lower-cased (`configmap./cm-1`,
    /// `job.batch/pi`), as its executor logs it and passes it to `kubectl get`.
    pub fn full_name(&self) -> String {
        format!(
            "{}.{}/{}",
            self.resource.kind.to_lowercase(),
            self.resource.group,
            self.name
        )
    }

    /// The object's path on the API server (Argo's inferred `selfLink`).
    pub fn self_link(&self) -> String {
        let prefix = if self.resource.group.is_empty() {
            "api"
        } else {
            "apis"
        };
        match &self.namespace {
            Some(ns) => format!(
                "{prefix}/{}/namespaces/{ns}/{}/{}",
                self.resource.api_version, self.resource.plural, self.name
            ),
            None => format!(
                "{prefix}/{}/{}/{}",
                self.resource.api_version, self.resource.plural, self.name
            ),
        }
    }

    /// The API of its resource type in its namespace.
    pub fn api(&self, client: &kube::Client) -> Api<DynamicObject> {
        api(client, &self.resource, self.namespace.as_deref())
    }

    /// Fills in `apiVersion` and `kind` where the server left them out (list and watch items).
    pub fn typed(&self, mut object: DynamicObject) -> DynamicObject {
        if object.types.is_none() {
            object.types = Some(TypeMeta {
                api_version: self.resource.api_version.clone(),
                kind: self.resource.kind.clone(),
            });
        }
        object
    }
}

impl fmt::Display for Target {
    /// `configmap ns/name`, `namespace name`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.resource.kind.to_lowercase();
        match &self.namespace {
            Some(ns) => write!(f, "{kind} {ns}/{}", self.name),
            None => write!(f, "{kind} {}", self.name),
        }
    }
}

/// An object an action left, with what the server returned.
#[derive(Debug, Clone)]
pub struct Acted {
    /// The object.
    pub target: Target,
    /// The server's copy after the action.
    pub object: DynamicObject,
}

fn api(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

/// kubectl's short names of the usual kinds (kube-rs' discovery drops the server's).
const SHORT_NAMES: &[(&str, &str)] = &[
    ("po", "pods"),
    ("cm", "configmaps"),
    ("svc", "services"),
    ("deploy", "deployments"),
    ("sts", "statefulsets"),
    ("ds", "daemonsets"),
    ("rs", "replicasets"),
    ("ns", "namespaces"),
    ("pvc", "persistentvolumeclaims"),
    ("pv", "persistentvolumes"),
    ("no", "nodes"),
    ("ep", "endpoints"),
    ("ing", "ingresses"),
    ("cj", "cronjobs"),
    ("pdb", "poddisruptionbudgets"),
    ("netpol", "networkpolicies"),
    ("quota", "resourcequotas"),
    ("crd", "customresourcedefinitions"),
    ("wf", "workflows"),
    ("wftmpl", "workflowtemplates"),
    ("cwf", "cronworkflows"),
    ("cwft", "clusterworkflowtemplates"),
];

/// The Kubernetes API as resource templates use it.
#[derive(Clone)]
pub struct Resources {
    client: kube::Client,
    namespace: String,
    manager: String,
}

impl fmt::Debug for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resources")
            .field("namespace", &self.namespace)
            .field("manager", &self.manager)
            .finish_non_exhaustive()
    }
}

impl Resources {
    /// Acts through `client`; objects without a namespace go to `namespace` (the pod's).
    pub fn new(client: kube::Client, namespace: impl Into<String>) -> Self {
        Self {
            client,
            namespace: namespace.into(),
            manager: FIELD_MANAGER.to_owned(),
        }
    }

    /// The client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// Runs the action; the object it left, or `None` after a delete or a `get` of a missing
    /// object with `--ignore-not-found`.
    #[tracing::instrument(skip_all, fields(action = %request.action))]
    pub async fn run(&self, request: &Request) -> Result<Option<Acted>, Error> {
        let action = request.action;
        let flags = &request.flags;
        let manager = flags
            .field_manager
            .clone()
            .unwrap_or_else(|| self.manager.clone());
        if action != Action::Delete && (flags.selector.is_some() || flags.all) {
            return Err(usage(
                action,
                "--selector and --all select several objects: only delete acts on several",
            ));
        }
        if action == Action::Delete {
            self.delete(request).await?;
            return Ok(None);
        }
        let by_args = match action {
            Action::Patch => {
                request.merge_strategy == MergeStrategy::Json
                    || (!flags.args.is_empty()
                        && request
                            .manifest
                            .as_ref()
                            .and_then(|m| m.get("kind"))
                            .is_none())
            }
            Action::Get => request.manifest.is_none(),
            _ => false,
        };
        let target = if by_args {
            let (resource, namespaced, names) = self.resolve_args(action, flags).await?;
            let [name] = names.as_slice() else {
                return Err(usage(
                    action,
                    format!("needs one object name in the flags after the kind, got {names:?}"),
                ));
            };
            Target {
                resource,
                namespace: namespaced.then(|| {
                    flags
                        .namespace
                        .clone()
                        .unwrap_or_else(|| self.namespace.clone())
                }),
                name: name.clone(),
            }
        } else {
            let manifest = request
                .manifest
                .as_ref()
                .ok_or_else(|| usage(action, "Must provide at least one of flags or manifest."))?;
            self.resolve_manifest(action, manifest, flags).await?
        };
        let api = target.api(&self.client);
        let described = target.to_string();
        let fail = |verb: &'static str| {
            let described = described.clone();
            move |e: kube::Error| Error::Api {
                action: verb,
                target: described,
                source: Box::new(e),
            }
        };
        let mut patch_params = PatchParams {
            field_manager: Some(manager.clone()),
            field_validation: Some(validation(flags.validate)),
            ..PatchParams::default()
        };
        let post = PostParams {
            dry_run: false,
            field_manager: Some(manager.clone()),
        };
        let object = match action {
            Action::Get => {
                let got = match &flags.subresource {
                    Some(sub) => api.get_subresource(sub, &target.name).await,
                    None => api.get(&target.name).await,
                };
                match got {
                    Err(e) if flags.ignore_not_found && status(&e) == Some(404) => return Ok(None),
                    other => other.map_err(fail("get"))?,
                }
            }
            Action::Create => {
                let object = dynamic(action, request.manifest.as_ref())?;
                api.create(&post, &object).await.map_err(fail("create"))?
            }
            Action::Apply => {
                patch_params.force = true;
                let body = request
                    .manifest
                    .as_ref()
                    .ok_or_else(|| usage(action, "needs a manifest"))?;
                api.patch(&target.name, &patch_params, &Patch::Apply(body))
                    .await
                    .map_err(fail("apply"))?
            }
            Action::Replace => {
                let object = dynamic(action, request.manifest.as_ref())?;
                match &flags.subresource {
                    Some(sub) => {
                        api.replace_subresource(sub, &target.name, &post, &object)
                            .await
                    }
                    None => api.replace(&target.name, &post, &object).await,
                }
                .map_err(fail("replace"))?
            }
            Action::Patch => {
                let body = request
                    .manifest
                    .clone()
                    .ok_or_else(|| usage(action, "needs a patch in the manifest"))?;
                let patch = match request.merge_strategy {
                    MergeStrategy::Strategic => Patch::Strategic(body),
                    MergeStrategy::Merge => Patch::Merge(body),
                    MergeStrategy::Json => Patch::Json(
                        serde_json::from_value::<json_patch::Patch>(body).map_err(|e| {
                            usage(
                                action,
                                format!(
                                    "the manifest is not a JSON patch (a list of operations): {e}"
                                ),
                            )
                        })?,
                    ),
                };
                match &flags.subresource {
                    Some(sub) => {
                        api.patch_subresource(sub, &target.name, &patch_params, &patch)
                            .await
                    }
                    None => api.patch(&target.name, &patch_params, &patch).await,
                }
                .map_err(fail("patch"))?
            }
            Action::Delete => return Ok(None),
        };
        // A created object may have had only a generateName.
        let target = Target {
            name: object.metadata.name.clone().unwrap_or(target.name),
            ..target
        };
        let object = target.typed(object);
        tracing::info!(
            namespace = target.namespace.as_deref().unwrap_or(""),
            resource = %target.full_name(),
            self_link = %target.self_link(),
            "Resource"
        );
        Ok(Some(Acted { target, object }))
    }

    /// The object a manifest names.
    async fn resolve_manifest(
        &self,
        action: Action,
        manifest: &Value,
        flags: &Flags,
    ) -> Result<Target, Error> {
        let field = |path: &[&str]| -> Option<String> {
            let mut v = manifest;
            for p in path {
                v = v.get(p)?;
            }
            v.as_str().map(str::to_owned)
        };
        let (Some(api_version), Some(kind)) = (field(&["apiVersion"]), field(&["kind"])) else {
            return Err(usage(
                action,
                "Kind and name are both required but at least one of them is missing from the manifest (apiVersion and kind)",
            ));
        };
        let name = field(&["metadata", "name"]).unwrap_or_default();
        if name.is_empty()
            && !(action == Action::Create && field(&["metadata", "generateName"]).is_some())
        {
            return Err(usage(
                action,
                "Kind and name are both required but at least one of them is missing from the manifest (metadata.name)",
            ));
        }
        let gvk = match api_version.split_once('/') {
            Some((group, version)) => GroupVersionKind::gvk(group, version, &kind),
            None => GroupVersionKind::gvk("", &api_version, &kind),
        };
        let (resource, caps) = discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|e| match status(&e) {
                Some(404) => Error::UnknownKind {
                    action: action.as_str(),
                    what: format!("{kind} in {api_version}"),
                },
                _ => Error::Discovery {
                    action: action.as_str(),
                    what: format!("{kind} ({api_version})"),
                    source: Box::new(e),
                },
            })?;
        let namespace = match caps.scope {
            Scope::Cluster => None,
            Scope::Namespaced => {
                let from_manifest = field(&["metadata", "namespace"]).filter(|n| !n.is_empty());
                match (from_manifest, &flags.namespace) {
                    (Some(ours), Some(flag)) if &ours != flag => {
                        return Err(usage(
                            action,
                            format!(
                                "the namespace from the provided object {ours:?} does not match the namespace {flag:?}. You must pass '--namespace={ours}' to perform this operation."
                            ),
                        ));
                    }
                    (Some(ns), _) => Some(ns),
                    (None, Some(flag)) => Some(flag.clone()),
                    (None, None) => Some(self.namespace.clone()),
                }
            }
        };
        Ok(Target {
            resource,
            namespace,
            name,
        })
    }

    /// `KIND NAME...` or `KIND/NAME...` from the flags: the resource type, whether it is
    /// namespaced, and the names.
    async fn resolve_args(
        &self,
        action: Action,
        flags: &Flags,
    ) -> Result<(ApiResource, bool, Vec<String>), Error> {
        let Some(first) = flags.args.first() else {
            return Err(usage(
                action,
                "needs a manifest, or a kind and a name in the flags",
            ));
        };
        let (kind, mut names) = match first.split_once('/') {
            Some((kind, name)) => (kind.to_owned(), vec![name.to_owned()]),
            None => (first.clone(), Vec::new()),
        };
        for word in &flags.args[1..] {
            match word.split_once('/') {
                Some((k, name)) if k == kind => names.push(name.to_owned()),
                Some(_) => {
                    return Err(usage(
                        action,
                        format!("{word:?}: every KIND/NAME must be of one kind"),
                    ));
                }
                None => names.push(word.clone()),
            }
        }
        let (resource, caps) = self.find_kind(action, &kind).await?;
        Ok((resource, caps.scope == Scope::Namespaced, names))
    }

    /// The resource type kubectl would take `word` for: a plural, a kind, a short name, each
    /// optionally followed by `.GROUP`; core types first.
    async fn find_kind(
        &self,
        action: Action,
        word: &str,
    ) -> Result<(ApiResource, ApiCapabilities), Error> {
        let discovery = match Discovery::new(self.client.clone()).run_aggregated().await {
            Ok(d) => d,
            Err(_) => Discovery::new(self.client.clone())
                .run()
                .await
                .map_err(|e| Error::Discovery {
                    action: action.as_str(),
                    what: word.to_owned(),
                    source: Box::new(e),
                })?,
        };
        let lower = word.to_lowercase();
        let (name, group) = match lower.split_once('.') {
            Some((name, group)) => (name.to_owned(), Some(group.to_owned())),
            None => (lower.clone(), None),
        };
        let name = SHORT_NAMES
            .iter()
            .find(|(short, _)| *short == name)
            .map_or(name.clone(), |(_, plural)| (*plural).to_owned());
        let mut groups: Vec<_> = discovery.groups().collect();
        groups.sort_by_key(|g| !g.name().is_empty());
        for g in groups {
            if group.as_deref().is_some_and(|want| want != g.name()) {
                continue;
            }
            for (resource, caps) in g.recommended_resources() {
                if resource.plural == name || resource.kind.to_lowercase() == name {
                    return Ok((resource, caps));
                }
            }
        }
        Err(Error::UnknownKind {
            action: action.as_str(),
            what: format!("{word:?}"),
        })
    }

    /// Deletes the manifest's object, or those the flags name or select, then waits until they
    /// are gone (unless `--wait=false`). Missing objects are fine.
    async fn delete(&self, request: &Request) -> Result<(), Error> {
        let action = Action::Delete;
        let flags = &request.flags;
        let (resource, namespace, names) = match &request.manifest {
            Some(manifest) if flags.args.is_empty() => {
                let t = self.resolve_manifest(action, manifest, flags).await?;
                (t.resource, t.namespace, vec![t.name])
            }
            _ => {
                let (resource, namespaced, names) = self.resolve_args(action, flags).await?;
                let ns = namespaced.then(|| {
                    flags
                        .namespace
                        .clone()
                        .unwrap_or_else(|| self.namespace.clone())
                });
                (resource, ns, names)
            }
        };
        let api = api(&self.client, &resource, namespace.as_deref());
        let names = if names.is_empty() {
            if flags.selector.is_none() && !flags.all {
                return Err(usage(
                    action,
                    "needs object names, --selector or --all after the kind",
                ));
            }
            let mut params = ListParams::default();
            if let Some(selector) = &flags.selector {
                params = params.labels(selector);
            }
            let what = Target {
                resource: resource.clone(),
                namespace: namespace.clone(),
                name: flags.selector.clone().unwrap_or_else(|| "*".into()),
            };
            api.list_metadata(&params)
                .await
                .map_err(|e| Error::Api {
                    action: "list",
                    target: what.to_string(),
                    source: Box::new(e),
                })?
                .items
                .into_iter()
                .filter_map(|o| o.metadata.name)
                .collect()
        } else {
            names
        };
        let params = DeleteParams {
            grace_period_seconds: flags.grace_period,
            propagation_policy: flags.cascade.map(|c| match c {
                Cascade::Background => PropagationPolicy::Background,
                Cascade::Foreground => PropagationPolicy::Foreground,
                Cascade::Orphan => PropagationPolicy::Orphan,
            }),
            ..DeleteParams::default()
        };
        let mut deleted = Vec::new();
        for name in names {
            let target = Target {
                resource: resource.clone(),
                namespace: namespace.clone(),
                name,
            };
            match api.delete(&target.name, &params).await {
                Ok(either) => {
                    let uid = either.left().and_then(|o| o.metadata.uid);
                    tracing::info!(resource = %target.full_name(), "Deleted");
                    deleted.push((target, uid));
                }
                // Argo always passes --ignore-not-found to delete.
                Err(e) if status(&e) == Some(404) => {
                    tracing::info!(resource = %target.full_name(), "Not found: nothing to delete");
                }
                Err(e) => {
                    return Err(Error::Api {
                        action: "delete",
                        target: target.to_string(),
                        source: Box::new(e),
                    });
                }
            }
        }
        if flags.wait {
            for (target, uid) in deleted {
                crate::watch::wait_gone(&self.client, &target, uid, flags.timeout).await?;
            }
        }
        Ok(())
    }
}

fn validation(v: Validation) -> ValidationDirective {
    match v {
        Validation::Strict => ValidationDirective::Strict,
        Validation::Warn => ValidationDirective::Warn,
        Validation::Ignore => ValidationDirective::Ignore,
    }
}

fn usage(action: Action, message: impl Into<String>) -> Error {
    Error::Usage {
        action: action.as_str(),
        message: message.into(),
    }
}

/// The manifest as an object to send whole.
fn dynamic(action: Action, manifest: Option<&Value>) -> Result<DynamicObject, Error> {
    let manifest = manifest.ok_or_else(|| usage(action, "needs a manifest"))?;
    serde_json::from_value(manifest.clone()).map_err(|e| {
        usage(
            action,
            format!("the manifest is not a Kubernetes object: {e}"),
        )
    })
}
