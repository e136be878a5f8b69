//! The verdict files: `STATE_DIR/NAME` holds `0\n` (up) or `1\n` (down), the way
//! keepalived's `track_file` reads a weight-0 file (non-zero = fault). Each write goes to
//! a temp file in the same directory, is synced, and is renamed over the old one, so a
//! reader (keepalived's inotify watch, ldirectord's check) never sees half a file.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The directory the verdict files live in.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

/// The text of a verdict file.
pub fn contents(up: bool) -> &'static [u8] {
    if up {
        b"0\n"
    } else {
        b"1\n"
    }
}

impl StateDir {
    /// Creates the directory if needed.
    pub fn open(dir: &Path) -> std::io::Result<StateDir> {
        std::fs::create_dir_all(dir)?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
        })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `name`'s verdict: temp file, sync, rename.
    pub fn write(&self, name: &str, up: bool) -> std::io::Result<()> {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let result = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .open(&tmp)?;
            f.write_all(contents(up))?;
            f.sync_data()?;
            std::fs::rename(&tmp, self.path(name))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Removes `name`'s file (a pair gone from the config); a missing file is fine.
    pub fn remove(&self, name: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_file_holds_0_or_1_and_no_temp_file_is_left() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(&tmp.path().join("run/vipcheck")).unwrap();
        dir.write("tcp_192.0.2.20_80_192.0.2.11", true).unwrap();
        let p = dir.path("tcp_192.0.2.20_80_192.0.2.11");
        assert_eq!(std::fs::read(&p).unwrap(), b"0\n");
        dir.write("tcp_192.0.2.20_80_192.0.2.11", false).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"1\n");
        let names: Vec<_> = std::fs::read_dir(tmp.path().join("run/vipcheck"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["tcp_192.0.2.20_80_192.0.2.11"]);
        dir.remove("tcp_192.0.2.20_80_192.0.2.11").unwrap();
        assert!(!p.exists());
        dir.remove("tcp_192.0.2.20_80_192.0.2.11").unwrap();
    }
}
