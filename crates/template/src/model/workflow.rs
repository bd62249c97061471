//! Templates made of other templates: steps and DAGs, and what their entries share.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Arguments, Item, Template};

/// One group of a steps template: steps that run in parallel. Written as a JSON list of steps in
/// every version (v3+ wraps it in a Go struct, but marshals it as the bare list).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ParallelSteps(pub Vec<WorkflowStep>);

impl Deref for ParallelSteps {
    type Target = Vec<WorkflowStep>;

    fn deref(&self) -> &Vec<WorkflowStep> {
        &self.0
    }
}

impl DerefMut for ParallelSteps {
    fn deref_mut(&mut self) -> &mut Vec<WorkflowStep> {
        &mut self.0
    }
}

/// One step of a steps template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowStep {
    /// The step's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The template it runs, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The template it runs, written in place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inline: Option<Box<Template>>,
    /// What it passes to the template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Arguments>,
    /// The template it runs, in a (cluster) workflow template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_ref: Option<TemplateRef>,
    /// Run once per item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with_items: Option<Vec<Item>>,
    /// Run once per entry of a JSON list (an expression giving it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with_param: Option<String>,
    /// Run once per number of a sequence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with_sequence: Option<Sequence>,
    /// Run only when this expression is true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Carry on when the step fails or errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continue_on: Option<ContinueOn>,
    /// A template run when the step ends (deprecated for `hooks.exit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_exit: Option<String>,
    /// Templates run on events (`exit`, or an expression), by event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hooks: Option<BTreeMap<String, LifecycleHook>>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A template made of tasks and the dependencies between them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DagTemplate {
    /// The tasks to reach (space-separated names); all when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The tasks.
    pub tasks: Vec<DagTask>,
    /// Stop scheduling tasks after one fails (the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_fast: Option<bool>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One task of a DAG template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DagTask {
    /// The task's name.
    pub name: String,
    /// The template it runs, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The template it runs, written in place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inline: Option<Box<Template>>,
    /// What it passes to the template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Arguments>,
    /// The template it runs, in a (cluster) workflow template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_ref: Option<TemplateRef>,
    /// The tasks that must succeed first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Vec<String>>,
    /// Run once per item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with_items: Option<Vec<Item>>,
    /// Run once per entry of a JSON list (an expression giving it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with_param: Option<String>,
    /// Run once per number of a sequence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with_sequence: Option<Sequence>,
    /// Run only when this expression is true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Carry on when the task fails or errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continue_on: Option<ContinueOn>,
    /// A template run when the task ends (deprecated for `hooks.exit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_exit: Option<String>,
    /// A boolean expression over other tasks' results (`a.Succeeded && b`), instead of
    /// `dependencies`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depends: Option<String>,
    /// Templates run on events (`exit`, or an expression), by event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hooks: Option<BTreeMap<String, LifecycleHook>>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A template of a (cluster) workflow template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRef {
    /// The workflow template's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The template's name in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// A cluster workflow template rather than a namespaced one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_scope: Option<bool>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Which outcomes of a step or task do not stop the parent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContinueOn {
    /// Carry on after an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<bool>,
    /// Carry on after a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<bool>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A sequence of numbers to loop over: `count` numbers from `start`, or `start` to `end`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sequence {
    /// How many numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<IntOrString>,
    /// The first number (0 when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<IntOrString>,
    /// The last number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<IntOrString>,
    /// A printf format for each number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A template run on an event of a step, task or workflow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleHook {
    /// The template to run, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// What it passes to the template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Arguments>,
    /// The template to run, in a (cluster) workflow template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_ref: Option<TemplateRef>,
    /// The condition that fires the hook (for hooks other than `exit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}
