//! Retrying API calls: capped exponential backoff with jitter, within a time budget.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{Error, is_transient};

/// How transient failures are retried. Argo retries reports forever (1 s, x2, capped at 30 s); a
/// wait that must finish within its pod's grace period retries within a budget instead, and
/// starts sooner so that a single lost request costs a fraction of a second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first pause.
    pub first: Duration,
    /// Growth of the pause per attempt.
    pub factor: f64,
    /// The longest pause.
    pub cap: Duration,
    /// Random extra pause, as a fraction of the pause.
    pub jitter: f64,
    /// No new attempt starts after this much time since the first.
    pub budget: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(200),
            factor: 2.0,
            cap: Duration::from_secs(10),
            jitter: 0.1,
            budget: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// This policy with another budget (e.g. the pod's termination grace period).
    pub fn within(self, budget: Duration) -> Self {
        Self { budget, ..self }
    }

    /// Runs `call` until it succeeds, fails for good, or the budget is spent. `conflict` says
    /// whether a 409 is worth retrying (a patch: yes; a create: no, it means "already exists").
    pub(crate) async fn run<T, F, Fut>(
        &self,
        action: &'static str,
        target: &str,
        conflict: bool,
        mut call: F,
    ) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let start = Instant::now();
        let mut pause = self.first;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match call().await {
                Ok(value) => return Ok(value),
                Err(source) => {
                    let jitter = pause.mul_f64(self.jitter * fastrand::f64());
                    let next = pause + jitter;
                    if !is_transient(&source, conflict) || start.elapsed() + next > self.budget {
                        return Err(Error::Api {
                            action,
                            target: target.to_owned(),
                            attempts,
                            source,
                        });
                    }
                    tracing::warn!(%action, %target, attempt = attempts, error = %source,
                        retry_in = ?next, "Kubernetes API call failed, retrying");
                    tokio::time::sleep(next).await;
                    pause = pause.mul_f64(self.factor).min(self.cap);
                }
            }
        }
    }
}
