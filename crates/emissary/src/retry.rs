//! The container set's `retryStrategy`: how often a failed container is run again in the pod.

use std::time::Duration;

use argoexec_template::Template;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::Error;

/// How many times to run the command, and the pause between runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Runs in all: `retries + 1`, as Argo documents the field (Argo's code runs `retries`
    /// times, and never when `retries` is 0: not copied).
    pub attempts: u32,
    /// The pause between runs (`duration`, a Go duration; none when unset).
    pub pause: Duration,
}

impl Retry {
    /// One run, no retry: templates that are not container sets, or have no strategy.
    pub const ONCE: Self = Self {
        attempts: 1,
        pause: Duration::ZERO,
    };

    /// The template's strategy. `retries` is a number or a string of one (a string that is not
    /// a number counts as 0, as Go's `IntValue` reads it); `duration` must be a valid, positive
    /// Go duration.
    pub fn of(template: &Template) -> Result<Self, Error> {
        let Some(strategy) = template
            .container_set
            .as_ref()
            .and_then(|set| set.retry_strategy.as_ref())
        else {
            return Ok(Self::ONCE);
        };
        let retries = match &strategy.retries {
            IntOrString::Int(n) => u32::try_from(*n).unwrap_or(0),
            IntOrString::String(text) => text.trim().parse().unwrap_or(0),
        };
        let pause = match strategy.duration.as_deref().filter(|d| !d.is_empty()) {
            None => Duration::ZERO,
            Some(text) => {
                let nanos = go_parse_duration::parse_duration(text).map_err(|_| {
                    Error::Retry(format!(
                        "duration {text:?} is not a Go duration such as \"300ms\" or \"1s\""
                    ))
                })?;
                let nanos = u64::try_from(nanos).map_err(|_| {
                    Error::Retry(format!(
                        "duration has to be positive, current duration: {text}"
                    ))
                })?;
                Duration::from_nanos(nanos)
            }
        };
        Ok(Self {
            attempts: retries.saturating_add(1),
            pause,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn template(strategy: serde_json::Value) -> Template {
        serde_json::from_value(serde_json::json!({
            "name": "t",
            "containerSet": {"containers": [{"name": "main", "image": "x"}], "retryStrategy": strategy}
        }))
        .unwrap()
    }

    #[test]
    fn reads_retries_and_duration() {
        let plain: Template = serde_json::from_value(serde_json::json!({"name": "t"})).unwrap();
        assert_eq!(Retry::of(&plain).unwrap(), Retry::ONCE);
        assert_eq!(
            Retry::of(&template(
                serde_json::json!({"retries": 2, "duration": "300ms"})
            ))
            .unwrap(),
            Retry {
                attempts: 3,
                pause: Duration::from_millis(300)
            }
        );
        assert_eq!(
            Retry::of(&template(serde_json::json!({"retries": "1"})))
                .unwrap()
                .attempts,
            2
        );
        let bad = Retry::of(&template(
            serde_json::json!({"retries": 1, "duration": "soon"}),
        ));
        assert!(bad.unwrap_err().to_string().contains("\"soon\""));
        let negative = Retry::of(&template(
            serde_json::json!({"retries": 1, "duration": "-1s"}),
        ));
        assert!(negative.unwrap_err().to_string().contains("positive"));
    }
}
