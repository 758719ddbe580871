//! Reading the inventory file: bounded, regular files only, text only.
//!
//! The inventory is the first thing read and may come from anywhere (a generated file, a
//! pipe, a mistyped path), so reading it must neither exhaust memory (`validate
//! /dev/zero`), nor block (a FIFO nobody writes to), nor fail without a position (a binary
//! file).

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::error::Problem;
use super::InventoryError;

/// The largest inventory read: a 5 000-host inventory is about 0.5 MiB, so this leaves
/// room while keeping what parsing costs (memory, time) small.
pub const MAX_INVENTORY_BYTES: u64 = 4 << 20;

/// The file's bytes, refused before reading when it is not a regular file or is larger
/// than [`MAX_INVENTORY_BYTES`].
pub(super) fn read(path: &Path) -> Result<Vec<u8>, InventoryError> {
    let io = |source| InventoryError::Read {
        path: path.to_path_buf(),
        source,
    };
    let refuse = |reason: String, help: &str| InventoryError::NotAnInventory {
        path: path.to_path_buf(),
        reason,
        help: help.to_string(),
    };
    // O_NONBLOCK: opening a FIFO would otherwise wait for a writer before fstat can tell.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(refuse(
            format!("not a regular file (a {})", kind(&meta.file_type())),
            "give the path of the inventory YAML file; to use generated text, write it to a \
             file first",
        ));
    }
    let too_large = |size: u64| {
        refuse(
            format!(
                "the file is {size} bytes; an inventory may be at most {MAX_INVENTORY_BYTES} \
                 bytes"
            ),
            "is this the inventory? It lists hosts and cluster settings, a few hundred \
             bytes per host",
        )
    };
    if meta.len() > MAX_INVENTORY_BYTES {
        return Err(too_large(meta.len()));
    }
    // The size can change between fstat and read: read one byte more than allowed.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    (&file)
        .take(MAX_INVENTORY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_INVENTORY_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

fn kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// The bytes as text. Invalid UTF-8 or a NUL byte (a binary file) makes the inventory
/// invalid (exit 3), located at the first bad byte: line, column and byte offset.
pub(super) fn text(path: &Path, bytes: Vec<u8>) -> Result<String, InventoryError> {
    let bad = match std::str::from_utf8(&bytes) {
        Ok(text) => text.find('\0').map(|at| {
            (
                at,
                "a NUL byte: this looks like a binary file, not YAML text".to_string(),
            )
        }),
        Err(e) => {
            let at = e.valid_up_to();
            let what = format!(
                "byte 0x{:02x} is not UTF-8 (YAML files are UTF-8 text)",
                bytes[at]
            );
            Some((at, what))
        }
    };
    let Some((offset, what)) = bad else {
        return Ok(String::from_utf8(bytes).expect("checked above"));
    };
    let before = std::str::from_utf8(&bytes[..offset]).expect("valid up to the offset");
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    let problem = Problem::without_snippet(
        &path.display().to_string(),
        line,
        column,
        "document",
        format!("{what}, at byte offset {offset}"),
        Some("save the inventory as UTF-8 text (`iconv -t UTF-8`), or check that this is the right file".into()),
    );
    Err(InventoryError::invalid(path, vec![problem]))
}
