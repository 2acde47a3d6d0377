//! What the terminal tests share: `acm` run as a person runs it, its output lines collected as
//! they come, and scratch files.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A safety net against a hung process, not a measure: every wait ends far sooner.
const PATIENCE: Duration = Duration::from_secs(120);

/// A running `acm` whose output lines are collected as they come.
pub struct Running {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    /// What it writes on stderr, whole once it has exited, when kept.
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl Running {
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    /// As [`Running::start`], with these environment variables set.
    pub fn start_with_env(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Self {
        Self::spawn(args, env, false)
    }

    /// As [`Running::start`], keeping what it writes on stderr (its progress meter) for
    /// [`Running::stderr_at_exit`].
    pub fn start_keeping_stderr(args: &[&str]) -> Self {
        Self::spawn(args, &[], true)
    }

    fn spawn(args: &[&str], env: &[(&str, &std::ffi::OsStr)], keep_stderr: bool) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_acm"))
            .args(args)
            .envs(env.iter().copied())
            .env("XDG_CONFIG_HOME", fresh_config())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if keep_stderr {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("acm starts");
        let stderr = child.stderr.take().map(|mut stderr| {
            std::thread::spawn(move || {
                let mut text = Vec::new();
                let _ = std::io::Read::read_to_end(&mut stderr, &mut text);
                text
            })
        });
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            stdin,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// Presses Ctrl-C, waits for the exit, and returns all it wrote on stderr (started with
    /// [`Running::start_keeping_stderr`]).
    pub fn stderr_at_exit(&mut self) -> String {
        self.interrupt();
        self.wait();
        let text = self
            .stderr
            .take()
            .expect("started with start_keeping_stderr")
            .join()
            .expect("the stderr reader ends");
        String::from_utf8_lossy(&text).into_owned()
    }

    /// Waits for a line containing `needle`, and returns it.
    pub fn expect(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(PATIENCE) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needle:?}; saw {:#?}", self.seen),
            }
        }
    }

    /// Presses Ctrl-C, waits for the exit, and returns every line printed (those already
    /// seen by [`Running::expect`] included).
    pub fn interrupt_and_collect(&mut self) -> Vec<String> {
        self.interrupt();
        self.wait();
        let mut lines = std::mem::take(&mut self.seen);
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            lines.push(line);
        }
        lines
    }

    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("typed");
        stdin.flush().expect("flushed");
    }

    /// Sends the signal `name` (`INT`, `STOP`, `CONT`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIG{name} sent");
    }

    /// Presses Ctrl-C: sends SIGINT.
    pub fn interrupt(&self) {
        self.signal("INT");
    }

    /// Ends standard input, as Ctrl-D does.
    pub fn close_input(&mut self) {
        self.stdin = None;
    }

    /// Presses Ctrl-C while `acm` is stopped and something else becomes ready for it at the same
    /// time (`meanwhile`), so that it finds both on waking: a Ctrl-C that comes while the
    /// command handles something else must not be lost.
    pub fn interrupt_amid(&mut self, meanwhile: impl FnOnce(&mut Self)) {
        self.signal("STOP");
        self.interrupt();
        meanwhile(self);
        self.signal("CONT");
    }

    /// Closes standard input and waits for the exit code.
    pub fn wait(&mut self) -> Option<i32> {
        self.wait_within(PATIENCE)
    }

    /// Closes standard input and waits for the exit code, at most `limit`.
    pub fn wait_within(&mut self, limit: Duration) -> Option<i32> {
        self.close_input();
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("waits") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "acm did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `acm` with `args` to its end, with no input.
pub fn acm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_acm"))
        .args(args)
        .env("XDG_CONFIG_HOME", fresh_config())
        .stdin(Stdio::null())
        .output()
        .expect("acm runs")
}

/// Runs `acm send FILE --service chat` with `via` (the transport and `--to`), checks that it
/// exits 0 with `peer`'s confirmation and its progress meter reached 100 %, and returns its
/// output.
pub fn send_ok(file: &Path, via: &[&str], peer: &str) -> String {
    let file = file.to_str().expect("a UTF-8 path");
    let output = acm(&[&["send", file, "--service", "chat", "--yes"][..], via].concat());
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "{peer} saved payload.bin (length and sha256 verified)"
        )),
        "{stdout}"
    );
    assert!(stderr.contains("(100%)"), "{stderr}");
    stdout
}

/// A config folder of its own for each `acm` a test runs, so that none reads or writes the
/// user's keys: each process is a new device with a new key unless `--identity` says otherwise.
fn fresh_config() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("acm-cli-config-{}-{n}", std::process::id()))
}

/// A fresh directory for test `name`, with an empty `save` directory in it.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("acm-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("save")).unwrap();
    dir
}

/// `dir/payload.bin`, `len` bytes that do not repeat soon; returns its path and bytes.
pub fn file_of(dir: &Path, len: usize) -> (PathBuf, Vec<u8>) {
    let bytes: Vec<u8> = (0..len)
        .map(|i| ((i as u64).wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let path = dir.join("payload.bin");
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

/// A TCP relay to `target` for one connection, which passes at most `limit` bytes towards
/// `target` and then cuts the connection both ways: a link lost midway, at a known point.
/// Returns the address to dial.
pub fn cutting_relay(target: &str, limit: u64) -> String {
    relay(target, limit, false)
}

/// A TCP relay to `target` for one connection, which passes at most `limit` bytes towards
/// `target` and then passes nothing more, the connection left open: a transfer held midway.
pub fn stalling_relay(target: &str, limit: u64) -> String {
    relay(target, limit, true)
}

fn relay(target: &str, limit: u64, stall: bool) -> String {
    use std::io::Read as _;
    use std::net::{Shutdown, TcpListener, TcpStream};
    let target: std::net::SocketAddr = target
        .strip_prefix("tcp://")
        .unwrap_or(target)
        .parse()
        .expect("a socket address");
    let listener = TcpListener::bind("127.0.0.1:0").expect("the relay listens");
    let address = listener.local_addr().expect("an address");
    std::thread::spawn(move || {
        let Ok((mut dialer, _)) = listener.accept() else {
            return;
        };
        let Ok(mut acceptor) = TcpStream::connect(target) else {
            return;
        };
        let (mut back_from, mut back_to) = (
            acceptor.try_clone().expect("a clone"),
            dialer.try_clone().expect("a clone"),
        );
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut back_from, &mut back_to);
        });
        let mut left = limit;
        let mut buffer = vec![0u8; 64 << 10];
        while left > 0 {
            let want = buffer
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            match dialer.read(&mut buffer[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if acceptor.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                    left -= n as u64;
                }
            }
        }
        if stall {
            // Held open, unread, until the test's process ends.
            loop {
                std::thread::park();
            }
        }
        let _ = dialer.shutdown(Shutdown::Both);
        let _ = acceptor.shutdown(Shutdown::Both);
    });
    format!("tcp://{address}")
}

/// The names in `dir` that people see (not the hidden partial files), sorted.
pub fn visible_files(dir: &Path) -> Vec<String> {
    let mut names = all_files(dir);
    names.retain(|name| !name.starts_with('.'));
    names
}

/// Every name in `dir`, hidden ones included, sorted.
pub fn all_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("a directory")
        .map(|entry| {
            entry
                .expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// The first `tcp://...` in `line`.
pub fn address(line: &str) -> String {
    let start = line.find("tcp://").expect("an address");
    line[start..]
        .split(|c: char| c == '"' || c == ',' || c.is_whitespace())
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `acm peer` over plain TCP with the short timers; returns it and where it listens.
pub fn start_peer() -> (Running, String) {
    let mut peer = Running::start(&[
        "peer",
        "--listen",
        "tcp://127.0.0.1:0",
        "--insecure",
        "--short-timers",
    ]);
    let line = peer.expect("tcp://");
    (peer, address(&line))
}

/// `acm proxy` in front of `peer_address`, with `flags`; returns it and where it listens.
pub fn start_proxy(peer_address: &str, flags: &[&str]) -> (Running, String) {
    let mut args = vec![
        "proxy",
        "--listen",
        "tcp://127.0.0.1:0",
        "--to",
        peer_address,
    ];
    args.extend_from_slice(flags);
    let mut proxy = Running::start(&args);
    let listening = address(&proxy.expect("listening"));
    (proxy, listening)
}

/// Runs the wire suite's cases that contain `cases` against `target` (plain, short timers);
/// whether they all passed.
pub fn suite(target: &str, cases: &str) -> bool {
    let output = acm(&[
        "conformance",
        "--target",
        target,
        "--insecure",
        "--short-timers",
        "--quiet",
        "--cases",
        cases,
    ]);
    output.status.success()
}

/// `acm peer` over secure TCP with the short timers, writing its links' keys to `keylog`
/// (`ACM_KEYLOGFILE`); returns it and where it listens.
pub fn start_logging_peer(keylog: &Path) -> (Running, String) {
    let mut peer = Running::start_with_env(
        &["peer", "--listen", "tcp://127.0.0.1:0", "--short-timers"],
        &[("ACM_KEYLOGFILE", keylog.as_os_str())],
    );
    let line = peer.expect("tcp://");
    (peer, address(&line))
}

/// Runs the wire suite's cases that contain `cases` against `target` over secure links (short
/// timers); whether they all passed.
pub fn secure_suite(target: &str, cases: &str) -> bool {
    let output = acm(&[
        "conformance",
        "--target",
        target,
        "--short-timers",
        "--quiet",
        "--cases",
        cases,
    ]);
    output.status.success()
}
