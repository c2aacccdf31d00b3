//! The Go server's `reg.config` (spec §13.3: an LF-ended `regNode { node
//! { name, nodeID, commsPubKey, sigPubKey, overlays, endPoints } ckPriv
//! skPriv }` block with PEM keys embedded unindented): the registry node's
//! identity with both private keys.
//!
//! Reading it lets an xlreg server take over the identity of an existing Go
//! registry (same ID, same comms key), so that every regCred.dat already
//! handed out keeps working. The reader checks that the public keys written
//! in the file belong to its private keys and that the private keys written
//! twice agree, because a mismatch would produce a registry that silently
//! cannot decrypt any Hello. Errors carry 1-based line numbers.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::regcred::{endpoint_block, excerpt, LineCursor};
use crate::wire::{NodeId, PrivateKey, PublicKey};

/// The parts of a Go registry's `reg.config` that matter to a registry.
#[derive(Clone, Debug)]
pub struct GoRegistryConfig {
    /// Node name (the Go server always uses `xlReg`).
    pub name: String,
    /// Registry node ID (goes into regCred.dat).
    pub id: NodeId,
    /// Comms private key: decrypts every Hello.
    pub comms_key: PrivateKey,
    /// Sig private key (never used by the protocol).
    pub sig_key: PrivateKey,
    /// Listen endpoints, `host:port` (without `TcpEndPoint: `).
    pub endpoints: Vec<String>,
    /// The node's `lfs:` state directory, if the file names one.
    pub lfs: Option<String>,
}

/// A reg.config text that does not parse or is inconsistent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct GoConfigError {
    /// 1-based line number (one past the end for a truncated file).
    pub line: usize,
    /// What was expected and what was found.
    pub message: String,
}

/// Loading a reg.config failed; names the file.
#[derive(Debug, thiserror::Error)]
pub enum GoConfigFileError {
    /// The file could not be read.
    #[error("{}: cannot read", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The contents are malformed.
    #[error("{}: {error}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Line and reason (part of the message: it is where the file is
        /// wrong, not a cause).
        error: GoConfigError,
    },
}

type R<T> = Result<T, (usize, String)>;

impl GoRegistryConfig {
    /// Parse the text of a Go `reg.config` (lines are trimmed, blank lines
    /// skipped, like the Go reader).
    pub fn parse(text: &str) -> Result<Self, GoConfigError> {
        parse_inner(text).map_err(|(line, message)| GoConfigError { line, message })
    }

    /// Read and parse a `reg.config` file; errors name the file and line.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, GoConfigFileError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| GoConfigFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8_lossy(&bytes);
        Self::parse(&text).map_err(|error| GoConfigFileError::Parse {
            path: path.to_path_buf(),
            error,
        })
    }

    /// The text the Go server writes for this node (LF line ends, PEM
    /// blocks unindented and followed by an empty line, no final newline).
    /// One overlay line is written per distinct overlay of the endpoints.
    pub fn to_go_format(&self) -> String {
        let mut s = String::with_capacity(8192);
        s.push_str("regNode {\n    node {\n");
        s.push_str(&format!("        name: {}\n", self.name));
        s.push_str(&format!("        nodeID: {}\n", self.id.to_hex()));
        s.push_str(&format!(
            "        commsPubKey: {}\n",
            self.comms_key.public().to_pem()
        ));
        s.push_str(&format!(
            "        sigPubKey: {}\n",
            self.sig_key.public().to_pem()
        ));
        s.push_str("        overlays {\n");
        let mut overlays: Vec<&str> = Vec::new();
        for ep in &self.endpoints {
            let o = overlay_for(ep);
            if !overlays.contains(&o) {
                overlays.push(o);
                s.push_str(&format!("            overlay: {o}\n"));
            }
        }
        s.push_str("        }\n");
        if let Some(lfs) = &self.lfs {
            s.push_str(&format!("        lfs: {lfs}\n"));
        }
        s.push_str(&format!("        ckPriv: {}\n", self.comms_key.to_pem_go()));
        s.push_str(&format!("        skPriv: {}\n", self.sig_key.to_pem_go()));
        s.push_str("        endPoints {\n");
        for ep in &self.endpoints {
            s.push_str(&format!("            TcpEndPoint: {ep}\n"));
        }
        s.push_str("        }\n        peers {\n        }\n    }\n");
        s.push_str(&format!("    ckPriv: {}\n", self.comms_key.to_pem_go()));
        s.push_str(&format!("    skPriv: {}\n", self.sig_key.to_pem_go()));
        s.push('}');
        s
    }
}

/// The overlay line the Go node derives from an endpoint's address.
fn overlay_for(endpoint: &str) -> &'static str {
    let host = endpoint.rsplit_once(':').map_or(endpoint, |(h, _)| h);
    match host.parse::<Ipv4Addr>().map(|a| a.octets()) {
        Ok([127, ..]) => "localhost, ip, 127.0.0.0/8, 1.000000",
        Ok([10, ..]) => "privateA, ip, 10.0.0.0/8, 1.000000",
        Ok([172, b, ..]) if (16..32).contains(&b) => "privateB, ip, 172.16.0.0/12, 1.000000",
        Ok([192, 168, ..]) => "privateC, ip, 192.168.0.0/16, 1.000000",
        _ => "globalV4, ip, 0.0.0.0/0, 1.000000",
    }
}

fn parse_inner(text: &str) -> R<GoRegistryConfig> {
    let mut c = LineCursor::new(text);
    c.expect_exact("regNode {")?;
    c.expect_exact("node {")?;
    let (_, name) = c.expect_kv("name", "name: <node name>")?;
    let (n, id) = c.expect_kv("nodeID", "nodeID: <40 or 64 hex digits>")?;
    let id: NodeId = id
        .parse()
        .map_err(|e| (n, format!("bad nodeID {}: {e}", excerpt(id))))?;
    let (ck_line, ck_pub) = public_pem(&mut c, "commsPubKey")?;
    let (sk_line, sk_pub) = public_pem(&mut c, "sigPubKey")?;
    if c.peek().map(|(_, l)| l) == Some("overlays {") {
        skip_block(&mut c, "overlays")?;
    }
    let mut lfs = None;
    if let Some((_, l)) = c.peek() {
        if l.starts_with("lfs:") {
            let (_, v) = c.expect_kv("lfs", "lfs: <path>")?;
            lfs = Some(v.to_string());
        }
    }
    let (n_ck, ck) = private_pem(&mut c, "ckPriv")?;
    if ck.public() != ck_pub {
        return Err((
            n_ck,
            format!("ckPriv does not match commsPubKey (line {ck_line})"),
        ));
    }
    let (n_sk, sk) = private_pem(&mut c, "skPriv")?;
    if sk.public() != sk_pub {
        return Err((
            n_sk,
            format!("skPriv does not match sigPubKey (line {sk_line})"),
        ));
    }
    c.expect_exact("endPoints {")?;
    let endpoints = endpoint_block(&mut c, "endPoints")?;
    if c.peek().map(|(_, l)| l) == Some("peers {") {
        skip_block(&mut c, "peers")?;
    }
    c.expect_exact("}")?;
    let (n, ck2) = private_pem(&mut c, "ckPriv")?;
    if ck2.public() != ck_pub {
        return Err((
            n,
            format!("registry ckPriv differs from the node's ckPriv (line {n_ck})"),
        ));
    }
    let (n, sk2) = private_pem(&mut c, "skPriv")?;
    if sk2.public() != sk_pub {
        return Err((
            n,
            format!("registry skPriv differs from the node's skPriv (line {n_sk})"),
        ));
    }
    c.expect_exact("}")?;
    if let Some((n, l)) = c.peek() {
        return Err((
            n,
            format!("unexpected text after the closing \"}}\": {}", excerpt(l)),
        ));
    }
    Ok(GoRegistryConfig {
        name: name.to_string(),
        id,
        comms_key: ck,
        sig_key: sk,
        endpoints,
        lfs,
    })
}

/// Skip a `name {` ... `}` block, nested blocks included.
fn skip_block(c: &mut LineCursor<'_>, name: &str) -> R<()> {
    let (start, _) = c.next_or(&format!("\"{name} {{\""))?;
    let mut depth = 1usize;
    while depth > 0 {
        let (_, l) = c.next_or(&format!("\"}}\" closing the {name} block of line {start}"))?;
        if l == "}" {
            depth -= 1;
        } else if l.ends_with('{') {
            depth += 1;
        }
    }
    Ok(())
}

/// Read `key: -----BEGIN <label>-----`, the base64 lines and the END line;
/// returns the line of the key and the PEM text.
fn pem_block(c: &mut LineCursor<'_>, key: &str, label: &str) -> R<(usize, String)> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let (n, v) = c.expect_kv(key, &format!("{key}: {begin}"))?;
    if v != begin {
        return Err((
            n,
            format!("expected \"{key}: {begin}\", found {}", excerpt(v)),
        ));
    }
    let mut pem = format!("{begin}\n");
    loop {
        let (m, l) = c.next_or(&format!("\"{end}\" closing the PEM block of line {n}"))?;
        if l == end {
            break;
        }
        if l.starts_with("-----")
            || !l
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        {
            return Err((
                m,
                format!(
                    "expected base64 or \"{end}\" in the PEM block of line {n}, found {}",
                    excerpt(l)
                ),
            ));
        }
        pem.push_str(l);
        pem.push('\n');
    }
    pem.push_str(&end);
    pem.push('\n');
    Ok((n, pem))
}

fn public_pem(c: &mut LineCursor<'_>, key: &str) -> R<(usize, PublicKey)> {
    let (n, pem) = pem_block(c, key, "PUBLIC KEY")?;
    let k = PublicKey::from_pem(pem.as_bytes()).map_err(|e| (n, format!("bad {key}: {e}")))?;
    Ok((n, k))
}

fn private_pem(c: &mut LineCursor<'_>, key: &str) -> R<(usize, PrivateKey)> {
    let (n, pem) = pem_block(c, key, "")?;
    let k = PrivateKey::from_pem(pem.as_bytes()).map_err(|e| (n, format!("bad {key}: {e}")))?;
    Ok((n, k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regcred::RegCred;
    use proptest::prelude::*;

    fn keys() -> &'static (PrivateKey, PrivateKey) {
        crate::wire::crypto::test_keys()
    }

    fn sample() -> GoRegistryConfig {
        let (ck, sk) = keys();
        GoRegistryConfig {
            name: "xlReg".into(),
            id: NodeId::from_bytes(&[0xab; 20]).unwrap(),
            comms_key: ck.clone(),
            sig_key: sk.clone(),
            endpoints: vec!["127.0.0.1:45678".into()],
            lfs: Some("./myApp/xlReg".into()),
        }
    }

    fn same(a: &GoRegistryConfig, b: &GoRegistryConfig) -> bool {
        a.name == b.name
            && a.id == b.id
            && a.comms_key.public() == b.comms_key.public()
            && a.sig_key.public() == b.sig_key.public()
            && a.endpoints == b.endpoints
            && a.lfs == b.lfs
    }

    /// The Go server's own reg.config, if the reference vectors are present.
    fn example_dir() -> Option<PathBuf> {
        let dir = std::env::var_os("XLREG_VECTORS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/spec/testdata")
            })
            .join("server-state-example");
        if dir.is_dir() {
            Some(dir)
        } else {
            use std::io::Write;
            if std::env::var("XLREG_REQUIRE_VECTORS").as_deref() == Ok("1") {
                panic!(
                    "reference vectors not found at {}, and XLREG_REQUIRE_VECTORS=1 requires them",
                    dir.display()
                );
            }
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: reference vectors not found at {}; set XLREG_VECTORS",
                dir.display()
            );
            None
        }
    }

    #[test]
    fn go_server_example_loads_and_matches_its_regcred() {
        let Some(dir) = example_dir() else { return };
        let cfg = GoRegistryConfig::load(dir.join("reg.config")).unwrap();
        assert_eq!(cfg.name, "xlReg");
        assert_eq!(cfg.id.to_hex(), "89939aa91ca3f9d1f3e35bdfb51e4e654fef044f");
        assert_eq!((cfg.comms_key.bits(), cfg.sig_key.bits()), (2048, 2048));
        assert_eq!(cfg.endpoints, ["127.0.0.1:45678"]);
        assert_eq!(cfg.lfs.as_deref(), Some("./myApp/xlReg"));
        let rc = RegCred::load(dir.join("regCred.dat")).unwrap();
        assert_eq!(rc.id, cfg.id);
        assert_eq!(rc.comms_key, cfg.comms_key.public());
        assert_eq!(rc.sig_key, cfg.sig_key.public());
        assert_eq!(rc.endpoints, cfg.endpoints);
        // And the comms key really works for the Hello.
        let ct = rc.comms_key.oaep_encrypt(b"key1").unwrap();
        assert_eq!(cfg.comms_key.oaep_decrypt(&ct).unwrap(), b"key1");
    }

    #[test]
    fn writer_reproduces_the_go_example_byte_for_byte() {
        let Some(dir) = example_dir() else { return };
        let text = std::fs::read_to_string(dir.join("reg.config")).unwrap();
        assert_eq!(GoRegistryConfig::parse(&text).unwrap().to_go_format(), text);
    }

    #[test]
    fn written_config_parses_back() {
        let mut cfg = sample();
        assert!(same(
            &GoRegistryConfig::parse(&cfg.to_go_format()).unwrap(),
            &cfg
        ));
        cfg.lfs = None;
        cfg.endpoints = vec![
            "10.1.2.3:1".into(),
            "192.168.0.1:2".into(),
            "8.8.8.8:3".into(),
        ];
        let text = cfg.to_go_format();
        assert!(text.contains("overlay: privateA, ip, 10.0.0.0/8, 1.000000\n"));
        assert!(text.contains("overlay: globalV4, ip, 0.0.0.0/0, 1.000000\n"));
        assert!(!text.contains("lfs:"));
        assert!(same(&GoRegistryConfig::parse(&text).unwrap(), &cfg));
        assert!(same(
            &GoRegistryConfig::parse(&text.replace('\n', "\r\n")).unwrap(),
            &cfg
        ));
    }

    #[test]
    fn mismatched_keys_are_refused_with_line_numbers() {
        let (ck, sk) = keys();
        let text = sample().to_go_format();
        let line_of = |t: &str, pat: &str| t.lines().position(|l| l.contains(pat)).unwrap() + 1;

        // The node's public comms key replaced by the sig key.
        let ck_pem = ck.public().to_pem();
        let swapped = text.replacen(&ck_pem, &sk.public().to_pem(), 1);
        let e = GoRegistryConfig::parse(&swapped).unwrap_err();
        assert_eq!(e.line, line_of(&swapped, "ckPriv"), "{e}");
        assert!(
            e.message.contains("ckPriv does not match commsPubKey"),
            "{e}"
        );

        // The registry's second copy of ckPriv differs.
        let ck_go = ck.to_pem_go();
        let idx = text.rfind(&ck_go).unwrap();
        let other = format!(
            "{}{}{}",
            &text[..idx],
            sk.to_pem_go(),
            &text[idx + ck_go.len()..]
        );
        let e = GoRegistryConfig::parse(&other).unwrap_err();
        assert!(e.message.contains("registry ckPriv differs"), "{e}");
        assert_eq!(e.line, other[..idx].lines().count(), "{e}");
    }

    #[test]
    fn broken_files_name_the_line() {
        let text = sample().to_go_format();
        let lines: Vec<&str> = text.split('\n').collect();
        let line_of = |pat: &str| lines.iter().position(|l| l.contains(pat)).unwrap() + 1;
        let cases = [
            ("nodeID: ", "nodeID: 1234", line_of("nodeID"), "bad nodeID"),
            (
                "name: xlReg",
                "nam: xlReg",
                line_of("name: xlReg"),
                "expected \"name:",
            ),
            (
                "TcpEndPoint: 127.0.0.1:45678",
                "TcpEndPoint: nope",
                line_of("TcpEndPoint"),
                "bad endpoint",
            ),
            (
                "-----END PUBLIC KEY-----",
                "-----END PUBLIC KEYS-----",
                line_of("-----END PUBLIC KEY-----"),
                "expected base64",
            ),
        ];
        for (from, to, line, msg) in cases {
            let t = if from == "nodeID: " {
                let l = lines[line - 1];
                text.replacen(l, &format!("        {to}"), 1)
            } else {
                text.replacen(from, to, 1)
            };
            let e = GoRegistryConfig::parse(&t).unwrap_err();
            assert_eq!(e.line, line, "{to}: {e}");
            assert!(e.message.contains(msg), "{to}: {e}");
        }
        // A corrupted base64 line inside the comms private key.
        let n = line_of("ckPriv") + 2;
        let mut bad: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        bad[n - 1] = "AAAA".into();
        let e = GoRegistryConfig::parse(&bad.join("\n")).unwrap_err();
        assert_eq!(e.line, n - 2, "{e}");
        assert!(e.message.starts_with("bad ckPriv"), "{e}");
        // Missing final brace, trailing garbage.
        let e = GoRegistryConfig::parse(text.strip_suffix('}').unwrap()).unwrap_err();
        assert!(e.message.ends_with("found end of file"), "{e}");
        let e = GoRegistryConfig::parse(&format!("{text}\nmore")).unwrap_err();
        assert_eq!(e.line, lines.len() + 1, "{e}");
        let e = GoRegistryConfig::load("/nonexistent/reg.config").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/reg.config: cannot read"),
            "{e}"
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let text = sample().to_go_format();
        // Cut at line boundaries (the parse is slow-ish: PEM + RSA checks).
        for (i, _) in text.match_indices('\n') {
            assert!(GoRegistryConfig::parse(&text[..i]).is_err(), "cut at {i}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn mutated_configs_never_panic(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
            let mut bytes = sample().to_go_format().into_bytes();
            for (i, b) in edits {
                let i = i.index(bytes.len());
                bytes[i] = b;
            }
            let _ = GoRegistryConfig::parse(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
            let _ = GoRegistryConfig::parse(&s);
        }
    }
}
