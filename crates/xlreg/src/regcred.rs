//! regCred.dat, the registry credentials file (spec §12): how a client
//! learns the registry's comms key and address.
//!
//! There is no on-wire credential exchange, so this file is the trust
//! anchor of every client. The reader is tolerant in the same ways as the Go
//! reader (LF or CR LF, indentation, blank lines, `ssh-rsa` lines with
//! comments) and stricter where Go misbehaves: a truncated file is an error
//! instead of a crash, a blank line before the EndPoints `}` is fine, and
//! the final `}` must be present. Every error names the 1-based line.
//!
//! The writer is byte-exact with the Go server's (§12.1: CR LF line ends,
//! 4-space indentation, each `ssh-rsa` key line followed by an empty
//! line, 9 spaces before `TcpEndPoint:`), so files written here are
//! indistinguishable from the original's.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::wire::{check_endpoint, DecimalVersion, NodeId, PublicKey};

/// The contents of a regCred.dat file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegCred {
    /// Registry name (the Go server always writes `xlReg`).
    pub name: String,
    /// Registry node ID.
    pub id: NodeId,
    /// Registry comms key: clients encrypt the Hello with it.
    pub comms_key: PublicKey,
    /// Registry sig key (informational; the protocol never uses it).
    pub sig_key: PublicKey,
    /// Endpoints as `host:port` (without the `TcpEndPoint: ` prefix); the
    /// first is where clients connect.
    pub endpoints: Vec<String>,
    /// Registry software version.
    pub version: DecimalVersion,
}

/// A regCred text that does not parse: the 1-based line and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct RegCredError {
    /// 1-based line number in the file (one past the last line for a file
    /// that ends too early).
    pub line: usize,
    /// What was expected and what was found.
    pub message: String,
}

/// Reading or writing a regCred file failed; names the file.
#[derive(Debug, thiserror::Error)]
pub enum RegCredFileError {
    /// The file could not be read or written.
    #[error("{}: cannot {op}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done (`read`, `write`, ...).
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file was read but its contents are malformed.
    #[error("{}: {error}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Line and reason (part of the message: it is where the file is
        /// wrong, not a cause).
        error: RegCredError,
    },
}

/// A regCred without any endpoint: there is nowhere to connect to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the regCred of registry {0} lists no endpoint to connect to")]
pub struct NoEndpointError(pub String);

/// Shorten a line for an error message (ssh keys are ~380 characters).
pub(crate) fn excerpt(s: &str) -> String {
    const MAX: usize = 48;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{:?}...", head)
    }
}

/// The non-blank, trimmed lines of a text with their 1-based numbers: the
/// Go readers' view of a file (split on LF, trim, skip blank lines).
pub(crate) struct LineCursor<'a> {
    lines: Vec<(usize, &'a str)>,
    pos: usize,
    eof_line: usize,
}

impl<'a> LineCursor<'a> {
    /// Split `text` into trimmed, non-blank lines (a leading BOM is ignored).
    pub(crate) fn new(text: &'a str) -> Self {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let lines = text
            .split('\n')
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty())
            .collect();
        LineCursor {
            lines,
            pos: 0,
            eof_line: text.lines().count() + 1,
        }
    }

    /// The next line without consuming it.
    pub(crate) fn peek(&self) -> Option<(usize, &'a str)> {
        self.lines.get(self.pos).copied()
    }

    /// Consume the next line; at the end, an error saying what was expected.
    pub(crate) fn next_or(&mut self, expected: &str) -> Result<(usize, &'a str), (usize, String)> {
        match self.peek() {
            Some(l) => {
                self.pos += 1;
                Ok(l)
            }
            None => Err((
                self.eof_line,
                format!("expected {expected}, found end of file"),
            )),
        }
    }

    /// Consume a line that must equal `want` exactly (after trimming).
    pub(crate) fn expect_exact(&mut self, want: &str) -> Result<usize, (usize, String)> {
        let shown = format!("{want:?}");
        let (n, l) = self.next_or(&shown)?;
        if l == want {
            Ok(n)
        } else {
            Err((n, format!("expected {shown}, found {}", excerpt(l))))
        }
    }

    /// Consume a `key: value` line: split on `": "` into exactly two parts,
    /// the first equal to `key`. A bare `key:` gives an empty value. The
    /// value is returned left-trimmed. `shape` describes the expected line
    /// for messages, e.g. `"ID: <hex>"`.
    pub(crate) fn expect_kv(
        &mut self,
        key: &str,
        shape: &str,
    ) -> Result<(usize, &'a str), (usize, String)> {
        let shown = format!("{shape:?}");
        let (n, l) = self.next_or(&shown)?;
        match split_kv(l) {
            Some((k, v)) if k == key => Ok((n, v)),
            _ => Err((n, format!("expected {shown}, found {}", excerpt(l)))),
        }
    }
}

/// Split a trimmed `key: value` line the Go way: on `": "`, exactly two
/// parts; the value left-trimmed. `key:` alone is `(key, "")`.
pub(crate) fn split_kv(line: &str) -> Option<(&str, &str)> {
    if let Some(k) = line.strip_suffix(':') {
        if !k.contains(": ") {
            return Some((k, ""));
        }
    }
    let mut parts = line.split(": ");
    let k = parts.next()?;
    let v = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    Some((k, v.trim_start_matches([' ', '\t'])))
}

impl RegCred {
    /// Parse the text of a regCred.dat file (spec §12.2), tolerant like the
    /// Go reader: LF or CR LF, any indentation, blank lines anywhere.
    pub fn parse(text: &str) -> Result<RegCred, RegCredError> {
        Self::parse_inner(text).map_err(|(line, message)| RegCredError { line, message })
    }

    fn parse_inner(text: &str) -> Result<RegCred, (usize, String)> {
        let mut c = LineCursor::new(text);
        c.expect_exact("regCred {")?;
        let (_, name) = c.expect_kv("Name", "Name: <registry name>")?;
        let (n, id) = c.expect_kv("ID", "ID: <40 or 64 hex digits>")?;
        let id: NodeId = id
            .parse()
            .map_err(|e| (n, format!("bad registry ID {}: {e}", excerpt(id))))?;
        let comms_key = key_line(&mut c, "CommsPubKey")?;
        let sig_key = key_line(&mut c, "SigPubKey")?;
        c.expect_exact("EndPoints {")?;
        let endpoints = endpoint_block(&mut c, "EndPoints")?;
        let (n, v) = c.expect_kv("Version", "Version: <a.b.c.d>")?;
        let version: DecimalVersion = v.parse().map_err(|_| {
            (
                n,
                format!(
                    "bad version {}: expected 1 to 4 numbers 0..255 separated by dots",
                    excerpt(v)
                ),
            )
        })?;
        c.expect_exact("}")?;
        if let Some((n, l)) = c.peek() {
            return Err((
                n,
                format!("unexpected text after the closing \"}}\": {}", excerpt(l)),
            ));
        }
        Ok(RegCred {
            name: name.to_string(),
            id,
            comms_key,
            sig_key,
            endpoints,
            version,
        })
    }

    /// The exact bytes the Go server writes (spec §12.1): CR LF line ends,
    /// each `ssh-rsa` line ends in LF followed by CR LF (an empty line),
    /// endpoints indented by 9 spaces with the `TcpEndPoint: ` prefix.
    ///
    /// For the result to parse back, the name must not contain `": "`, line
    /// breaks or surrounding white space (the Go format cannot carry them).
    pub fn to_go_format(&self) -> String {
        let mut s = String::with_capacity(1024);
        s.push_str("regCred {\r\n");
        s.push_str(&format!("    Name: {}\r\n", self.name));
        s.push_str(&format!("    ID: {}\r\n", self.id.to_hex()));
        s.push_str(&format!(
            "    CommsPubKey: {}\n\r\n",
            self.comms_key.to_ssh_line()
        ));
        s.push_str(&format!(
            "    SigPubKey: {}\n\r\n",
            self.sig_key.to_ssh_line()
        ));
        s.push_str("    EndPoints {\r\n");
        for ep in &self.endpoints {
            s.push_str(&format!("         TcpEndPoint: {ep}\r\n"));
        }
        s.push_str("    }\r\n");
        s.push_str(&format!("    Version: {}\r\n", self.version));
        s.push_str("}\r\n");
        s
    }

    /// Read and parse a regCred file; errors name the file and the line.
    pub fn load(path: impl AsRef<Path>) -> Result<RegCred, RegCredFileError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| RegCredFileError::Io {
            path: path.to_path_buf(),
            op: "read",
            source,
        })?;
        let parse_err = |error| RegCredFileError::Parse {
            path: path.to_path_buf(),
            error,
        };
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            parse_err(RegCredError {
                line,
                message: "the file is not valid UTF-8 text".into(),
            })
        })?;
        RegCred::parse(text).map_err(parse_err)
    }

    /// Write the file in the Go format, atomically: a temporary file in the
    /// same directory, mode 0644, synced, renamed over `path`, and the
    /// directory synced.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), RegCredFileError> {
        let path = path.as_ref();
        let io = |op: &'static str| {
            move |source| RegCredFileError::Io {
                path: path.to_path_buf(),
                op,
                source,
            }
        };
        crate::fsutil::write_atomic(path, self.to_go_format().as_bytes(), 0o644)
            .map_err(io("write"))
    }

    /// Where a client connects: the first endpoint, `host:port`.
    pub fn connect_addr(&self) -> Result<String, NoEndpointError> {
        self.endpoints
            .first()
            .cloned()
            .ok_or_else(|| NoEndpointError(self.name.clone()))
    }
}

/// Read `TcpEndPoint: host:port` lines up to the `}` closing the block
/// named `block` (whose opening line has been consumed).
pub(crate) fn endpoint_block(
    c: &mut LineCursor<'_>,
    block: &str,
) -> Result<Vec<String>, (usize, String)> {
    let expected = format!("\"TcpEndPoint: <host:port>\" or \"}}\" closing {block}");
    let mut endpoints = Vec::new();
    loop {
        let (n, l) = c.next_or(&expected)?;
        if l == "}" {
            return Ok(endpoints);
        }
        match split_kv(l) {
            Some(("TcpEndPoint", ep)) => {
                check_endpoint(ep).map_err(|e| (n, e.to_string()))?;
                endpoints.push(ep.to_string());
            }
            _ => return Err((n, format!("expected {expected}, found {}", excerpt(l)))),
        }
    }
}

fn key_line(c: &mut LineCursor<'_>, key: &str) -> Result<PublicKey, (usize, String)> {
    let shape = format!("{key}: ssh-rsa ...");
    let (n, v) = c.expect_kv(key, &shape)?;
    PublicKey::from_ssh_line(v).map_err(|e| (n, format!("bad {key}: {e}")))
}

impl fmt::Display for RegCred {
    /// A one-line summary: name, ID and first endpoint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "registry {:?} {} at {}",
            self.name,
            self.id,
            self.endpoints
                .first()
                .map_or("<no endpoint>", String::as_str)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys() -> &'static (PublicKey, PublicKey) {
        crate::wire::crypto::test_public_keys()
    }

    fn sample(endpoints: &[&str]) -> RegCred {
        let (ck, sk) = keys();
        RegCred {
            name: "xlReg".into(),
            id: "89939aa91ca3f9d1f3e35bdfb51e4e654fef044f".parse().unwrap(),
            comms_key: ck.clone(),
            sig_key: sk.clone(),
            endpoints: endpoints.iter().map(|s| s.to_string()).collect(),
            version: "1.9.24".parse().unwrap(),
        }
    }

    #[test]
    fn writer_produces_the_go_layout_byte_for_byte() {
        let rc = sample(&["127.0.0.1:45678", "10.0.0.1:1"]);
        let (ck, sk) = keys();
        let want = format!(
            "regCred {{\r\n    Name: xlReg\r\n    ID: 89939aa91ca3f9d1f3e35bdfb51e4e654fef044f\r\n    \
             CommsPubKey: {}\n\r\n    SigPubKey: {}\n\r\n    EndPoints {{\r\n         \
             TcpEndPoint: 127.0.0.1:45678\r\n         TcpEndPoint: 10.0.0.1:1\r\n    }}\r\n    \
             Version: 1.9.24\r\n}}\r\n",
            ck.to_ssh_line(),
            sk.to_ssh_line()
        );
        assert_eq!(rc.to_go_format(), want);
        assert_eq!(RegCred::parse(&want).unwrap(), rc);
    }

    #[test]
    fn reader_is_tolerant_of_lf_indentation_blank_lines_and_comments() {
        let (ck, sk) = keys();
        let text = format!(
            "\n\nregCred {{\nName:   xlReg\n\tID: 89939AA91CA3F9D1F3E35BDFB51E4E654FEF044F\n\n\
             CommsPubKey: {} jdd@paloalto\nSigPubKey: {}\r\n EndPoints {{\n\n\
             TcpEndPoint: 127.0.0.1:45678\n\n   }}\nVersion: 1.9.24\n}}\n\n",
            ck.to_ssh_line(),
            sk.to_ssh_line()
        );
        assert_eq!(RegCred::parse(&text).unwrap(), sample(&["127.0.0.1:45678"]));
        // No final newline, empty endpoint list, BOM.
        let rc = sample(&[]);
        let text = format!("\u{feff}{}", rc.to_go_format().trim_end());
        assert_eq!(RegCred::parse(&text).unwrap(), rc);
    }

    #[test]
    fn error_display_names_line_expected_and_found() {
        let text = sample(&["1.2.3.4:5"])
            .to_go_format()
            .replacen("CommsPubKey", "CommsKey", 1);
        let e = RegCred::parse(&text).unwrap_err();
        assert_eq!(e.line, 4);
        let shown = e.to_string();
        assert!(
            shown.starts_with(
                "line 4: expected \"CommsPubKey: ssh-rsa ...\", found \"CommsKey: ssh-rsa "
            ),
            "{shown}"
        );
        assert!(shown.ends_with("..."), "long lines are shortened: {shown}");
    }

    /// Line numbers of the non-blank lines of a Go-format file.
    fn content_lines(text: &str) -> Vec<usize> {
        text.split('\n')
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, _)| i + 1)
            .collect()
    }

    #[test]
    fn every_garbled_line_is_reported_with_its_number() {
        let text = sample(&["127.0.0.1:1", "127.0.0.1:2"]).to_go_format();
        let lines: Vec<&str> = text.split('\n').collect();
        for n in content_lines(&text) {
            for garbage in ["garbage", "Name: a: b", "}", "ID: 00"] {
                let mut broken = lines.clone();
                broken[n - 1] = garbage;
                let broken = broken.join("\n");
                if broken == text || RegCred::parse(&broken).is_ok() {
                    // Replacing e.g. the final "}" with "}" changes nothing.
                    assert_eq!(lines[n - 1].trim(), garbage);
                    continue;
                }
                let e = RegCred::parse(&broken).unwrap_err();
                if garbage == "}" && lines[n - 1].contains("TcpEndPoint") {
                    // A stray "}" validly closes the EndPoints block early;
                    // the line after it is then the unexpected one.
                    assert_eq!(e.line, n + 1, "{e}");
                } else {
                    assert_eq!(e.line, n, "replacing line {n} by {garbage:?}: {e}");
                }
            }
        }
    }

    #[test]
    fn a_missing_line_is_reported_at_the_line_that_took_its_place() {
        let text = sample(&["127.0.0.1:1"]).to_go_format();
        let lines: Vec<&str> = text.split('\n').collect();
        for n in content_lines(&text) {
            if lines[n - 1].contains("TcpEndPoint") {
                continue; // endpoints are optional: the rest is still valid
            }
            let mut broken = lines.clone();
            broken[n - 1] = "";
            let e = RegCred::parse(&broken.join("\n")).unwrap_err();
            // The next content line (or end of file) is where it fails.
            let next = content_lines(&text)
                .into_iter()
                .find(|&m| m > n)
                .unwrap_or(lines.len());
            assert_eq!(e.line, next, "removing line {n}: {e}");
        }
    }

    #[test]
    fn truncated_files_are_errors_never_panics() {
        let text = sample(&["127.0.0.1:1", "127.0.0.1:2"]).to_go_format();
        let last_brace = text.rfind('}').unwrap();
        for cut in 0..text.len() {
            let r = RegCred::parse(&text[..cut]);
            if cut <= last_brace {
                let e = r.unwrap_err();
                assert!(e.line >= 1 && e.line <= 14, "{cut}: {e}");
            } else {
                assert!(r.is_ok(), "{cut}");
            }
        }
        let e = RegCred::parse("regCred {\r\n    Name: x\r\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 3: expected \"ID: <40 or 64 hex digits>\", found end of file"
        );
    }

    #[test]
    fn specific_field_errors() {
        let base = sample(&["127.0.0.1:1"]).to_go_format();
        let cases = [
            (
                "ID: 89939aa91ca3f9d1f3e35bdfb51e4e654fef044f",
                "ID: 8993",
                3,
                "bad registry ID",
            ),
            (
                "ID: 89939aa91ca3f9d1f3e35bdfb51e4e654fef044f",
                "ID: zz",
                3,
                "bad hex",
            ),
            ("Version: 1.9.24", "Version: 1.9.300", 11, "bad version"),
            (
                "TcpEndPoint: 127.0.0.1:1",
                "TcpEndPoint: 127.0.0.1",
                9,
                "bad endpoint",
            ),
            (
                "TcpEndPoint: 127.0.0.1:1",
                "UdpEndPoint: 127.0.0.1:1",
                9,
                "closing EndPoints",
            ),
            ("Name: xlReg", "Name: a: b", 2, "expected \"Name:"),
            ("regCred {", "regCreds {", 1, "expected \"regCred {\""),
        ];
        for (from, to, line, msg) in cases {
            let e = RegCred::parse(&base.replacen(from, to, 1)).unwrap_err();
            assert_eq!(e.line, line, "{to}: {e}");
            assert!(e.message.contains(msg), "{to}: {e}");
        }
        // A mangled key.
        let (ck, _) = keys();
        let b64 = ck.to_ssh_line()[8..].to_string();
        let e = RegCred::parse(&base.replacen(&b64[..20], "AAAA", 1)).unwrap_err();
        assert_eq!(e.line, 4);
        assert!(e.message.starts_with("bad CommsPubKey"), "{e}");
        // The final brace is required, and nothing may follow it.
        let e = RegCred::parse(base.trim_end().strip_suffix('}').unwrap()).unwrap_err();
        assert_eq!(
            (e.line, e.message.contains("found end of file")),
            (12, true),
            "{e}"
        );
        let e = RegCred::parse(&format!("{base}\r\nextra\r\n")).unwrap_err();
        assert_eq!(e.line, 14, "{e}");
    }

    #[test]
    fn empty_name_round_trips() {
        let mut rc = sample(&["127.0.0.1:1"]);
        rc.name.clear();
        assert_eq!(RegCred::parse(&rc.to_go_format()).unwrap(), rc);
    }

    #[test]
    fn save_load_round_trip_with_mode_0644_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("regCred.dat");
        let rc = sample(&["127.0.0.1:45678"]);
        rc.save(&path).unwrap();
        rc.save(&path).unwrap(); // overwriting works too
        assert_eq!(std::fs::read_to_string(&path).unwrap(), rc.to_go_format());
        assert_eq!(RegCred::load(&path).unwrap(), rc);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );

        std::fs::write(&path, rc.to_go_format().replace("Version", "Versio")).unwrap();
        let e = RegCred::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("regCred.dat: line 11: expected \"Version:"),
            "{e}"
        );
        std::fs::write(&path, b"regCred {\n\xff\n").unwrap();
        let e = RegCred::load(&path).unwrap_err().to_string();
        assert!(
            e.ends_with("line 2: the file is not valid UTF-8 text"),
            "{e}"
        );
        let e = RegCred::load(dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope: cannot read"), "{e}");
        let e = rc
            .save(dir.path().join("no/such/dir/x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no/such/dir/x: cannot"), "{e}");
    }

    #[test]
    fn connect_addr_is_the_first_endpoint() {
        assert_eq!(
            sample(&["1.2.3.4:5", "6.7.8.9:10"]).connect_addr().unwrap(),
            "1.2.3.4:5"
        );
        assert!(sample(&[]).connect_addr().is_err());
        assert_eq!(
            sample(&["1.2.3.4:5"]).to_string(),
            "registry \"xlReg\" 89939aa91ca3f9d1f3e35bdfb51e4e654fef044f at 1.2.3.4:5"
        );
    }

    fn arb_regcred() -> impl Strategy<Value = RegCred> {
        let name = "([A-Za-z0-9_.-]([A-Za-z0-9_. :-]{0,20}[A-Za-z0-9_.-])?)?"
            .prop_filter("Go format cannot carry \": \"", |s: &String| {
                !s.contains(": ")
            });
        let id = prop_oneof![
            any::<[u8; 20]>().prop_map(|b| NodeId::from_bytes(&b).unwrap()),
            any::<[u8; 32]>().prop_map(|b| NodeId::from_bytes(&b).unwrap()),
        ];
        let ep = (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(a, p)| format!("{}.{}.{}.{}:{p}", a[0], a[1], a[2], a[3]));
        let eps = proptest::collection::vec(ep, 0..5);
        (name, id, eps, any::<u32>(), any::<bool>()).prop_map(|(name, id, endpoints, v, swap)| {
            let (ck, sk) = keys();
            let (ck, sk) = if swap { (sk, ck) } else { (ck, sk) };
            RegCred {
                name,
                id,
                comms_key: ck.clone(),
                sig_key: sk.clone(),
                endpoints,
                version: DecimalVersion(v),
            }
        })
    }

    proptest! {
        #[test]
        fn write_then_parse_round_trips(rc in arb_regcred()) {
            let text = rc.to_go_format();
            prop_assert_eq!(RegCred::parse(&text).unwrap(), rc.clone());
            // LF-only and re-indented copies parse to the same value.
            prop_assert_eq!(RegCred::parse(&text.replace('\r', "")).unwrap(), rc.clone());
            prop_assert_eq!(RegCred::parse(&text.replace("\n    ", "\n\t")).unwrap(), rc);
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,300}") {
            let _ = RegCred::parse(&s);
        }

        #[test]
        fn line_soup_never_panics(lines in proptest::collection::vec(prop_oneof![
            Just("regCred {".to_string()), Just("}".to_string()), Just("EndPoints {".to_string()),
            Just("Name: x".to_string()), Just("ID: 00".to_string()), Just("Version: 1.2".to_string()),
            Just("TcpEndPoint: 1.2.3.4:5".to_string()), Just("CommsPubKey: ssh-rsa AAAA".to_string()),
            "[ -~]{0,12}",
        ], 0..20)) {
            let _ = RegCred::parse(&lines.join("\r\n"));
        }

        #[test]
        fn mutated_valid_files_never_panic(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
                                           cut in any::<prop::sample::Index>()) {
            let mut bytes = sample(&["127.0.0.1:1", "127.0.0.1:2"]).to_go_format().into_bytes();
            for (i, b) in edits {
                let i = i.index(bytes.len());
                bytes[i] = b;
            }
            bytes.truncate(cut.index(bytes.len() + 1));
            let text = String::from_utf8_lossy(&bytes);
            if let Err(e) = RegCred::parse(&text) {
                prop_assert!(e.line >= 1 && e.line <= text.lines().count() + 1, "{}", e);
            }
        }
    }
}
