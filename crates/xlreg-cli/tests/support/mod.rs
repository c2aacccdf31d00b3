//! Helpers shared by the tests that run the `xlreg` binary.
#![allow(dead_code)]

use std::process::{Child, Output};
use std::time::{Duration, Instant};

/// Wait for `child` at most `limit`, killing it (and failing) after that.
pub fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The example member program `examples/up_member.rs`, next to the xlreg
/// binary, built (once per test process, a no-op when up to date) so
/// that a test never runs a stale copy.
pub fn up_member_example(xlreg: &str) -> std::path::PathBuf {
    use std::path::Path;
    use std::sync::Mutex;
    static BUILT: Mutex<bool> = Mutex::new(false);
    let dir = Path::new(xlreg).parent().unwrap();
    let exe = dir.join("examples").join("up_member");
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !*built {
        let mut c = std::process::Command::new(env!("CARGO"));
        c.args(["build", "-p", "xlreg", "--example", "up_member"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if dir.ends_with("release") {
            c.arg("--release");
        }
        let st = c.status().unwrap();
        assert!(st.success(), "cargo build --example up_member: {st}");
        *built = true;
    }
    assert!(exe.exists(), "{} not built", exe.display());
    exe
}

/// Is process `pid` alive (a zombie counts as gone)?
pub fn pid_alive(pid: i32) -> bool {
    let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = st
        .rsplit(')')
        .next()
        .is_some_and(|r| r.trim_start().starts_with('Z'));
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 && !zombie }
}
