//! On a terminal, `flowtel ingest` keeps a progress line on standard error;
//! the problems it shows during the run go above that line, never through
//! it. Standard error is a real pseudo-terminal here, and what it received
//! is replayed on a small terminal model to see the screen a user would.
#![cfg(unix)]

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::pty::{openpty, Winsize};

const DEADLINE: Duration = Duration::from_secs(30);

fn good(i: usize) -> String {
    format!(
        "{{\"event\":\"node_success\",\"ts\":{},\"node_name\":\"n\",\
         \"trace_id\":\"3e512c5b0a184257a25c215d19544e6a\",\"latency_ms\":1}}\n",
        1_795_305_121.0 + i as f64 * 0.001
    )
}

fn bad(i: usize) -> String {
    format!("{{\"event\":\"node_success\",\"ts\":1795305121,\"node_name\":\"n\",\"latency_ms\":-{i}}}\n")
}

/// The screen after replaying `bytes`: carriage return, newline, cursor
/// up/down/column, erase in line and below; other escapes (colours,
/// cursor visibility) change nothing visible here. Wide enough never to wrap.
fn screen(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut rows: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => col = 0,
            '\n' => {
                row += 1;
                if rows.len() <= row {
                    rows.push(Vec::new());
                }
            }
            '\x1b' if chars.peek() == Some(&'[') => {
                chars.next();
                let mut params = String::new();
                let mut cmd = ' ';
                for p in chars.by_ref() {
                    if p.is_ascii_alphabetic() {
                        cmd = p;
                        break;
                    }
                    params.push(p);
                }
                let n: usize = params.trim_start_matches('?').parse().unwrap_or(0);
                match cmd {
                    'A' => row = row.saturating_sub(n.max(1)),
                    'B' => {
                        row += n.max(1);
                        while rows.len() <= row {
                            rows.push(Vec::new());
                        }
                    }
                    'G' => col = n.max(1) - 1,
                    'K' if n == 2 => rows[row].clear(),
                    'K' => rows[row].truncate(col),
                    'J' => {
                        rows[row].truncate(col);
                        rows.truncate(row + 1);
                    }
                    _ => {}
                }
            }
            c => {
                let line = &mut rows[row];
                while line.len() < col {
                    line.push(' ');
                }
                if col < line.len() {
                    line[col] = c;
                } else {
                    line.push(c);
                }
                col += 1;
            }
        }
    }
    rows.into_iter()
        .map(|r| r.into_iter().collect::<String>().trim_end().to_string())
        .collect()
}

/// flowtel reading its standard input, with standard error on a terminal
/// whose output is collected in the returned buffer.
fn spawn_on_terminal() -> (Child, Arc<Mutex<Vec<u8>>>, thread::JoinHandle<()>) {
    let size = Winsize {
        ws_row: 50,
        ws_col: 400,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = openpty(Some(&size), None).expect("openpty");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowtel"));
    cmd.args(["ingest", "--color", "never", "-"])
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::from(pty.slave));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("OTEL_") {
            cmd.env_remove(k);
        }
    }
    let child = cmd.spawn().expect("run flowtel");
    // Our copy of the terminal's slave end goes with `cmd`, so the reader
    // sees the end of output when flowtel exits.
    drop(cmd);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let mut master = std::fs::File::from(pty.master);
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // Linux answers EIO once no process has the slave end open.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    (child, seen, reader)
}

#[test]
fn problems_print_above_the_progress_line_not_through_it() {
    let (mut child, seen, reader) = spawn_on_terminal();
    let mut stdin = child.stdin.take().unwrap();
    let progress_shown = |seen: &Arc<Mutex<Vec<u8>>>| {
        String::from_utf8_lossy(&seen.lock().unwrap()).contains(" events · ")
    };

    // Feed events until the progress line is on the terminal.
    let started = Instant::now();
    let mut i = 0;
    while !progress_shown(&seen) {
        assert!(
            started.elapsed() < DEADLINE,
            "no progress line after {i} events"
        );
        let batch: String = (i..i + 512).map(good).collect();
        stdin.write_all(batch.as_bytes()).unwrap();
        i += 512;
        thread::sleep(Duration::from_millis(10));
    }
    // Now problems, with more events between them.
    for p in 1..=7 {
        stdin.write_all(bad(p).as_bytes()).unwrap();
        let batch: String = (i..i + 300).map(good).collect();
        stdin.write_all(batch.as_bytes()).unwrap();
        i += 300;
    }
    drop(stdin);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < DEADLINE, "flowtel did not finish");
        thread::sleep(Duration::from_millis(20));
    };
    reader.join().unwrap();
    let raw = seen.lock().unwrap().clone();
    let rows = screen(&raw);
    let shown = rows.join("\n");
    assert_eq!(status.code(), Some(0), "{shown}");

    // Five problems and the notice that the rest are counted, each a row
    // of its own.
    let problems: Vec<&String> = rows.iter().filter(|r| r.contains("<stdin>:")).collect();
    assert_eq!(problems.len(), 5, "{shown}");
    for r in problems.iter().chain(
        rows.iter()
            .filter(|r| r.contains("further problems"))
            .collect::<Vec<_>>()
            .iter(),
    ) {
        assert!(r.starts_with("flowtel: "), "torn row {r:?} in:\n{shown}");
    }
    assert!(
        rows.iter()
            .all(|r| !(r.contains(" events · ") && r.contains("flowtel:"))),
        "{shown}"
    );
    // The summary follows on clean rows; the progress line is gone.
    let summary = rows
        .iter()
        .position(|r| r.contains(" lines in "))
        .expect(&shown);
    assert!(rows[summary].starts_with("flowtel: "), "{shown}");
    assert!(
        rows.iter().all(|r| !r.contains(" events · ")),
        "progress line left on screen:\n{shown}"
    );
    assert!(rows[summary].contains(&format!("{i} events")), "{shown}");
}
