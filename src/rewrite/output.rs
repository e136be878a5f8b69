//! Applying a plan: new texts, the unified diff, and writes that are all-or-nothing
//! (temp file in the same directory, fsync, rename).

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use super::commit::{commit_all, owner_of, Staged};
use super::diff::{self, ByteChange};
use super::{Plan, RewriteError};
use crate::config::FileId;

/// One file of the result: a source file (changed or not) or a new file. Texts are
/// borrowed from the plan where they can be (a large config is not copied again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile<'a> {
    pub path: PathBuf,
    /// The text before the rewrite; `None` for a file the rewrite creates.
    pub old: Option<Cow<'a, str>>,
    pub new: Cow<'a, str>,
    pub executable: bool,
}

impl OutputFile<'_> {
    pub fn changed(&self) -> bool {
        self.old.as_deref() != Some(&*self.new)
    }
}

impl Plan {
    /// The new text of one source file: its bytes with this plan's edits applied.
    pub fn new_text(&self, file: FileId) -> String {
        self.new_text_cow(file).into_owned()
    }

    fn new_text_cow(&self, file: FileId) -> Cow<'_, str> {
        self.apply(file, None)
    }

    /// Applies this plan's edits to one file; records where each edit landed in
    /// `changes` when it is given.
    fn apply(&self, file: FileId, mut changes: Option<&mut Vec<ByteChange>>) -> Cow<'_, str> {
        let text = &self.sources.file(file).text;
        let mut edits: Vec<_> = self.edits.iter().filter(|e| e.span.file == file).collect();
        if edits.is_empty() {
            return Cow::Borrowed(text);
        }
        // At one offset, insertions go before a deletion that starts there; a deletion that
        // ends where an insertion starts comes first by its start. Otherwise planned order.
        edits.sort_by_key(|e| (e.span.start, !e.span.is_empty()));
        let mut out =
            String::with_capacity(text.len() + edits.iter().map(|e| e.text.len()).sum::<usize>());
        let mut pos = 0;
        for e in edits {
            // Overlapping edits would be a bug in a planner; the later one is dropped rather
            // than corrupting the text.
            if e.span.start < pos {
                debug_assert!(false, "overlapping edits at {}", e.span.start);
                continue;
            }
            out.push_str(&text[pos..e.span.start]);
            let new_start = out.len();
            out.push_str(&e.text);
            if let Some(changes) = changes.as_deref_mut() {
                changes.push(ByteChange {
                    old_start: e.span.start,
                    old_end: e.span.end,
                    new_start,
                    new_end: out.len(),
                });
            }
            pos = e.span.end;
        }
        out.push_str(&text[pos..]);
        Cow::Owned(out)
    }

    /// Every file of the result, source files first in the order read.
    pub fn outputs(&self) -> Vec<OutputFile<'_>> {
        let mut files: Vec<OutputFile> = self
            .sources
            .files()
            .map(|(id, f)| OutputFile {
                path: f.path.clone(),
                old: Some(Cow::Borrowed(f.text.as_str())),
                new: self.new_text_cow(id),
                executable: false,
            })
            .collect();
        for nf in &self.new_files {
            // Only a regular file is read (a FIFO there would block; the commit refuses it).
            let old = fs::metadata(&nf.path)
                .is_ok_and(|m| m.is_file())
                .then(|| fs::read_to_string(&nf.path).ok())
                .flatten()
                .map(Cow::Owned);
            files.push(OutputFile {
                path: nf.path.clone(),
                old,
                new: Cow::Borrowed(nf.contents.as_str()),
                executable: nf.executable,
            });
        }
        files
    }

    /// Every output file with the path it is written to: in place (`out` = `None`), or
    /// under `-o out`: a file when the config is a single file, otherwise a directory that
    /// receives the whole tree (the main config and every file it includes, laid out
    /// relative to the main config's directory, so relative includes keep working). New
    /// files were planned for their final place already.
    pub fn placed_outputs(
        &self,
        out: Option<&Path>,
    ) -> Result<Vec<(PathBuf, OutputFile<'_>)>, RewriteError> {
        let outputs = self.outputs();
        let Some(out) = out else {
            return Ok(outputs.into_iter().map(|f| (f.path.clone(), f)).collect());
        };
        if !output_is_directory(out) {
            if self.sources.len() > 1 {
                let main = self.read_paths().into_iter().next().unwrap_or_default();
                return Err(RewriteError::Output(format!(
                    "{} includes other files: give -o a directory (e.g. {}/) so the includes \
                     keep their relative places",
                    main.display(),
                    out.display()
                )));
            }
            return Ok(outputs
                .into_iter()
                .enumerate()
                .map(|(i, f)| {
                    (
                        if i == 0 {
                            out.to_path_buf()
                        } else {
                            f.path.clone()
                        },
                        f,
                    )
                })
                .collect());
        }
        let main = absolute(&self.read_paths().into_iter().next().unwrap_or_default());
        let root = main.parent().unwrap_or(Path::new("/")).to_path_buf();
        let mut placed = Vec::with_capacity(outputs.len());
        for f in outputs {
            let dest = if f.old.is_none() || f.path.starts_with(out) {
                f.path.clone()
            } else {
                match relative_inside(&absolute(&f.path), &root) {
                    Some(rel) => out.join(rel),
                    None => {
                        return Err(RewriteError::Output(format!(
                            "{} is included from outside {}: vipcheck cannot place it under \
                             {}; rewrite with --in-place instead",
                            f.path.display(),
                            root.display(),
                            out.display()
                        )))
                    }
                }
            };
            placed.push((dest, f));
        }
        Ok(placed)
    }

    pub fn has_changes(&self) -> bool {
        self.outputs().iter().any(OutputFile::changed)
    }

    /// Every file the config was read from.
    pub fn read_paths(&self) -> Vec<PathBuf> {
        self.sources.files().map(|(_, f)| f.path.clone()).collect()
    }

    /// The directories a watcher must watch to see every change that can alter this plan:
    /// those of every file read and of every include pattern.
    pub fn watch_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = BTreeSet::new();
        for p in self.read_paths() {
            if let Some(d) = p.parent() {
                dirs.insert(d.to_path_buf());
            }
        }
        for pat in &self.include_patterns {
            // The longest leading part of the pattern without a wildcard.
            let mut dir = PathBuf::new();
            for c in pat.components() {
                let s = c.as_os_str().to_string_lossy();
                if s.contains(['*', '?', '[']) {
                    break;
                }
                dir.push(c);
            }
            if dir != *pat {
                dirs.insert(dir);
            } else if let Some(d) = pat.parent() {
                dirs.insert(d.to_path_buf());
            }
        }
        dirs.into_iter().collect()
    }

    /// A unified diff of every changed or new file; empty when nothing changes. Built
    /// from the edits (see [`super::diff`]), so its cost follows the size of the files,
    /// not its square.
    pub fn unified_diff(&self, color: bool) -> String {
        let mut out = String::new();
        let mut emit = |text: String| {
            if color {
                colorize(&mut out, &text);
            } else {
                out.push_str(&text);
            }
        };
        for (id, f) in self.sources.files() {
            let mut changes = Vec::new();
            let new = self.apply(id, Some(&mut changes));
            if changes.is_empty() {
                continue;
            }
            let path = display_abs(&f.path);
            emit(diff::unified(
                &f.text,
                &new,
                &changes,
                &format!("a{path}"),
                &format!("b{path}"),
            ));
        }
        for nf in &self.new_files {
            let path = display_abs(&nf.path);
            let old = fs::metadata(&nf.path)
                .is_ok_and(|m| m.is_file())
                .then(|| fs::read_to_string(&nf.path).ok())
                .flatten();
            let a = match old {
                Some(_) => format!("a{path}"),
                None => "/dev/null".to_string(),
            };
            let old = old.unwrap_or_default();
            // A file written anew: one change over the whole text (the diff keeps the
            // lines both have as context).
            let whole = ByteChange {
                old_start: 0,
                old_end: old.len(),
                new_start: 0,
                new_end: nf.contents.len(),
            };
            emit(diff::unified(
                &old,
                &nf.contents,
                &[whole],
                &a,
                &format!("b{path}"),
            ));
        }
        out
    }

    /// Rewrites the changed files where they are (and creates new files). With `backup`,
    /// each changed file's previous text is kept as `FILE.bak`. Returns the paths written.
    pub fn write_in_place(&self, backup: bool) -> Result<Vec<PathBuf>, RewriteError> {
        let mut writes = Vec::new();
        for f in self.outputs().into_iter().filter(OutputFile::changed) {
            let mode = mode_of(&f.path, f.executable);
            if backup {
                if let Some(old) = &f.old {
                    let mut bak = f.path.clone().into_os_string();
                    bak.push(".bak");
                    writes.push(Staged {
                        dest: PathBuf::from(bak),
                        contents: old.clone(),
                        mode: mode_of(&f.path, false),
                        owner: owner_of(&f.path),
                    });
                }
            }
            writes.push(Staged {
                dest: f.path,
                contents: f.new,
                mode,
                owner: None,
            });
        }
        commit_all(writes)
    }

    /// Writes the result under `out` (see [`Plan::placed_outputs`]). Only files whose text
    /// differs from what `out` already holds are written. Returns the paths written.
    pub fn write_to(&self, out: &Path) -> Result<Vec<PathBuf>, RewriteError> {
        let mut writes = Vec::new();
        for (dest, f) in self.placed_outputs(Some(out))? {
            let mode = mode_of(&f.path, f.executable);
            let held = fs::metadata(&dest)
                .is_ok_and(|m| m.is_file())
                .then(|| fs::read(&dest).ok())
                .flatten();
            if held.as_deref() != Some(f.new.as_bytes()) {
                writes.push(Staged {
                    dest,
                    contents: f.new,
                    mode,
                    owner: None,
                });
            }
        }
        commit_all(writes)
    }
}

/// Whether `-o OUT` names a directory: an existing one, one written with a trailing `/`,
/// or a path that does not exist yet and has no extension (`-o out/`, `-o generated`).
/// Anything else (`-o keepalived.out.conf`) is a file.
pub fn output_is_directory(out: &Path) -> bool {
    out.is_dir()
        || out.as_os_str().to_string_lossy().ends_with('/')
        || (!out.exists() && out.extension().is_none())
}

fn display_abs(p: &Path) -> String {
    let s = p.display().to_string();
    if s.starts_with('/') {
        s
    } else {
        format!("/{s}")
    }
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

fn relative_inside(path: &Path, root: &Path) -> Option<PathBuf> {
    let rel = path.strip_prefix(root).ok()?;
    if rel.components().all(|c| matches!(c, Component::Normal(_))) {
        Some(rel.to_path_buf())
    } else {
        None
    }
}

/// The permission bits for a new file; an existing file keeps its own (see
/// [`commit`](super::commit)).
fn mode_of(path: &Path, executable: bool) -> u32 {
    let base = fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    if executable {
        base | 0o755
    } else {
        base
    }
}

/// Adds terminal colours to a unified diff.
fn colorize(out: &mut String, text: &str) {
    for line in text.split_inclusive('\n') {
        let code = if line.starts_with("+++") || line.starts_with("---") {
            "1"
        } else if line.starts_with('+') {
            "32"
        } else if line.starts_with('-') {
            "31"
        } else if line.starts_with("@@") {
            "36"
        } else {
            ""
        };
        if code.is_empty() {
            out.push_str(line);
        } else {
            let body = line.trim_end_matches('\n');
            out.push_str(&format!("\x1b[{code}m{body}\x1b[0m"));
            if line.ends_with('\n') {
                out.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Edit, NewFile};
    use super::*;
    use crate::config::{SourceMap, Span};

    fn plan_for(files: &[(&Path, &str)]) -> Plan {
        let mut sources = SourceMap::new();
        for (p, t) in files {
            sources.add(p.to_path_buf(), t.to_string());
        }
        Plan {
            sources,
            ..Plan::default()
        }
    }

    #[test]
    fn edits_apply_in_offset_order_and_insert_before_a_deletion_at_the_same_offset() {
        let mut plan = plan_for(&[(Path::new("/x.conf"), "abcdef")]);
        let f = FileId(0);
        plan.edits = vec![
            Edit {
                span: Span::new(f, 4, 6),
                text: String::new(),
            },
            Edit {
                span: Span::point(f, 4),
                text: "X".into(),
            },
            Edit {
                span: Span::point(f, 1),
                text: "Y".into(),
            },
        ];
        assert_eq!(plan.new_text(f), "aYbcdX");
    }

    #[test]
    fn write_in_place_keeps_a_backup_and_the_file_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.conf");
        fs::write(&path, "old\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let mut plan = plan_for(&[(&path, "old\n")]);
        plan.edits.push(Edit {
            span: Span::point(FileId(0), 4),
            text: "new\n".into(),
        });
        let written = plan.write_in_place(true).unwrap();
        assert_eq!(written.len(), 2);
        assert_eq!(fs::read_to_string(&path).unwrap(), "old\nnew\n");
        assert_eq!(
            fs::read_to_string(dir.path().join("k.conf.bak")).unwrap(),
            "old\n"
        );
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn write_to_a_directory_keeps_the_include_layout_and_skips_unchanged_files() {
        let src = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let main = src.path().join("keepalived.conf");
        let inc = src.path().join("conf.d/a.conf");
        let mut plan = plan_for(&[(&main, "include conf.d/*.conf\n"), (&inc, "x\n")]);
        plan.edits.push(Edit {
            span: Span::point(FileId(1), 2),
            text: "y\n".into(),
        });
        let written = plan.write_to(out.path()).unwrap();
        assert_eq!(written.len(), 2);
        assert_eq!(
            fs::read_to_string(out.path().join("conf.d/a.conf")).unwrap(),
            "x\ny\n"
        );
        assert_eq!(
            fs::read_to_string(out.path().join("keepalived.conf")).unwrap(),
            "include conf.d/*.conf\n"
        );
        // A second write finds everything up to date.
        assert!(plan.write_to(out.path()).unwrap().is_empty());
    }

    #[test]
    fn write_to_refuses_an_include_from_outside_and_writes_nothing() {
        let src = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let main = src.path().join("keepalived.conf");
        let inc = other.path().join("b.conf");
        let mut plan = plan_for(&[(&main, "a\n"), (&inc, "b\n")]);
        plan.edits.push(Edit {
            span: Span::point(FileId(0), 0),
            text: "z".into(),
        });
        let err = plan.write_to(out.path()).unwrap_err().to_string();
        assert!(err.contains("included from outside"), "{err}");
        assert_eq!(fs::read_dir(out.path()).unwrap().count(), 0);
    }

    #[test]
    fn diff_shows_changed_and_new_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.conf");
        let mut plan = plan_for(&[(&a, "one\ntwo\n"), (Path::new("/unchanged.conf"), "same\n")]);
        plan.edits.push(Edit {
            span: Span::point(FileId(0), 4),
            text: "1.5\n".into(),
        });
        plan.new_files.push(NewFile {
            path: dir.path().join("w.sh"),
            contents: "#!/bin/sh\n".into(),
            executable: true,
        });
        let diff = plan.unified_diff(false);
        assert!(diff.contains("+1.5\n"), "{diff}");
        assert!(diff.contains("--- /dev/null"), "{diff}");
        assert!(!diff.contains("unchanged.conf"), "{diff}");
        assert!(plan_for(&[(&a, "x\n")]).unified_diff(false).is_empty());
    }

    #[test]
    fn watch_dirs_cover_files_and_include_globs() {
        let mut plan = plan_for(&[(Path::new("/etc/keepalived/keepalived.conf"), "")]);
        plan.include_patterns
            .push("/etc/keepalived/conf.d/*.conf".into());
        assert_eq!(
            plan.watch_dirs(),
            vec![
                PathBuf::from("/etc/keepalived"),
                PathBuf::from("/etc/keepalived/conf.d")
            ]
        );
    }
}
