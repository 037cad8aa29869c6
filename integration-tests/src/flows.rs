//! Real PenguiFlow flows (penguiflow==3.11.2, installed into `.venv` by
//! `scripts/test`): `examples/penguiflow/flows.py` writes a structured log
//! and captures the FlowEvents it emitted with a second middleware.

use std::path::{Path, PathBuf};
use std::process::Command;

use flowtel::FlowEvent;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A Python with penguiflow: `$FLOWTEL_PYTHON` or the `.venv` that
/// `scripts/test` creates. Missing is a failure, never a skip.
pub fn python() -> PathBuf {
    let p = std::env::var("FLOWTEL_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join(".venv/bin/python"));
    let ok = Command::new(&p)
        .args(["-c", "import penguiflow"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "no Python with penguiflow at {} (CI={}): run ./scripts/test, which installs \
         penguiflow==3.11.2 into .venv, or set FLOWTEL_PYTHON",
        p.display(),
        std::env::var("CI").unwrap_or_default()
    );
    p
}

/// What one run of the flows left behind.
pub struct Flows {
    /// The structured log they wrote.
    pub log: PathBuf,
    /// The FlowEvents they emitted, in order.
    pub events: Vec<FlowEvent>,
}

/// Run `flows.py --flow <flow>` with its files in `dir`.
pub fn run_flows(flow: &str, dir: &Path) -> Flows {
    std::fs::create_dir_all(dir).unwrap();
    let (log, captured) = (dir.join("app.log"), dir.join("events.jsonl"));
    let status = Command::new(python())
        .arg(root().join("examples/penguiflow/flows.py"))
        .args(["--flow", flow])
        .arg("--log")
        .arg(&log)
        .arg("--events")
        .arg(&captured)
        .status()
        .expect("run flows.py");
    assert!(status.success(), "flows.py --flow {flow} failed: {status}");
    let events = std::fs::read_to_string(&captured)
        .unwrap()
        .lines()
        .map(|l| FlowEvent::from_json(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    Flows { log, events }
}
