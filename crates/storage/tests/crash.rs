//! Real-process crash test: this test binary re-executes itself as a child writer (the
//! `#[ignore]`d `crash_child_writer` test, selected with `--ignored --exact` and given its
//! data directory through `MILLSTREAM_CRASH_CHILD_DIR`). The child appends under
//! concurrent load to several logs and prints one `ACK <log> <sequence> <hash>` line per
//! acknowledged record, flushed before the next append. The parent SIGKILLs it at random
//! moments, reopens the store and checks that every acknowledged record is present, at
//! its sequence, exactly once, in order, with the right bytes; then starts the next
//! child on the same directory.

#![allow(clippy::unwrap_used)] // test helpers, not product code

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use millstream_storage::{AppendRecord, Store, StoreConfig};
use rand::{Rng, SeedableRng};

const CHILD_DIR_ENV: &str = "MILLSTREAM_CRASH_CHILD_DIR";
const LOGS: u64 = 4;
const TASKS: u64 = 8;
const CYCLES: usize = 22;

fn config(dir: &std::path::Path) -> StoreConfig {
    let mut config = StoreConfig::new(dir);
    // Small files so kills land in rolls and checkpoints too.
    config.segment_bytes_max = 256 << 10;
    config.journal_bytes_max = 1 << 20;
    config.cache_bytes_max = 1 << 20;
    // Most groups place some logs' frames in their segments and journal the others', so
    // kills land between the journal's sync and the segments' too.
    config.placed_frame_bytes_min = 4 << 10;
    config
}

fn hash(key: &[u8], data: &[u8]) -> u64 {
    // FNV-1a: enough to tell records apart.
    let mut h = 0xcbf29ce484222325u64;
    for b in key.iter().chain(data) {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100000001b3);
    }
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of crash_test_kill_9_loses_nothing_acknowledged"]
async fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let store = Store::open(config(dir.as_ref())).await.unwrap();
    for log in 0..LOGS {
        store.create_log(log).await.unwrap();
    }
    let pid = std::process::id();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::from_os_rng();
            for counter in 0u64.. {
                let log = rng.random_range(0..LOGS);
                let n = rng.random_range(1..=6);
                let records: Vec<AppendRecord> = (0..n)
                    .map(|i| {
                        let len = if rng.random_ratio(1, 200) {
                            200_000
                        } else {
                            rng.random_range(8..600)
                        };
                        let mut data = vec![0u8; len];
                        rng.fill(&mut data[..]);
                        data[..8].copy_from_slice(&(counter * 16 + i).to_be_bytes());
                        AppendRecord {
                            key: Bytes::from(format!("{pid}-{task}")),
                            data: Bytes::from(data),
                            flags: 0,
                        }
                    })
                    .collect();
                let ack = store.append(log, records.clone()).await.unwrap();
                let mut out = std::io::stdout().lock();
                for (i, r) in records.iter().enumerate() {
                    writeln!(
                        out,
                        "ACK {log} {} {}",
                        ack.first_sequence + i as u64,
                        hash(&r.key, &r.data)
                    )
                    .unwrap();
                }
                out.flush().unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_test_kill_9_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    // log -> sequence -> hash, over all cycles.
    let mut acked: HashMap<u64, BTreeMap<u64, u64>> = HashMap::new();
    let mut rng = rand::rng();
    let mut total_acks = 0usize;
    let mut verified = Verified::default();
    for cycle in 0..CYCLES {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ACK ") {
                    let v: Vec<u64> = rest.split(' ').map(|x| x.parse().unwrap()).collect();
                    lines.push((v[0], v[1], v[2]));
                }
            }
            lines
        });
        // Let the child get going (open + recovery), then kill it at a random moment.
        std::thread::sleep(Duration::from_millis(rng.random_range(80..700)));
        // `Child::kill` is SIGKILL on Unix (no unsafe `libc::kill` needed): the child gets
        // no chance to flush, sync or run destructors.
        child.kill().unwrap();
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        total_acks += lines.len();
        for (log, sequence, h) in lines {
            let previous = acked.entry(log).or_default().insert(sequence, h);
            assert!(
                previous.is_none(),
                "sequence {sequence} of log {log} acknowledged twice"
            );
        }
        verify(
            dir.path(),
            &acked,
            &mut verified,
            cycle % 5 == 4 || cycle + 1 == CYCLES,
        )
        .await;
        eprintln!(
            "cycle {cycle}: {total_acks} acks so far, {:?}",
            started.elapsed()
        );
    }
    assert!(
        total_acks > 1000,
        "the child wrote too little to be a test: {total_acks}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "crash test too slow: {:?}",
        started.elapsed()
    );
}

/// What the parent has verified so far, so most cycles only read what is new.
#[derive(Default)]
struct Verified {
    /// Per log: sequences below this were read and checked.
    upto: HashMap<u64, u64>,
    /// Per log: sequence -> hash of every record read so far.
    hashes: HashMap<u64, Vec<u64>>,
    /// (writer, record id) seen, for exactly-once.
    seen: HashSet<(Bytes, u64)>,
    /// Per log and writer: the last record id, for order.
    last_id: HashMap<(u64, Bytes), u64>,
}

/// Reopens the store (recovery) and checks it; `full` re-reads everything from 0 and
/// compares it with what earlier cycles read.
async fn verify(
    dir: &std::path::Path,
    acked: &HashMap<u64, BTreeMap<u64, u64>>,
    state: &mut Verified,
    full: bool,
) {
    let store = Store::open(config(dir)).await.unwrap();
    for log in 0..LOGS {
        let Ok(tail) = store.tail(log) else {
            assert!(
                acked.get(&log).is_none_or(|a| a.is_empty()),
                "log {log} with acks is missing"
            );
            continue;
        };
        let upto = state.upto.get(&log).copied().unwrap_or(0);
        assert!(
            tail.next_sequence >= upto,
            "log {log}: tail went back from {upto} to {}",
            tail.next_sequence
        );
        let mut next = if full { 0 } else { upto };
        let wanted = acked.get(&log);
        while next < tail.next_sequence {
            let records = store.read(log, next, 10_000, 8 << 20).await.unwrap();
            assert!(
                !records.is_empty(),
                "log {log}: nothing readable at {next} below {}",
                tail.next_sequence
            );
            for r in records {
                assert_eq!(r.sequence, next, "log {log}: sequences are contiguous");
                next += 1;
                let h = hash(&r.key, &r.data);
                let hashes = state.hashes.entry(log).or_default();
                if r.sequence < upto {
                    assert_eq!(
                        hashes[r.sequence as usize], h,
                        "log {log} seq {}: changed after a crash",
                        r.sequence
                    );
                    continue;
                }
                hashes.push(h);
                let id = u64::from_be_bytes(r.data[..8].try_into().unwrap());
                assert!(
                    state.seen.insert((r.key.clone(), id)),
                    "log {log}: record {id} of {:?} stored twice",
                    r.key
                );
                // One writer task waits for each ack: its records appear in its order.
                if let Some(previous) = state.last_id.insert((log, r.key.clone()), id) {
                    assert!(previous < id, "log {log}: records of {:?} reordered", r.key);
                }
            }
        }
        state.upto.insert(log, tail.next_sequence);
        let hashes = state.hashes.get(&log).map_or(&[][..], |h| &h[..]);
        for (&sequence, &h) in wanted.into_iter().flatten() {
            assert!(
                sequence < tail.next_sequence,
                "log {log}: acknowledged {sequence} lost (tail {})",
                tail.next_sequence
            );
            assert_eq!(
                hashes[sequence as usize], h,
                "log {log} seq {sequence}: wrong bytes"
            );
        }
    }
    drop(store); // without shutdown: the next child recovers from whatever we left
}
