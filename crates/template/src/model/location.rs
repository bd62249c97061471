//! Where an artifact lives: every storage kind Argo knows, and the location that holds one.
//!
//! Every field of a location kind is optional, even those Argo's schema marks required: an
//! artifact may name only part of a location (often just the key) and take the rest from the
//! template's `archiveLocation`.
//!
//! A little over 700 lines on purpose: one struct per storage kind, in the order of Argo's schema,
//! reads as one table; splitting it would scatter the kinds the `ArtifactLocation` enum lists.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{ConfigMapKeySelector, SecretKeySelector};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::K8s;

/// Where one artifact lives (inside an [`Artifact`](super::Artifact)), or the default location of
/// a template's outputs and logs (`archiveLocation`). At most one kind is expected to be set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactLocation {
    /// Whether the main containers' logs are saved as artifacts (`archiveLocation` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive_logs: Option<bool>,
    /// An S3 (or S3-compatible) object or prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Artifact>,
    /// A git repository checked out at a revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git: Option<GitArtifact>,
    /// A file served over HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpArtifact>,
    /// A file in Artifactory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifactory: Option<ArtifactoryArtifact>,
    /// A file in HDFS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hdfs: Option<HdfsArtifact>,
    /// Content given inline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<RawArtifact>,
    /// An Alibaba Cloud OSS object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oss: Option<OssArtifact>,
    /// A Google Cloud Storage object or prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gcs: Option<GcsArtifact>,
    /// An Azure Blob Storage blob or prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureArtifact>,
    /// A location handled by an artifact driver plugin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginArtifact>,
    /// Fields this version does not know, kept so they round-trip. Always empty inside an
    /// [`Artifact`](super::Artifact), whose unknown fields are kept in its own `extra`.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The storage kinds of an [`ArtifactLocation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LocationKind {
    /// `artifactory`
    Artifactory,
    /// `azure`
    Azure,
    /// `git`
    Git,
    /// `gcs`
    Gcs,
    /// `hdfs`
    Hdfs,
    /// `http`
    Http,
    /// `oss`
    Oss,
    /// `raw`
    Raw,
    /// `s3`
    S3,
    /// `plugin`
    Plugin,
}

impl LocationKind {
    /// The field name Argo gives this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Artifactory => "artifactory",
            Self::Azure => "azure",
            Self::Git => "git",
            Self::Gcs => "gcs",
            Self::Hdfs => "hdfs",
            Self::Http => "http",
            Self::Oss => "oss",
            Self::Raw => "raw",
            Self::S3 => "s3",
            Self::Plugin => "plugin",
        }
    }
}

impl fmt::Display for LocationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ArtifactLocation {
    /// The kind that is set, partial or not. When several are, the first in Argo's order
    /// (artifactory, azure, git, gcs, hdfs, http, oss, raw, s3, plugin), as Argo picks.
    pub fn kind(&self) -> Option<LocationKind> {
        let set = [
            (self.artifactory.is_some(), LocationKind::Artifactory),
            (self.azure.is_some(), LocationKind::Azure),
            (self.git.is_some(), LocationKind::Git),
            (self.gcs.is_some(), LocationKind::Gcs),
            (self.hdfs.is_some(), LocationKind::Hdfs),
            (self.http.is_some(), LocationKind::Http),
            (self.oss.is_some(), LocationKind::Oss),
            (self.raw.is_some(), LocationKind::Raw),
            (self.s3.is_some(), LocationKind::S3),
            (self.plugin.is_some(), LocationKind::Plugin),
        ];
        set.into_iter()
            .find_map(|(is_set, kind)| is_set.then_some(kind))
    }

    /// Whether the location is complete, as Argo's `HasLocation` decides: the kind set (see
    /// [`ArtifactLocation::kind`]) names everything needed to reach the data, not just a key.
    /// A partial location is completed from the template's `archiveLocation`.
    pub fn has_location(&self) -> bool {
        let Some(kind) = self.kind() else {
            return false;
        };
        match kind {
            LocationKind::Artifactory => self.artifactory.as_ref().is_some_and(|a| set(&a.url)),
            LocationKind::Azure => self
                .azure
                .as_ref()
                .is_some_and(|a| set(&a.endpoint) && set(&a.container) && set(&a.blob)),
            LocationKind::Git => self.git.as_ref().is_some_and(|g| set(&g.repo)),
            LocationKind::Gcs => self
                .gcs
                .as_ref()
                .is_some_and(|g| set(&g.bucket) && set(&g.key)),
            LocationKind::Hdfs => self
                .hdfs
                .as_ref()
                .is_some_and(|h| h.addresses.as_ref().is_some_and(|a| !a.is_empty())),
            LocationKind::Http => self.http.as_ref().is_some_and(|h| set(&h.url)),
            LocationKind::Oss => self
                .oss
                .as_ref()
                .is_some_and(|o| set(&o.endpoint) && set(&o.bucket) && set(&o.key)),
            LocationKind::Raw => true,
            LocationKind::S3 => self
                .s3
                .as_ref()
                .is_some_and(|s| set(&s.endpoint) && set(&s.bucket) && set(&s.key)),
            LocationKind::Plugin => self
                .plugin
                .as_ref()
                .is_some_and(|p| set(&p.name) && set(&p.key)),
        }
    }

    /// The key (object name, blob, path) of the kind set, for the kinds that have one as a field:
    /// s3, gcs, oss, azure (`blob`), hdfs (`path`) and plugin. `None` for the others (git, raw,
    /// and http/artifactory, whose key is the path of their URL) and when no kind is set.
    pub fn key(&self) -> Option<&str> {
        match self.kind()? {
            LocationKind::S3 => self.s3.as_ref()?.key.as_deref(),
            LocationKind::Gcs => self.gcs.as_ref()?.key.as_deref(),
            LocationKind::Oss => self.oss.as_ref()?.key.as_deref(),
            LocationKind::Azure => self.azure.as_ref()?.blob.as_deref(),
            LocationKind::Hdfs => self.hdfs.as_ref()?.path.as_deref(),
            LocationKind::Plugin => self.plugin.as_ref()?.key.as_deref(),
            LocationKind::Artifactory
            | LocationKind::Git
            | LocationKind::Http
            | LocationKind::Raw => None,
        }
    }

    /// Sets the key of the kind set (see [`ArtifactLocation::key`]).
    pub fn set_key(&mut self, key: impl Into<String>) -> Result<(), KeyUnsupported> {
        let key = Some(key.into());
        match self.kind() {
            Some(LocationKind::S3) => self.s3.get_or_insert_default().key = key,
            Some(LocationKind::Gcs) => self.gcs.get_or_insert_default().key = key,
            Some(LocationKind::Oss) => self.oss.get_or_insert_default().key = key,
            Some(LocationKind::Azure) => self.azure.get_or_insert_default().blob = key,
            Some(LocationKind::Hdfs) => self.hdfs.get_or_insert_default().path = key,
            Some(LocationKind::Plugin) => self.plugin.get_or_insert_default().key = key,
            other => return Err(KeyUnsupported { kind: other }),
        }
        Ok(())
    }
}

/// [`ArtifactLocation::set_key`] on a location whose kind has no key field, or has no kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyUnsupported {
    /// The kind set, `None` when no kind is.
    pub kind: Option<LocationKind>,
}

impl fmt::Display for KeyUnsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Some(kind) => write!(f, "{kind} has no key to set"),
            None => f.write_str("an artifact location without a kind has no key to set"),
        }
    }
}

impl std::error::Error for KeyUnsupported {}

/// Whether an optional string is set and not empty (Go's `!= ""`).
fn set(value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|s| !s.is_empty())
}

/// An object (or a prefix, for a directory) in S3 or an S3-compatible store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Artifact {
    /// Host (and port) of the service, without a scheme.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The bucket's region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Connect over plain HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    /// The secret holding the access key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_secret: Option<K8s<SecretKeySelector>>,
    /// The secret holding the secret key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key_secret: Option<K8s<SecretKeySelector>>,
    /// The secret holding a session token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_token_secret: Option<K8s<SecretKeySelector>>,
    /// The ARN of a role to assume.
    #[serde(rename = "roleARN", skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Take credentials from the SDK's default chain.
    #[serde(rename = "useSDKCreds", skip_serializing_if = "Option::is_none")]
    pub use_sdk_creds: Option<bool>,
    /// Create the bucket when it does not exist (outputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_bucket_if_not_present: Option<CreateS3BucketOptions>,
    /// Server-side encryption.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_options: Option<S3EncryptionOptions>,
    /// The secret holding a CA certificate for the endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<K8s<SecretKeySelector>>,
    /// How buckets are addressed: `path`, `virtual-hosted`, or unset/empty to detect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addressing_style: Option<String>,
    /// The object key (or prefix).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// How to create a missing S3 bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateS3BucketOptions {
    /// Create the bucket with object locking enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_locking: Option<bool>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Server-side encryption of S3 objects: SSE-S3, SSE-KMS or SSE-C.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3EncryptionOptions {
    /// The KMS key id (SSE-KMS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// The KMS encryption context, a JSON object as text (SSE-KMS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_encryption_context: Option<String>,
    /// Encrypt with SSE-S3 when no KMS key is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_encryption: Option<bool>,
    /// The secret holding the customer key (SSE-C).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_side_customer_key_secret: Option<K8s<SecretKeySelector>>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// An object (or a prefix) in Google Cloud Storage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GcsArtifact {
    /// The bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The secret holding a service account key; default credentials when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_key_secret: Option<K8s<SecretKeySelector>>,
    /// The object key (or prefix).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A blob (or a prefix) in Azure Blob Storage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AzureArtifact {
    /// The storage account's service URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The secret holding the account key, or a SAS token when it reads as a query string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_key_secret: Option<K8s<SecretKeySelector>>,
    /// Take credentials from the SDK's default chain.
    #[serde(rename = "useSDKCreds", skip_serializing_if = "Option::is_none")]
    pub use_sdk_creds: Option<bool>,
    /// The blob name (or prefix): the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// An object in Alibaba Cloud OSS.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OssArtifact {
    /// The service endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The secret holding the access key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_secret: Option<K8s<SecretKeySelector>>,
    /// The secret holding the secret key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key_secret: Option<K8s<SecretKeySelector>>,
    /// Create the bucket when it does not exist (outputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_bucket_if_not_present: Option<bool>,
    /// A security token (STS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_token: Option<String>,
    /// The lifecycle rule set on a bucket it creates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle_rule: Option<OssLifecycleRule>,
    /// Take credentials from the SDK's default chain.
    #[serde(rename = "useSDKCreds", skip_serializing_if = "Option::is_none")]
    pub use_sdk_creds: Option<bool>,
    /// The object key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// When OSS moves objects to infrequent access and deletes them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OssLifecycleRule {
    /// Days until objects move to infrequent access.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark_infrequent_access_after_days: Option<i32>,
    /// Days until objects are deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark_deletion_after_days: Option<i32>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A file in HDFS, with optional Kerberos authentication.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HdfsArtifact {
    /// Addresses of the name nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<String>>,
    /// The user to act as (ignored with Kerberos).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hdfs_user: Option<String>,
    /// The secret holding a Kerberos credential cache.
    #[serde(rename = "krbCCacheSecret", skip_serializing_if = "Option::is_none")]
    pub krb_ccache_secret: Option<K8s<SecretKeySelector>>,
    /// The secret holding a Kerberos keytab.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub krb_keytab_secret: Option<K8s<SecretKeySelector>>,
    /// The Kerberos user name (with a keytab).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub krb_username: Option<String>,
    /// The Kerberos realm (with a keytab).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub krb_realm: Option<String>,
    /// The configmap holding `krb5.conf`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub krb_config_config_map: Option<K8s<ConfigMapKeySelector>>,
    /// The Kerberos principal of the HDFS service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub krb_service_principal_name: Option<String>,
    /// The data transfer protection level (`authentication`, `integrity`, `privacy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_transfer_protection: Option<String>,
    /// The file's path: the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Overwrite an existing file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A file served over HTTP(S): fetched with GET, saved with PUT.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpArtifact {
    /// The file's URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Headers sent with each request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<Header>>,
    /// How to authenticate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<HttpAuth>,
    /// Buffer an upload in a temporary file so that a 307/308 redirect (webHDFS) can be
    /// followed by sending the body again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub save_stream_via_file: Option<bool>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A request header of an [`HttpArtifact`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    /// The header's name.
    pub name: String,
    /// The header's value.
    pub value: String,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// How an [`HttpArtifact`] authenticates: one of basic auth, OAuth2 client credentials or a
/// client certificate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpAuth {
    /// A client certificate (mutual TLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<ClientCertAuth>,
    /// OAuth2 client credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2Auth>,
    /// HTTP basic auth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// HTTP basic auth from secrets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// The secret holding the user name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username_secret: Option<K8s<SecretKeySelector>>,
    /// The secret holding the password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<K8s<SecretKeySelector>>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A TLS client certificate from secrets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientCertAuth {
    /// The secret holding the PEM certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert_secret: Option<K8s<SecretKeySelector>>,
    /// The secret holding the PEM private key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key_secret: Option<K8s<SecretKeySelector>>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// OAuth2 client-credentials flow, every input from secrets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2Auth {
    /// The secret holding the client id.
    #[serde(rename = "clientIDSecret", skip_serializing_if = "Option::is_none")]
    pub client_id_secret: Option<K8s<SecretKeySelector>>,
    /// The secret holding the client secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_secret: Option<K8s<SecretKeySelector>>,
    /// The secret holding the token URL.
    #[serde(rename = "tokenURLSecret", skip_serializing_if = "Option::is_none")]
    pub token_url_secret: Option<K8s<SecretKeySelector>>,
    /// Scopes requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Extra parameters sent to the token endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_params: Option<Vec<OAuth2EndpointParam>>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One extra parameter of an OAuth2 token request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2EndpointParam {
    /// The parameter's name.
    pub key: String,
    /// The parameter's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A file in Artifactory: fetched with GET, saved with PUT.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactoryArtifact {
    /// The file's URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The secret holding the user name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username_secret: Option<K8s<SecretKeySelector>>,
    /// The secret holding the password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<K8s<SecretKeySelector>>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A git repository, checked out into the artifact's path (inputs only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitArtifact {
    /// The repository's URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// The commit, tag or branch to check out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Clone only this many commits from the tip (shallow clone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth: Option<u64>,
    /// Refs to fetch before checking out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetch: Option<Vec<String>>,
    /// The secret holding the user name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username_secret: Option<K8s<SecretKeySelector>>,
    /// The secret holding the password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<K8s<SecretKeySelector>>,
    /// The secret holding an SSH private key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_private_key_secret: Option<K8s<SecretKeySelector>>,
    /// Skip SSH host key checking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure_ignore_host_key: Option<bool>,
    /// Do not check out submodules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_submodules: Option<bool>,
    /// Fetch only `branch`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub single_branch: Option<bool>,
    /// The branch to fetch with `singleBranch`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Skip TLS verification of an HTTPS repository.
    #[serde(rename = "insecureSkipTLS", skip_serializing_if = "Option::is_none")]
    pub insecure_skip_tls: Option<bool>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Content given inline, written to the artifact's path (inputs only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawArtifact {
    /// The file's content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A location served by an artifact driver plugin (a sidecar speaking Argo's plugin protocol).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginArtifact {
    /// The plugin's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The plugin's configuration, as text (YAML or JSON) the plugin parses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration: Option<String>,
    /// Timeout of the connection to the plugin, overriding the plugin's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_timeout_seconds: Option<i64>,
    /// The key the plugin stores the artifact under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn location(value: Value) -> ArtifactLocation {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn kind_and_completeness() {
        assert_eq!(location(json!({})).kind(), None);
        assert!(!location(json!({})).has_location());

        let partial = location(json!({"s3": {"key": "a/b.tgz"}}));
        assert_eq!(partial.kind(), Some(LocationKind::S3));
        assert!(!partial.has_location());
        assert_eq!(partial.key(), Some("a/b.tgz"));

        let full = location(json!({"s3": {"endpoint": "e", "bucket": "b", "key": "k"}}));
        assert!(full.has_location());
        assert!(location(json!({"raw": {"data": "x"}})).has_location());
        assert!(location(json!({"git": {"repo": "https://x"}})).has_location());
        assert!(!location(json!({"hdfs": {"addresses": [], "path": "/p"}})).has_location());
        assert!(
            location(json!({"azure": {"endpoint": "e", "container": "c", "blob": "b"}}))
                .has_location()
        );
    }

    #[test]
    fn set_key_follows_the_kind() {
        let mut azure = location(json!({"azure": {"container": "c"}}));
        azure.set_key("dir/file").unwrap();
        assert_eq!(
            azure.azure.as_ref().unwrap().blob.as_deref(),
            Some("dir/file")
        );
        assert_eq!(azure.key(), Some("dir/file"));

        let mut git = location(json!({"git": {"repo": "r"}}));
        let err = git.set_key("k").unwrap_err();
        assert_eq!(err.kind, Some(LocationKind::Git));
        assert_eq!(err.to_string(), "git has no key to set");
        let err = ArtifactLocation::default().set_key("k").unwrap_err();
        assert_eq!(
            err.to_string(),
            "an artifact location without a kind has no key to set"
        );
    }
}
