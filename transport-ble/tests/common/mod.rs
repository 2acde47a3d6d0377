//! Virtual Bluetooth controllers for the tests: a Python venv holding Rootcanal and Bumble,
//! and the controller processes, started on loopback and stopped by pid.
//!
//! When a controller cannot be started, a test is skipped with a message, unless `CI` is set:
//! then it fails.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use acm_transport::DeviceId;
use acm_transport_ble::{BleConfig, BleTransport, HciEndpoint};

/// The Rootcanal release whose binary runs on Debian 12.
const ROOTCANAL: &str = "rootcanal==1.10.0";
const BUMBLE: &str = "bumble";
/// How long a controller may take to say it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);

static VENV: Mutex<()> = Mutex::new(());

/// The workspace's target directory.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The venv with the controllers, made on first use (`ACM_BLE_VENV` overrides its place).
pub fn venv() -> Result<PathBuf, String> {
    let _once = VENV.lock().unwrap_or_else(|e| e.into_inner());
    let venv = std::env::var_os("ACM_BLE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("ble-venv"));
    let python = venv.join("bin/python");
    let ready = venv.join(".acm-ready");
    if ready.exists() {
        return Ok(venv);
    }
    let run = |cmd: &mut Command| -> Result<(), String> {
        let status = cmd
            .status()
            .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
        status
            .success()
            .then_some(())
            .ok_or_else(|| format!("{cmd:?} failed: {status}"))
    };
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run(Command::new(&python).args(["-m", "pip", "install", "--quiet", ROOTCANAL, BUMBLE]))?;
    std::fs::write(&ready, b"").map_err(|e| e.to_string())?;
    Ok(venv)
}

/// Skips the test (returns `None`) when controllers are unavailable, unless `CI` is set.
pub fn or_skip<T>(what: &str, result: Result<T, String>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(e) if std::env::var_os("CI").is_some() => panic!("cannot start {what}: {e}"),
        Err(e) => {
            eprintln!("SKIPPED: cannot start {what}: {e}");
            None
        }
    }
}

/// A controller process, killed (by its pid) when dropped.
pub struct ControllerProcess {
    child: Child,
    /// The HCI ports it serves.
    pub ports: Vec<SocketAddr>,
}

impl ControllerProcess {
    /// Kills the process now: its controllers vanish.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The `index`th HCI endpoint.
    pub fn hci(&self, index: usize) -> HciEndpoint {
        HciEndpoint::Tcp(self.ports[index.min(self.ports.len() - 1)])
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `command`, its output piped; `parse` reads each line until it returns the ports.
/// The rest of the output is drained by a thread so that the process never blocks on it.
fn spawn_until(
    mut command: Command,
    mut parse: impl FnMut(&str) -> Option<Vec<u16>> + Send + 'static,
) -> Result<ControllerProcess, String> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let err_tx = tx.clone();
    std::thread::spawn(move || {
        if let Some(stderr) = stderr {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = err_tx.send(Err(line));
            }
        }
    });
    std::thread::spawn(move || {
        let Some(stdout) = stdout else { return };
        let mut found = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !found && let Some(ports) = parse(&line) {
                found = true;
                let _ = tx.send(Ok(ports));
            }
        }
    });
    let deadline = std::time::Instant::now() + START_TIMEOUT;
    let mut errors = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(Ok(ports)) => {
                let ports = ports
                    .into_iter()
                    .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
                    .collect();
                return Ok(ControllerProcess { child, ports });
            }
            Ok(Err(line)) => errors.push(line),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{command:?} did not say it listens: {}",
                    errors.join("\n")
                ));
            }
        }
    }
}

/// Starts Rootcanal: every TCP client of its HCI port gets a controller of its own, on one
/// shared LE medium.
pub fn rootcanal() -> Result<ControllerProcess, String> {
    let venv = venv()?;
    let binary = std::fs::read_dir(venv.join("lib"))
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|entry| {
            entry
                .path()
                .join("site-packages/rootcanal/bin/linux-x86_64/rootcanal")
        })
        .find(|path| path.exists())
        .ok_or("the rootcanal binary is not in the venv")?;
    let mut command = Command::new(binary);
    command.args([
        "--test_port=0",
        "--hci_port=0",
        "--link_port=0",
        "--link_ble_port=0",
    ]);
    // The HCI port is the one listed right after "Opening an HCI with port".
    let mut hci_next = false;
    spawn_until(command, move |line| {
        if line.contains("Opening an HCI with port") {
            hci_next = true;
            return None;
        }
        if hci_next && let Some((_, port)) = line.split_once("Listening on: ") {
            let port = port.split_whitespace().next()?.parse().ok()?;
            return Some(vec![port]);
        }
        None
    })
}

/// Starts two linked Bumble controllers (near-zero latency), each on its own port.
pub fn bumble() -> Result<ControllerProcess, String> {
    let venv = venv()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/controllers.py");
    let mut command = Command::new(venv.join("bin/python"));
    command.arg(script);
    spawn_until(command, |line| {
        let ports = line.strip_prefix("Listening on: ")?;
        ports
            .split_whitespace()
            .map(|port| port.parse().ok())
            .collect()
    })
}

/// The id `name`.
pub fn id(name: &str) -> DeviceId {
    DeviceId::new(name).expect("a valid device id")
}

/// Starts a transport for device `name` on `hci`.
pub async fn transport(name: &str, hci: HciEndpoint) -> BleTransport {
    BleTransport::start(BleConfig::new(id(name), hci))
        .await
        .expect("the transport starts")
}

/// Runs `test` with a time limit: a hang fails the test instead of stalling the run.
pub async fn within<F: std::future::Future>(seconds: u64, test: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(seconds), test)
        .await
        .expect("the test finished in time")
}

/// One packet of an HCI log, as Bumble's btsnoop reader prints it.
pub struct Record {
    /// `HOST->CONTROLLER` or `CONTROLLER->HOST`.
    pub direction: String,
    /// The packet's name, such as `HCI_LE_SET_PHY_COMMAND`.
    pub name: String,
    /// Its fields, one per line.
    pub fields: String,
}

impl Record {
    /// Fails the test unless the record's fields include `text`.
    pub fn shows(&self, text: &str) -> &Self {
        assert!(
            self.fields.contains(text),
            "{} has no {text:?}:\n{}",
            self.name,
            self.fields
        );
        self
    }
}

/// The HCI log at `path` as Bumble's btsnoop reader decodes it; fails the test if the reader
/// finds anything it cannot decode.
pub fn decoded(path: &Path) -> Vec<Record> {
    let venv = venv().expect("the venv");
    let output = std::process::Command::new(venv.join("bin/python"))
        .args(["-m", "bumble.apps.show", "--format", "snoop"])
        .arg(path)
        .output()
        .expect("Bumble's reader runs");
    let text = strip_colours(&String::from_utf8_lossy(&output.stdout));
    assert!(output.status.success(), "the reader failed: {text}");
    assert!(
        !text.contains("!!!"),
        "the reader found a broken record:\n{text}"
    );
    let mut records: Vec<Record> = Vec::new();
    for line in text.lines() {
        // "[       3][2026-12-06 22:03:02.808032][HOST->CONTROLLER] HCI_LE_SET_..._COMMAND:"
        if line.starts_with('[') {
            let Some((head, name)) = line.rsplit_once("] ") else {
                continue;
            };
            let direction = head.rsplit('[').next().unwrap_or_default().to_owned();
            let name = name.trim_end_matches(':').to_owned();
            records.push(Record {
                direction,
                name,
                fields: String::new(),
            });
        } else if let Some(record) = records.last_mut() {
            // "name:   value", its spaces collapsed.
            let words: Vec<&str> = line.split_whitespace().collect();
            record.fields.push_str(&words.join(" "));
            record.fields.push('\n');
        }
    }
    records
}

/// `text` without its terminal colour codes.
fn strip_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The records of `log` named `name`.
pub fn named<'r>(log: &'r [Record], name: &str) -> Vec<&'r Record> {
    log.iter().filter(|record| record.name == name).collect()
}

/// The one record of `log` named `name`; fails the test, listing the log, if there is not
/// exactly one.
pub fn the_one<'r>(log: &'r [Record], name: &str) -> &'r Record {
    let found = named(log, name);
    assert_eq!(found.len(), 1, "{name} in:\n{}", listing(log));
    found[0]
}

/// The one answer in `log` to the command `command`; fails the test if there is not exactly one.
pub fn the_answer<'r>(log: &'r [Record], command: &str) -> &'r Record {
    let found = answers(log, command);
    assert_eq!(
        found.len(),
        1,
        "the answer to {command} in:\n{}",
        listing(log)
    );
    found[0]
}

/// The answers (Command Status or Command Complete events) in `log` to the command `command`.
pub fn answers<'r>(log: &'r [Record], command: &str) -> Vec<&'r Record> {
    log.iter()
        .filter(|record| {
            matches!(
                record.name.as_str(),
                "HCI_COMMAND_STATUS_EVENT" | "HCI_COMMAND_COMPLETE_EVENT"
            ) && record.fields.contains(command)
        })
        .collect()
}

/// What `log` holds, for failure messages: one packet name per line.
pub fn listing(log: &[Record]) -> String {
    log.iter()
        .map(|record| format!("{} {}", record.direction, record.name))
        .collect::<Vec<_>>()
        .join("\n")
}
