//! `xlreg cred show` end to end: the built binary on a real Go regCred.dat
//! and on a corrupted copy (exit code 2, error names file and line).

#[path = "../../xlreg/tests/common/mod.rs"]
mod common;

use std::process::Command;

use common::{read, vectors_dir};

fn xlreg() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xlreg"));
    c.env_remove("XLREG_LOG");
    c
}

#[test]
fn show_json_reports_the_go_server_example() {
    let Some(dir) = vectors_dir() else { return };
    let file = dir.join("server-state-example/regCred.dat");
    let out = xlreg()
        .args(["cred", "show", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let obj = v.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "comms_key_bits",
            "comms_key_sha256",
            "endpoints",
            "id",
            "name",
            "sig_key_bits",
            "sig_key_sha256",
            "version"
        ]
    );
    assert_eq!(v["name"], "xlReg");
    assert_eq!(v["id"], "89939aa91ca3f9d1f3e35bdfb51e4e654fef044f");
    assert_eq!(v["comms_key_bits"], 2048);
    assert_eq!(v["sig_key_bits"], 2048);
    // SHA-256 of the SPKI DER, as `openssl pkey -pubin -outform der | sha256sum`.
    assert_eq!(
        v["comms_key_sha256"],
        "ec6a4184818e9d68631aa60fc2504e907769075aa1ba8ef7cf0b62adad74186b"
    );
    assert_eq!(v["sig_key_sha256"].as_str().unwrap().len(), 64);
    assert_ne!(v["sig_key_sha256"], v["comms_key_sha256"]);
    assert_eq!(v["endpoints"], serde_json::json!(["127.0.0.1:45678"]));
    assert_eq!(v["version"], "1.9.24");
}

#[test]
fn show_text_lists_every_field() {
    let Some(dir) = vectors_dir() else { return };
    let out = xlreg()
        .args(["cred", "show"])
        .arg(dir.join("regCred-examples/xlReg_go/stockton.regCred.dat"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    for want in [
        "xlReg",
        "21b95b5c",
        "(32 bytes)",
        "RSA-2048 sha256 ",
        "50.18.104.7:55555",
        "0.4.3",
    ] {
        assert!(s.contains(want), "missing {want:?} in:\n{s}");
    }
}

#[test]
fn corrupted_copy_exits_2_naming_file_and_line() {
    let Some(dir) = vectors_dir() else { return };
    let good = read(&dir, "server-state-example/regCred.dat");
    let text = String::from_utf8(good).unwrap();
    // Line 3 is the ID; make it 19 bytes.
    let bad = text.replacen("044f\r\n", "04\r\n", 1);
    assert_ne!(bad, text);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("broken.regCred.dat");
    std::fs::write(&path, bad).unwrap();
    let out = xlreg().args(["cred", "show"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "one-line error: {err}");
    assert!(
        err.contains("broken.regCred.dat: line 3: bad registry ID"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn missing_file_exits_2() {
    let out = xlreg()
        .args(["cred", "show", "/nonexistent/regCred.dat", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("/nonexistent/regCred.dat: cannot read"),
        "{err}"
    );
}
