//! The registry's identity — its node ID and two RSA key pairs — and the
//! files of a data directory.
//!
//! Layout of a data directory (mode 0700):
//!
//! | file | contents |
//! |---|---|
//! | `identity.json` | `{"id": "<hex>"}` |
//! | `comms_key.pem`, `sig_key.pem` | PKCS#8 private keys, mode 0600 |
//! | `registry.db` (+ `-wal`, `-shm`) | SQLite: clusters, members, IDs |
//! | `regCred.dat` | credentials for clients, Go format, mode 0644 |
//! | `lock` | held (flock) while a server runs |
//!
//! Files are written to a temporary name, fsynced and renamed, and the
//! directory fsynced, so a crash never leaves half a key behind; an existing identity is never overwritten.

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::goconfig::GoRegistryConfig;
use crate::regcred::RegCred;
use crate::wire::msg::Token;
use crate::wire::{NodeId, PrivateKey, GO_SERVER_VERSION};

/// A failure with the server's files; names the file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {msg}")]
pub struct IdentityError {
    /// File or directory concerned.
    pub path: String,
    /// What went wrong.
    pub msg: String,
}

fn ierr(path: &Path, msg: impl std::fmt::Display) -> IdentityError {
    IdentityError {
        path: path.display().to_string(),
        msg: msg.to_string(),
    }
}

/// The registry's ID and keys.
#[derive(Clone, Debug)]
pub struct ServerIdentity {
    /// Registry node ID (20 bytes when generated).
    pub id: NodeId,
    /// Comms key: decrypts every Hello.
    pub comms: PrivateKey,
    /// Sig key: published in regCred.dat, never used by the protocol.
    pub sig: PrivateKey,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct IdentityFile {
    id: String,
}

impl ServerIdentity {
    /// A fresh identity with `bits`-bit keys.
    pub fn generate(bits: u32) -> Result<Self, IdentityError> {
        let gen = || PrivateKey::generate(bits).map_err(|e| ierr(Path::new("<keygen>"), e));
        let (comms, sig) = std::thread::scope(|s| {
            let a = s.spawn(gen);
            let b = gen();
            (a.join().expect("keygen thread"), b)
        });
        Ok(ServerIdentity {
            id: NodeId::random(),
            comms: comms?,
            sig: sig?,
        })
    }

    /// Take over a Go server's identity from its `reg.config`.
    pub fn from_go(cfg: &GoRegistryConfig) -> Self {
        ServerIdentity {
            id: cfg.id,
            comms: cfg.comms_key.clone(),
            sig: cfg.sig_key.clone(),
        }
    }

    /// Is there an identity in `dir`?
    pub fn exists(dir: &Path) -> bool {
        dir.join("identity.json").exists()
    }

    /// Load the identity stored in `dir`.
    pub fn load(dir: &Path) -> Result<Self, IdentityError> {
        let p = dir.join("identity.json");
        let text = fs::read_to_string(&p).map_err(|e| ierr(&p, format!("cannot read: {e}")))?;
        let f: IdentityFile = serde_json::from_str(&text)
            .map_err(|e| ierr(&p, format!("corrupt identity file: {e}")))?;
        let id: NodeId =
            f.id.parse()
                .map_err(|e| ierr(&p, format!("bad registry ID: {e}")))?;
        let key = |name: &str| {
            let p = dir.join(name);
            let pem = fs::read(&p).map_err(|e| ierr(&p, format!("cannot read: {e}")))?;
            PrivateKey::from_pem(&pem).map_err(|e| ierr(&p, format!("corrupt key file: {e}")))
        };
        Ok(ServerIdentity {
            id,
            comms: key("comms_key.pem")?,
            sig: key("sig_key.pem")?,
        })
    }

    /// Store this identity in `dir`, refusing to replace a different one.
    pub fn save(&self, dir: &Path) -> Result<(), IdentityError> {
        if Self::exists(dir) {
            let old = Self::load(dir)?;
            if old.id != self.id {
                return Err(ierr(
                    &dir.join("identity.json"),
                    format!(
                        "already holds registry ID {}; refusing to replace it with {}",
                        old.id, self.id
                    ),
                ));
            }
        }
        write_atomic(
            &dir.join("comms_key.pem"),
            self.comms.to_pem_pkcs8().as_bytes(),
            0o600,
        )?;
        write_atomic(
            &dir.join("sig_key.pem"),
            self.sig.to_pem_pkcs8().as_bytes(),
            0o600,
        )?;
        let f = serde_json::to_string_pretty(&IdentityFile {
            id: self.id.to_hex(),
        })
        .expect("json");
        write_atomic(
            &dir.join("identity.json"),
            format!("{f}\n").as_bytes(),
            0o644,
        )
    }

    /// Load the identity from `dir`, or create and store one.
    /// Returns the identity and whether it was created now.
    pub fn load_or_create(dir: &Path, bits: u32) -> Result<(Self, bool), IdentityError> {
        if Self::exists(dir) {
            return Ok((Self::load(dir)?, false));
        }
        for f in ["comms_key.pem", "sig_key.pem"] {
            let p = dir.join(f);
            if p.exists() {
                return Err(ierr(
                    &p,
                    "key file without identity.json; refusing to overwrite it (restore identity.json or move the keys away)",
                ));
            }
        }
        let id = Self::generate(bits)?;
        id.save(dir)?;
        Ok((id, true))
    }

    /// The regCred this registry publishes.
    pub fn regcred(&self, name: &str, endpoint: &str) -> RegCred {
        RegCred {
            name: name.to_string(),
            id: self.id,
            comms_key: self.comms.public(),
            sig_key: self.sig.public(),
            endpoints: vec![endpoint.to_string()],
            version: GO_SERVER_VERSION,
        }
    }

    /// The registry's own token (for RegCredReply).
    pub fn token(&self, name: &str, endpoint: &str) -> Token {
        Token {
            name: Some(name.as_bytes().to_vec()),
            attrs: Some(0),
            id: Some(self.id.as_bytes().to_vec()),
            comms_key: Some(self.comms.public().to_spki_der()),
            sig_key: Some(self.sig.public().to_spki_der()),
            my_ends: vec![endpoint.as_bytes().to_vec()],
            dig_sig: None,
        }
    }
}

/// Create `dir` (mode 0700) if needed and check it is a writable directory.
pub fn prepare_data_dir(dir: &Path) -> Result<(), IdentityError> {
    if !dir.exists() {
        crate::fsutil::create_private_dir(dir)
            .map_err(|e| ierr(dir, format!("cannot create data directory: {e}")))?;
    }
    if !dir.is_dir() {
        return Err(ierr(dir, "not a directory"));
    }
    Ok(())
}

/// Check that the data directory and the private key files in it are not
/// accessible by group or others. A loose mode is a warning (logged, and
/// returned so callers can print it), or an error when `strict`.
pub fn check_private_modes(dir: &Path, strict: bool) -> Result<Vec<String>, IdentityError> {
    let mut loose = Vec::new();
    for (p, what) in [
        (dir.to_path_buf(), "data directory"),
        (dir.join("comms_key.pem"), "private key file"),
        (dir.join("sig_key.pem"), "private key file"),
    ] {
        let Ok(m) = fs::metadata(&p) else { continue };
        let mode = std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777;
        if mode & 0o077 == 0 {
            continue;
        }
        let fix = if m.is_dir() { "chmod 700" } else { "chmod 600" };
        let msg = format!("{what} is accessible by group/others (mode {mode:o}); {fix} it");
        if strict {
            return Err(ierr(&p, format!("{msg} (refused: --strict-perms)")));
        }
        tracing::warn!("{}: {msg}", p.display());
        loose.push(format!("{}: {msg}", p.display()));
    }
    Ok(loose)
}

/// Write `data` to `path` atomically (see `crate::fsutil::write_atomic`:
/// temporary file, fsync, rename, fsync of the directory).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), IdentityError> {
    crate::fsutil::write_atomic(path, data, mode)
        .map_err(|e| ierr(path, format!("cannot write: {e}")))
}

/// An exclusive lock on a data directory, held while the server runs.
#[derive(Debug)]
pub struct DirLock {
    _file: fs::File,
}

impl DirLock {
    /// Take the lock or fail naming the directory.
    pub fn acquire(dir: &Path) -> Result<Self, IdentityError> {
        use std::os::fd::AsRawFd;
        let p = dir.join("lock");
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&p)
            .map_err(|e| ierr(&p, format!("cannot open lock file: {e}")))?;
        // SAFETY: flock on a file descriptor we own; no memory is shared.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(ierr(
                dir,
                "data directory is in use by another xlreg server",
            ));
        }
        Ok(DirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn identity_is_created_once_then_reused_with_private_modes() {
        let d = tempfile::tempdir().unwrap();
        let (a, created) = ServerIdentity::load_or_create(d.path(), 1024).unwrap();
        assert!(created);
        let (b, created) = ServerIdentity::load_or_create(d.path(), 1024).unwrap();
        assert!(!created);
        assert_eq!(a.id, b.id);
        assert_eq!(a.comms.public(), b.comms.public());
        for f in ["comms_key.pem", "sig_key.pem"] {
            let mode = fs::metadata(d.path().join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
    }

    #[test]
    fn a_different_identity_is_never_written_over() {
        let d = tempfile::tempdir().unwrap();
        let (a, _) = ServerIdentity::load_or_create(d.path(), 1024).unwrap();
        let other = ServerIdentity::generate(1024).unwrap();
        let e = other.save(d.path()).unwrap_err().to_string();
        assert!(e.contains("refusing"), "{e}");
        assert_eq!(ServerIdentity::load(d.path()).unwrap().id, a.id);
    }

    #[test]
    fn corrupt_key_file_is_named() {
        let d = tempfile::tempdir().unwrap();
        ServerIdentity::load_or_create(d.path(), 1024).unwrap();
        fs::write(d.path().join("sig_key.pem"), "garbage").unwrap();
        let e = ServerIdentity::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("sig_key.pem"), "{e}");
    }

    #[test]
    fn keys_without_identity_file_are_never_replaced() {
        let d = tempfile::tempdir().unwrap();
        ServerIdentity::load_or_create(d.path(), 1024).unwrap();
        let before = fs::read(d.path().join("comms_key.pem")).unwrap();
        fs::remove_file(d.path().join("identity.json")).unwrap();
        let e = ServerIdentity::load_or_create(d.path(), 1024)
            .unwrap_err()
            .to_string();
        assert!(e.contains("comms_key.pem"), "{e}");
        assert_eq!(fs::read(d.path().join("comms_key.pem")).unwrap(), before);
    }

    #[test]
    fn loose_modes_on_keys_or_dir_warn_or_refuse_when_strict() {
        let d = tempfile::tempdir().unwrap();
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o700)).unwrap();
        ServerIdentity::load_or_create(d.path(), 1024).unwrap();
        assert!(check_private_modes(d.path(), true).unwrap().is_empty());
        let key = d.path().join("sig_key.pem");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
        let warned = check_private_modes(d.path(), false).unwrap();
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(warned[0].contains("sig_key.pem"), "{warned:?}");
        let e = check_private_modes(d.path(), true).unwrap_err().to_string();
        assert!(e.contains("sig_key.pem") && e.contains("640"), "{e}");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let e = check_private_modes(d.path(), true).unwrap_err().to_string();
        assert!(e.contains("data directory") && e.contains("755"), "{e}");
    }

    #[test]
    fn second_lock_on_a_dir_fails() {
        let d = tempfile::tempdir().unwrap();
        let _l = DirLock::acquire(d.path()).unwrap();
        assert!(DirLock::acquire(d.path()).is_err());
    }
}
