//! Reading a config file: only a regular file, and at most [`MAX_FILE_SIZE`] bytes, so a
//! special file (`/dev/zero`, a FIFO) or a runaway file cannot hang the reader or exhaust
//! memory.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The largest config file read (64 MiB; real ones are far smaller: 10,000 virtual servers
/// with 10 real servers each take 12 MiB).
pub const MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;

/// Why a file was not read: one sentence naming the file.
#[derive(Debug)]
pub struct ReadError {
    pub message: String,
    pub hint: &'static str,
}

/// What a non-regular file is, for messages.
fn kind_of(ft: fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// The bytes of `path`, a regular file of at most [`MAX_FILE_SIZE`] bytes.
pub fn read_config_file(path: &Path) -> Result<Vec<u8>, ReadError> {
    let io = |e: std::io::Error| ReadError {
        message: format!("cannot read {}: {e}", path.display()),
        hint: "check the path and its permissions",
    };
    let not_regular = |ft: fs::FileType| ReadError {
        message: format!(
            "{} is {}, not a regular file; vipcheck reads configs from regular files only",
            path.display(),
            kind_of(ft)
        ),
        hint: "give the path of the config file itself",
    };
    // Checked before opening: opening a FIFO for reading would wait for a writer.
    let meta = fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(not_regular(meta.file_type()));
    }
    // O_NONBLOCK: should the path have become a FIFO since, the open does not wait.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(not_regular(meta.file_type()));
    }
    let too_big = || ReadError {
        message: format!(
            "{} is larger than {} MiB, the most vipcheck reads from one config file",
            path.display(),
            MAX_FILE_SIZE / (1024 * 1024)
        ),
        hint: "check that this is the config file you meant",
    };
    if meta.len() > MAX_FILE_SIZE {
        return Err(too_big());
    }
    // The size may change while reading: read at most one byte more than the limit.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(too_big());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_device_and_a_directory_are_refused_by_name() {
        let e = read_config_file(Path::new("/dev/zero")).unwrap_err();
        assert!(
            e.message.contains("/dev/zero is a character device"),
            "{}",
            e.message
        );
        let dir = tempfile::tempdir().unwrap();
        let e = read_config_file(dir.path()).unwrap_err();
        assert!(e.message.contains("is a directory"), "{}", e.message);
    }

    #[test]
    fn a_file_over_the_limit_is_refused_and_one_at_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.conf");
        let f = fs::File::create(&path).unwrap();
        f.set_len(MAX_FILE_SIZE + 1).unwrap();
        let e = read_config_file(&path).unwrap_err();
        assert!(e.message.contains("larger than 64 MiB"), "{}", e.message);
        f.set_len(MAX_FILE_SIZE).unwrap();
        assert_eq!(read_config_file(&path).unwrap().len() as u64, MAX_FILE_SIZE);
    }
}
