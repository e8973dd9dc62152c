//! The journal's sync thread: runs one unit's `fdatasync` while the journal thread writes
//! the next unit (pipelined group commit, see `Journal::commit`).
//!
//! Under concurrent appends the journal thread otherwise spends its whole cycle in
//! sequence: gather, write, sync, copy frames into segments, reply. Only the sync needs the
//! disk; with it on this thread, the gathering and writing of unit `N+1` and the copying of
//! unit `N` overlap the sync of `N` (PutRecord at 32 connections 1.07-1.11x, BENCHMARKS.md
//! round 6). At most one sync is outstanding: the journal thread waits for it before
//! starting the next.
//!
//! When a sync ends the thread also queues `JournalCommand::Synced`, so a journal thread
//! waiting for work wakes for the sync's outcome too (without it a unit could wait for the
//! next append). The ping is dropped when the queue is full: the journal thread then has
//! commands to handle, and each of them takes the outcome.
//!
//! The sync goes through the journal's own file description (the same `Arc<File>`), so a
//! write-back error of any unit is reported to exactly the sync that covers it.

use std::fs::File;
use std::io;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::WeakSender;

use crate::io::WriteLayer;
use crate::journal::JournalCommand;

pub(crate) struct Syncer {
    wake: Arc<OnceLock<WeakSender<JournalCommand>>>,
    requests: Option<Sender<Arc<File>>>,
    results: Receiver<io::Result<Duration>>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    pub fn start(layer: Arc<dyn WriteLayer>) -> io::Result<Self> {
        let wake: Arc<OnceLock<WeakSender<JournalCommand>>> = Arc::default();
        let (requests, incoming) = channel::<Arc<File>>();
        let (outgoing, results) = channel();
        let ours = wake.clone();
        let thread = std::thread::Builder::new()
            .name("millstream-sync".into())
            .spawn(move || {
                for file in incoming {
                    let started = Instant::now();
                    let result = layer.sync_data(&file).map(|()| started.elapsed());
                    if outgoing.send(result).is_err() {
                        break;
                    }
                    if let Some(queue) = wake.get().and_then(WeakSender::upgrade) {
                        let _ = queue.try_send(JournalCommand::Synced);
                    }
                }
            })?;
        Ok(Self {
            wake: ours,
            requests: Some(requests),
            results,
            thread: Some(thread),
        })
    }

    /// Where to queue `JournalCommand::Synced`: the journal's own queue, held weakly so
    /// that it still closes once the store drops its senders.
    pub fn wake_through(&self, queue: WeakSender<JournalCommand>) {
        let _ = self.wake.set(queue);
    }

    /// Starts syncing `file`. The caller waits (`wait`) before starting another.
    pub fn start_sync(&self, file: Arc<File>) {
        // The thread only stops when this is dropped; a send failing means it is gone, and
        // `wait` then reports that as the sync's failure.
        let _ = self.requests.as_ref().map(|requests| requests.send(file));
    }

    /// The outcome of the sync started last if it has ended.
    pub fn try_wait(&self) -> Option<io::Result<Duration>> {
        match self.results.try_recv() {
            Ok(result) => Some(result),
            Err(std::sync::mpsc::TryRecvError::Empty) => None,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                Some(Err(io::Error::other("the journal's sync thread is gone")))
            }
        }
    }

    /// The outcome of the sync started last: how long it took, or its error.
    pub fn wait(&self) -> io::Result<Duration> {
        self.results
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("the journal's sync thread is gone")))
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
