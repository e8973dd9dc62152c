//! The narrow file layer behind every write and sync the store makes.
//!
//! Reads go straight to `FileExt::read_at`; only the operations whose failure the store
//! must survive (write, sync, truncate) pass through `WriteLayer`, so tests can inject
//! disk-full and EIO faults without a special file system.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub(crate) trait WriteLayer: Send + Sync + std::fmt::Debug + 'static {
    fn write_all_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()>;
    fn sync_data(&self, file: &File) -> io::Result<()>;
    fn set_len(&self, file: &File, len: u64) -> io::Result<()>;
}

/// The real thing.
#[derive(Debug, Default)]
pub(crate) struct OsLayer;

impl WriteLayer for OsLayer {
    fn write_all_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        file.write_all_at(buf, offset)
    }
    fn sync_data(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }
    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        file.set_len(len)
    }
}

/// Makes a directory entry (a created, renamed or removed file) durable.
pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

#[cfg(test)]
pub(crate) mod fault {
    //! A `WriteLayer` that runs out of space or fails syncs on demand.

    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use super::*;

    #[derive(Debug)]
    pub(crate) struct FaultLayer {
        /// Bytes that may still be written; a write past it writes a prefix (a torn
        /// write, as a real full disk produces) and fails with ENOSPC.
        pub space_left: AtomicU64,
        pub fail_sync: AtomicBool,
        /// Added to every sync, so appends pile up behind it as behind a slow disk.
        pub sync_delay_micros: AtomicU64,
        /// Fail the next sync the journal's sync thread runs (a pipelined group commit's),
        /// and every sync after it.
        pub fail_pipelined_sync: AtomicBool,
    }

    impl FaultLayer {
        pub fn new() -> Self {
            Self {
                space_left: AtomicU64::new(u64::MAX),
                fail_sync: AtomicBool::new(false),
                sync_delay_micros: AtomicU64::new(0),
                fail_pipelined_sync: AtomicBool::new(false),
            }
        }
    }

    impl WriteLayer for FaultLayer {
        fn write_all_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
            let left = self.space_left.load(Ordering::SeqCst);
            if (buf.len() as u64) <= left {
                self.space_left
                    .fetch_sub(buf.len() as u64, Ordering::SeqCst);
                return file.write_all_at(buf, offset);
            }
            self.space_left.store(0, Ordering::SeqCst);
            file.write_all_at(&buf[..left as usize], offset)?;
            Err(io::Error::from_raw_os_error(28)) // ENOSPC
        }
        fn sync_data(&self, file: &File) -> io::Result<()> {
            let delay = self.sync_delay_micros.load(Ordering::SeqCst);
            if delay > 0 {
                std::thread::sleep(std::time::Duration::from_micros(delay));
            }
            if self.fail_pipelined_sync.load(Ordering::SeqCst)
                && std::thread::current().name() == Some("millstream-sync")
            {
                self.fail_sync.store(true, Ordering::SeqCst);
            }
            if self.fail_sync.load(Ordering::SeqCst) {
                return Err(io::Error::from_raw_os_error(5)); // EIO
            }
            file.sync_data()
        }
        fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
            file.set_len(len)
        }
    }
}

#[cfg(test)]
pub(crate) mod power {
    //! A `WriteLayer` that can lose, at a simulated power cut, everything no sync covered:
    //! every write and truncation through it is undoable until an `fdatasync` of the same
    //! file that *started after it* returns (a sync may or may not carry a write made while
    //! it runs, so the model assumes it did not). Writes that bypass the layer (files
    //! created and synced at once) count as durable at once.

    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::Mutex;

    use super::*;

    enum Undo {
        /// Bytes that were at `offset` before a write (only the part below the old end).
        Bytes { offset: u64, old: Vec<u8> },
        /// The file's length before a write or truncation.
        Len(u64),
    }

    #[derive(Default)]
    struct State {
        /// Per file, in order: (id, undo) for changes no finished sync covers yet.
        pending: HashMap<PathBuf, Vec<(u64, Undo)>>,
        next_id: u64,
        cut: bool,
    }

    #[derive(Default)]
    pub(crate) struct PowerCutLayer {
        state: Mutex<State>,
    }

    impl std::fmt::Debug for PowerCutLayer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("PowerCutLayer")
        }
    }

    fn path_of(file: &File) -> io::Result<PathBuf> {
        use std::os::fd::AsRawFd;
        std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
    }

    fn dead() -> io::Error {
        io::Error::from_raw_os_error(5) // EIO: the machine is off
    }

    impl PowerCutLayer {
        fn record(state: &mut State, path: PathBuf, undo: Vec<Undo>) {
            for undo in undo {
                let id = state.next_id;
                state.next_id += 1;
                state
                    .pending
                    .entry(path.clone())
                    .or_default()
                    .push((id, undo));
            }
        }

        /// The power goes: every later operation fails, and each file is put back to what
        /// its last covering sync made durable.
        pub fn cut(&self) {
            let mut state = self.state.lock().unwrap();
            state.cut = true;
            for (path, changes) in state.pending.drain() {
                let Ok(file) = OpenOptions::new().write(true).open(&path) else {
                    continue; // deleted since: its deletion is what stays
                };
                for (_, undo) in changes.into_iter().rev() {
                    match undo {
                        Undo::Bytes { offset, old } => file.write_all_at(&old, offset).unwrap(),
                        Undo::Len(len) => file.set_len(len).unwrap(),
                    }
                }
            }
        }
    }

    use std::fs::OpenOptions;

    impl WriteLayer for PowerCutLayer {
        fn write_all_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
            let mut state = self.state.lock().unwrap();
            if state.cut {
                return Err(dead());
            }
            let path = path_of(file)?;
            let len = file.metadata()?.len();
            let end = (offset + buf.len() as u64).min(len);
            let mut old = vec![0; end.saturating_sub(offset) as usize];
            // Through a file of its own: some writers open theirs write-only.
            File::open(&path)?.read_exact_at(&mut old, offset)?;
            Self::record(
                &mut state,
                path,
                vec![Undo::Len(len), Undo::Bytes { offset, old }],
            );
            file.write_all_at(buf, offset)
        }

        fn sync_data(&self, file: &File) -> io::Result<()> {
            let path = path_of(file)?;
            let covered = {
                let state = self.state.lock().unwrap();
                if state.cut {
                    return Err(dead());
                }
                state.next_id
            };
            file.sync_data()?;
            let mut state = self.state.lock().unwrap();
            if state.cut {
                return Err(dead()); // the power went during the sync
            }
            if let Some(changes) = state.pending.get_mut(&path) {
                changes.retain(|(id, _)| *id >= covered);
            }
            Ok(())
        }

        fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
            let mut state = self.state.lock().unwrap();
            if state.cut {
                return Err(dead());
            }
            let path = path_of(file)?;
            let old_len = file.metadata()?.len();
            let mut undo = vec![Undo::Len(old_len)];
            if len < old_len {
                let mut old = vec![0; (old_len - len) as usize];
                File::open(&path)?.read_exact_at(&mut old, len)?;
                undo.push(Undo::Bytes { offset: len, old });
            }
            Self::record(&mut state, path, undo);
            file.set_len(len)
        }
    }
}
