//! The executor's sequences: `init` (stage files, load input artifacts) and `wait` (wait for the
//! main containers, save their outputs, report, stop the sidecars).
//!
//! Written once, generic over storage (any [`argoexec_storage::Secrets`] and the drivers behind
//! [`argoexec_storage::AnyDriver`]), over the container runtime (any
//! [`argoexec_runtime::ContainerRuntime`]), over where outputs are reported (any
//! [`argoexec_report::Reporter`]) and over the pod layout ([`PodPaths`], injectable by root so
//! tests and the local runner place files under a directory of their own).
//!
//! Loading an artifact streams it from the driver straight into the archive unpacker, which builds
//! the destination beside its final place and renames it in only when whole; a failed attempt
//! leaves nothing behind, so the retry policy can start each attempt afresh. Saving an output
//! streams it the other way, packed on the fly. Both find an artifact's store and key the same
//! way (`store`): its own location, else the template's `archiveLocation`, else (outputs of
//! `argoexec run`) the local repository.

mod init;
mod paths;
mod place;
mod store;
mod wait;

pub use init::{InitError, InitOptions, InitReport, run_init};
pub use paths::{PathError, PodPaths, clean_artifact_path};
pub use place::{Limits, PlaceError, UnpackStats, apply_mode, place, unpack_limits};
pub use wait::{
    MAX_RESULT_BYTES, SaveError, Stop, UploadError, WaitError, WaitOptions, WaitOutcome, run_wait,
};
