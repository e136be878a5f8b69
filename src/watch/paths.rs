//! Which paths matter to the watcher: editor scratch files to ignore, symlink chains to
//! follow, the directories to watch, and whether a changed path is one of ours.

use std::collections::{BTreeSet, VecDeque};
use std::ffi::OsStr;
use std::hash::{Hash, Hasher};
use std::path::{Component, Path, PathBuf};

/// Symlink hops followed before a chain is taken as a loop (the kernel's own limit).
const MAX_LINK_HOPS: usize = 40;

/// True for the scratch files editors write next to the file being edited: Emacs locks
/// (`.#name`) and autosaves (`#name#`), Vim swap files (`.name.swp`, `.swo`, `.swx`) and
/// the `4913` file Vim creates to test the directory, and backups ending in `~`.
pub fn is_editor_scratch(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(OsStr::to_str) else {
        return false;
    };
    name.starts_with(".#")
        || (name.len() > 1 && name.starts_with('#') && name.ends_with('#'))
        || name.ends_with('~')
        || name == "4913"
        || [".swp", ".swo", ".swx"]
            .iter()
            .any(|ext| name.len() > ext.len() && name.ends_with(ext))
}

/// `path` made absolute against the current directory, with `.` dropped; symlinks and
/// `..` are left for [`link_chain`] to resolve as the kernel would.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Resolves `path` one component at a time, the way the kernel does, and returns every
/// symlink met on the way (as the path of the link itself, under a resolved directory)
/// followed by the fully resolved path. A change to any of them changes what `path`
/// names: a ConfigMap's `..data` swap shows up as an event on `dir/..data`, not on the
/// file the config names.
pub fn link_chain(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending: VecDeque<PathBuf> = absolute(path)
        .components()
        .map(|c| PathBuf::from(c.as_os_str()))
        .collect();
    let mut cur = PathBuf::from("/");
    let mut hops = 0;
    while let Some(part) = pending.pop_front() {
        match part.components().next() {
            Some(Component::RootDir) | Some(Component::Prefix(_)) => cur = PathBuf::from("/"),
            Some(Component::CurDir) | None => {}
            Some(Component::ParentDir) => {
                cur.pop();
            }
            Some(Component::Normal(name)) => {
                let next = cur.join(name);
                match std::fs::read_link(&next) {
                    Ok(target) if hops < MAX_LINK_HOPS => {
                        hops += 1;
                        out.push(next);
                        if target.is_absolute() {
                            cur = PathBuf::from("/");
                        }
                        for c in target.components().rev() {
                            pending.push_front(PathBuf::from(c.as_os_str()));
                        }
                    }
                    _ => cur = next,
                }
            }
        }
    }
    out.push(cur);
    out
}

/// What one regeneration pass says to watch, resolved: the paths whose change matters and
/// the directories that hold them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchSet {
    /// Every file read, every symlink on the way to one, and their resolved paths.
    pub relevant: BTreeSet<PathBuf>,
    /// Absolute include patterns: a new file matching one is a change.
    pub patterns: Vec<glob::Pattern>,
    /// Directories to watch (non-recursively).
    pub dirs: BTreeSet<PathBuf>,
}

impl WatchSet {
    /// Builds the set from the files a pass read, the include patterns it met and any
    /// extra directories (e.g. those of patterns that matched nothing yet).
    pub fn new(read: &[PathBuf], patterns: &[PathBuf], extra_dirs: &[PathBuf]) -> Self {
        let mut set = WatchSet::default();
        for path in read {
            set.add_file(path);
        }
        for pattern in patterns {
            let abs = absolute(pattern);
            if let Ok(p) = glob::Pattern::new(&abs.to_string_lossy()) {
                set.patterns.push(p);
            }
            // The deepest directory without a glob character is where new matches appear.
            let mut dir = PathBuf::new();
            for c in abs.parent().unwrap_or(Path::new("/")).components() {
                let s = c.as_os_str().to_string_lossy();
                if s.contains(['*', '?', '[']) {
                    break;
                }
                dir.push(c);
            }
            // Events name files under the resolved directory: match there too (an include
            // directory that is a symlink).
            if let (Some(resolved), Ok(rest)) = (link_chain(&dir).pop(), abs.strip_prefix(&dir)) {
                if resolved != dir {
                    let text = format!(
                        "{}/{}",
                        glob::Pattern::escape(&resolved.to_string_lossy()),
                        rest.to_string_lossy()
                    );
                    if let Ok(p) = glob::Pattern::new(&text) {
                        set.patterns.push(p);
                    }
                }
            }
            set.add_dir(&dir);
        }
        for dir in extra_dirs {
            set.add_dir(dir);
        }
        set
    }

    fn add_file(&mut self, path: &Path) {
        for link in link_chain(path) {
            if let Some(parent) = link.parent() {
                self.dirs.insert(parent.to_path_buf());
            }
            self.relevant.insert(link);
        }
    }

    fn add_dir(&mut self, dir: &Path) {
        if dir.as_os_str().is_empty() {
            return;
        }
        let chain = link_chain(dir);
        for (i, link) in chain.iter().enumerate() {
            // Links on the way matter (watch their parents); the resolved directory is
            // watched itself.
            if i + 1 < chain.len() {
                if let Some(parent) = link.parent() {
                    self.dirs.insert(parent.to_path_buf());
                }
                self.relevant.insert(link.clone());
            } else {
                self.dirs.insert(link.clone());
                self.relevant.insert(link.clone());
            }
        }
    }

    /// Merges another set into this one (the last good set plus the config's own chain
    /// when a pass fails).
    pub fn extend(&mut self, other: WatchSet) {
        self.relevant.extend(other.relevant);
        self.dirs.extend(other.dirs);
        for p in other.patterns {
            if !self.patterns.contains(&p) {
                self.patterns.push(p);
            }
        }
    }

    /// True when an event on `path` may change what a pass reads: a file read or a link
    /// on the way to one, a directory holding one, or a file matching an include pattern.
    pub fn may_matter(&self, path: &Path) -> bool {
        if is_editor_scratch(path) {
            return false;
        }
        if self.relevant.contains(path) || self.dirs.contains(path) {
            return true;
        }
        if self.relevant.iter().any(|r| r.starts_with(path)) {
            return true;
        }
        self.patterns.iter().any(|p| p.matches_path(path))
    }

    /// True when `path` matters only because it matches an include pattern (so a file
    /// that came and went, such as a writer's temp file, does not count).
    pub fn only_by_pattern(&self, path: &Path) -> bool {
        !self.relevant.contains(path)
            && !self.dirs.contains(path)
            && !self.relevant.iter().any(|r| r.starts_with(path))
    }
}

/// A fingerprint of a file's contents: its length and a hash. `None` when it cannot be
/// read (gone, or a directory).
pub fn fingerprint(path: &Path) -> Option<(u64, u64)> {
    let bytes = std::fs::read(path).ok()?;
    Some(fingerprint_bytes(&bytes))
}

pub fn fingerprint_bytes(bytes: &[u8]) -> (u64, u64) {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    (bytes.len() as u64, h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn editor_scratch_files_are_recognised_and_configs_are_not() {
        for name in [
            ".#keepalived.conf",
            "#keepalived.conf#",
            ".keepalived.conf.swp",
            ".keepalived.conf.swx",
            "keepalived.conf~",
            "4913",
        ] {
            assert!(is_editor_scratch(Path::new(name)), "{name}");
        }
        for name in [
            "keepalived.conf",
            "a.swp.conf",
            "#",
            "ldirectord.cf",
            "..data",
        ] {
            assert!(!is_editor_scratch(Path::new(name)), "{name}");
        }
    }

    #[test]
    fn link_chain_follows_configmap_layout() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().canonicalize().unwrap();
        std::fs::create_dir(d.join("..2026_a")).unwrap();
        std::fs::write(d.join("..2026_a/keepalived.conf"), "x").unwrap();
        symlink("..2026_a", d.join("..data")).unwrap();
        symlink("..data/keepalived.conf", d.join("keepalived.conf")).unwrap();
        let chain = link_chain(&d.join("keepalived.conf"));
        assert_eq!(
            chain,
            vec![
                d.join("keepalived.conf"),
                d.join("..data"),
                d.join("..2026_a/keepalived.conf"),
            ]
        );
    }

    #[test]
    fn link_chain_stops_on_a_loop() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().canonicalize().unwrap();
        symlink("b", d.join("a")).unwrap();
        symlink("a", d.join("b")).unwrap();
        let chain = link_chain(&d.join("a"));
        assert_eq!(chain.len(), MAX_LINK_HOPS + 1);
    }

    #[test]
    fn watch_set_matters_for_read_files_links_and_pattern_matches() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().canonicalize().unwrap();
        std::fs::create_dir(d.join("conf.d")).unwrap();
        std::fs::write(d.join("main.conf"), "x").unwrap();
        let set = WatchSet::new(&[d.join("main.conf")], &[d.join("conf.d/*.conf")], &[]);
        assert_eq!(set.dirs, BTreeSet::from([d.clone(), d.join("conf.d")]));
        assert!(set.may_matter(&d.join("main.conf")));
        assert!(set.may_matter(&d.join("conf.d/new.conf")));
        assert!(set.only_by_pattern(&d.join("conf.d/new.conf")));
        assert!(!set.may_matter(&d.join("conf.d/new.txt")));
        assert!(!set.may_matter(&d.join("other.conf")));
        assert!(!set.may_matter(&d.join(".main.conf.swp")));
        // The directory itself (deleted and recreated) matters.
        assert!(set.may_matter(&d.join("conf.d")));
    }

    #[test]
    fn include_pattern_through_a_symlinked_directory_matches_under_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().canonicalize().unwrap();
        std::fs::create_dir(d.join("real.d")).unwrap();
        symlink("real.d", d.join("conf.d")).unwrap();
        let set = WatchSet::new(&[], &[d.join("conf.d/*.conf")], &[]);
        assert!(set.dirs.contains(&d.join("real.d")), "{:?}", set.dirs);
        assert!(set.may_matter(&d.join("real.d/new.conf")));
        assert!(!set.may_matter(&d.join("real.d/new.txt")));
        // The link itself changing (pointed elsewhere) matters too.
        assert!(set.may_matter(&d.join("conf.d")));
    }

    #[test]
    fn fingerprint_tells_contents_apart() {
        assert_eq!(fingerprint_bytes(b"abc"), fingerprint_bytes(b"abc"));
        assert_ne!(fingerprint_bytes(b"abc"), fingerprint_bytes(b"abd"));
        assert_eq!(fingerprint(Path::new("/nonexistent/vipcheck")), None);
    }
}
