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
//! the journal and the append's own task (BENCHMARKS.md, round 7); this task still hears
//! each frame's outcome, off the appends' path, to free its pipeline slot; a failed batch
//! comes back here to be failed after the rewind below.
//!
//! On a failed batch the task rewinds its sequence counter to the batch's first sequence;
//! the journal rejects the later batches already numbered after it (see `journal.rs`), so
//! sequences stay gap-free.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

use crate::cache::RecordCache;
use crate::format;
use crate::journal::{JournalCommand, Metrics, Submission};
use crate::{AppendAck, AppendRecord, AppendStage, LogShared, StorageError, StoredRecord};

/// Bounded mailbox: a full mailbox makes `append` wait (backpressure), it never grows.
pub(crate) const MAILBOX_CAPACITY: usize = 1024;
/// Frames of one log in the journal at once. This task frees a slot only once it hears a
/// frame's outcome, one thread wake-up after the appends did (the journal publishes), so
/// with 4 slots appends waited ~230 us here at 32 connections; with 16, ~40 us. More frames
/// per group commit cost no extra segment writes (`journal::SegmentRun`). BENCHMARKS.md,
/// round 7.
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
    done: oneshot::Receiver<Result<(), (StorageError, Batch)>>,
}

/// A numbered batch on its way through the journal: published there, or handed back here
/// to be failed.
pub(crate) struct Batch {
    shared: Arc<LogShared>,
    cache: Arc<RecordCache>,
    first_sequence: u64,
    arrival_ms: u64,
    records: Vec<StoredRecord>,
    /// Each append's reply and first sequence.
    pub appends: Vec<(AckSender, u64)>,
}

impl Batch {
    /// Makes a durable batch readable, then acknowledges its appends.
    pub fn publish(self, published_at: Instant) {
        let end = self.first_sequence + self.records.len() as u64;
        self.cache
            .insert(self.shared.id, self.first_sequence, self.records.into());
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
    pub cache: Arc<RecordCache>,
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
            cache,
            metrics,
            mut next_sequence,
            mut last_arrival_ms,
        } = self;
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut stashed: Option<WriterCommand> = None;
        let mut seals: Vec<oneshot::Sender<Result<u64, StorageError>>> = Vec::new();
        let mut stop: Option<oneshot::Sender<()>> = None;
        let mut mailbox_open = true;
        let mut sealed = shared.tail.lock().sealed;

        loop {
            if in_flight.is_empty() {
                if !seals.is_empty() {
                    // Everything queued before the seal is resolved: the tail is final.
                    sealed = true;
                    shared.tail.lock().sealed = true;
                    for reply in seals.drain(..) {
                        let _ = reply.send(Ok(next_sequence));
                    }
                }
                if stop.is_some() || (!mailbox_open && stashed.is_none()) {
                    break;
                }
            }
            let accepting = in_flight.len() < PIPELINE_DEPTH && seals.is_empty() && stop.is_none();
            let command = if accepting && stashed.is_some() {
                stashed.take()
            } else {
                tokio::select! {
                    biased;
                    result = async {
                        (&mut in_flight.front_mut().expect("guarded by the branch condition").done).await
                    }, if !in_flight.is_empty() => {
                        let batch = in_flight.pop_front().expect("guarded by the branch condition");
                        // A journal that exited dropped the batch with its replies.
                        if let Ok(Err((error, failed))) = result {
                            // Later batches already numbered after this one will be
                            // rejected by the journal; new ones reuse these sequences.
                            next_sequence = next_sequence.min(batch.first_sequence);
                            failed.fail(&error);
                        }
                        continue;
                    }
                    command = mailbox.recv(), if accepting && mailbox_open => {
                        if command.is_none() {
                            mailbox_open = false;
                        }
                        command
                    }
                }
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
                    let batch = submit(
                        &shared,
                        &cache,
                        &journal,
                        sealed,
                        &mut next_sequence,
                        &mut last_arrival_ms,
                        appends,
                    )
                    .await;
                    if let Some(batch) = batch {
                        in_flight.push_back(batch);
                    }
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
    cache: &Arc<RecordCache>,
    journal: &mpsc::Sender<JournalCommand>,
    sealed: bool,
    next_sequence: &mut u64,
    last_arrival_ms: &mut u64,
    appends: Vec<(Vec<AppendRecord>, AckSender)>,
) -> Option<InFlight> {
    // Clamped so arrival never decreases within the log, whatever the wall clock does.
    let arrival_ms = now_ms().max(*last_arrival_ms);
    let first_sequence = *next_sequence;
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
        return None;
    }
    let frame = format::encode_frame(shared.id, first_sequence, arrival_ms, records.iter());
    let header = format::decode_frame_header(&frame).expect("a frame we just encoded decodes");
    let records = records
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
            cache: cache.clone(),
            first_sequence,
            arrival_ms,
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
        return None;
    }
    assert!(sequence > *next_sequence, "sequences only grow");
    *next_sequence = sequence;
    *last_arrival_ms = arrival_ms;
    Some(InFlight {
        first_sequence,
        done,
    })
}
