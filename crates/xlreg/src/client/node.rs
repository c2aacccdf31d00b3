//! A member's identity: name, node ID, comms and sig key pairs, endpoints.
//!
//! Why it is persisted: a member that restarts must keep its ID and keys,
//! or its peers would see a stranger. The first run generates the identity
//! and saves it to a directory; later runs load it. Layout:
//!
//! ```text
//! DIR/               mode 0700
//!   node.json        {"format":1,"name","id","endpoints",
//!                     "comms_key_sha256","sig_key_sha256"}   mode 0600
//!   comms_key.pem    PKCS#1 RSA private key                    mode 0600
//!   sig_key.pem      PKCS#1 RSA private key                    mode 0600
//! ```
//!
//! The fingerprints in node.json are checked on load, so a key file swapped
//! or replaced by mistake is an error rather than a silently new identity.
//! Files are written to a temporary name, fsynced and renamed, then the
//! directory is fsynced, so a crash never leaves a half-written identity.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ClientError;
use crate::wire::{check_endpoint, signed_token, NodeId, PrivateKey, Token};

/// Member attribute bits (spec §11.4); registries store and echo them.
pub mod attrs {
    /// The member keeps no state (Go: a member without a local directory).
    pub const EPHEMERAL: u64 = 1;
    /// An administrator (Go admin client: ADMIN | SOLO | EPHEMERAL = 7).
    pub const ADMIN: u64 = 2;
    /// Registers without joining (Go solo client).
    pub const SOLO: u64 = 4;
}

/// Name of the identity's config file.
pub const NODE_FILE: &str = "node.json";
/// Name of the comms private key file.
pub const COMMS_KEY_FILE: &str = "comms_key.pem";
/// Name of the sig private key file.
pub const SIG_KEY_FILE: &str = "sig_key.pem";
/// RSA key size used unless told otherwise (what the Go clients use).
pub const DEFAULT_KEY_BITS: u32 = 2048;

/// What to use when creating an identity, and what to change on reload.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// Name; default [`NodeIdentity::default_name`]. On reload, a given
    /// name replaces the saved one.
    pub name: Option<String>,
    /// Endpoints (`host:port`); default none. On reload, given endpoints
    /// replace the saved ones (a restarted member may have new ports).
    pub endpoints: Option<Vec<String>>,
    /// RSA key size for new keys (ignored on reload). Default 2048.
    pub key_bits: u32,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            name: None,
            endpoints: None,
            key_bits: DEFAULT_KEY_BITS,
        }
    }
}

/// A member's identity, with private keys.
#[derive(Clone, Debug)]
pub struct NodeIdentity {
    /// Member name (unique within a cluster).
    pub name: String,
    /// Node ID (20 random bytes when generated here, like the Go clients).
    pub id: NodeId,
    /// Comms key pair.
    pub comms_key: PrivateKey,
    /// Signature key pair; signs the Member token.
    pub sig_key: PrivateKey,
    /// Endpoints as `host:port`; by convention the first is
    /// member-to-member, the second client-to-member.
    pub endpoints: Vec<String>,
    dir: Option<PathBuf>,
}

#[derive(Serialize, Deserialize)]
struct NodeFile {
    format: u32,
    name: String,
    id: String,
    endpoints: Vec<String>,
    comms_key_sha256: String,
    sig_key_sha256: String,
}

fn ident(msg: String) -> ClientError {
    ClientError::Identity(msg)
}

fn check_name(name: &str) -> Result<(), ClientError> {
    if name.is_empty() {
        return Err(ident("member name must not be empty".into()));
    }
    if name.chars().any(char::is_control) {
        return Err(ident(format!(
            "member name {name:?} contains control characters"
        )));
    }
    Ok(())
}

fn check_endpoints(eps: &[String]) -> Result<(), ClientError> {
    for e in eps {
        check_endpoint(e).map_err(|err| ident(err.to_string()))?;
    }
    Ok(())
}

impl NodeIdentity {
    /// A fresh in-memory identity: random 20-byte ID, two new key pairs.
    /// Key generation takes tens to hundreds of milliseconds; in async code
    /// call it from `spawn_blocking`.
    pub fn generate(opts: &NodeOptions) -> Result<Self, ClientError> {
        let name = opts.name.clone().unwrap_or_else(Self::default_name);
        check_name(&name)?;
        let endpoints = opts.endpoints.clone().unwrap_or_default();
        check_endpoints(&endpoints)?;
        let gen = |what: &str| {
            PrivateKey::generate(opts.key_bits)
                .map_err(|e| ident(format!("generating the {what} key: {e}")))
        };
        Ok(NodeIdentity {
            name,
            id: NodeId::random(),
            comms_key: gen("comms")?,
            sig_key: gen("sig")?,
            endpoints,
            dir: None,
        })
    }

    /// An in-memory identity from existing keys (a key pool, pre-made test
    /// keys). Name and endpoints are checked like [`NodeIdentity::generate`].
    pub fn from_keys(
        name: &str,
        id: NodeId,
        comms_key: PrivateKey,
        sig_key: PrivateKey,
        endpoints: Vec<String>,
    ) -> Result<Self, ClientError> {
        check_name(name)?;
        check_endpoints(&endpoints)?;
        Ok(NodeIdentity {
            name: name.to_string(),
            id,
            comms_key,
            sig_key,
            endpoints,
            dir: None,
        })
    }

    /// A default member name: the host name, a dash and 6 random hex
    /// digits (e.g. `build7-3f9a0c`), so that several members started on
    /// one host do not collide.
    pub fn default_name() -> String {
        let suffix: [u8; 3] = crate::wire::crypto::random_array();
        format!("{}-{}", hostname(), hex::encode(suffix))
    }

    /// The directory this identity was loaded from or saved to.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// True for an identity that lives only in memory.
    pub fn is_ephemeral(&self) -> bool {
        self.dir.is_none()
    }

    /// The signed Member token for this node.
    pub fn token(&self, attrs: u64) -> Result<Token, ClientError> {
        Ok(signed_token(
            &self.name,
            attrs,
            Some(&self.id),
            &self.comms_key.public(),
            &self.sig_key,
            &self.endpoints,
        )?)
    }

    /// Load the identity saved in `dir`.
    pub fn load(dir: &Path) -> Result<Self, ClientError> {
        let path = dir.join(NODE_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ident(format!("reading {}: {e}", path.display())))?;
        let f: NodeFile =
            serde_json::from_str(&text).map_err(|e| ident(format!("{}: {e}", path.display())))?;
        if f.format != 1 {
            return Err(ident(format!(
                "{}: unknown format {} (this xlreg reads format 1)",
                path.display(),
                f.format
            )));
        }
        let id: NodeId =
            f.id.parse()
                .map_err(|e| ident(format!("{}: id: {e}", path.display())))?;
        check_name(&f.name).map_err(|e| ident(format!("{}: {e}", path.display())))?;
        check_endpoints(&f.endpoints).map_err(|e| ident(format!("{}: {e}", path.display())))?;
        let load_key = |file: &str, fingerprint: &str| -> Result<PrivateKey, ClientError> {
            let p = dir.join(file);
            warn_if_readable_by_others(&p);
            let pem =
                std::fs::read(&p).map_err(|e| ident(format!("reading {}: {e}", p.display())))?;
            let k =
                PrivateKey::from_pem(&pem).map_err(|e| ident(format!("{}: {e}", p.display())))?;
            if k.public().fingerprint() != fingerprint {
                return Err(ident(format!(
                    "{} does not hold the key recorded in {} (sha256 {fingerprint})",
                    p.display(),
                    path.display()
                )));
            }
            Ok(k)
        };
        Ok(NodeIdentity {
            name: f.name,
            id,
            comms_key: load_key(COMMS_KEY_FILE, &f.comms_key_sha256)?,
            sig_key: load_key(SIG_KEY_FILE, &f.sig_key_sha256)?,
            endpoints: f.endpoints,
            dir: Some(dir.to_path_buf()),
        })
    }

    /// Load the identity in `dir`, or generate and save one if `dir` holds
    /// none. A name or endpoints given in `opts` replace the saved ones (and
    /// are saved); the ID and keys are always kept. Returns the identity and
    /// whether it was created now.
    pub fn load_or_create(dir: &Path, opts: &NodeOptions) -> Result<(Self, bool), ClientError> {
        if dir.join(NODE_FILE).exists() {
            let mut node = Self::load(dir)?;
            let mut changed = false;
            if let Some(n) = &opts.name {
                check_name(n)?;
                changed |= *n != node.name;
                node.name = n.clone();
            }
            if let Some(e) = &opts.endpoints {
                check_endpoints(e)?;
                changed |= *e != node.endpoints;
                node.endpoints = e.clone();
            }
            if changed {
                node.save(dir)?;
            }
            return Ok((node, false));
        }
        for f in [COMMS_KEY_FILE, SIG_KEY_FILE] {
            if dir.join(f).exists() {
                return Err(ident(format!(
                    "{} exists but {} does not: refusing to overwrite a key; \
                     move it away or restore {}",
                    dir.join(f).display(),
                    NODE_FILE,
                    NODE_FILE
                )));
            }
        }
        let mut node = Self::generate(opts)?;
        node.save(dir)?;
        Ok((node, true))
    }

    /// Save to `dir` (created with mode 0700 if missing; files mode 0600).
    pub fn save(&mut self, dir: &Path) -> Result<(), ClientError> {
        create_private_dir(dir)?;
        write_private(
            &dir.join(COMMS_KEY_FILE),
            self.comms_key.to_pem_pkcs1().as_bytes(),
        )?;
        write_private(
            &dir.join(SIG_KEY_FILE),
            self.sig_key.to_pem_pkcs1().as_bytes(),
        )?;
        let f = NodeFile {
            format: 1,
            name: self.name.clone(),
            id: self.id.to_hex(),
            endpoints: self.endpoints.clone(),
            comms_key_sha256: self.comms_key.public().fingerprint(),
            sig_key_sha256: self.sig_key.public().fingerprint(),
        };
        let mut json = serde_json::to_string_pretty(&f)
            .map_err(|e| ident(format!("encoding {NODE_FILE}: {e}")))?;
        json.push('\n');
        write_private(&dir.join(NODE_FILE), json.as_bytes())?;
        self.dir = Some(dir.to_path_buf());
        Ok(())
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for buf.len() bytes; gethostname writes at
    // most that many and we stop at the first NUL or the end.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let raw = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    // Short host name, restricted to a tame alphabet.
    let short: String = raw
        .split('.')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(40)
        .collect();
    if short.is_empty() {
        "member".into()
    } else {
        short
    }
}

fn create_private_dir(dir: &Path) -> Result<(), ClientError> {
    crate::fsutil::create_private_dir(dir)
        .map_err(|e| ident(format!("creating {}: {e}", dir.display())))
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), ClientError> {
    crate::fsutil::write_atomic(path, data, 0o600)
        .map_err(|e| ident(format!("writing {}: {e}", path.display())))
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path) {
            if m.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    "{} is accessible by group/others (mode {:o}); chmod 600 it",
                    path.display(),
                    m.permissions().mode() & 0o777
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::verify_token;

    fn opts() -> NodeOptions {
        NodeOptions {
            name: Some("n1".into()),
            endpoints: Some(vec!["127.0.0.1:4001".into()]),
            key_bits: 1024,
        }
    }

    #[test]
    fn reload_keeps_id_and_keys_and_files_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("node");
        let (a, created) = NodeIdentity::load_or_create(&dir, &opts()).unwrap();
        assert!(created);
        assert_eq!(a.dir(), Some(dir.as_path()));
        let (b, created) = NodeIdentity::load_or_create(&dir, &NodeOptions::default()).unwrap();
        assert!(!created);
        assert_eq!(b.id, a.id);
        assert_eq!(b.name, "n1");
        assert_eq!(b.endpoints, a.endpoints);
        assert_eq!(b.comms_key.public(), a.comms_key.public());
        assert_eq!(b.sig_key.public(), a.sig_key.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in [NODE_FILE, COMMS_KEY_FILE, SIG_KEY_FILE] {
                let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{f}");
            }
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }

    #[test]
    fn reload_with_new_endpoints_keeps_id_and_saves_them() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, _) = NodeIdentity::load_or_create(tmp.path(), &opts()).unwrap();
        let o = NodeOptions {
            name: None,
            endpoints: Some(vec!["127.0.0.1:5000".into(), "127.0.0.1:5001".into()]),
            key_bits: 1024,
        };
        let (b, _) = NodeIdentity::load_or_create(tmp.path(), &o).unwrap();
        assert_eq!(b.id, a.id);
        assert_eq!(b.name, "n1");
        let c = NodeIdentity::load(tmp.path()).unwrap();
        assert_eq!(c.endpoints.len(), 2);
    }

    #[test]
    fn swapped_key_file_is_detected() {
        let tmp = tempfile::tempdir().unwrap();
        NodeIdentity::load_or_create(tmp.path(), &opts()).unwrap();
        std::fs::copy(
            tmp.path().join(SIG_KEY_FILE),
            tmp.path().join(COMMS_KEY_FILE),
        )
        .unwrap();
        let e = NodeIdentity::load(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("comms_key.pem does not hold the key"), "{e}");
    }

    #[test]
    fn orphan_key_file_is_not_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(SIG_KEY_FILE), "x").unwrap();
        let e = NodeIdentity::load_or_create(tmp.path(), &opts()).unwrap_err();
        assert!(e.to_string().contains("refusing to overwrite"), "{e}");
        assert_eq!(std::fs::read(tmp.path().join(SIG_KEY_FILE)).unwrap(), b"x");
    }

    #[test]
    fn corrupt_node_file_is_an_identity_error_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(NODE_FILE), "{not json").unwrap();
        let e = NodeIdentity::load_or_create(tmp.path(), &opts()).unwrap_err();
        assert!(matches!(e, ClientError::Identity(_)));
        assert!(e.to_string().contains("node.json"), "{e}");
    }

    #[test]
    fn bad_endpoint_or_empty_name_is_refused() {
        let o = NodeOptions {
            endpoints: Some(vec!["nope".into()]),
            ..opts()
        };
        assert!(NodeIdentity::generate(&o).is_err());
        let o = NodeOptions {
            name: Some(String::new()),
            ..opts()
        };
        assert!(NodeIdentity::generate(&o).is_err());
    }

    #[test]
    fn token_is_signed_and_carries_our_id() {
        let n = NodeIdentity::generate(&opts()).unwrap();
        let v = verify_token(&n.token(attrs::EPHEMERAL).unwrap()).unwrap();
        assert_eq!(v.id, Some(n.id));
        assert_eq!(v.token.attrs, Some(1));
    }

    #[test]
    fn default_name_is_host_dash_hex() {
        let a = NodeIdentity::default_name();
        let (host, suffix) = a.rsplit_once('-').unwrap();
        assert!(!host.is_empty());
        assert_eq!(suffix.len(), 6);
        assert_ne!(a, NodeIdentity::default_name());
    }
}
