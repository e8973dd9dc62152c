//! Real external services for integration tests: moto's S3 server and a throwaway PostgreSQL
//! cluster, each on a free 127.0.0.1 port and gone when its handle drops.
//!
//! `scripts/test-deps` installs both (`moto_server` from PyPI's `moto[server]`, PostgreSQL from
//! Debian). Only std and tempfile are used so that any test crate can include this file with
//! `#[path = ".../external.rs"] mod external;`.
//!
//! PostgreSQL refuses to run as root, and CI runs as root: then initdb and the server run as the
//! `postgres` system user (or `nobody`) through `runuser`/`setpriv`, in a tempdir that user owns.
#![allow(dead_code)] // each including crate uses its own subset

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// moto imports a lot of Python before it listens; a cold start on a loaded 2-core runner can
/// take tens of seconds.
const MOTO_START_TIMEOUT: Duration = Duration::from_secs(90);
const POSTGRES_START_ATTEMPTS: usize = 3;
const HTTP_IO_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A `moto_server` process serving the S3 API at [`MotoS3::endpoint`]. It accepts any
/// credentials; buckets must be created before use.
pub struct MotoS3 {
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
    pub port: u16,
    child: Child,
    log: tempfile::NamedTempFile,
}

impl MotoS3 {
    /// Starts moto and waits until it answers HTTP.
    ///
    /// # Panics
    /// When `moto_server` is missing or does not answer in time (run `scripts/test-deps`).
    pub fn start() -> MotoS3 {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("create the moto log file");
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("reopen the moto log"))
            .stderr(log.reopen().expect("reopen the moto log"))
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot run moto_server ({error}); run scripts/test-deps first")
            });
        let mut moto = MotoS3 {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            child,
            log,
        };
        let deadline = Instant::now() + MOTO_START_TIMEOUT;
        loop {
            if http_request(port, "GET", "/", "").is_ok_and(|(status, _)| status > 0) {
                return moto;
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited with {status}:\n{}", moto.log_text());
            }
            if Instant::now() > deadline {
                panic!(
                    "moto_server did not answer within {MOTO_START_TIMEOUT:?}:\n{}",
                    moto.log_text()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Creates a bucket in us-east-1 (no LocationConstraint).
    ///
    /// # Panics
    /// When moto does not answer 200.
    pub fn create_bucket(&self, name: &str) {
        let (status, body) = http_request(self.port, "PUT", &format!("/{name}"), "")
            .unwrap_or_else(|error| panic!("CreateBucket {name}: {error}"));
        assert_eq!(status, 200, "CreateBucket {name} answered {status}: {body}");
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for MotoS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PostgreSQL cluster of its own, reachable at [`Postgres::url`] with password authentication.
pub struct Postgres {
    pub port: u16,
    /// `postgresql://<user>:<password>@127.0.0.1:<port>/<database>`
    pub url: String,
    pub user: String,
    pub password: String,
    pub database: String,
    bin_dir: PathBuf,
    data_dir: PathBuf,
    run_as: Option<String>,
    /// Removed on drop, after the server has stopped.
    _root: tempfile::TempDir,
}

impl Postgres {
    /// initdb in a tempdir and start the server on a free port.
    ///
    /// # Panics
    /// When the PostgreSQL binaries are missing (run `scripts/test-deps`) or the server fails
    /// to start; the panic message carries the server log.
    pub fn start() -> Postgres {
        let bin_dir = postgres_bin_dir();
        let run_as = if running_as_root() {
            Some(unprivileged_user())
        } else {
            None
        };
        // Under /tmp explicitly: a TMPDIR inside root's home would be out of the server user's reach.
        let base = if run_as.is_some() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let root = tempfile::Builder::new()
            .prefix("millstream-pg")
            .tempdir_in(base)
            .expect("create the PostgreSQL tempdir");
        let user = "millstream".to_owned();
        let password = "millstream-test-password".to_owned();
        let database = "postgres".to_owned();
        let data_dir = root.path().join("data");
        let password_file = root.path().join("password");
        std::fs::write(&password_file, &password).expect("write the password file");
        if let Some(owner) = &run_as {
            let status = Command::new("chown")
                .arg("-R")
                .arg(owner)
                .arg(root.path())
                .status()
                .expect("run chown");
            assert!(
                status.success(),
                "chown {owner} {} failed",
                root.path().display()
            );
        }

        let initdb = run_as_user(&run_as, &bin_dir.join("initdb"))
            .arg("-D")
            .arg(&data_dir)
            .args([
                "-U",
                &user,
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", password_file.display()))
            .stdin(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            initdb.status.success(),
            "initdb failed:\n{}{}",
            String::from_utf8_lossy(&initdb.stdout),
            String::from_utf8_lossy(&initdb.stderr)
        );

        // A free port can be taken between our probe and the server's bind; try a few.
        let log_file = root.path().join("server.log");
        for attempt in 1..=POSTGRES_START_ATTEMPTS {
            let port = free_port();
            let options = format!(
                "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={} \
                 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                root.path().display()
            );
            let started = run_as_user(&run_as, &bin_dir.join("pg_ctl"))
                .arg("-D")
                .arg(&data_dir)
                .arg("-l")
                .arg(&log_file)
                .args(["-o", &options, "-w", "-t", "60", "start"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run pg_ctl start");
            if started.success() {
                let url = format!("postgresql://{user}:{password}@127.0.0.1:{port}/{database}");
                return Postgres {
                    port,
                    url,
                    user,
                    password,
                    database,
                    bin_dir,
                    data_dir,
                    run_as,
                    _root: root,
                };
            }
            if attempt == POSTGRES_START_ATTEMPTS {
                let log = std::fs::read_to_string(&log_file).unwrap_or_default();
                panic!("PostgreSQL did not start after {attempt} attempts:\n{log}");
            }
        }
        unreachable!("the loop returns or panics on its last attempt")
    }

    /// Runs SQL through `psql` and returns its unaligned, tuples-only output
    /// (rows on lines, columns separated by `|`).
    ///
    /// # Panics
    /// When psql fails.
    pub fn psql(&self, sql: &str) -> String {
        let psql = self.bin_dir.join("psql");
        let program = if psql.exists() {
            psql
        } else {
            PathBuf::from("psql")
        };
        let output = Command::new(program)
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url,
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run psql");
        assert!(
            output.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = run_as_user(&self.run_as, &self.bin_dir.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "immediate", "-w", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener
        .local_addr()
        .expect("local address of a bound listener")
        .port()
}

/// A minimal HTTP/1.1 exchange on 127.0.0.1 (std only): status code and body text.
fn http_request(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(HTTP_IO_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_IO_TIMEOUT))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let _ = stream.shutdown(Shutdown::Both);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin, else whatever PATH finds.
fn postgres_bin_dir() -> PathBuf {
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .find(|dir| dir.join("initdb").exists());
    on_path
        .unwrap_or_else(|| panic!("PostgreSQL binaries (initdb) not found; run scripts/test-deps"))
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// The Debian package's `postgres` user, else `nobody`.
fn unprivileged_user() -> String {
    let exists = |user: &str| {
        Command::new("id")
            .arg("-u")
            .arg(user)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if exists("postgres") {
        "postgres".to_owned()
    } else {
        "nobody".to_owned()
    }
}

/// `program` run directly, or as `user` through runuser (setpriv where runuser is missing).
/// The working directory is `/` because the test's own (often under /root) may be unreadable for
/// the server user, and PostgreSQL's tools complain about that.
fn run_as_user(user: &Option<String>, program: &Path) -> Command {
    let Some(user) = user else {
        return Command::new(program);
    };
    let runuser = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
        .into_iter()
        .map(Path::new)
        .find(|path| path.exists());
    if let Some(runuser) = runuser {
        let mut command = Command::new(runuser);
        command
            .current_dir("/")
            .args(["-u", user, "--"])
            .arg(program);
        return command;
    }
    let id = |flag: &str| {
        let output = Command::new("id")
            .args([flag, user])
            .output()
            .expect("run id");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let mut command = Command::new("setpriv");
    command
        .current_dir("/")
        .args([
            "--reuid",
            &id("-u"),
            "--regid",
            &id("-g"),
            "--clear-groups",
            "--",
        ])
        .arg(program);
    command
}
