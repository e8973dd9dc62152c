//! One writer task per log: owns the log's tail.
//!
//! The task batches whatever appends are queued in its bounded mailbox, assigns their
//! sequences and arrival time, encodes one frame and submits it to the journal, then goes
//! back to its mailbox while the journal works (pipelining, up to `PIPELINE_DEPTH` frames
//! in flight). Completions come back from the journal in submission order, so
//! acknowledgements stay in sequence order. For each completed batch the task, in order:
//! inserts the records into the cache, advances the durable tail (asserting it is
//! contiguous), publishes it on the watch, then acknowledges the appends. Readers
//! therefore never see a sequence that is not durable and readable.
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
/// Frames of one log in the journal at once.
const PIPELINE_DEPTH: usize = 4;
/// Batching stops at this many bytes (a larger single append still goes alone).
pub(crate) const BATCH_BYTES_MAX: usize = 4 << 20;

pub(crate) enum WriterCommand {
    Append {
        records: Vec<AppendRecord>,
        reply: oneshot::Sender<Result<AppendAck, StorageError>>,
        queued_at: Instant,
    },
    Seal {
        reply: oneshot::Sender<Result<u64, StorageError>>,
    },
    /// Finish what is in flight and exit (shutdown, delete).
    Stop { reply: oneshot::Sender<()> },
}

type AckSender = oneshot::Sender<Result<AppendAck, StorageError>>;

struct InFlight {
    first_sequence: u64,
    arrival_ms: u64,
    records: Vec<StoredRecord>,
    appends: Vec<(oneshot::Sender<Result<AppendAck, StorageError>>, u64)>,
    done: oneshot::Receiver<Result<Instant, StorageError>>,
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
                        let result = result.unwrap_or(Err(StorageError::Closed));
                        complete(&shared, &cache, &metrics, &mut next_sequence, batch, result);
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
    shared: &LogShared,
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
            let _ = reply.send(Ok(AppendAck {
                first_sequence: sequence,
                arrival_ms,
            }));
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
    let (done_tx, done) = oneshot::channel();
    let submission = Submission {
        log: shared.id,
        header,
        frame,
        reply: done_tx,
        appends: acks.len() as u64,
        submitted_at: Instant::now(),
        taken_at: None,
    };
    if journal
        .send(JournalCommand::Append(submission))
        .await
        .is_err()
    {
        for (reply, _) in acks {
            let _ = reply.send(Err(StorageError::Closed));
        }
        return None;
    }
    assert!(sequence > *next_sequence, "sequences only grow");
    *next_sequence = sequence;
    *last_arrival_ms = arrival_ms;
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
    Some(InFlight {
        first_sequence,
        arrival_ms,
        records,
        appends: acks,
        done,
    })
}

/// Publishes (or fails) one batch the journal has finished with.
fn complete(
    shared: &LogShared,
    cache: &RecordCache,
    metrics: &Metrics,
    next_sequence: &mut u64,
    batch: InFlight,
    result: Result<Instant, StorageError>,
) {
    match result {
        Ok(published_at) => {
            metrics.append_waited(
                AppendStage::Completion,
                published_at.elapsed(),
                batch.appends.len() as u64,
            );
            let end = batch.first_sequence + batch.records.len() as u64;
            cache.insert(shared.id, batch.first_sequence, batch.records.into());
            {
                let mut tail = shared.tail.lock();
                assert_eq!(
                    tail.next_sequence, batch.first_sequence,
                    "the durable tail advances contiguously"
                );
                assert!(end > tail.next_sequence, "the durable tail never regresses");
                tail.next_sequence = end;
                tail.last_arrival_ms = Some(batch.arrival_ms);
            }
            shared.durable.send_replace(end);
            for (reply, first_sequence) in batch.appends {
                let _ = reply.send(Ok(AppendAck {
                    first_sequence,
                    arrival_ms: batch.arrival_ms,
                }));
            }
        }
        Err(error) => {
            // Later batches already numbered after this one will be rejected by the
            // journal; new ones reuse these sequences.
            *next_sequence = (*next_sequence).min(batch.first_sequence);
            for (reply, _) in batch.appends {
                let _ = reply.send(Err(error.duplicate()));
            }
        }
    }
}
