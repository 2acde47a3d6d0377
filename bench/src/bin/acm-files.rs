//! `acm send` of one large file over TCP loopback against baselines measured in the same run:
//! a plain TCP copy of the file (by OpenBSD's `nc`, `nc -N` into `nc -l`, where it is
//! installed; else by `std::io::copy` on two threads, which uses sendfile and splice), and the
//! same copy with the file's SHA-256 computed on both ends (`sha256sum` before and after, or
//! this crate's SHA-256 when there is no `sha256sum`). `acm send` runs plain and secure, to
//! `acm listen --save-dir`, and each run checks that the saved file is the file. Each end's peak
//! RSS is read from /proc.
//!
//! ```sh
//! cargo build --release -p acm-cli -p acm-bench
//! target/release/acm-files [--mib 1024] [--runs 3] [--acm target/release/acm] [--copy nc|std]
//! ```
//!
//! Prints one line a run, then the range of each ratio over the runs, with the load average:
//! on a busy machine the numbers vary from run to run.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// What to run, from the command line.
struct Options {
    mib: u64,
    runs: u32,
    acm: PathBuf,
    /// The baselines' copy; by default `nc` where it is installed.
    copier: Option<Copier>,
}

fn main() {
    let options = match options() {
        Ok(options) => options,
        Err(why) => {
            eprintln!("acm-files: {why}");
            std::process::exit(2);
        }
    };
    if let Err(why) = run(&options) {
        eprintln!("acm-files: {why}");
        std::process::exit(1);
    }
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        mib: 1024,
        runs: 3,
        acm: std::env::current_exe()
            .map_err(|e| format!("cannot find this program: {e}"))?
            .with_file_name("acm"),
        copier: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--mib" => options.mib = value()?.parse().map_err(|e| format!("--mib: {e}"))?,
            "--runs" => options.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--acm" => options.acm = PathBuf::from(value()?),
            "--copy" => {
                options.copier = Some(match value()?.as_str() {
                    "nc" if has_nc() => Copier::Nc,
                    "nc" => return Err("--copy nc: no OpenBSD nc here".into()),
                    "std" => Copier::Std,
                    other => return Err(format!("--copy: {other:?} is neither nc nor std")),
                })
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: acm-files [--mib N] [--runs N] [--acm PATH] [--copy nc|std]"
                ));
            }
        }
    }
    if !options.acm.is_file() {
        return Err(format!(
            "no acm at {} (cargo build --release -p acm-cli, or --acm PATH)",
            options.acm.display()
        ));
    }
    Ok(options)
}

/// A scratch folder, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One run's times. Each `acm send` is compared with the copy taken just before it, so that a
/// change of the machine's load between the measures weighs less.
struct Run {
    copy: Duration,
    hashed: Duration,
    plain: Sent,
    copy_before_secure: Duration,
    secure: Sent,
}

/// A ratio of one run, with what it is called and its goal.
type Measure = (&'static str, fn(&Run) -> f64, &'static str);

const MEASURES: [Measure; 3] = [
    (
        "plain, against the copy",
        |r| ratio(r.plain.time, r.copy),
        "≤ 1.5×",
    ),
    (
        "plain, against the copy with sha256 on both ends",
        |r| ratio(r.plain.time, r.hashed),
        "≤ 1.0×",
    ),
    (
        "secure, against the copy",
        |r| ratio(r.secure.time, r.copy_before_secure),
        "≤ 2×",
    ),
];

/// What copies the file over TCP for the baselines.
#[derive(Clone, Copy)]
enum Copier {
    /// OpenBSD's `nc`: `nc -l` into the file, `nc -N` out of it.
    Nc,
    /// `std::io::copy` on two threads of this process, which uses sendfile and splice.
    Std,
}

impl Copier {
    fn describe(self) -> &'static str {
        match self {
            Copier::Nc => "nc -N into nc -l (OpenBSD netcat)",
            Copier::Std => {
                "std::io::copy with sendfile and splice (no OpenBSD nc here: apt install netcat-openbsd)"
            }
        }
    }

    /// Copies `source` to `target` over TCP loopback and returns how long it took.
    fn copy(self, source: &Path, target: &Path) -> Result<Duration, String> {
        match self {
            Copier::Nc => nc_copy(source, target),
            Copier::Std => timed(|| raw_copy(source, target)),
        }
    }
}

fn run(options: &Options) -> Result<(), String> {
    let scratch = Scratch(std::env::temp_dir().join(format!("acm-files-{}", std::process::id())));
    let dir = &scratch.0;
    for sub in ["save", "listen-config", "send-config"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let file = dir.join("file.bin");
    make_file(&file, options.mib << 20).map_err(|e| format!("cannot write the file: {e}"))?;
    let hasher = if has_sha256sum() {
        "sha256sum"
    } else {
        "sha2 (no sha256sum here)"
    };
    let copier = options
        .copier
        .unwrap_or(if has_nc() { Copier::Nc } else { Copier::Std });
    println!(
        "file: {} MiB, {} runs, {} cores, load {}; the copy: {}; the hashing baseline: {hasher}",
        options.mib,
        options.runs,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load(),
        copier.describe(),
    );
    let mut runs = Vec::new();
    for number in 1..=options.runs {
        let target = dir.join("copy.bin");
        let copied = || {
            let time = copier.copy(&file, &target);
            let _ = std::fs::remove_file(&target);
            time
        };
        let hashed = timed(|| {
            sha256(&file)?;
            copier.copy(&file, &target)?;
            sha256(&target).map(drop)
        })?;
        let _ = std::fs::remove_file(&target);
        let copy = copied()?;
        let plain = acm_send(options, dir, &file, false)?;
        let copy_before_secure = copied()?;
        let secure = acm_send(options, dir, &file, true)?;
        let run = Run {
            copy,
            hashed,
            plain,
            copy_before_secure,
            secure,
        };
        println!(
            "run {number}: copy+sha256 {:.2} s | copy {:.2} s, plain {:.2} s ({:.2}× copy, {:.2}× copy+sha256), RSS send {} MiB, listen {} MiB | copy {:.2} s, secure {:.2} s ({:.2}× copy), RSS send {} MiB, listen {} MiB",
            secs(run.hashed),
            secs(run.copy),
            secs(run.plain.time),
            ratio(run.plain.time, run.copy),
            ratio(run.plain.time, run.hashed),
            run.plain.send_rss >> 10,
            run.plain.listen_rss >> 10,
            secs(run.copy_before_secure),
            secs(run.secure.time),
            ratio(run.secure.time, run.copy_before_secure),
            run.secure.send_rss >> 10,
            run.secure.listen_rss >> 10,
        );
        runs.push(run);
    }
    for (what, pick, goal) in MEASURES {
        let low = runs.iter().map(pick).fold(f64::INFINITY, f64::min);
        let high = runs.iter().map(pick).fold(0.0, f64::max);
        println!("{what}: {low:.2}–{high:.2}× (goal {goal})");
    }
    println!("load after: {}", load());
    Ok(())
}

/// The load averages, as /proc/loadavg gives them.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn secs(time: Duration) -> f64 {
    time.as_secs_f64()
}

fn ratio(time: Duration, baseline: Duration) -> f64 {
    time.as_secs_f64() / baseline.as_secs_f64().max(1e-9)
}

fn timed(work: impl FnOnce() -> Result<(), String>) -> Result<Duration, String> {
    let start = Instant::now();
    work()?;
    Ok(start.elapsed())
}

/// `length` bytes that do not compress, written 1 MiB at a time.
fn make_file(path: &Path, length: u64) -> std::io::Result<()> {
    let mut file = File::create(path)?;
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut block = vec![0u8; 1 << 20];
    let mut left = length;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = usize::try_from(left.min(block.len() as u64)).unwrap_or(block.len());
        file.write_all(&block[..n])?;
        left -= n as u64;
    }
    file.sync_all()
}

/// The raw copy: the file into a socket on one thread, the socket into `target` on another.
fn raw_copy(source: &Path, target: &Path) -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let target = target.to_path_buf();
    let receiver = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut socket, _) = listener.accept()?;
        let mut out = File::create(&target)?;
        std::io::copy(&mut socket, &mut out)
    });
    let mut file = File::open(source).map_err(|e| e.to_string())?;
    let mut socket = TcpStream::connect(address).map_err(|e| e.to_string())?;
    std::io::copy(&mut file, &mut socket).map_err(|e| e.to_string())?;
    drop(socket);
    receiver
        .join()
        .map_err(|_| "the receiving thread panicked".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Whether OpenBSD's `nc` is here: it has `-N`, which closes the socket at the end of input.
fn has_nc() -> bool {
    Command::new("nc")
        .arg("-h")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stderr).contains("-N"))
}

/// The copy `nc` makes: `nc -l` writes the socket into `target`, `nc -N` the file into the
/// socket. The time runs from the moment the listening `nc` is seen listening.
fn nc_copy(source: &Path, target: &Path) -> Result<Duration, String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let out = File::create(target).map_err(|e| e.to_string())?;
    let mut receiver = Command::new("nc")
        .args(["-l", "127.0.0.1", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(out)
        .spawn()
        .map_err(|e| format!("cannot run nc: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !listening(port) {
        if Instant::now() > deadline {
            let _ = receiver.kill();
            let _ = receiver.wait();
            return Err(format!("nc -l did not listen on port {port}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let start = Instant::now();
    let status = Command::new("nc")
        .args(["-N", "127.0.0.1", &port.to_string()])
        .stdin(File::open(source).map_err(|e| e.to_string())?)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run nc: {e}"))?;
    let received = receiver.wait().map_err(|e| e.to_string())?;
    let time = start.elapsed();
    if !status.success() || !received.success() {
        return Err(format!("nc failed: sender {status}, receiver {received}"));
    }
    let copied = std::fs::metadata(target).map_err(|e| e.to_string())?.len();
    let length = std::fs::metadata(source).map_err(|e| e.to_string())?.len();
    if copied != length {
        return Err(format!("nc copied {copied} bytes of {length}"));
    }
    Ok(time)
}

/// Whether something listens on 127.0.0.1:`port`, as /proc/net/tcp says (state 0A).
fn listening(port: u16) -> bool {
    let wanted = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp").is_ok_and(|table| {
        table.lines().skip(1).any(|line| {
            let mut fields = line.split_whitespace().skip(1);
            fields.next() == Some(wanted.as_str()) && fields.nth(1) == Some("0A")
        })
    })
}

fn has_sha256sum() -> bool {
    Command::new("sha256sum")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The file's SHA-256 in hex: by `sha256sum` when there is one, else by this crate's.
fn sha256(path: &Path) -> Result<String, String> {
    if let Ok(output) = Command::new("sha256sum").arg(path).output()
        && output.status.success()
    {
        let text = String::from_utf8_lossy(&output.stdout);
        return Ok(text
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string());
    }
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    let mut hasher = Sha256::new();
    let mut block = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut block).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        hasher.update(&block[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// One `acm send`: its time and each end's peak RSS in KiB.
struct Sent {
    time: Duration,
    send_rss: u64,
    listen_rss: u64,
}

/// Sends `file` with `acm send` to a fresh `acm listen --save-dir`, and checks what was saved.
fn acm_send(options: &Options, dir: &Path, file: &Path, secure: bool) -> Result<Sent, String> {
    let security = if secure { "--yes" } else { "--insecure" };
    let save = dir.join("save");
    let saved = save.join("file.bin");
    let _ = std::fs::remove_file(&saved);
    let cannot_run = |e: std::io::Error| format!("cannot run {}: {e}", options.acm.display());
    let mut listener = Command::new(&options.acm)
        .args([
            "listen",
            "--listen",
            "tcp://127.0.0.1:0",
            "--service",
            "files",
        ])
        .arg("--save-dir")
        .arg(&save)
        .args(["--overwrite", security])
        .env("XDG_CONFIG_HOME", dir.join("listen-config"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(cannot_run)?;
    let address = listening_address(&mut listener)?;
    let start = Instant::now();
    let sender = Command::new(&options.acm)
        .arg("send")
        .arg(file)
        .args(["--to", &format!("acm-listener@{address}")])
        .args(["--service", "files", security])
        .env("XDG_CONFIG_HOME", dir.join("send-config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(cannot_run)?;
    let (status, errors, send_rss) = wait_with_peak(sender)?;
    let time = start.elapsed();
    let listen_rss = peak_rss(listener.id()).unwrap_or(0);
    stop(&mut listener);
    if !status.success() {
        return Err(format!(
            "acm send failed: {}",
            String::from_utf8_lossy(&errors)
        ));
    }
    if sha256(&saved)? != sha256(file)? {
        return Err("the saved file differs from the file sent".into());
    }
    Ok(Sent {
        time,
        send_rss,
        listen_rss,
    })
}

/// Reads the listener's output up to the line with its address.
fn listening_address(listener: &mut Child) -> Result<String, String> {
    let stdout = listener.stdout.take().ok_or("no output")?;
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.map_err(|e| e.to_string())?;
        if let Some(at) = line.find("tcp://") {
            let address: String = line[at..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect();
            // The rest of its output is drained, so that it never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return Ok(address);
        }
    }
    Err("acm listen ended before it listened".into())
}

/// Waits for `child`, sampling its peak RSS while it runs; returns its status, its stderr and
/// that peak in KiB.
fn wait_with_peak(mut child: Child) -> Result<(ExitStatus, Vec<u8>, u64), String> {
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let errors = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        text
    });
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        peak = peak.max(peak_rss(child.id()).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = errors.join().unwrap_or_default();
    Ok((status, text, peak))
}

/// A process's peak resident memory so far (VmHWM), in KiB.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Ends `acm listen` as Ctrl-C does (SIGINT, sent by `kill`) and waits for it; kills it when
/// it has not left within 10 s.
fn stop(listener: &mut Child) {
    let _ = Command::new("kill")
        .args(["-INT", &listener.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = listener.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = listener.kill();
    let _ = listener.wait();
}
