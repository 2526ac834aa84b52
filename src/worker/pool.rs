//! The evaluation pool: the threads every script body runs on, so that no body can occupy a
//! thread of the control plane (the async runtime that runs the elections and their
//! heartbeats, term confirmation, signals, the web server and commits).
//!
//! Two lanes with threads of their own: agents' bodies on one, bodies of timers, tasks and
//! hooks on the other. A leader's timer therefore never waits behind agents that keep every
//! agent thread busy; it only shares the processor with them. The agents' loop bounds how much
//! it queues here (each agent's `concurrency`), so the queues stay short.
//!
//! crossbeam-channel's multi-consumer channel is the whole queue: each lane's threads take
//! jobs from one channel until the pool is dropped.

use std::panic::AssertUnwindSafe;

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// One lane: a queue and the threads that serve it.
struct Lane {
    jobs: crossbeam_channel::Sender<Job>,
}

impl Lane {
    fn start(name: &str, threads: usize) -> std::io::Result<Lane> {
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        for index in 0..threads.max(1) {
            let queue: crossbeam_channel::Receiver<Job> = queue.clone();
            std::thread::Builder::new()
                .name(format!("faust-rs-{name}-{index}"))
                .spawn(move || {
                    for job in queue {
                        // A panicking job drops its reply channel, which its caller reports;
                        // the thread goes on serving the lane.
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                    }
                })?;
        }
        Ok(Lane { jobs })
    }

    fn spawn(&self, job: Job) {
        // The threads live as long as the lane's sender: a send cannot fail while `self` lives.
        let _ = self.jobs.send(job);
    }
}

/// The evaluation pool of one worker.
pub struct EvalPool {
    agents: Lane,
    timers: Lane,
}

/// A body's job ended without an answer: it panicked (a bug, logged by the panic hook).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobPanicked;

impl std::fmt::Display for JobPanicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the evaluation panicked")
    }
}

impl EvalPool {
    /// Starts `threads` threads for agents' bodies and as many, at most one per timer plus
    /// one for tasks and hooks, for the other bodies.
    pub fn start(threads: usize, timers: usize) -> std::io::Result<EvalPool> {
        Ok(EvalPool {
            agents: Lane::start("agents", threads)?,
            timers: Lane::start("timers", threads.min(timers + 1))?,
        })
    }

    /// Runs `job` on an agents' thread; it reports its own outcome.
    pub fn spawn_agent(&self, job: impl FnOnce() + Send + 'static) {
        self.agents.spawn(Box::new(job));
    }

    /// Runs `job` on a thread of the timers' lane and waits for its result.
    pub async fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, JobPanicked> {
        let (reply, answer) = oneshot::channel();
        self.timers.spawn(Box::new(move || {
            let _ = reply.send(job());
        }));
        answer.await.map_err(|_| JobPanicked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_off_the_calling_thread_and_a_panic_does_not_kill_the_lane() {
        let pool = EvalPool::start(1, 1).unwrap();
        let caller = std::thread::current().id();
        let ran_on = pool.run(|| std::thread::current().id()).await.unwrap();
        assert_ne!(ran_on, caller);
        assert_eq!(
            pool.run(|| panic!("a bug")).await,
            Err::<(), _>(JobPanicked)
        );
        assert_eq!(
            pool.run(|| 7).await,
            Ok(7),
            "the lane's one thread survived"
        );
    }

    #[tokio::test]
    async fn a_busy_agents_lane_does_not_hold_up_timers() {
        let pool = EvalPool::start(1, 1).unwrap();
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        pool.spawn_agent(move || {
            let _ = blocked.recv();
        });
        // The agents' only thread is blocked until `release`: a timer body still runs.
        assert_eq!(pool.run(|| "ticked").await, Ok("ticked"));
        release.send(()).unwrap();
    }
}
