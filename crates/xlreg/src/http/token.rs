//! The admin bearer token: generated once into the data directory (mode
//! 0600, like an SSH key) or read from a file the operator names, and
//! compared in constant time.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Name of the generated token file inside the data directory.
pub const TOKEN_FILE: &str = "admin.token";

/// A token problem, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("admin token {path}: {msg}")]
pub struct TokenError {
    /// The token file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub msg: String,
}

/// The secret that admin requests must present as `Authorization: Bearer`.
#[derive(Clone)]
pub struct AdminToken {
    secret: String,
    path: PathBuf,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminToken({})", self.path.display())
    }
}

impl AdminToken {
    /// Read `DIR/admin.token`, or create it with 32 random bytes (hex) and
    /// mode 0600 when it does not exist.
    pub fn load_or_create(dir: &Path) -> Result<Self, TokenError> {
        let path = dir.join(TOKEN_FILE);
        if path.exists() {
            return Self::from_file(&path);
        }
        let err = |msg: String| TokenError {
            path: path.clone(),
            msg,
        };
        let mut raw = [0u8; 32];
        openssl::rand::rand_bytes(&mut raw).map_err(|e| err(format!("no randomness: {e}")))?;
        let secret = hex::encode(raw);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| err(format!("cannot create: {e}")))?;
        f.write_all(format!("{secret}\n").as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| err(format!("cannot write: {e}")))?;
        Ok(AdminToken { secret, path })
    }

    /// Read a token file: one line, at least 16 characters, not readable
    /// by group or others.
    pub fn from_file(path: &Path) -> Result<Self, TokenError> {
        let err = |msg: String| TokenError {
            path: path.to_path_buf(),
            msg,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(err(format!(
                "mode {:o} lets others read it; chmod 600 it",
                mode & 0o777
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        Self::from_secret(text.trim(), path)
    }

    /// A token from its text (e.g. a `--token` flag); `origin` names where
    /// it came from in errors.
    pub fn from_secret(secret: &str, origin: &Path) -> Result<Self, TokenError> {
        let err = |msg: &str| TokenError {
            path: origin.to_path_buf(),
            msg: msg.into(),
        };
        if secret.len() < 16 {
            return Err(err("token must be at least 16 characters"));
        }
        if secret.lines().count() != 1 || secret.chars().any(|c| c.is_whitespace()) {
            return Err(err("token must be one word on one line"));
        }
        Ok(AdminToken {
            secret: secret.to_string(),
            path: origin.to_path_buf(),
        })
    }

    /// The secret, for clients that send it.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Where it came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Does `presented` equal the secret? Both are hashed to 32 bytes
    /// first, so the comparison takes the same time whatever the length or
    /// content presented.
    pub fn matches(&self, presented: &str) -> bool {
        let a = openssl::sha::sha256(self.secret.as_bytes());
        let b = openssl::sha::sha256(presented.as_bytes());
        openssl::memcmp::eq(&a, &b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_token_is_private_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let t = AdminToken::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = AdminToken::load_or_create(dir.path()).unwrap();
        assert_eq!(t.secret(), again.secret());
        assert!(t.matches(again.secret()));
        assert!(!t.matches("wrong"));
        assert!(!t.matches(""));
    }

    #[test]
    fn world_readable_or_short_token_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tok");
        std::fs::write(&p, "0123456789abcdef0123\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = AdminToken::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("chmod 600") && e.contains("tok"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(AdminToken::from_file(&p).is_ok());
        std::fs::write(&p, "short\n").unwrap();
        let e = AdminToken::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("at least 16"), "{e}");
    }
}
