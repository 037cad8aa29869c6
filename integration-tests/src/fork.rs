//! Forking the test process, for the pre-fork-server tests: run a closure in
//! a child and wait for it with a deadline (a hang is a failure, not a wait).
#![allow(unsafe_code)]

use std::time::{Duration, Instant};

/// Fork; the child runs `child` with `value` (its own copy, which it owns,
/// so dropping it there is the child's last drop) and leaves with the
/// return value as exit status (`_exit`: no parent destructors run). The
/// parent waits up to 30 s, panics (killing the child) if it hangs or exits
/// non-zero, and gets `value` back. Call it from a test binary of its own:
/// the child inherits a copy of every other thread's state.
pub fn run_in_forked_child<T>(value: T, child: impl FnOnce(T) -> i32) -> T {
    // SAFETY: the child only runs Rust code that allocates and starts
    // threads, as every pre-fork server's worker does (glibc's malloc is
    // fork-safe), and leaves with `_exit`, running no parent destructors.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = child(value);
        unsafe { libc::_exit(code) };
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut status = 0;
    loop {
        // SAFETY: plain waitpid on our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        if Instant::now() > deadline {
            // SAFETY: signals our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the forked child hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child exit status {status:#x}"
    );
    value
}
