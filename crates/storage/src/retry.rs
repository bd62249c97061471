//! One retry policy for every driver: failures are classified by kind, transient ones are retried
//! with exponential backoff and jitter under a total time budget, and each retry is logged with its
//! cause.

use std::fmt;
use std::future::Future;
use std::io;
use std::time::Duration;

use argoexec_config::RetrySettings;
use tokio::time::Instant;

/// S3 error codes that mean "try again" (contract §7).
pub const S3_TRANSIENT_CODES: &[&str] = &[
    "InternalError",
    "RequestTimeout",
    "RequestTimeoutException",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "ServiceUnavailable",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
];

/// Whether an HTTP status is worth retrying: every 5xx, 429 (too many requests) and 408 (request
/// timeout).
pub fn is_transient_status(status: u16) -> bool {
    status >= 500 || status == 429 || status == 408
}

/// Whether an I/O failure is worth retrying: refused, reset or aborted connections, timeouts,
/// broken pipes and streams cut short.
pub fn is_transient_io(err: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        err.kind(),
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | NotConnected
            | BrokenPipe
            | TimedOut
            | UnexpectedEof
            | Interrupted
            | WouldBlock
            | HostUnreachable
            | NetworkUnreachable
            | NetworkDown
            | ResourceBusy
    )
}

/// Whether a cause chain holds a TLS refusal (an untrusted or invalid certificate, a failed
/// handshake): the same server refuses the same way again, so it is not worth another attempt,
/// though HTTP clients report it as a connect error.
#[cfg(any(feature = "http", feature = "git"))]
pub(crate) fn is_tls_refusal(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        // io::Error's source skips the error it wraps (itself often an io::Error): look inside.
        let mut inner = e;
        loop {
            if inner.is::<rustls::Error>() {
                return true;
            }
            match inner
                .downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(wrapped) => inner = wrapped,
                None => break,
            }
        }
        cause = e.source();
    }
    false
}

/// A failure that knows whether it is worth another attempt.
pub trait Retryable: std::error::Error {
    /// True when the same request may succeed if sent again.
    fn is_transient(&self) -> bool;
}

/// Exponential backoff with jitter under a total time budget.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The wait before the second attempt.
    pub initial: Duration,
    /// Growth of the wait per attempt.
    pub factor: f64,
    /// Random extra wait, as a fraction of the wait (0.5: up to 50 % more).
    pub jitter: f64,
    /// No retry starts once this much time has passed since the first attempt.
    pub budget: Duration,
    /// Failures whose message matches are transient too (`TRANSIENT_ERROR_PATTERN`).
    pub pattern: Option<regex::Regex>,
}

impl Default for RetryPolicy {
    /// Argo's defaults: 5 attempts, 1 s, x1.6, jitter 0.5; a budget of five minutes.
    fn default() -> Self {
        Self {
            attempts: 5,
            initial: Duration::from_secs(1),
            factor: 1.6,
            jitter: 0.5,
            budget: Duration::from_secs(300),
            pattern: None,
        }
    }
}

impl RetryPolicy {
    /// The policy from `EXECUTOR_RETRY_BACKOFF_*` and `TRANSIENT_ERROR_PATTERN`.
    pub fn from_settings(settings: &RetrySettings) -> Self {
        Self {
            attempts: settings.steps,
            initial: settings.duration,
            factor: settings.factor,
            jitter: settings.jitter,
            pattern: settings.transient_pattern.clone(),
            ..Self::default()
        }
    }

    /// A policy that never retries.
    pub fn none() -> Self {
        Self {
            attempts: 1,
            ..Self::default()
        }
    }

    /// The wait after attempt `attempt` (1-based) failed, before jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        self.initial.mul_f64(self.factor.powi(exponent).min(1e6))
    }

    fn is_transient<E: Retryable>(&self, err: &E) -> bool {
        err.is_transient()
            || self
                .pattern
                .as_ref()
                .is_some_and(|re| re.is_match(&err.to_string()))
    }

    /// Runs `op` until it succeeds, fails permanently, runs out of attempts or of budget. `op`
    /// gets the attempt number (1-based) and must start afresh each time: nothing of a failed
    /// attempt may be reused. `what` names the operation in logs.
    pub async fn run<T, E, F, Fut>(&self, what: &str, mut op: F) -> Result<T, RetryError<E>>
    where
        E: Retryable,
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            let err = match op(attempt).await {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            if !self.is_transient(&err) {
                return Err(RetryError {
                    last: err,
                    attempts: attempt,
                    gave_up: None,
                });
            }
            if attempt >= self.attempts {
                return Err(RetryError {
                    last: err,
                    attempts: attempt,
                    gave_up: Some(GaveUp::Attempts),
                });
            }
            let wait = self
                .backoff(attempt)
                .mul_f64(1.0 + self.jitter * fastrand::f64());
            if started.elapsed() + wait > self.budget {
                return Err(RetryError {
                    last: err,
                    attempts: attempt,
                    gave_up: Some(GaveUp::Budget(self.budget)),
                });
            }
            tracing::warn!(
                operation = what,
                attempt,
                of = self.attempts,
                retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                cause = %chain(&err),
                "transient failure, retrying"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

/// Why retrying stopped while the failure was still transient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GaveUp {
    /// Every attempt was used.
    Attempts,
    /// The next wait would have gone past the budget.
    Budget(Duration),
}

/// The last failure of a retried operation, with how many attempts were made.
#[derive(Debug)]
pub struct RetryError<E> {
    /// The failure of the last attempt.
    pub last: E,
    /// Attempts made.
    pub attempts: u32,
    /// Set when the failure was transient but retries ran out.
    pub gave_up: Option<GaveUp>,
}

impl<E> RetryError<E> {
    /// The last failure.
    pub fn into_inner(self) -> E {
        self.last
    }
}

impl<E: std::error::Error> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.gave_up {
            // Permanent: the failure speaks for itself.
            None => write!(f, "{}", self.last),
            Some(GaveUp::Attempts) => {
                write!(f, "gave up after {} attempts", self.attempts)
            }
            Some(GaveUp::Budget(budget)) => write!(
                f,
                "gave up after {} attempts, retry budget of {}s spent",
                self.attempts,
                budget.as_secs()
            ),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for RetryError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self.gave_up {
            None => self.last.source(),
            Some(_) => Some(&self.last),
        }
    }
}

/// An error and its causes on one line, `a: b: c`.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[derive(Debug)]
    struct Fail {
        transient: bool,
        text: &'static str,
    }
    impl fmt::Display for Fail {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.text)
        }
    }
    impl std::error::Error for Fail {}
    impl Retryable for Fail {
        fn is_transient(&self) -> bool {
            self.transient
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_until_success() {
        let calls = Cell::new(0);
        let started = Instant::now();
        let out = policy()
            .run("get", |attempt| {
                calls.set(attempt);
                async move {
                    if attempt < 3 {
                        Err(Fail {
                            transient: true,
                            text: "503",
                        })
                    } else {
                        Ok(attempt)
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!(out, 3);
        assert_eq!(calls.get(), 3);
        // 1 s, then 1.6 s of (paused, virtual) backoff.
        assert_eq!(started.elapsed(), Duration::from_millis(2600));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failures_are_not_retried() {
        let err = policy()
            .run("get", |_| async {
                Err::<(), _>(Fail {
                    transient: false,
                    text: "403",
                })
            })
            .await
            .unwrap_err();
        assert_eq!(err.attempts, 1);
        assert_eq!(err.gave_up, None);
        assert_eq!(err.to_string(), "403");
    }

    #[tokio::test(start_paused = true)]
    async fn pattern_makes_a_failure_transient() {
        let mut p = policy();
        p.pattern = Some(regex::Regex::new("Rate exceeded").unwrap());
        let err = p
            .run("put", |_| async {
                Err::<(), _>(Fail {
                    transient: false,
                    text: "error: Rate exceeded",
                })
            })
            .await
            .unwrap_err();
        assert_eq!(err.attempts, 5);
        assert_eq!(
            chain(&err),
            "gave up after 5 attempts: error: Rate exceeded"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn budget_stops_retries() {
        let mut p = policy();
        p.budget = Duration::from_secs(2);
        let err = p
            .run("put", |_| async {
                Err::<(), _>(Fail {
                    transient: true,
                    text: "reset",
                })
            })
            .await
            .unwrap_err();
        // 1 s after the first attempt fits; 1 + 1.6 s does not.
        assert_eq!(err.attempts, 2);
        assert_eq!(err.gave_up, Some(GaveUp::Budget(Duration::from_secs(2))));
    }

    #[test]
    fn backoff_grows_by_the_factor() {
        let p = policy();
        assert_eq!(p.backoff(1), Duration::from_secs(1));
        assert_eq!(p.backoff(2), Duration::from_millis(1600));
        assert_eq!(p.backoff(3), Duration::from_millis(2560));
    }

    #[test]
    fn classifies_statuses_and_io() {
        assert!(is_transient_status(503));
        assert!(is_transient_status(429));
        assert!(!is_transient_status(404));
        assert!(!is_transient_status(403));
        assert!(is_transient_io(&io::Error::from(
            io::ErrorKind::ConnectionRefused
        )));
        assert!(is_transient_io(&io::Error::from(
            io::ErrorKind::ConnectionReset
        )));
        assert!(!is_transient_io(&io::Error::from(
            io::ErrorKind::PermissionDenied
        )));
    }
}
