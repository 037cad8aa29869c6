//! A real OTLP collector (rotel-agent) on free loopback ports, started and
//! stopped by the test, with its debug log captured to a file.

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::debuglog::{self, Received};

/// Where rotel-agent is: `$ROTEL_AGENT`, or the `.venv` that
/// `scripts/test` creates at the repository root.
pub fn rotel_agent() -> PathBuf {
    if let Ok(p) = std::env::var("ROTEL_AGENT") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "ROTEL_AGENT={} does not exist", p.display());
        return p;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if let Ok(entries) = std::fs::read_dir(root.join(".venv/lib")) {
        for e in entries.flatten() {
            let p = e.path().join("site-packages/rotel/rotel-agent");
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "rotel-agent not found (CI={}). These tests need the real collector: run \
         ./scripts/test, which installs rotel==0.0.1a15 into .venv, or set ROTEL_AGENT.",
        std::env::var("CI").unwrap_or_default()
    );
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// A running rotel-agent. Killed on drop.
pub struct Collector {
    child: Child,
    /// gRPC port.
    pub grpc_port: u16,
    /// HTTP port.
    pub http_port: u16,
    log: PathBuf,
    _dir: TempDir,
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Collector {
    /// Start rotel-agent with gRPC and HTTP receivers on free ports and a
    /// detailed debug log of traces and metrics; wait until both accept.
    pub fn start() -> Collector {
        Self::start_on(free_port(), free_port())
    }

    /// Start on given ports (to restart a collector where a killed one was).
    pub fn start_on(grpc_port: u16, http_port: u16) -> Collector {
        Self::start_with(grpc_port, http_port, &[])
    }

    /// A backend that takes traces only (its metrics receiver answers gRPC
    /// `UNIMPLEMENTED` / HTTP 404), as Arize Phoenix or Jaeger do.
    pub fn start_traces_only() -> Collector {
        Self::start_with(
            free_port(),
            free_port(),
            &["--otlp-receiver-metrics-disabled"],
        )
    }

    /// Start on given ports with more `rotel-agent start` arguments.
    pub fn start_with(grpc_port: u16, http_port: u16, extra: &[&str]) -> Collector {
        let agent = rotel_agent();
        let dir = std::env::temp_dir().join(format!(
            "flowtel-rotel-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let log = dir.join("debug.log");
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(&agent)
            .arg("start")
            .args(["--otlp-grpc-endpoint", &format!("127.0.0.1:{grpc_port}")])
            .args(["--otlp-http-endpoint", &format!("127.0.0.1:{http_port}")])
            .args(["--exporter", "blackhole"])
            .args(["--debug-log", "traces", "--debug-log", "metrics"])
            .args(["--debug-log-verbosity", "detailed"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", agent.display()));
        let mut c = Collector {
            child,
            grpc_port,
            http_port,
            log,
            _dir: TempDir(dir),
        };
        let t = Instant::now();
        loop {
            let up = |p| TcpStream::connect(("127.0.0.1", p)).is_ok();
            if up(grpc_port) && up(http_port) {
                break;
            }
            if let Ok(Some(status)) = c.child.try_wait() {
                panic!("rotel-agent exited at start ({status}):\n{}", c.raw_log());
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "rotel-agent did not listen within 20 s:\n{}",
                c.raw_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        c
    }

    /// gRPC endpoint URL.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// HTTP base URL.
    pub fn http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Everything the collector printed so far.
    pub fn raw_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Parse what the collector received so far.
    pub fn received(&self) -> Received {
        debuglog::parse(&self.raw_log())
    }

    /// Poll the debug log until `done` holds or `timeout` passes; returns
    /// the last parse either way (the caller's assertions then say what is
    /// missing).
    pub fn wait_for(&self, timeout: Duration, done: impl Fn(&Received) -> bool) -> Received {
        let t = Instant::now();
        loop {
            let r = self.received();
            if done(&r) || t.elapsed() >= timeout {
                return r;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop the collector (an outage).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill();
    }
}
