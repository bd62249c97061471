//! Every environment variable the executor reads, named once.

// Each variable is a one-line doc comment, its name and its default; the macro makes the constant
// and the row of the table from the same words, so the help text cannot drift from the code.
macro_rules! vars {
    ($( #[doc = $doc:literal] $name:ident = $default:literal; )*) => {
        $( #[doc = $doc] pub const $name: &str = stringify!($name); )*

        /// Every variable with its meaning and its default (empty when it has none), for help text.
        pub const TABLE: &[(&str, &str, &str)] = &[
            $( (stringify!($name), $doc.trim_ascii(), $default), )*
        ];
    };
}

vars! {
    /// Name of this pod; required by init, wait, resource and data.
    ARGO_POD_NAME = "";
    /// UID of this pod, owner of the v3 task result.
    ARGO_POD_UID = "";
    /// Node ID of the step, the name of its task result.
    ARGO_NODE_ID = "";
    /// Name of the workflow.
    ARGO_WORKFLOW_NAME = "";
    /// UID of the workflow (set by v4 controllers only), owner of the v4 task result.
    ARGO_WORKFLOW_UID = "";
    /// Controller instance ID, copied to the task result's label.
    ARGO_INSTANCE_ID = "";
    /// Name of the container this process runs in.
    ARGO_CONTAINER_NAME = "";
    /// Container runtime of v2/v3 pods: docker, k8sapi, kubelet, pns or emissary.
    ARGO_CONTAINER_RUNTIME_EXECUTOR = "docker (v2), emissary (v3, v4)";
    /// "true": capture main's stdout as outputs.result.
    ARGO_INCLUDE_SCRIPT_OUTPUT = "false";
    /// Step deadline, RFC 3339; Go's zero time means none.
    ARGO_DEADLINE = "none";
    /// Seconds between SIGTERM and SIGKILL.
    ARGO_TERMINATION_GRACE_PERIOD_SECONDS = "30 (v2: 10)";
    /// Template JSON, or "offloaded" to read /argo/config/ARGO_TEMPLATE.
    ARGO_TEMPLATE = "";
    /// Progress file whose last line N/M is reported.
    ARGO_PROGRESS_FILE = "/var/run/argo/progress";
    /// How often progress is patched (Go duration; 0 disables progress).
    ARGO_PROGRESS_PATCH_TICK_DURATION = "1m";
    /// How often the progress file is read (Go duration; 0 disables progress).
    ARGO_PROGRESS_FILE_TICK_DURATION = "3s";
    /// Kubelet host for the kubelet runtime.
    ARGO_KUBELET_HOST = "";
    /// Kubelet port for the kubelet runtime.
    ARGO_KUBELET_PORT = "10250";
    /// "true": do not verify the kubelet's certificate.
    ARGO_KUBELET_INSECURE = "false";
    /// Set: emissary waits for /var/run/argo/ctr/<c>/before before starting the command.
    ARGO_DEBUG_PAUSE_BEFORE = "";
    /// Set: emissary waits for /var/run/argo/ctr/<c>/after after the command exits.
    ARGO_DEBUG_PAUSE_AFTER = "";
    /// File holding the container's arguments when they were too long for exec (v4).
    ARGO_CONTAINER_ARGS_FILE = "";
    /// How often a resource template re-checks its conditions when it may not watch the object (Go duration).
    RESOURCE_STATE_CHECK_INTERVAL = "5s";
    /// Storage retries: number of attempts.
    EXECUTOR_RETRY_BACKOFF_STEPS = "5";
    /// Storage retries: first backoff (Go duration).
    EXECUTOR_RETRY_BACKOFF_DURATION = "1s";
    /// Storage retries: backoff growth factor.
    EXECUTOR_RETRY_BACKOFF_FACTOR = "1.6";
    /// Storage retries: jitter as a fraction of the backoff.
    EXECUTOR_RETRY_BACKOFF_JITTER = "0.5";
    /// Regex: errors whose message matches count as transient.
    TRANSIENT_ERROR_PATTERN = "";
    /// Parallel part uploads per S3 object.
    ARTIFACT_S3_UPLOAD_THREADS = "4";
    /// S3 multipart part size in MiB (default: grows with the object).
    ARTIFACT_S3_UPLOAD_PART_SIZE_MIB = "";
    /// Directory used as the artifact repository when the template has none (ours; set by `run`).
    ARGOEXEC_LOCAL_REPOSITORY = "";
    /// File the outputs are reported to as JSON, instead of the Kubernetes API (ours; set by `run`).
    ARGOEXEC_REPORT_FILE = "";
    /// PNS: directory of <container>/{stdout,combined,exitcode}, as `run` writes them (ours).
    ARGOEXEC_POD_STATE_DIR = "";
    /// Input archives: most entries one may hold (ours, not Argo's).
    ARGOEXEC_UNPACK_MAX_ENTRIES = "1000000";
    /// Input archives: most bytes one may unpack to, in MiB (ours, not Argo's).
    ARGOEXEC_UNPACK_MAX_MIB = "1048576";
    /// Input archives: most unpacked bytes per compressed byte (ours, not Argo's).
    ARGOEXEC_UNPACK_MAX_RATIO = "1000";
    /// GCS endpoint (host:port or URL) to use instead of Google's, e.g. an emulator; as Google's clients honour it.
    STORAGE_EMULATOR_HOST = "";
    /// Docker Engine address for the docker runtime (`unix:///path`, `tcp://host:port`), as the docker CLI reads it.
    DOCKER_HOST = "unix:///var/run/docker.sock";
    /// Kubeconfig path(s) when out of a cluster, as kubectl reads it (`argoexec run --api` sets it for init and wait).
    KUBECONFIG = "~/.kube/config";
    /// Artifact GC pod: the value of the `workflows.argoproj.io/artifact-gc-pod` label of its WorkflowArtifactGCTasks.
    ARGO_ARTIFACT_POD_NAME = "";
    /// Artifact plugin sidecars of the pod, comma-separated (v4).
    ARGO_ARTIFACT_PLUGIN_NAMES = "";
    /// Artifact GC pod: artifacts deleted at once, across its tasks (ours; Argo deletes one at a time).
    ARGOEXEC_ARTIFACT_GC_PARALLELISM = "8";
    /// Agent pod: executor plugin names, a JSON array.
    ARGO_PLUGIN_NAMES = "[]";
    /// Agent pod: executor plugin addresses, a JSON array in the order of ARGO_PLUGIN_NAMES.
    ARGO_PLUGIN_ADDRESSES = "[]";
    /// Agent pod: tasks run at once.
    ARGO_AGENT_TASK_WORKERS = "16";
    /// Agent pod: the least time between two patches of the task set's status (Go duration).
    ARGO_AGENT_PATCH_RATE = "10s";
    /// W3C trace context of the step (v4).
    TRACEPARENT = "";
    /// OpenTelemetry collector endpoint (v4).
    OTEL_EXPORTER_OTLP_ENDPOINT = "";
}
