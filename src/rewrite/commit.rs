//! Writing a set of files all-or-nothing: every target is checked and every new text is
//! staged (temp file beside the target, same owner and mode, synced, closed) before the
//! first rename; a failed rename puts back the files already replaced.
//!
//! A target that is a symlink is followed: the file it points to is replaced in its own
//! directory and the link stays. At most one file descriptor is open at a time, so the
//! number of files is not bounded by `ulimit -n`.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::TempPath;

use super::RewriteError;

/// One file to write.
pub(super) struct Staged<'a> {
    /// The path asked for (what the caller reports as written).
    pub dest: PathBuf,
    pub contents: Cow<'a, str>,
    /// Permission bits for the new file.
    pub mode: u32,
    /// Owner and group for the new file when it does not exist yet (an existing file
    /// keeps its own); `None` = whoever runs vipcheck.
    pub owner: Option<(u32, u32)>,
}

/// The owner and group of `path` (following symlinks), if it exists.
pub(super) fn owner_of(path: &Path) -> Option<(u32, u32)> {
    fs::metadata(path).ok().map(|m| (m.uid(), m.gid()))
}

/// The rename every commit uses; tests put their own in its place.
pub(super) type Rename<'r> = &'r mut dyn FnMut(&Path, &Path) -> io::Result<()>;

pub(super) fn commit_all(writes: Vec<Staged<'_>>) -> Result<Vec<PathBuf>, RewriteError> {
    commit_with(writes, &mut |from: &Path, to: &Path| fs::rename(from, to))
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> RewriteError {
    let path = path.to_path_buf();
    move |source| RewriteError::Io { op, path, source }
}

/// What is at a target before the commit.
struct Target {
    /// The file that is replaced: `dest`, or what it points to when it is a symlink.
    real: PathBuf,
    /// Its owner, group and permission bits when it exists.
    existing: Option<(u32, u32, u32)>,
}

/// `FS_IMMUTABLE_FL` and `FS_APPEND_FL` of `FS_IOC_GETFLAGS` (linux/fs.h).
const FS_IMMUTABLE_FL: libc::c_long = 0x10;
const FS_APPEND_FL: libc::c_long = 0x20;

/// Resolves `dest` and checks that a file can replace it.
fn check_target(dest: &Path) -> Result<Target, RewriteError> {
    let real = match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Target {
                real: dest.to_path_buf(),
                existing: None,
            })
        }
        Err(e) => return Err(io_err("inspect", dest)(e)),
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(dest).map_err(|source| {
            RewriteError::Output(format!(
                "{} is a symlink that cannot be followed ({source}); vipcheck writes the file \
                 a link points to and keeps the link",
                dest.display()
            ))
        })?,
        Ok(_) => dest.to_path_buf(),
    };
    let meta = fs::metadata(&real).map_err(io_err("inspect", &real))?;
    if meta.is_dir() {
        return Err(RewriteError::Output(format!(
            "{} is a directory: vipcheck would have to replace it with a file; move it away \
             and run again",
            real.display()
        )));
    }
    if !meta.is_file() {
        return Err(RewriteError::Output(format!(
            "{} is not a regular file: vipcheck replaces only regular files",
            real.display()
        )));
    }
    if let Some(flag) = inode_flags(&real) {
        if flag & (FS_IMMUTABLE_FL | FS_APPEND_FL) != 0 {
            return Err(RewriteError::Output(format!(
                "{} is marked {} (chattr): it cannot be replaced; remove the mark with \
                 `chattr -{} {}` if it should be rewritten",
                real.display(),
                if flag & FS_IMMUTABLE_FL != 0 {
                    "immutable"
                } else {
                    "append-only"
                },
                if flag & FS_IMMUTABLE_FL != 0 {
                    'i'
                } else {
                    'a'
                },
                real.display()
            )));
        }
    }
    Ok(Target {
        real,
        existing: Some((meta.uid(), meta.gid(), meta.permissions().mode() & 0o7777)),
    })
}

/// The inode flags of a regular file (`lsattr`), when the file system has them.
fn inode_flags(path: &Path) -> Option<libc::c_long> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let mut flags: libc::c_long = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int into the (larger, zeroed) long it is given;
    // the descriptor is open for the call's whole duration.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) };
    (rc == 0).then_some(flags)
}

/// A staged write: the new text in a closed temp file beside the real target, and a
/// second name for the original (to put it back) when there is one.
struct Ready {
    /// Its place in the caller's list (the paths written are reported in that order).
    index: usize,
    dest: PathBuf,
    real: PathBuf,
    temp: TempPath,
    original: Option<TempPath>,
}

fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Up to this many files are synced one by one; more are synced with one `syncfs` per
/// file system, so 10,000 ldirectord check wrappers cost one flush, not 10,000 fsyncs.
const SYNC_EACH_UP_TO: usize = 16;

/// Writes `contents` to a temp file in `dir` with the given owner and mode, synced when
/// `sync` says so, and closed.
fn stage_file(
    dir: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
    sync: bool,
) -> Result<TempPath, RewriteError> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".vipcheck-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io_err("create a temporary file in", dir))?;
    tmp.write_all(contents)
        .map_err(io_err("write", tmp.path()))?;
    keep_owner(tmp.as_file(), tmp.path(), owner)?;
    // After chown, which clears set-id bits.
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_err("set permissions on", tmp.path()))?;
    if sync {
        tmp.as_file()
            .sync_all()
            .map_err(io_err("sync", tmp.path()))?;
    }
    // Closes the descriptor; the path is removed on drop unless persisted.
    Ok(tmp.into_temp_path())
}

fn keep_owner(file: &fs::File, path: &Path, owner: Option<(u32, u32)>) -> Result<(), RewriteError> {
    let Some((uid, gid)) = owner else {
        return Ok(());
    };
    let now = file.metadata().map_err(io_err("inspect", path))?;
    if (now.uid(), now.gid()) == (uid, gid) {
        return Ok(());
    }
    std::os::unix::fs::fchown(file, Some(uid), Some(gid)).map_err(|source| RewriteError::Io {
        op: "give the new file the original's owner and group",
        path: path.to_path_buf(),
        source,
    })
}

/// A second name for the original file, to rename back on failure: a hard link, or a
/// copy where a link cannot be made.
fn keep_original(
    real: &Path,
    owner: (u32, u32),
    mode: u32,
    sync: bool,
) -> Result<TempPath, RewriteError> {
    let dir = dir_of(real);
    let pid = std::process::id();
    for i in 0..100u32 {
        let name = dir.join(format!(".vipcheck-{pid}-{i}.orig"));
        match fs::hard_link(real, &name) {
            Ok(()) => {
                return TempPath::try_from_path(&name).map_err(|e| {
                    let _ = fs::remove_file(&name);
                    io_err("keep a link to", real)(e)
                })
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(_) => break,
        }
    }
    let bytes = fs::read(real).map_err(io_err("read", real))?;
    stage_file(&dir, &bytes, mode, Some(owner), sync)
}

pub(super) fn commit_with(
    writes: Vec<Staged<'_>>,
    rename: Rename<'_>,
) -> Result<Vec<PathBuf>, RewriteError> {
    // 1. Every target is checked before anything is written.
    let mut targets = Vec::with_capacity(writes.len());
    let mut seen: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
    for w in &writes {
        let t = check_target(&w.dest)?;
        if let Some(other) = seen.insert(t.real.clone(), w.dest.clone()) {
            return Err(RewriteError::Output(format!(
                "{} and {} are the same file; vipcheck cannot write it twice",
                other.display(),
                w.dest.display()
            )));
        }
        targets.push(t);
    }
    // 2. Every new text is staged; the originals get a second name.
    let sync_each = writes.len() <= SYNC_EACH_UP_TO;
    let mut ready = Vec::with_capacity(writes.len());
    for (index, (w, t)) in writes.into_iter().zip(targets).enumerate() {
        let dir = dir_of(&t.real);
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let (mode, owner) = match t.existing {
            Some((uid, gid, mode)) => (mode, Some((uid, gid))),
            None => (w.mode, w.owner),
        };
        let temp = stage_file(&dir, w.contents.as_bytes(), mode, owner, sync_each)?;
        let original = match t.existing {
            Some((uid, gid, mode)) => Some(keep_original(&t.real, (uid, gid), mode, sync_each)?),
            None => None,
        };
        ready.push(Ready {
            index,
            dest: w.dest,
            real: t.real,
            temp,
            original,
        });
    }
    // The staged texts reach the disk before the first rename.
    if !sync_each {
        sync_file_systems(ready.iter().map(|r| dir_of(&r.real)))?;
    }
    // 3. The renames: files that are new first (a crash part-way leaves the old config
    // with unused new files, never a config naming files that are not there yet).
    ready.sort_by_key(|r| r.original.is_some());
    let mut done: Vec<Ready> = Vec::with_capacity(ready.len());
    let mut pending = ready.into_iter();
    for r in pending.by_ref() {
        if let Err(source) = rename(&r.temp, &r.real) {
            let failure = RewriteError::Io {
                op: "rename a temporary file onto",
                path: r.real.clone(),
                source,
            };
            return Err(roll_back(done, failure));
        }
        done.push(r);
    }
    // 4. Durable: each directory once; then the originals' second names go.
    let dirs: BTreeSet<PathBuf> = done.iter().map(|r| dir_of(&r.real)).collect();
    for dir in dirs {
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
    }
    done.sort_by_key(|r| r.index);
    let mut written = Vec::with_capacity(done.len());
    for r in done {
        // The temp path now names the target: forget it without removing anything.
        let _ = r.temp.keep();
        drop(r.original); // removes the link to the old inode
        written.push(r.dest);
    }
    Ok(written)
}

/// `syncfs` once for each file system the directories are on.
fn sync_file_systems(dirs: impl Iterator<Item = PathBuf>) -> Result<(), RewriteError> {
    let mut seen_dirs = BTreeSet::new();
    let mut seen_devices = BTreeSet::new();
    for dir in dirs {
        if !seen_dirs.insert(dir.clone()) {
            continue;
        }
        let d = fs::File::open(&dir).map_err(io_err("open directory", &dir))?;
        let device = d.metadata().map_err(io_err("inspect", &dir))?.dev();
        if !seen_devices.insert(device) {
            continue;
        }
        // SAFETY: syncfs on a descriptor this function owns.
        if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
            return Err(io_err("sync the file system of", &dir)(
                io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

/// Puts back every file already replaced (newest first); returns the error to report.
fn roll_back(done: Vec<Ready>, failure: RewriteError) -> RewriteError {
    let mut unrestored = Vec::new();
    for r in done.into_iter().rev() {
        let _ = r.temp.keep();
        let result = match r.original {
            Some(original) => match fs::rename(&original, &r.real) {
                Ok(()) => {
                    let _ = original.keep();
                    Ok(())
                }
                Err(e) => Err(e),
            },
            None => fs::remove_file(&r.real),
        };
        if let Err(e) = result {
            unrestored.push(format!("{}: {e}", r.real.display()));
        }
    }
    if unrestored.is_empty() {
        return RewriteError::Output(format!(
            "{failure}; every file written before it was put back as it was"
        ));
    }
    RewriteError::Output(format!(
        "{failure}; these files could not be put back: {}",
        unrestored.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staged(dest: &Path, text: &'static str) -> Staged<'static> {
        Staged {
            dest: dest.to_path_buf(),
            contents: Cow::Borrowed(text),
            mode: 0o644,
            owner: None,
        }
    }

    /// Every entry of `dir` with its bytes.
    fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let name = p.strip_prefix(dir).unwrap().display().to_string();
                if p.is_dir() {
                    stack.push(p);
                    out.insert(name, b"<dir>".to_vec());
                } else {
                    out.insert(name, fs::read(&p).unwrap());
                }
            }
        }
        out
    }

    #[test]
    fn a_failed_rename_at_any_point_leaves_every_file_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir(d.join("sub")).unwrap();
        fs::write(d.join("a.conf"), "a old\n").unwrap();
        fs::write(d.join("sub/b.conf"), "b old\n").unwrap();
        fs::write(d.join("c.sh"), "c old\n").unwrap();
        let before = snapshot(d);
        let writes = || {
            vec![
                staged(&d.join("a.conf"), "a new\n"),
                staged(&d.join("sub/b.conf"), "b new\n"),
                staged(&d.join("c.sh"), "c new\n"),
                staged(&d.join("new1.sh"), "n1\n"),
                staged(&d.join("sub/new2.sh"), "n2\n"),
            ]
        };
        let n = writes().len();
        for fail_at in 0..n {
            let mut calls = 0;
            let mut rename = |from: &Path, to: &Path| {
                calls += 1;
                if calls == fail_at + 1 {
                    return Err(io::Error::from_raw_os_error(libc::EPERM));
                }
                fs::rename(from, to)
            };
            let err = commit_with(writes(), &mut rename).unwrap_err().to_string();
            assert!(err.contains("put back"), "{err}");
            assert_eq!(calls, fail_at + 1, "renames stop at the first failure");
            assert_eq!(
                snapshot(d),
                before,
                "rename {fail_at} failed: files differ (or temp files are left)"
            );
        }
        // And without a failure, everything is written.
        let written = commit_all(writes()).unwrap();
        assert_eq!(written.len(), n);
        assert_eq!(fs::read_to_string(d.join("sub/b.conf")).unwrap(), "b new\n");
        assert_eq!(fs::read_to_string(d.join("sub/new2.sh")).unwrap(), "n2\n");
        assert_eq!(snapshot(d).len(), before.len() + 2, "no temp file is left");
    }

    #[test]
    fn every_target_is_checked_before_the_first_rename() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("a.conf"), "a old\n").unwrap();
        fs::create_dir(d.join("w.sh")).unwrap();
        let before = snapshot(d);
        let mut renames = 0;
        let err = commit_with(
            vec![
                staged(&d.join("a.conf"), "a new\n"),
                staged(&d.join("w.sh"), "w\n"),
            ],
            &mut |from: &Path, to: &Path| {
                renames += 1;
                fs::rename(from, to)
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("is a directory"), "{err}");
        assert_eq!(renames, 0);
        assert_eq!(snapshot(d), before);
    }

    #[test]
    fn the_same_file_through_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("a.conf"), "a\n").unwrap();
        std::os::unix::fs::symlink("a.conf", d.join("l.conf")).unwrap();
        let err = commit_all(vec![
            staged(&d.join("a.conf"), "1\n"),
            staged(&d.join("l.conf"), "2\n"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("same file"), "{err}");
        assert_eq!(fs::read_to_string(d.join("a.conf")).unwrap(), "a\n");
    }
}
