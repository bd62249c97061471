//! What the API suite (`tests/api.rs`) builds on: the namespace, a client of the fake server.

use argoexec_config::KubeOverrides;
use argoexec_kube::{Kube, connect};
use argoexec_testkube::TestKube;

/// The pod's namespace in every suite.
pub(crate) const NS: &str = "argo";

/// A client of `server` as wait builds one from flags: `--server`, `--namespace`, `--token`.
pub(crate) async fn client(server: &TestKube) -> Kube {
    connect(&KubeOverrides {
        server: Some(server.url().to_owned()),
        namespace: Some(NS.into()),
        token: Some("t".into()),
        ..KubeOverrides::default()
    })
    .await
    .unwrap()
}
