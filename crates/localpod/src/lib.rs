//! Runs one Argo step on this machine, with no cluster, as kubelet runs the pod Argo's controller
//! generated: `argoexec run --pod POD.yaml`.
//!
//! # A pod out of Linux namespaces
//!
//! | Process | What it is |
//! |---|---|
//! | runner (`argoexec run`) | kubelet: prepares volumes and each container's environment, starts the rest, watches deadlines, kills lingering sidecars, reads the result |
//! | pause (`argoexec __pause`) | PID 1 of the pod's new PID namespace; reaps orphans; when it dies, the kernel kills the pod |
//! | shim (`argoexec __shim SPEC`), one per container | containerd's shim: outside the pod's PID namespace, enters it for its children, owns a mount and UTS namespace, builds the container's root, holds its stdout/stderr and writes the pod state files |
//! | trampoline (`argoexec __exec -- CMD`) | the container's first process: in the pod's PID namespace with its parent outside (parent pid 0 inside), mounts the pod's `/proc`, then execs the command in place |
//!
//! Containers share the PID namespace (`shareProcessNamespace` semantics: each sees the others'
//! processes) and this machine's network; each has its own mount namespace whose root is a tmpfs
//! holding bind mounts of this machine's top-level directories (images are not pulled), a private
//! `/tmp`, `/run` and `/dev` (with `/dev/termination-log`), this binary at `/.argoexec/argoexec`, and the
//! pod's volumes at their mount paths. Directories that a mount path needs under this machine's
//! top-level directories (say `/mnt/data`) are created on this machine; new top-level ones (`/argo`,
//! `/mainctrfs`) live in the container's root only.
//!
//! With `--api` ([`ApiOptions`]) the runner also plays kubelet towards a Kubernetes API server of
//! the pod's own (see the `api` module): each container then gets a PID namespace of its own, as
//! in a pod that does not share its process namespace.
//!
//! # The pod state directory
//!
//! Shared with the PNS runtime: for every container, `<state>/<container>/stdout` (stdout only) and
//! `combined` (stdout and stderr interleaved as read) are written while it runs, and `exitcode`
//! (decimal; a signal N gives 128+N) last, once both pipes reached their end. The wait container
//! gets its path in [`POD_STATE_DIR_ENV`], the report file in [`REPORT_FILE_ENV`], and init and
//! wait get a directory object store in [`LOCAL_REPOSITORY_ENV`].
//!
//! # Modules
//!
//! `plan` says what to run (options, directories, each container's role, environment and command
//! line, the pod as the downward API sees it); `supervise` is the one loop every backend shares
//! (order, deadline, signals, lingering sidecars) behind its `Backend` trait; `report` concludes
//! the step's phase, exit code and message and reads the outputs wait reported; `namespaces` is
//! the backend out of Linux namespaces (pause, shims), `docker` the one of a Docker Engine; `api`
//! plays kubelet towards the pod's own API server, or through `remote` an existing one. The
//! arrows point one way: backends use `supervise`, which uses `plan` and `report`.
//!
//! # No `unsafe`
//!
//! The workspace allows `unsafe` only in crates that document why they need it, naming namespaces
//! as an example. This one does not: `nix` wraps `unshare`, `setns`, `mount` and `pivot_root` as
//! safe functions, and the two steps that would otherwise need `fork` or `pre_exec` are done by
//! running this binary again instead. The PID namespace is unshared on a short-lived thread whose
//! only child is the pause process; a container's process enters `/proc` and its command through
//! the trampoline, an ordinary `exec`.

mod api;
#[cfg(feature = "docker")]
mod docker;
mod emissary;
mod env;
mod error;
mod namespaces;
mod pause;
mod plan;
mod remote;
mod repo;
mod report;
mod shim;
mod supervise;
mod volumes;

#[cfg(feature = "docker")]
pub use docker::{EXECUTOR_IMAGE, ImageMap, run_pod_docker};
pub use emissary::rewrite as rewrite_for_emissary;
pub use error::Error;
pub use namespaces::run_pod;
pub use pause::pause_main;
pub use plan::{
    ApiOptions, ApiRuntime, ExistingServer, LOCAL_REPOSITORY_ENV, POD_STATE_DIR_ENV,
    REPORT_FILE_ENV, Role, RunOptions,
};
pub use report::{ContainerResult, Phase, PodReport};
pub use shim::{BindMount, ShimSpec, exec_main, nsexec_main, shim_main};
