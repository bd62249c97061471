//! Resource templates: what Argo's executor does with kubectl (`argoexec resource ACTION`), done
//! in process through kube-rs.
//!
//! 1. [`manifest::parse`] reads the manifest's one document; [`manifest::set_owner`] makes the
//!    workflow its owner (`setOwnerReference`).
//! 2. [`Flags::parse`] turns the template's kubectl flags into options, refusing unknown ones.
//! 3. [`Resources::run`] does the [`Action`]: the resource type comes from discovery, writes go
//!    out as field manager `argoexec`, `apply` is a forced server-side apply, `delete` waits
//!    until the object is gone.
//! 4. [`wait_conditions`] follows the object on a watch until Argo's `failureCondition` or
//!    `successCondition` ([`Condition`]: label-selector syntax over gjson paths) holds.
//! 5. [`set_outputs`] fills the output parameters by `jsonPath` (kubectl's templates,
//!    [`jsonpath`]) or `jqFilter` (jaq, [`jq_filter`]).
//!
//! Errors ([`Error`]) name the action, the object and the API server's reason.

mod action;
mod condition;
mod error;
mod flags;
mod jq;
pub mod jsonpath;
pub mod manifest;
mod outputs;
mod text;
mod watch;

pub use action::{
    Acted, Action, FIELD_MANAGER, MergeStrategy, Request, Resources, Target, UnknownAction,
};
pub use condition::{Condition, ParseError, Requirement};
pub use error::Error;
pub use flags::{Cascade, FlagError, Flags, Validation};
pub use jq::{JqError, jq_filter};
pub use outputs::{reads_object, set_outputs};
pub use watch::{wait_conditions, wait_gone};
