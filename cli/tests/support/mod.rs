//! What the terminal tests share: `acm` run as a person runs it, its output lines collected as
//! they come, and scratch files.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A safety net against a hung process, not a measure: every wait ends far sooner.
const PATIENCE: Duration = Duration::from_secs(120);

/// A running `acm` whose output lines are collected as they come.
pub struct Running {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    pub fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_acm"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("acm starts");
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
        }
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

    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("typed");
        stdin.flush().expect("flushed");
    }

    /// Presses Ctrl-C: sends SIGINT.
    pub fn interrupt(&mut self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGINT sent");
    }

    /// Closes standard input and waits for the exit code.
    pub fn wait(&mut self) -> Option<i32> {
        self.stdin = None;
        self.child.wait().expect("exits").code()
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
        .stdin(Stdio::null())
        .output()
        .expect("acm runs")
}

/// Runs `acm send FILE --service chat` with `via` (the transport and `--to`), checks that it
/// exits 0 with `peer`'s confirmation and its progress meter reached 100 %, and returns its
/// output.
pub fn send_ok(file: &Path, via: &[&str], peer: &str) -> String {
    let file = file.to_str().expect("a UTF-8 path");
    let output = acm(&[&["send", file, "--service", "chat"][..], via].concat());
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
