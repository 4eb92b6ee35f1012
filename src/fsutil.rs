//! File writes that never leave a half-written file behind, and never change what a path is:
//! a symlink stays a symlink (its target is rewritten), a file keeps its mode and owner, a
//! file with several hard links keeps them.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The marker in the names of netc's temporary files: `.NAME.tmp-PID`.
const TEMP_MARKER: &str = ".tmp-";

/// Writes `bytes` to `path` atomically: into a temporary file in the same directory, synced,
/// then renamed over `path`. A crash or Ctrl-C leaves either the old file or the new one.
///
/// An existing `path` keeps what it is: a symlink is followed and its target rewritten; the
/// new file gets the old one's permissions and (when the process may set it) owner. A file with
/// more than one hard link cannot be replaced by a rename without breaking its links, so it is
/// rewritten in place, and only after the whole content was written and synced to a temporary
/// file (a full disk fails before the file is touched).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |out| out.write_all(bytes))
}

/// [`write_atomic`] of what `write` writes, streamed through a buffer into the temporary file
/// (a checkpoint of a large model is never held in memory as one byte string).
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let path = resolve(path)?;
    let existing = std::fs::metadata(&path).ok().filter(|m| m.is_file());
    let temp = temp_path(&path);
    let result = (|| {
        let mut out = std::io::BufWriter::with_capacity(1 << 16, std::fs::File::create(&temp)?);
        write(&mut out)?;
        let file = out.into_inner().map_err(std::io::IntoInnerError::into_error)?;
        if let Some(old) = &existing {
            keep_mode_and_owner(&file, old)?;
        }
        file.sync_all()?;
        if existing.as_ref().is_some_and(hard_linked) {
            let mut source = std::fs::File::open(&temp)?;
            let mut target = std::fs::OpenOptions::new().write(true).truncate(true).open(&path)?;
            std::io::copy(&mut source, &mut target)?;
            target.sync_all()?;
            return std::fs::remove_file(&temp);
        }
        std::fs::rename(&temp, &path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// The file a write to `path` must change: `path` itself, or the file a symlink (chain) at
/// `path` names, even when that target does not exist yet.
fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let mut path = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&path)?;
                path = match path.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(path),
        }
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}

/// `.NAME.tmp-PID` beside `path`.
fn temp_path(path: &Path) -> PathBuf {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".to_string());
    dir.join(format!(".{name}{TEMP_MARKER}{}", std::process::id()))
}

#[cfg(unix)]
fn hard_linked(m: &std::fs::Metadata) -> bool {
    std::os::unix::fs::MetadataExt::nlink(m) > 1
}

#[cfg(not(unix))]
fn hard_linked(_: &std::fs::Metadata) -> bool {
    false
}

/// Gives the new file the old one's permissions and, if this process may, its owner (a user
/// who may not give files away keeps the file as their own: EPERM is not an error).
fn keep_mode_and_owner(file: &std::fs::File, old: &std::fs::Metadata) -> std::io::Result<()> {
    file.set_permissions(old.permissions())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let now = file.metadata()?;
        if (now.uid(), now.gid()) != (old.uid(), old.gid())
            && let Err(e) = std::os::unix::fs::fchown(file, Some(old.uid()), Some(old.gid()))
            && e.kind() != std::io::ErrorKind::PermissionDenied
        {
            return Err(e);
        }
    }
    Ok(())
}

/// Creates a new directory `base`, or `base-2`, `base-3`, ... if it exists: creating is the
/// check (`create_dir`), so two processes never get the same directory, and an existing one (or
/// a symlink planted there) is never reused.
pub fn create_unique_dir(base: &Path) -> std::io::Result<PathBuf> {
    for i in 1..=10_000 {
        let candidate = if i == 1 {
            base.to_path_buf()
        } else {
            PathBuf::from(format!("{}-{i}", base.display()))
        };
        match std::fs::create_dir(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("10000 directories of that name exist"))
}

/// Removes the temporary files (`.NAME.tmp-PID`) that killed netc processes left in `dir`;
/// those of live processes (a concurrent netc) stay. Returns how many were removed.
pub fn remove_stale_temps(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = temp_owner(&name) else { continue };
        if !process_alive(pid) && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The PID in a temporary file's name `.NAME.tmp-PID`.
fn temp_owner(name: &str) -> Option<u32> {
    if !name.starts_with('.') {
        return None;
    }
    let (_, pid) = name.rsplit_once(TEMP_MARKER)?;
    pid.parse().ok()
}

/// True unless `pid` is known to be dead (where it cannot be known, it is assumed alive).
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let proc = Path::new("/proc");
    if proc.join("self").exists() {
        proc.join(pid.to_string()).exists()
    } else {
        true
    }
}

#[cfg(test)]
mod tests {
    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("netc-fsutil-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn replaces_content_and_leaves_no_temp_file() {
        let dir = temp_dir("plain");
        let path = dir.join("a.txt");
        super::write_atomic(&path, b"one").expect("first write");
        super::write_atomic(&path, b"two").expect("second write");
        assert_eq!(std::fs::read(&path).expect("read back"), b"two");
        let entries = std::fs::read_dir(&dir).expect("list").count();
        assert_eq!(entries, 1);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_mode_and_hard_links_survive_a_rewrite() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = temp_dir("links");
        let real = dir.join("real.txt");
        std::fs::write(&real, "old").expect("write");
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let link = dir.join("link.txt");
        std::os::unix::fs::symlink("real.txt", &link).expect("symlink");
        super::write_atomic(&link, b"new").expect("write through the link");
        assert!(std::fs::symlink_metadata(&link).expect("link").file_type().is_symlink());
        assert_eq!(std::fs::read(&real).expect("target"), b"new");
        assert_eq!(std::fs::metadata(&real).expect("meta").mode() & 0o777, 0o600);
        let hard = dir.join("hard.txt");
        std::fs::hard_link(&real, &hard).expect("hard link");
        super::write_atomic(&real, b"newer").expect("write a hard-linked file");
        assert_eq!(std::fs::read(&hard).expect("other link"), b"newer");
        assert_eq!(std::fs::metadata(&hard).expect("meta").nlink(), 2);
        assert_eq!(
            std::fs::read_dir(&dir).expect("list").count(),
            3,
            "no temp file is left"
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn stale_temp_files_of_dead_processes_are_removed() {
        let dir = temp_dir("stale");
        // PIDs are below 2^22 on Linux: this one is never alive.
        std::fs::write(dir.join(".weights.safetensors.tmp-4194305"), "x").expect("stale");
        let mine = format!(".spec.net.tmp-{}", std::process::id());
        std::fs::write(dir.join(&mine), "x").expect("live");
        std::fs::write(dir.join("notes.tmp-1"), "x").expect("not netc's");
        let removed = super::remove_stale_temps(&dir);
        assert_eq!(removed, usize::from(std::path::Path::new("/proc/self").exists()));
        assert!(dir.join(&mine).exists() && dir.join("notes.tmp-1").exists());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
