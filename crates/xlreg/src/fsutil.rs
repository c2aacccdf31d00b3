//! The crate's one way to write a file atomically and to create a private
//! directory.
//!
//! Why one place: node identities, the key pool, the registry's data
//! directory and regCred.dat all hold files a crash must never leave half
//! written, and keys that nobody else may read. A write goes to a fresh
//! temporary file in the same directory (mode 0600 from its creation),
//! gets its final mode, is fsynced, renamed over the target, and then the
//! directory itself is fsynced so that the rename survives a power loss.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Create `dir` and any missing parents with mode 0700 (owner only).
/// An existing directory is left as it is.
#[cfg_attr(not(any(feature = "client", feature = "server")), allow(dead_code))]
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Replace `path` with `data` atomically: readers see the old contents or
/// the new ones, never a mix, and after a successful return the new file
/// is on disk. `mode` is the file's Unix permission bits (ignored
/// elsewhere), applied before any byte is written.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let tmp = filled_temp(path, data, mode)?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(parent_of(path))
}

/// Like [`write_atomic`], but never replaces an existing file: returns
/// `Ok(false)` (and writes nothing) when `path` already exists, e.g.
/// because another process created it first.
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
pub fn write_atomic_new(path: &Path, data: &[u8], mode: u32) -> io::Result<bool> {
    let tmp = filled_temp(path, data, mode)?;
    match tmp.persist_noclobber(path) {
        Ok(_) => {}
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(e.error),
    }
    sync_dir(parent_of(path))?;
    Ok(true)
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// A temporary file beside `path` holding `data`, with `mode`, synced.
fn filled_temp(path: &Path, data: &[u8], mode: u32) -> io::Result<tempfile::NamedTempFile> {
    let prefix = format!(
        ".{}.",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    // tempfile creates the file with mode 0600.
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(parent_of(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Explicit, so the umask does not change the result.
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

/// fsync a directory, so that a rename into it is durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Directories cannot be opened as files here; the rename is all
        // the platform offers.
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_contents_and_leaves_no_temporary_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.txt");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f.txt")]);
    }

    #[cfg(unix)]
    #[test]
    fn write_atomic_sets_the_mode_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        for mode in [0o600, 0o644] {
            let p = d.path().join(format!("f{mode:o}"));
            write_atomic(&p, b"x", mode).unwrap();
            let got = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(got, mode);
        }
    }

    #[test]
    fn write_atomic_new_keeps_an_existing_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k.pem");
        assert!(write_atomic_new(&p, b"first", 0o600).unwrap());
        assert!(!write_atomic_new(&p, b"second", 0o600).unwrap());
        assert_eq!(fs::read(&p).unwrap(), b"first");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn write_into_a_missing_directory_names_the_os_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("no/such/dir/f");
        let e = write_atomic(&p, b"x", 0o600).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[cfg(unix)]
    #[test]
    fn private_dir_is_owner_only_with_its_parents() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b");
        create_private_dir(&p).unwrap();
        create_private_dir(&p).unwrap();
        for dir in [d.path().join("a"), p] {
            let m = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, 0o700, "{}", dir.display());
        }
    }
}
