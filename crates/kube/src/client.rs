//! The client, configured as Argo's `argoexec` configures client-go: a kubeconfig (the flag,
//! `KUBECONFIG`, `~/.kube/config`) or the pod's service account, then kubectl-style flags.

use argoexec_config::KubeOverrides;
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};

use crate::error::Error;

/// A connected client and the namespace the executor works in.
#[derive(Clone)]
pub struct Kube {
    client: kube::Client,
    namespace: String,
}

impl std::fmt::Debug for Kube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kube")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Kube {
    /// A client built elsewhere, working in `namespace`.
    pub fn new(client: kube::Client, namespace: impl Into<String>) -> Self {
        Self {
            client,
            namespace: namespace.into(),
        }
    }

    /// The kube-rs client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The pod's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
}

/// Makes a configuration error about `what` from its cause.
pub(crate) fn config_error(
    what: impl Into<String>,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> Error {
    let what = what.into();
    move |source| Error::Config { what, source }
}

/// Builds the client from the kubeconfig or the service account, with the flags on top.
pub async fn connect(flags: &KubeOverrides) -> Result<Kube, Error> {
    let options = KubeConfigOptions {
        context: flags.context.clone(),
        cluster: flags.cluster.clone(),
        user: flags.user.clone(),
    };
    let named = options.context.is_some() || options.cluster.is_some() || options.user.is_some();
    let mut config = if let Some(path) = &flags.kubeconfig {
        let file = Kubeconfig::read_from(path)
            .map_err(|e| config_error(format!("read kubeconfig {}", path.display()))(e.into()))?;
        kube::Config::from_custom_kubeconfig(file, &options)
            .await
            .map_err(|e| config_error(format!("use kubeconfig {}", path.display()))(e.into()))?
    } else if named {
        kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| config_error("the default kubeconfig")(e.into()))?
    } else {
        match kube::Config::infer().await {
            Ok(config) => config,
            // `--server` alone is a complete configuration, as for kubectl.
            Err(_) if let Some(server) = &flags.server => kube::Config::new(parse_server(server)?),
            Err(e) => {
                return Err(config_error(
                    "no kubeconfig (--kubeconfig, KUBECONFIG, ~/.kube/config) and not in a pod (KUBERNETES_SERVICE_HOST)",
                )(e.into()));
            }
        }
    };
    apply_flags(&mut config, flags)?;
    // One retry policy, ours (crate::retry), so that it alone decides what a failure costs.
    config.default_retry = false;
    let namespace = flags
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config)
        .map_err(|e| config_error("build the Kubernetes client")(e.into()))?;
    Ok(Kube { client, namespace })
}

fn boxed<E: std::error::Error + Send + Sync + 'static>(
    e: E,
) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(e)
}

fn parse_server<T: std::str::FromStr>(server: &str) -> Result<T, Error>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    server
        .parse()
        .map_err(|e| config_error(format!("--server {server:?}: expected a URL"))(boxed(e)))
}

fn apply_flags(config: &mut kube::Config, flags: &KubeOverrides) -> Result<(), Error> {
    if let Some(server) = &flags.server {
        config.cluster_url = parse_server(server)?;
    }
    // Credentials from flags, through AuthInfo's own deserializer (it keeps them secret).
    let given: AuthInfo = serde_json::from_value(serde_json::json!({
        "token": flags.token,
        "username": flags.username,
        "password": flags.password,
        "client-certificate": flags.client_certificate,
        "client-key": flags.client_key,
        "as": flags.as_user,
        "as-groups": (!flags.as_group.is_empty()).then_some(&flags.as_group),
    }))
    .map_err(|e| config_error("credential flags")(e.into()))?;
    let auth = &mut config.auth_info;
    if given.token.is_some() {
        auth.token = given.token;
        auth.token_file = None;
    }
    if given.username.is_some() {
        auth.username = given.username;
    }
    if given.password.is_some() {
        auth.password = given.password;
    }
    if given.client_certificate.is_some() {
        auth.client_certificate = given.client_certificate;
        auth.client_certificate_data = None;
    }
    if given.client_key.is_some() {
        auth.client_key = given.client_key;
        auth.client_key_data = None;
    }
    if given.impersonate.is_some() {
        auth.impersonate = given.impersonate;
    }
    if given.impersonate_groups.is_some() {
        auth.impersonate_groups = given.impersonate_groups;
    }
    if let Some(ca) = &flags.certificate_authority {
        config.root_cert_file = Some(ca.clone());
        config.root_cert = None;
    }
    if flags.insecure_skip_tls_verify {
        config.accept_invalid_certs = true;
    }
    if let Some(name) = &flags.tls_server_name {
        config.tls_server_name = Some(name.clone());
    }
    if let Some(timeout) = flags.request_timeout.filter(|t| !t.is_zero()) {
        config.read_timeout = Some(timeout);
        config.write_timeout = Some(timeout);
    }
    Ok(())
}
