//! The bridge as deployed twice: two `flowtel ingest` processes, each fed
//! half of one real PenguiFlow log (one owns the roots, the other runs with
//! `--partial-runs`), both exporting to the same real collector. One tree
//! per run, every attempt once, no span id twice.

use std::process::Command;

use flowtel_integration_tests::collector::Collector;
use flowtel_integration_tests::split::{attempts_per_trace, check_split_runs, split_log};

#[test]
fn two_bridges_sharing_one_log_make_one_tree_per_run() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/penguiflow");
    let mut text = String::new();
    for f in ["sample.log", "incident.log"] {
        text += &std::fs::read_to_string(format!("{root}/{f}")).unwrap();
    }
    let split = split_log(&text);
    let dir = std::env::temp_dir().join(format!("flowtel-split-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for side in 0..2 {
        let lines: Vec<&str> = split
            .iter()
            .filter(|(s, _, _)| *s == side)
            .map(|(_, l, _)| *l)
            .collect();
        let path = dir.join(format!("part{side}.log"));
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        files.push(path);
    }

    let collector = Collector::start();
    let bridges: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(side, file)| {
            let mut c = Command::new(env!("CARGO_BIN_EXE_flowtel"));
            c.args([
                "ingest",
                "--quiet",
                "--endpoint",
                &collector.grpc_endpoint(),
            ]);
            if side == 1 {
                c.arg("--partial-runs");
            }
            c.arg(file).spawn().unwrap()
        })
        .collect();
    for mut b in bridges {
        assert!(b.wait().unwrap().success());
    }
    let _ = std::fs::remove_dir_all(&dir);

    let attempts = attempts_per_trace(split.iter().map(|(_, _, ev)| ev));
    assert!(attempts.len() >= 6, "runs in the logs: {}", attempts.len());
    check_split_runs(&collector, &attempts);
}
