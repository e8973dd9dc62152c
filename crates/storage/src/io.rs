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
