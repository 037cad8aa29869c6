//! A real Prometheus server (Debian's `prometheus` 2.42, which
//! `scripts/test` installs) on a free loopback port, with its configuration
//! in a temporary directory: it scrapes a flowtel endpoint every second,
//! loads rule files, keeps exemplars, and answers PromQL over its HTTP API.
//! Also finds `promtool`.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::collector::free_port;
use crate::http;

/// A program of the `prometheus` package: `$<VAR>`, else on `PATH`.
/// Missing is a failure, never a skip.
fn program(name: &str, var: &str) -> PathBuf {
    if let Ok(p) = std::env::var(var) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "{var}={} does not exist", p.display());
        return p;
    }
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{name}` not found (CI={}). These tests need a real Prometheus: run ./scripts/test, \
             which installs Debian's `prometheus` package (Prometheus 2.42 and promtool), or set {var}.",
            std::env::var("CI").unwrap_or_default()
        )
    })
}

/// `promtool`: `$PROMTOOL` or on `PATH`.
pub fn promtool() -> PathBuf {
    program("promtool", "PROMTOOL")
}

/// What Prometheus scrapes.
pub struct Target {
    /// `host:port` of the endpoint.
    pub address: SocketAddr,
    /// The bearer token to send, if the endpoint asks for one.
    pub bearer_token: Option<String>,
}

/// A running Prometheus server. Killed on drop, its directory removed.
pub struct Prometheus {
    child: Child,
    /// Its API address.
    pub address: SocketAddr,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One element of a query result: labels and the value as Prometheus
/// wrote it (`"0"`, `"NaN"`, `"+Inf"`, ...).
#[derive(Clone, Debug)]
pub struct Sample {
    /// The series' labels (`__name__` included when present).
    pub labels: BTreeMap<String, String>,
    /// The value's text.
    pub value: String,
}

fn config(target: &Target, rules: &[PathBuf]) -> String {
    let mut c = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n",
    );
    if !rules.is_empty() {
        c.push_str("rule_files:\n");
        for r in rules {
            c.push_str(&format!("  - {:?}\n", r.display().to_string()));
        }
    }
    c.push_str(&format!(
        "scrape_configs:\n  - job_name: flowtel\n    static_configs:\n      - targets: [\"{}\"]\n",
        target.address
    ));
    if let Some(t) = &target.bearer_token {
        c.push_str(&format!(
            "    authorization:\n      type: Bearer\n      credentials: {t:?}\n"
        ));
    }
    c
}

impl Prometheus {
    /// Start Prometheus scraping `target` every second, with `rules`
    /// loaded, and wait until it is ready.
    pub fn start(target: &Target, rules: &[PathBuf]) -> Prometheus {
        let bin = program("prometheus", "PROMETHEUS");
        let dir = std::env::temp_dir().join(format!(
            "flowtel-prometheus-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config(target, rules)).expect("config");
        let port = free_port();
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let log = dir.join("prometheus.log");
        let out = File::create(&log).expect("log");
        let child = Command::new(&bin)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .arg("--enable-feature=exemplar-storage")
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut p = Prometheus {
            child,
            address,
            dir,
        };
        let t = Instant::now();
        loop {
            if http::get(address, "/-/ready", &[]).is_ok_and(|r| r.status == 200) {
                return p;
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited at start ({status}):\n{}", p.log());
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "prometheus not ready within 30 s:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What Prometheus logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// GET an API path; the `data` of a successful answer, or the error.
    pub fn api(&self, path_and_query: &str) -> Result<Value, String> {
        let reply = http::get(self.address, path_and_query, &[]).map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&reply.body)
            .map_err(|e| format!("HTTP {}: not JSON ({e}): {}", reply.status, reply.body))?;
        if v["status"] != "success" {
            return Err(format!(
                "HTTP {}: {} {}",
                reply.status, v["errorType"], v["error"]
            ));
        }
        Ok(v["data"].clone())
    }

    /// An instant query, now: every element of the result (a scalar is one
    /// element without labels).
    pub fn query(&self, expr: &str) -> Result<Vec<Sample>, String> {
        let data = self.api(&format!("/api/v1/query?query={}", http::encode(expr)))?;
        let sample = |v: &Value| Sample {
            labels: v["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            value: v["value"][1].as_str().unwrap_or_default().to_string(),
        };
        match data["resultType"].as_str() {
            Some("vector") => Ok(data["result"]
                .as_array()
                .map(|a| a.iter().map(sample).collect())
                .unwrap_or_default()),
            Some("scalar") => Ok(vec![Sample {
                labels: BTreeMap::new(),
                value: data["result"][1].as_str().unwrap_or_default().to_string(),
            }]),
            other => Err(format!("unexpected result type {other:?}: {data}")),
        }
    }

    /// Poll `expr` until `done` holds for its result or `timeout` passes;
    /// returns the last result either way (the caller asserts).
    pub fn wait_for(
        &self,
        timeout: Duration,
        expr: &str,
        done: impl Fn(&[Sample]) -> bool,
    ) -> Result<Vec<Sample>, String> {
        let t = Instant::now();
        loop {
            let r = self.query(expr);
            if r.as_deref().is_ok_and(&done) || t.elapsed() >= timeout {
                return r;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The exemplars Prometheus kept for `expr` over the last hour.
    pub fn exemplars(&self, expr: &str) -> Result<Value, String> {
        let now = crate::unix_now();
        self.api(&format!(
            "/api/v1/query_exemplars?query={}&start={}&end={}",
            http::encode(expr),
            now - 3600.0,
            now + 60.0
        ))
    }
}

/// Run `promtool` with `args` in `dir`; its combined output, and whether
/// it succeeded.
pub fn run_promtool(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
