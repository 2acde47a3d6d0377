//! `acm listen`, `acm chat` and `acm send` as a person runs them: two processes over TCP on
//! loopback, checking what each prints.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A safety net against a hung process, not a measure: every wait ends far sooner.
const PATIENCE: Duration = Duration::from_secs(120);

/// A running `acm` whose output lines are collected as they come.
struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(args: &[&str]) -> Self {
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
    fn expect(&mut self, needle: &str) -> String {
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

    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("typed");
        stdin.flush().expect("flushed");
    }

    fn wait(&mut self) -> Option<i32> {
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

/// `acm listen` on a free port; returns it and its `--to` target.
fn listen(extra: &[&str]) -> (Running, String) {
    let mut args = vec![
        "listen",
        "--listen",
        "tcp://127.0.0.1:0",
        "--service",
        "chat",
    ];
    args.extend_from_slice(extra);
    let mut listener = Running::start(&args);
    let line = listener.expect("tcp://");
    let start = line.find("tcp://").expect("an address");
    let address: String = line[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != ',')
        .collect();
    (listener, format!("acm-listener@{address}"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("acm-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("save")).unwrap();
    dir
}

fn file_of(dir: &Path, len: usize) -> (PathBuf, Vec<u8>) {
    let bytes: Vec<u8> = (0..len)
        .map(|i| ((i as u64).wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let path = dir.join("payload.bin");
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

#[test]
fn chat_and_listen_see_each_others_messages_and_the_disconnect_reason() {
    let (mut listener, to) = listen(&[]);
    let mut chat = Running::start(&["chat", "--to", &to, "--service", "chat"]);
    chat.expect("connected to acm-listener");
    chat.type_line("hello from the phone");
    listener.expect("> hello from the phone");
    listener.type_line("hello from the tablet");
    chat.expect("acm-listener> hello from the tablet");
    // The end of input leaves, as Ctrl-C does.
    assert_eq!(chat.wait(), Some(0));
    listener.expect("PEER_APP_CLOSE_COLLABORATION");
}

#[test]
fn a_rejected_chat_says_why_and_exits_1() {
    let (_listener, to) = listen(&["--reject", "busy right now"]);
    let output = Command::new(env!("CARGO_BIN_EXE_acm"))
        .args(["chat", "--to", &to, "--service", "chat"])
        .stdin(Stdio::null())
        .output()
        .expect("acm chat runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .starts_with("acm: cannot connect to acm-listener: PEER_APP_REJECTED (busy right now)"),
        "{stderr}"
    );
}

#[test]
fn a_sent_file_arrives_with_the_same_bytes() {
    let dir = scratch("send");
    let save = dir.join("save");
    let (mut listener, to) = listen(&["--save-dir", save.to_str().unwrap()]);
    let (file, bytes) = file_of(&dir, 3 << 20);
    let output = Command::new(env!("CARGO_BIN_EXE_acm"))
        .arg("send")
        .arg(&file)
        .args(["--to", &to, "--service", "chat"])
        .output()
        .expect("acm send runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("saved payload.bin"), "{stdout}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("(100%)"));
    listener.expect("sha256 verified");
    assert!(std::fs::read(save.join("payload.bin")).unwrap() == bytes);
    assert_eq!(
        std::fs::read_dir(&save).unwrap().count(),
        1,
        "no temporary file left"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_link_killed_mid_transfer_leaves_no_file() {
    let dir = scratch("cut");
    let save = dir.join("save");
    let (mut listener, to) = listen(&["--save-dir", save.to_str().unwrap(), "--json"]);
    let (file, _) = file_of(&dir, 32 << 20);
    let mut sender = Running::start(&[
        "send",
        file.to_str().unwrap(),
        "--to",
        &to,
        "--service",
        "chat",
    ]);
    let progress = listener.expect("\"event\":\"progress\"");
    assert!(!progress.contains("\"bytes\":33554432"), "{progress}");
    // The sender's process dies with the transfer under way: its link goes with it.
    let _ = sender.child.kill();
    listener.expect("\"event\":\"file-lost\"");
    assert_eq!(
        std::fs::read_dir(&save).unwrap().count(),
        0,
        "nothing saved"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
