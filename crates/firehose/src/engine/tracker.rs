//! Which source records are fully delivered, and what the next restart must redo or skip.

use std::collections::BTreeMap;

use crate::meta::{Batch, Intent, Progress};

/// In-memory view of delivery progress over the persisted `Progress`.
pub(crate) struct Tracker {
    pub progress: Progress,
    /// Outputs of each read source record not yet delivered, by source, then sequence.
    outstanding: BTreeMap<String, BTreeMap<u64, u32>>,
    /// Next sequence to read per source.
    read_next: BTreeMap<String, u64>,
}

impl Tracker {
    pub fn new(progress: Progress) -> Self {
        let read_next = progress.checkpoints.clone();
        Self {
            progress,
            outstanding: BTreeMap::new(),
            read_next,
        }
    }

    /// The persisted checkpoint of a source, if it has one.
    pub fn checkpoint(&self, source: &str) -> Option<u64> {
        self.read_next.get(source).copied()
    }

    /// Starts a source never read before at `position`.
    pub fn start_at(&mut self, source: &str, position: u64) {
        self.read_next.insert(source.to_string(), position);
        self.progress
            .checkpoints
            .insert(source.to_string(), position);
    }

    /// Where reading a source starts or continues.
    pub fn read_position(&self, source: &str) -> u64 {
        self.read_next.get(source).copied().unwrap_or(0)
    }

    /// Whether an output was already written (by a delivered batch or a pending intent, which
    /// is redone separately before reading resumes).
    pub fn already_written(&self, lane: &str, source: &str, position: (u64, u32)) -> bool {
        self.progress
            .delivered
            .iter()
            .chain(self.progress.intents.iter().map(|intent| &intent.batch))
            .any(|batch| batch.contains(lane, source, position))
    }

    /// A source record was read and produced `pending` outputs still to deliver.
    pub fn record_read(&mut self, source: &str, sequence: u64, pending: u32) {
        if pending > 0 {
            let owed = match self.outstanding.get_mut(source) {
                Some(owed) => owed,
                None => self.outstanding.entry(source.to_string()).or_default(),
            };
            *owed.entry(sequence).or_default() += pending;
        }
        match self.read_next.get_mut(source) {
            Some(next) => *next = (*next).max(sequence + 1),
            None => {
                self.read_next.insert(source.to_string(), sequence + 1);
            }
        }
    }

    pub fn begin(&mut self, intent: Intent) {
        self.progress.intents.push(intent);
    }

    /// A batch reached its destination: its outputs are no longer outstanding, the intent
    /// becomes a delivered batch, and checkpoints move past every fully delivered record.
    /// `delivered_outputs` lists (source, sequence) once per output of the batch.
    pub fn complete<'s>(
        &mut self,
        batch: &Batch,
        delivered_outputs: impl IntoIterator<Item = (&'s str, u64)>,
    ) {
        for (source, sequence) in delivered_outputs {
            if let Some(owed) = self.outstanding.get_mut(source)
                && let Some(count) = owed.get_mut(&sequence)
            {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    owed.remove(&sequence);
                }
            }
        }
        self.progress
            .intents
            .retain(|intent| &intent.batch != batch);
        self.progress.delivered.push(batch.clone());
        self.advance();
    }

    fn advance(&mut self) {
        for (source, next) in &self.read_next {
            let lowest_outstanding = self
                .outstanding
                .get(source)
                .and_then(|owed| owed.keys().next().copied());
            let checkpoint = lowest_outstanding.unwrap_or(*next);
            self.progress.checkpoints.insert(source.clone(), checkpoint);
        }
        let checkpoints = &self.progress.checkpoints;
        // A delivered batch is forgotten once every record it covered is below its
        // source's checkpoint: nothing will be read there again.
        self.progress.delivered.retain(|batch| {
            batch.spans.iter().any(|(source, (_, last))| {
                checkpoints
                    .get(source)
                    .is_none_or(|checkpoint| last.0 >= *checkpoint)
            })
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn batch(lane: &str, first: (u64, u32), last: (u64, u32)) -> Batch {
        Batch {
            lane: lane.to_string(),
            spans: [("log".to_string(), (first, last))].into(),
        }
    }

    #[test]
    fn checkpoint_waits_for_every_lane_of_a_record() {
        let mut tracker = Tracker::new(Progress::default());
        // Record 0 has a data output and a backup output; record 1 only data.
        tracker.record_read("log", 0, 2);
        tracker.record_read("log", 1, 1);
        let data = batch("data", (0, 0), (1, 0));
        tracker.complete(&data, [("log", 0), ("log", 1)]);
        assert_eq!(
            tracker.progress.checkpoints["log"], 0,
            "backup of 0 pending"
        );
        assert!(tracker.already_written("data", "log", (1, 0)));
        assert!(!tracker.already_written("backup", "log", (0, u32::MAX)));
        let backup = batch("backup", (0, u32::MAX), (0, u32::MAX));
        tracker.complete(&backup, [("log", 0)]);
        assert_eq!(tracker.progress.checkpoints["log"], 2);
        assert!(
            tracker.progress.delivered.is_empty(),
            "pruned below checkpoint"
        );
    }

    #[test]
    fn records_without_outputs_do_not_hold_the_checkpoint() {
        let mut tracker = Tracker::new(Progress::default());
        tracker.record_read("log", 0, 0);
        tracker.record_read("log", 1, 1);
        tracker.complete(&batch("data", (1, 0), (1, 0)), [("log", 1)]);
        assert_eq!(tracker.progress.checkpoints["log"], 2);
    }
}
