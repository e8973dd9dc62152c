//! Journal space written ahead of the units that will fill it.
//!
//! On ext4 (and most file systems) an `fdatasync` after an append that grows the file must
//! also commit the new size and block allocation: a metadata journal commit, which on this
//! project's reference disk doubles the sync's mean time (`scripts/fsync-probe`: 0.69-0.82
//! ms growing, 0.28-0.38 ms into blocks written beforehand). So a helper thread keeps one
//! to two chunks of zeros written and synced past the journal's last unit, and group
//! commits overwrite them: their syncs then carry data only.
//!
//! The journal thread decides every range (`Journal::prepare_space`) and never writes a
//! unit into a range whose fill is still running (it stops the fill after its current
//! step and waits for that), so zeros never land on a unit. Zeros
//! after the last unit are what recovery expects at a journal's end (`recovery::replay`).
//! A fill that cannot write (disk full) only means later units grow the file again. A fill
//! works through a file description of its own, so its syncs never consume a write-back
//! error the journal's sync must see; a fill whose sync fails still fences the store
//! (the file's pages cannot be trusted).

use std::fs::File;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};

use crate::io::WriteLayer;

/// Zeros written, then synced, per step of a fill. A group commit's `fdatasync` on the
/// journal waits for the file's pages under write-back, the fill's included: in small
/// steps that is at most ~1 ms of this disk, where one 4 MiB write would stall it ~15 ms.
const ZERO_BLOCK: usize = 256 << 10;

struct Fill {
    generation: u64,
    file: File,
    from: u64,
    to: u64,
}

/// The journal thread's side of a running fill.
pub(crate) struct RunningFill {
    pub generation: u64,
    /// Asks the fill to stop after the step it is in (a unit needs the range).
    stop: Arc<AtomicBool>,
}

impl RunningFill {
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// How a fill ended.
pub(crate) struct Filled {
    /// The journal the fill was for: a checkpoint may have moved on to the next one.
    pub generation: u64,
    /// Written and synced up to here: the requested end, or less if stopped or failed.
    pub to: u64,
    pub outcome: Result<(), FillError>,
}

pub(crate) enum FillError {
    /// The zeros were not (all) written: nothing is prepared, nothing is at risk.
    Write(io::Error),
    /// The sync failed: the file's dirty pages may be gone.
    Sync(io::Error),
}

/// The helper thread. One fill at a time; dropping this ends the thread.
pub(crate) struct SpacePreparer {
    requests: SyncSender<(Fill, Arc<AtomicBool>)>,
    done: Receiver<Filled>,
}

impl SpacePreparer {
    pub fn start(layer: Arc<dyn WriteLayer>) -> io::Result<Self> {
        let (requests, incoming) = std::sync::mpsc::sync_channel::<(Fill, Arc<AtomicBool>)>(1);
        let (report, done) = std::sync::mpsc::sync_channel::<Filled>(1);
        std::thread::Builder::new()
            .name("millstream-space".into())
            .spawn(move || {
                let zeros = vec![0u8; ZERO_BLOCK];
                for (fill, stop) in incoming {
                    let (to, outcome) = write_zeros(&*layer, &fill, &zeros, &stop);
                    let filled = Filled {
                        generation: fill.generation,
                        to,
                        outcome,
                    };
                    if report.send(filled).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Self { requests, done })
    }

    /// Starts filling `[from, to)` of `file` (a handle to journal `generation`). The caller
    /// must have collected the previous fill's result first.
    pub fn request(&self, generation: u64, file: File, from: u64, to: u64) -> Option<RunningFill> {
        let stop = Arc::new(AtomicBool::new(false));
        let fill = Fill {
            generation,
            file,
            from,
            to,
        };
        self.requests.try_send((fill, stop.clone())).ok()?;
        Some(RunningFill { generation, stop })
    }

    /// The running fill's result, if it has finished (or, with `wait`, once it has).
    pub fn finished(&self, wait: bool) -> Option<Filled> {
        if wait {
            return self.done.recv().ok();
        }
        self.done.try_recv().ok()
    }
}

/// Writes and syncs zeros step by step; returns how far it got.
fn write_zeros(
    layer: &dyn WriteLayer,
    fill: &Fill,
    zeros: &[u8],
    stop: &AtomicBool,
) -> (u64, Result<(), FillError>) {
    let mut at = fill.from;
    while at < fill.to && !stop.load(Ordering::SeqCst) {
        let len = (fill.to - at).min(zeros.len() as u64) as usize;
        if let Err(e) = layer.write_all_at(&fill.file, &zeros[..len], at) {
            return (at, Err(FillError::Write(e)));
        }
        if let Err(e) = layer.sync_data(&fill.file) {
            return (at, Err(FillError::Sync(e)));
        }
        at += len as u64;
    }
    (at, Ok(()))
}
