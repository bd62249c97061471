//! Following one object until something holds: its success or failure condition, or its
//! deletion. A watch of the object (field selector `metadata.name`), resumed by kube's watcher
//! after a dropped stream, with backoff on transient errors; where the service account may not
//! list or watch the type (403), a `get` every poll interval instead (Argo's
//! `RESOURCE_STATE_CHECK_INTERVAL`, which Argo polls at in every case).

use std::time::Duration;

use futures::StreamExt as _;
use kube::api::DynamicObject;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};

use crate::action::{Acted, Target};
use crate::condition::Condition;
use crate::error::{Error, status};

/// What a check of the object says.
enum Verdict<T> {
    Done(T),
    Continue,
}

/// Waits until the failure condition holds (an error naming it) or every requirement of the
/// success condition does. Argo's order: failure first, then success.
pub async fn wait_conditions(
    client: &kube::Client,
    acted: &Acted,
    success: Option<&Condition>,
    failure: Option<&Condition>,
    poll: Duration,
) -> Result<(), Error> {
    if success.is_none() && failure.is_none() {
        return Ok(());
    }
    if let Some(c) = success {
        tracing::info!(conditions = %c, "Waiting for conditions");
    }
    if let Some(c) = failure {
        tracing::info!(conditions = %c, "Failing for conditions");
    }
    let target = &acted.target;
    let check = |object: Option<&DynamicObject>| -> Result<Verdict<()>, Error> {
        let Some(object) = object else {
            return Err(Error::Deleted {
                target: target.to_string(),
            });
        };
        let json = serde_json::to_string(object).unwrap_or_default();
        for r in failure.map(Condition::requirements).unwrap_or_default() {
            let failed = r.matches(&json);
            tracing::info!("failure condition '{r}' evaluated {failed}");
            if failed {
                return Err(Error::Failed {
                    requirement: r.to_string(),
                    target: target.to_string(),
                });
            }
        }
        let requirements = success.map(Condition::requirements).unwrap_or_default();
        let matched = requirements.iter().filter(|r| r.matches(&json)).count();
        tracing::info!(
            matched,
            total = requirements.len(),
            "success conditions matched"
        );
        Ok(if matched >= requirements.len() {
            Verdict::Done(())
        } else {
            Verdict::Continue
        })
    };
    follow(client, target, poll, check).await?;
    tracing::info!(name = %target.name, "Returning from successful wait for resource");
    Ok(())
}

/// Waits until the object is gone (or replaced by another of the same name: a new UID).
pub async fn wait_gone(
    client: &kube::Client,
    target: &Target,
    uid: Option<String>,
    timeout: Option<Duration>,
) -> Result<(), Error> {
    let check = |object: Option<&DynamicObject>| -> Result<Verdict<()>, Error> {
        Ok(match object {
            Some(o) if uid.is_none() || o.metadata.uid == uid => Verdict::Continue,
            _ => Verdict::Done(()),
        })
    };
    // kubectl polls a deletion every second when it cannot watch.
    let gone = follow(client, target, Duration::from_secs(1), check);
    match timeout.filter(|t| !t.is_zero()) {
        Some(limit) => tokio::time::timeout(limit, gone)
            .await
            .map_err(|_| Error::Timeout {
                target: target.to_string(),
                seconds: limit.as_secs(),
            })?,
        None => gone.await,
    }
}

/// Watches the object and asks `check` about each version of it (`None`: it is gone) until it
/// says done; polls every `poll` when the watch is forbidden.
async fn follow<T>(
    client: &kube::Client,
    target: &Target,
    poll: Duration,
    mut check: impl FnMut(Option<&DynamicObject>) -> Result<Verdict<T>, Error>,
) -> Result<T, Error> {
    let api = target.api(client);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", target.name));
    let mut events = std::pin::pin!(watcher::watcher(api, config).default_backoff());
    let mut seen = false;
    while let Some(event) = events.next().await {
        let verdict = match event {
            Ok(Event::Init) => {
                seen = false;
                Verdict::Continue
            }
            Ok(Event::InitApply(object) | Event::Apply(object)) => {
                seen = true;
                check(Some(&target.typed(object)))?
            }
            Ok(Event::InitDone) if !seen => check(None)?,
            Ok(Event::InitDone) => Verdict::Continue,
            Ok(Event::Delete(_)) => check(None)?,
            Err(e) if forbidden(&e) => {
                tracing::info!(
                    error = %e,
                    interval = ?poll,
                    "Watching {target} is forbidden: checking it by get at each interval"
                );
                return poll_loop(client, target, poll, check).await;
            }
            Err(e) => {
                tracing::info!(error = %e, "Watch of {target} failed; resuming");
                Verdict::Continue
            }
        };
        if let Verdict::Done(t) = verdict {
            return Ok(t);
        }
    }
    // The watcher's stream never ends; should it, polling carries on.
    poll_loop(client, target, poll, check).await
}

fn forbidden(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => status(e) == Some(403),
        watcher::Error::WatchError(s) => s.code == 403,
        watcher::Error::NoResourceVersion => false,
    }
}

async fn poll_loop<T>(
    client: &kube::Client,
    target: &Target,
    poll: Duration,
    mut check: impl FnMut(Option<&DynamicObject>) -> Result<Verdict<T>, Error>,
) -> Result<T, Error> {
    let api = target.api(client);
    loop {
        match api.get_opt(&target.name).await {
            Ok(object) => {
                let object = object.map(|o| target.typed(o));
                if let Verdict::Done(t) = check(object.as_ref())? {
                    return Ok(t);
                }
            }
            Err(e) if matches!(status(&e), Some(401 | 403)) => {
                return Err(Error::Api {
                    action: "get",
                    target: target.to_string(),
                    source: Box::new(e),
                });
            }
            Err(e) => {
                tracing::info!(error = %e, "Waiting for resource resulted in retryable error");
            }
        }
        tokio::time::sleep(poll).await;
    }
}
