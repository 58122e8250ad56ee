//! Private files on local disk: the keyring and the generated credentials.
//!
//! Both hold secrets, so they are created 0600 inside 0700 directories, replaced atomically
//! (a crash leaves either the old or the new file, never a torn one), and refused when other
//! users can read them (the secret may already have leaked; the operator must decide).

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` and missing parents with mode 0700 (existing directories are left as they are).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Replaces `path` with `contents` atomically: writes a 0600 temp file in the same directory,
/// fsyncs it, renames it over `path`, then fsyncs the directory so the rename is durable.
pub fn write_private_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let (dir, tmp) = temp_beside(path)?;
    let dir = dir.as_path();
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        // Best effort: do not leave a temp copy of a secret behind.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Fails with `PermissionDenied` if group or others have any access to `path`.
pub fn ensure_private(path: &Path) -> io::Result<()> {
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is accessible by group/others (mode {:o}); it holds secrets: check who read it, then chmod 600 it",
                path.display(),
                mode & 0o777
            ),
        ));
    }
    Ok(())
}

/// The directory of `path` and a fresh, unpredictable temp file name in it (`.<name>.<random>.tmp`),
/// for writing a private file next to its final place before moving it there.
pub fn temp_beside(path: &Path) -> io::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut suffix = [0u8; 6];
    aws_lc_rs::rand::fill(&mut suffix).map_err(|_| io::Error::other("random generator failed"))?;
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), hex::encode(suffix)));
    Ok((dir.to_owned(), tmp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_is_private_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        create_private_dir(&sub).unwrap();
        assert_eq!(fs::metadata(&sub).unwrap().permissions().mode() & 0o777, 0o700);
        let p = sub.join("x.json");
        write_private_atomic(&p, b"one").unwrap();
        write_private_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        ensure_private(&p).unwrap();
        assert_eq!(fs::read_dir(&sub).unwrap().count(), 1, "no temp files left");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(ensure_private(&p).unwrap_err().kind(), io::ErrorKind::PermissionDenied);
    }
}
