//! One writer task per log: owns the numbering of the log's tail.
//!
//! The task batches whatever appends are queued in its bounded mailbox, assigns their
//! sequences and arrival time, encodes one frame and submits it to the journal with the
//! batch (`Batch`), then goes back to its mailbox while the journal works (pipelining, up
//! to `PIPELINE_DEPTH` frames in flight). The journal thread publishes each batch once its
//! frame is durable and copied to the segment, in submission order, so acknowledgements
//! stay in sequence order: it inserts the records into the cache, advances the durable
//! tail (asserting it is contiguous), publishes it on the watch, then acknowledges the
//! appends. Readers therefore never see a sequence that is not durable and readable.
//! Publishing there rather than here spares every append a wake-up of this task between
//! the journal and the append's own task (BENCHMARKS.md, round 7). This task still hears
//! each frame's outcome, to free its pipeline slot, but reads it only when it numbers the
//! next batch or has no slot left: while it has free slots it waits on its mailbox alone,
//! so a durable frame does not wake it at all.
//!
//! On a failed batch (the journal fails its appends, after telling this task) the task
//! rewinds its sequence counter to the batch's first sequence; the journal rejects the
//! later batches already numbered after it (see `journal.rs`), so sequences stay gap-free.
//! Those rejections do not rewind again: each batch carries the number of rewinds before
//! it was numbered, and only a batch numbered since the last rewind can move the counter
//! (a batch numbered after the rewind may already be accepted past the rejected ones).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

use crate::format;
use crate::journal::{JournalCommand, Metrics, Submission};
use crate::{AppendAck, AppendRecord, AppendStage, LogId, LogShared, StorageError, StoredRecord};

/// Bounded mailbox: a full mailbox makes `append` wait (backpressure), it never grows.
pub(crate) const MAILBOX_CAPACITY: usize = 1024;
/// Frames of one log in the journal at once. When this task woke up to hear each frame's
/// outcome (one thread wake-up after the appends did), appends waited ~230 us here at 32
/// connections with 4 slots, ~40 us with 16. More frames per group commit cost no extra
/// segment writes (`journal::SegmentRun`). BENCHMARKS.md, round 7.
const PIPELINE_DEPTH: usize = 16;
/// Batching stops at this many bytes (a larger single append still goes alone).
pub(crate) const BATCH_BYTES_MAX: usize = 4 << 20;

pub(crate) enum WriterCommand {
    Append {
        records: Vec<AppendRecord>,
        reply: AckSender,
        queued_at: Instant,
    },
    Seal {
        reply: oneshot::Sender<Result<u64, StorageError>>,
    },
    /// Finish what is in flight and exit (shutdown, delete).
    Stop { reply: oneshot::Sender<()> },
}

/// An append's answer, with when its batch was published (`AppendStage::Completion`).
pub(crate) type AckSender = oneshot::Sender<Result<(AppendAck, Instant), StorageError>>;

struct InFlight {
    first_sequence: u64,
    /// `Pipeline::rewinds` when this batch was numbered.
    rewinds: u64,
    done: oneshot::Receiver<Result<(), StorageError>>,
}

/// The batches of this log in the journal, oldest first, and the numbering they imply.
struct Pipeline {
    in_flight: VecDeque<InFlight>,
    next_sequence: u64,
    rewinds: u64,
}

impl Pipeline {
    /// Takes the outcomes the journal has already sent, oldest first, without waiting.
    fn reap(&mut self) {
        while let Some(front) = self.in_flight.front_mut() {
            let outcome = match front.done.try_recv() {
                Ok(outcome) => outcome,
                Err(oneshot::error::TryRecvError::Empty) => return,
                // A journal that exited dropped the batch with its replies.
                Err(oneshot::error::TryRecvError::Closed) => Ok(()),
            };
            self.settle(outcome);
        }
    }

    /// Waits for the oldest batch's outcome.
    async fn settle_oldest(&mut self) {
        let front = self
            .in_flight
            .front_mut()
            .expect("called with a batch in flight");
        let outcome = (&mut front.done).await.unwrap_or(Ok(()));
        self.settle(outcome);
    }

    fn settle(&mut self, outcome: Result<(), StorageError>) {
        let batch = self
            .in_flight
            .pop_front()
            .expect("an outcome is for the oldest batch");
        if outcome.is_err() && batch.rewinds == self.rewinds {
            // New batches reuse the failed one's sequences; the ones already numbered
            // after it are rejected by the journal (and settle here without rewinding).
            debug_assert!(batch.first_sequence < self.next_sequence);
            self.next_sequence = batch.first_sequence;
            self.rewinds += 1;
        }
    }
}

/// A numbered batch on its way through the journal, which publishes it or fails it (after
/// telling this task, see `journal::Submission::fail`).
pub(crate) struct Batch {
    shared: Arc<LogShared>,
    first_sequence: u64,
    arrival_ms: u64,
    records: Vec<StoredRecord>,
    /// How many records the batch holds: `records` is empty once the cache took them.
    records_len: u64,
    /// Each append's reply and first sequence.
    pub appends: Vec<(AckSender, u64)>,
}

impl Batch {
    /// The batch's records for the cache, which takes them before `publish` (the journal
    /// inserts a whole group commit's batches at once).
    pub fn take_records(&mut self) -> (LogId, u64, Arc<[StoredRecord]>) {
        let records = std::mem::take(&mut self.records);
        (self.shared.id, self.first_sequence, records.into())
    }

    /// Makes a durable batch readable (its records already cached), then acknowledges
    /// its appends.
    pub fn publish(self, published_at: Instant) {
        let end = self.first_sequence + self.records_len;
        {
            let mut tail = self.shared.tail.lock();
            assert_eq!(
                tail.next_sequence, self.first_sequence,
                "the durable tail advances contiguously"
            );
            assert!(end > tail.next_sequence, "the durable tail never regresses");
            tail.next_sequence = end;
            tail.last_arrival_ms = Some(self.arrival_ms);
        }
        self.shared.durable.send_replace(end);
        for (reply, first_sequence) in self.appends {
            let ack = AppendAck {
                first_sequence,
                arrival_ms: self.arrival_ms,
            };
            let _ = reply.send(Ok((ack, published_at)));
        }
    }

    pub fn fail(self, error: &StorageError) {
        for (reply, _) in self.appends {
            let _ = reply.send(Err(error.duplicate()));
        }
    }
}

pub(crate) struct Writer {
    pub shared: Arc<LogShared>,
    pub mailbox: mpsc::Receiver<WriterCommand>,
    pub journal: mpsc::Sender<JournalCommand>,
    pub metrics: Arc<Metrics>,
    pub next_sequence: u64,
    pub last_arrival_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Writer {
    pub async fn run(self) {
        let Writer {
            shared,
            mut mailbox,
            journal,
            metrics,
            next_sequence,
            mut last_arrival_ms,
        } = self;
        let mut pipeline = Pipeline {
            in_flight: VecDeque::new(),
            next_sequence,
            rewinds: 0,
        };
        let mut stashed: Option<WriterCommand> = None;
        let mut seals: Vec<oneshot::Sender<Result<u64, StorageError>>> = Vec::new();
        let mut stop: Option<oneshot::Sender<()>> = None;
        let mut mailbox_open = true;
        let mut sealed = shared.tail.lock().sealed;

        loop {
            pipeline.reap();
            if pipeline.in_flight.is_empty() {
                if !seals.is_empty() {
                    // Everything queued before the seal is resolved: the tail is final.
                    sealed = true;
                    shared.tail.lock().sealed = true;
                    for reply in seals.drain(..) {
                        let _ = reply.send(Ok(pipeline.next_sequence));
                    }
                }
                if stop.is_some() || (!mailbox_open && stashed.is_none()) {
                    break;
                }
            }
            let accepting =
                pipeline.in_flight.len() < PIPELINE_DEPTH && seals.is_empty() && stop.is_none();
            let command = if accepting && stashed.is_some() {
                stashed.take()
            } else if accepting && mailbox_open {
                let command = mailbox.recv().await;
                if command.is_none() {
                    mailbox_open = false;
                }
                command
            } else {
                // No slot, a seal or stop waiting for what is in flight, or no more mail.
                if !pipeline.in_flight.is_empty() {
                    pipeline.settle_oldest().await;
                }
                continue;
            };
            let Some(command) = command else { continue };
            match command {
                WriterCommand::Seal { reply } => seals.push(reply),
                WriterCommand::Stop { reply } => stop = Some(reply),
                WriterCommand::Append {
                    records,
                    reply,
                    queued_at,
                } => {
                    let taken_at = Instant::now();
                    let waited = |queued_at: Instant| {
                        let elapsed = taken_at.saturating_duration_since(queued_at);
                        metrics.append_waited(AppendStage::Mailbox, elapsed, 1);
                    };
                    waited(queued_at);
                    // Gather whatever else is queued into the same frame.
                    let mut appends = vec![(records, reply)];
                    let mut bytes: usize =
                        appends[0].0.iter().map(format::record_encoded_len).sum();
                    while bytes < BATCH_BYTES_MAX {
                        match mailbox.try_recv() {
                            Ok(WriterCommand::Append {
                                records,
                                reply,
                                queued_at,
                            }) => {
                                waited(queued_at);
                                bytes += records
                                    .iter()
                                    .map(format::record_encoded_len)
                                    .sum::<usize>();
                                appends.push((records, reply));
                            }
                            Ok(other) => {
                                stashed = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    // A failure the journal reported since the loop's reap must rewind
                    // the numbering before this batch is numbered.
                    pipeline.reap();
                    submit(
                        &shared,
                        &journal,
                        sealed,
                        &mut pipeline,
                        &mut last_arrival_ms,
                        appends,
                    )
                    .await;
                }
            }
        }
        if let Some(reply) = stop {
            let _ = reply.send(());
        }
    }
}

/// Numbers and encodes one batch and hands it to the journal.
async fn submit(
    shared: &Arc<LogShared>,
    journal: &mpsc::Sender<JournalCommand>,
    sealed: bool,
    pipeline: &mut Pipeline,
    last_arrival_ms: &mut u64,
    appends: Vec<(Vec<AppendRecord>, AckSender)>,
) {
    // Clamped so arrival never decreases within the log, whatever the wall clock does.
    let arrival_ms = now_ms().max(*last_arrival_ms);
    let first_sequence = pipeline.next_sequence;
    let mut sequence = first_sequence;
    let mut acks = Vec::with_capacity(appends.len());
    let mut records = Vec::new();
    for (append, reply) in appends {
        if sealed {
            let _ = reply.send(Err(StorageError::Sealed(shared.id)));
            continue;
        }
        if append.is_empty() {
            // Nothing to make durable; it gets the position it would have had.
            let ack = AppendAck {
                first_sequence: sequence,
                arrival_ms,
            };
            let _ = reply.send(Ok((ack, Instant::now())));
            continue;
        }
        acks.push((reply, sequence));
        for record in append {
            records.push(record);
            sequence += 1;
        }
    }
    if records.is_empty() {
        return;
    }
    let frame = format::encode_frame(shared.id, first_sequence, arrival_ms, records.iter());
    let header = format::decode_frame_header(&frame).expect("a frame we just encoded decodes");
    let records: Vec<StoredRecord> = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| StoredRecord {
            sequence: first_sequence + i as u64,
            arrival_ms,
            key: r.key,
            data: r.data,
            flags: r.flags,
        })
        .collect();
    let (done_tx, done) = oneshot::channel();
    let submission = Submission {
        log: shared.id,
        header,
        frame,
        batch: Batch {
            shared: shared.clone(),
            first_sequence,
            arrival_ms,
            records_len: records.len() as u64,
            records,
            appends: acks,
        },
        reply: done_tx,
        submitted_at: Instant::now(),
        taken_at: None,
    };
    if let Err(mpsc::error::SendError(command)) =
        journal.send(JournalCommand::Append(submission)).await
    {
        if let JournalCommand::Append(submission) = command {
            submission.batch.fail(&StorageError::Closed);
        }
        return;
    }
    assert!(sequence > pipeline.next_sequence, "sequences only grow");
    pipeline.next_sequence = sequence;
    *last_arrival_ms = arrival_ms;
    pipeline.in_flight.push_back(InFlight {
        first_sequence,
        rewinds: pipeline.rewinds,
        done,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(pipeline: &mut Pipeline, len: u64) -> oneshot::Sender<Result<(), StorageError>> {
        let (tx, done) = oneshot::channel();
        pipeline.in_flight.push_back(InFlight {
            first_sequence: pipeline.next_sequence,
            rewinds: pipeline.rewinds,
            done,
        });
        pipeline.next_sequence += len;
        tx
    }

    #[test]
    fn a_rejection_of_a_batch_numbered_before_the_rewind_does_not_rewind_again() {
        let mut pipeline = Pipeline {
            in_flight: VecDeque::new(),
            next_sequence: 0,
            rewinds: 0,
        };
        let failed = batch(&mut pipeline, 5); // 0..5
        let doomed = batch(&mut pipeline, 3); // 5..8, numbered after the failed one
        failed.send(Err(StorageError::Closed)).unwrap();
        pipeline.reap();
        assert_eq!(pipeline.next_sequence, 0, "rewound to the failed batch");
        // A retry is numbered from there, longer than the failed batch, before the journal
        // rejected the doomed one.
        let retry = batch(&mut pipeline, 7); // 0..7
        doomed.send(Err(StorageError::Closed)).unwrap();
        retry.send(Ok(())).unwrap();
        pipeline.reap();
        assert!(pipeline.in_flight.is_empty());
        assert_eq!(
            pipeline.next_sequence, 7,
            "the retry was accepted at 0..7; rewinding to the doomed batch's 5 would number \
             the next batch inside it"
        );
    }

    #[test]
    fn outcomes_not_yet_sent_stay_in_flight_in_order() {
        let mut pipeline = Pipeline {
            in_flight: VecDeque::new(),
            next_sequence: 10,
            rewinds: 0,
        };
        let first = batch(&mut pipeline, 1);
        let second = batch(&mut pipeline, 1);
        second.send(Ok(())).unwrap();
        pipeline.reap();
        assert_eq!(
            pipeline.in_flight.len(),
            2,
            "the oldest decides what is settled"
        );
        first.send(Err(StorageError::Closed)).unwrap();
        pipeline.reap();
        assert!(pipeline.in_flight.is_empty());
        assert_eq!(pipeline.next_sequence, 10);
        assert_eq!(pipeline.rewinds, 1);
    }
}
