//! The supervise loop every backend of `argoexec run` shares: what kubelet does once the pod's
//! containers are known. It owns the order (init containers one by one, each to its end; then the
//! app containers together), `activeDeadlineSeconds` (`DeadlineExceeded`), killing sidecars that
//! outlive wait and main, SIGTERM and SIGINT (one policy: TERM every container, KILL after the
//! grace period; a second signal KILLs at once), and the [`PodReport`]. A [`Backend`] only makes,
//! starts, signals and watches containers.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;

use crate::Error;
use crate::plan::{Limits, Role};
use crate::report::{ContainerResult, PodReport, Stopped, conclude};

/// How a container's start went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Started {
    /// Its process exists.
    Running,
    /// Started, but the backend cannot tell whether its process exists yet; its exit comes
    /// through [`Backend::next_exit`] as any other's.
    Unconfirmed,
    /// Its process could not run: the container ended at once with this exit code, as kubelet
    /// records a start error. It is not watched.
    Failed(i32),
}

/// A container that ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exited {
    /// Its index in the pod's containers (init containers first).
    pub(crate) index: usize,
    /// Its exit code (a signal N gives 128+N); none when the backend cannot tell.
    pub(crate) exit_code: Option<i32>,
    /// Its termination message (`/dev/termination-log`), if it wrote one.
    pub(crate) termination_message: Option<String>,
}

/// What runs the pod's containers: Linux namespaces, or a Docker Engine. Containers are named by
/// their index in the pod's containers, init containers first.
///
/// Required methods:
/// - [`start`](Self::start): start a container;
/// - [`next_exit`](Self::next_exit): wait for the next started container to end;
/// - [`signal`](Self::signal): signal a running container;
/// - [`cleanup`](Self::cleanup): tear the pod down, once nothing runs or the run failed;
/// - [`reported`](Self::reported): the wait container's report, once every container ended.
///
/// Defaulted: [`create`](Self::create) (nothing to do before a group starts) and
/// [`deadline_exceeded`](Self::deadline_exceeded) (nobody to tell).
pub(crate) trait Backend {
    /// Makes the container before any of its group starts (init containers are groups of one).
    fn create(&mut self, index: usize) -> impl Future<Output = Result<(), Error>> {
        let _ = index;
        async { Ok(()) }
    }

    /// Starts the container.
    fn start(&mut self, index: usize) -> impl Future<Output = Result<Started, Error>>;

    /// The next started container to end; none when none is watched. Cancel-safe: an exit is
    /// not lost when the future is dropped before it is ready.
    fn next_exit(&mut self) -> impl Future<Output = Option<Exited>>;

    /// Sends `signal` to the container's process; one that has exited meanwhile is ignored.
    fn signal(&mut self, index: usize, signal: Signal) -> impl Future<Output = ()>;

    /// The pod passed `activeDeadlineSeconds`; its containers are about to be terminated.
    fn deadline_exceeded(&mut self) {}

    /// Tears the pod down: whatever still runs is killed, what was made is removed.
    fn cleanup(&mut self) -> impl Future<Output = ()>;

    /// The wait container's report (Argo's JSON: `outputs`, `message`, `phase`), if it made one.
    fn reported(&mut self, results: &[ContainerResult]) -> Result<Option<Value>, Error>;
}

/// Runs the pod's `containers` (in the pod's order, init containers first) through `backend`
/// to their end, then tears it down and concludes.
pub(crate) async fn run<B: Backend>(
    backend: &mut B,
    containers: &[(Role, String)],
    limits: Limits,
) -> Result<PodReport, Error> {
    let results = containers
        .iter()
        .map(|(role, name)| ContainerResult {
            name: name.clone(),
            exit_code: None,
            role: *role,
            termination_message: None,
            started_after: None,
        })
        .collect();
    let mut supervisor = Supervisor {
        backend,
        limits,
        results,
        stopped: Stopped::default(),
        terminate: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        interrupt: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok(),
    };
    let outcome = supervisor.run_all().await;
    supervisor.backend.cleanup().await;
    outcome?;
    let report = supervisor.backend.reported(&supervisor.results)?;
    Ok(conclude(supervisor.results, supervisor.stopped, report))
}

struct Supervisor<'a, B> {
    backend: &'a mut B,
    limits: Limits,
    results: Vec<ContainerResult>,
    stopped: Stopped,
    terminate: Option<tokio::signal::unix::Signal>,
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl<B: Backend> Supervisor<'_, B> {
    /// Init containers one by one (a failed one, the deadline or a signal ends the pod), then
    /// the others together.
    async fn run_all(&mut self) -> Result<(), Error> {
        let (inits, apps): (Vec<usize>, Vec<usize>) =
            (0..self.results.len()).partition(|&i| self.results[i].role == Role::Init);
        for index in inits {
            self.run_group(&[index]).await?;
            if self.results[index].exit_code != Some(0) || self.stopped() {
                return Ok(());
            }
        }
        self.run_group(&apps).await
    }

    async fn run_group(&mut self, group: &[usize]) -> Result<(), Error> {
        for &index in group {
            self.backend.create(index).await?;
        }
        let mut running = BTreeSet::new();
        for &index in group {
            let started = self.backend.start(index).await?;
            let name = &self.results[index].name;
            match started {
                Started::Running => {
                    let after = self.limits.started.elapsed();
                    tracing::info!(container = %name, after_ms = after.as_secs_f64() * 1e3, "Container started");
                    self.results[index].started_after = Some(after);
                    running.insert(index);
                }
                Started::Unconfirmed => {
                    running.insert(index);
                }
                Started::Failed(code) => {
                    tracing::warn!(container = %name, code, "Container could not start");
                    self.results[index].exit_code = Some(code);
                }
            }
        }
        self.supervise(running).await;
        Ok(())
    }

    fn stopped(&self) -> bool {
        self.stopped.deadline_exceeded || self.stopped.interrupted
    }

    /// Waits until every container of `running` has exited, enforcing the deadline, the
    /// sidecars' linger and the signals the runner gets.
    async fn supervise(&mut self, mut running: BTreeSet<usize>) {
        let leaders: Vec<usize> = running
            .iter()
            .copied()
            .filter(|&i| matches!(self.results[i].role, Role::Wait | Role::Main))
            .collect();
        let mut linger_at: Option<Instant> = None;
        let mut escalate_at: Option<Instant> = None;
        while !running.is_empty() {
            let deadline = self
                .limits
                .deadline
                .filter(|_| !self.stopped.deadline_exceeded);
            tokio::select! {
                exited = self.backend.next_exit() => {
                    let Some(exited) = exited else {
                        tracing::warn!(left = running.len(), "The backend watches no container any more");
                        return;
                    };
                    running.remove(&exited.index);
                    let result = &mut self.results[exited.index];
                    result.exit_code = exited.exit_code;
                    result.termination_message = exited.termination_message;
                    let leaders_done = !leaders.is_empty() && leaders.iter().all(|i| !running.contains(i));
                    if leaders_done && !running.is_empty() && linger_at.is_none() {
                        linger_at = Some(Instant::now() + self.limits.linger);
                    }
                }
                () = sleep_until(linger_at) => {
                    // Once: the sidecars are killed, their exits are all that is left.
                    linger_at = Some(Instant::now() + Duration::from_secs(86_400 * 365));
                    for &index in &running {
                        let name = &self.results[index].name;
                        self.stopped.notes.push(format!(
                            "sidecar {name} was still running {:?} after wait and main exited: killed",
                            self.limits.linger
                        ));
                        tracing::warn!(container = %name, "Sidecar outlived wait and main: killing it");
                    }
                    self.signal_all(&running, Signal::SIGKILL).await;
                }
                () = sleep_until(deadline) => {
                    self.stopped.deadline_exceeded = true;
                    self.stopped.notes.push("pod exceeded activeDeadlineSeconds: containers terminated".into());
                    tracing::warn!("Pod exceeded its active deadline: terminating containers");
                    self.backend.deadline_exceeded();
                    self.signal_all(&running, Signal::SIGTERM).await;
                    escalate_at = Some(Instant::now() + self.limits.grace);
                }
                () = sleep_until(escalate_at) => {
                    escalate_at = None;
                    self.signal_all(&running, Signal::SIGKILL).await;
                }
                Some(()) = recv(&mut self.terminate) => self.interrupt(&running, &mut escalate_at).await,
                Some(()) = recv(&mut self.interrupt) => self.interrupt(&running, &mut escalate_at).await,
            }
        }
    }

    /// First signal: SIGTERM every container, SIGKILL after the grace; a second: SIGKILL now.
    async fn interrupt(&mut self, running: &BTreeSet<usize>, escalate_at: &mut Option<Instant>) {
        if self.stopped.interrupted {
            self.signal_all(running, Signal::SIGKILL).await;
            return;
        }
        self.stopped.interrupted = true;
        self.stopped
            .notes
            .push("interrupted: containers terminated".into());
        tracing::warn!("Interrupted: terminating containers (again to kill them now)");
        self.signal_all(running, Signal::SIGTERM).await;
        *escalate_at = Some(Instant::now() + self.limits.grace);
    }

    async fn signal_all(&mut self, running: &BTreeSet<usize>, signal: Signal) {
        for &index in running {
            self.backend.signal(index, signal).await;
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// The tasks that watch started containers, each answering for its container's index: a
/// backend's [`Backend::next_exit`] is [`Watches::next`].
#[derive(Debug)]
pub(crate) struct Watches<T> {
    set: JoinSet<T>,
    index: BTreeMap<Id, usize>,
}

impl<T: Send + 'static> Watches<T> {
    /// No container watched.
    pub(crate) fn new() -> Self {
        Self {
            set: JoinSet::new(),
            index: BTreeMap::new(),
        }
    }

    /// Watches container `index` until `task` ends.
    pub(crate) fn spawn(&mut self, index: usize, task: impl Future<Output = T> + Send + 'static) {
        let id = self.set.spawn(task).id();
        self.index.insert(id, index);
    }

    /// The next container whose task ended, with the task's answer (none if it panicked);
    /// none when nothing is watched. Cancel-safe, as [`JoinSet::join_next_with_id`].
    pub(crate) async fn next(&mut self) -> Option<(usize, Option<T>)> {
        let (id, answer) = match self.set.join_next_with_id().await? {
            Ok((id, answer)) => (id, Some(answer)),
            Err(e) => (e.id(), None),
        };
        let index = self.index.remove(&id)?;
        Some((index, answer))
    }

    /// Stops watching: aborts every task.
    pub(crate) fn abort_all(&mut self) {
        self.set.abort_all();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;
    use tokio::sync::mpsc;

    use super::*;
    use crate::report::Phase;

    /// How a fake container behaves once started.
    #[derive(Clone, Copy)]
    enum Acts {
        /// Exits at once with this code.
        Exits(i32),
        /// Runs until signalled: exits 143 on TERM if it honours it, 137 on KILL.
        Runs { honours_term: bool },
    }

    /// A recording fake: what the loop asked, in order.
    struct Fake {
        acts: Vec<Acts>,
        log: Vec<String>,
        tx: mpsc::UnboundedSender<Exited>,
        rx: mpsc::UnboundedReceiver<Exited>,
        live: BTreeSet<usize>,
    }

    impl Fake {
        fn new(acts: Vec<Acts>) -> Self {
            let (tx, rx) = mpsc::unbounded_channel();
            Self {
                acts,
                log: Vec::new(),
                tx,
                rx,
                live: BTreeSet::new(),
            }
        }

        fn exit(&mut self, index: usize, code: i32) {
            if self.live.remove(&index) {
                let exited = Exited {
                    index,
                    exit_code: Some(code),
                    termination_message: None,
                };
                self.tx.send(exited).unwrap();
            }
        }
    }

    impl Backend for Fake {
        async fn start(&mut self, index: usize) -> Result<Started, Error> {
            self.log.push(format!("start {index}"));
            self.live.insert(index);
            if let Acts::Exits(code) = self.acts[index] {
                self.exit(index, code);
            }
            Ok(Started::Running)
        }

        async fn next_exit(&mut self) -> Option<Exited> {
            self.rx.recv().await
        }

        async fn signal(&mut self, index: usize, signal: Signal) {
            if !self.live.contains(&index) {
                return;
            }
            self.log.push(format!("{} {index}", signal.as_str()));
            match (signal, self.acts[index]) {
                (Signal::SIGKILL, _) => self.exit(index, 137),
                (Signal::SIGTERM, Acts::Runs { honours_term: true }) => self.exit(index, 143),
                _ => {}
            }
        }

        async fn cleanup(&mut self) {
            self.log.push("cleanup".into());
        }

        fn reported(&mut self, _: &[ContainerResult]) -> Result<Option<Value>, Error> {
            Ok(Some(json!({"outputs": {"result": "ok"}})))
        }
    }

    fn pod(roles: &[(Role, &str)]) -> Vec<(Role, String)> {
        roles.iter().map(|(r, n)| (*r, (*n).to_owned())).collect()
    }

    fn limits(deadline: Option<Duration>) -> Limits {
        let started = Instant::now();
        Limits {
            started,
            deadline: deadline.map(|d| started + d),
            grace: Duration::from_millis(50),
            linger: Duration::from_millis(50),
        }
    }

    #[tokio::test]
    async fn init_containers_run_one_by_one_then_the_others_and_a_failed_init_stops_the_pod() {
        let roles = pod(&[
            (Role::Init, "a"),
            (Role::Init, "b"),
            (Role::Wait, "wait"),
            (Role::Main, "main"),
        ]);
        let mut fake = Fake::new(vec![
            Acts::Exits(0),
            Acts::Exits(0),
            Acts::Exits(0),
            Acts::Exits(3),
        ]);
        let report = run(&mut fake, &roles, limits(None)).await.unwrap();
        assert_eq!(
            fake.log,
            ["start 0", "start 1", "start 2", "start 3", "cleanup"]
        );
        assert_eq!(report.phase, Phase::Failed);
        assert_eq!(report.exit_code, Some(3));
        assert_eq!(report.message.as_deref(), Some("Error (exit code 3)"));
        assert_eq!(report.outputs, Some(json!({"result": "ok"})));

        let mut fake = Fake::new(vec![
            Acts::Exits(2),
            Acts::Exits(0),
            Acts::Exits(0),
            Acts::Exits(0),
        ]);
        let report = run(&mut fake, &roles, limits(None)).await.unwrap();
        assert_eq!(fake.log, ["start 0", "cleanup"]);
        assert_eq!(report.exit_code, None, "main never ran");
        assert_eq!(
            report.message.as_deref(),
            Some("init container a failed (exit code 2)")
        );
    }

    #[tokio::test]
    async fn the_deadline_terminates_then_kills_after_the_grace() {
        let roles = pod(&[(Role::Wait, "wait"), (Role::Main, "main")]);
        let acts = vec![
            Acts::Runs { honours_term: true },
            Acts::Runs {
                honours_term: false,
            },
        ];
        let mut fake = Fake::new(acts);
        let report = run(&mut fake, &roles, limits(Some(Duration::from_millis(20))))
            .await
            .unwrap();
        assert_eq!(
            fake.log,
            [
                "start 0",
                "start 1",
                "SIGTERM 0",
                "SIGTERM 1",
                "SIGKILL 1",
                "cleanup"
            ]
        );
        assert_eq!(report.phase, Phase::Failed);
        assert_eq!(report.exit_code, Some(137));
        assert_eq!(
            report.message.as_deref(),
            Some("Pod was active on the node longer than the specified deadline")
        );
    }

    #[tokio::test]
    async fn sidecars_outliving_wait_and_main_are_killed() {
        let roles = pod(&[
            (Role::Wait, "wait"),
            (Role::Main, "main"),
            (Role::Sidecar, "side"),
        ]);
        let acts = vec![
            Acts::Exits(0),
            Acts::Exits(0),
            Acts::Runs { honours_term: true },
        ];
        let mut fake = Fake::new(acts);
        let report = run(&mut fake, &roles, limits(None)).await.unwrap();
        assert_eq!(fake.log.last().map(String::as_str), Some("cleanup"));
        assert!(fake.log.contains(&"SIGKILL 2".to_owned()), "{:?}", fake.log);
        assert_eq!(report.phase, Phase::Succeeded);
        assert_eq!(report.exit_code, Some(0));
        assert_eq!(report.containers[2].exit_code, Some(137));
        assert_eq!(report.notes.len(), 1, "{:?}", report.notes);
    }
}
