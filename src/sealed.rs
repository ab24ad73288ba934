//! Segment bytes in files that can no longer change, which the origin can hand to the
//! kernel with sendfile(2) instead of copying them into every socket.
//!
//! nginx serves a file with sendfile: the kernel passes page-cache pages to the socket
//! without copying them. hyper writes a body from memory, so each request copies the
//! segment into the socket's buffers, and for segments that copy is what an origin
//! spends most of its time on. Here a segment is written once into a file and mapped
//! read-only; the mapping is the [`Bytes`] the store keeps, so whatever reads a
//! segment sees ordinary bytes. A registry maps each mapping's address range to its
//! file, and the origin's connection wrapper (`origin::sendfile`) looks up every slice
//! hyper asks it to write: one that lies in such a file goes out with sendfile from
//! that file at the same offset. The bytes are the same either way, since the file can
//! no longer change; the lookup only decides how they travel.
//!
//! The file is one of two kinds:
//! - with [`use_directory`], an unnamed file (`O_TMPFILE`) in that directory: it never
//!   has a name, and once written it is opened again read-only and the writable
//!   descriptor closed, so no descriptor anywhere can change it. On a disk filesystem
//!   its pages are ordinary page cache, as nginx's files are, and the kernel splices
//!   them to a socket from large folios; from shared memory it walks them page by
//!   page, which cost about a tenth of the origin's samples (Linux 6.18; the profile
//!   is in `docs/benchmarks.md`). The file is gone when the store drops the segment,
//!   usually before its pages were ever written back.
//! - otherwise, or if the directory cannot take one, a memfd, sealed so it can never
//!   change (`F_SEAL_WRITE`, `F_SEAL_SHRINK`, `F_SEAL_GROW`).
//!
//! Each segment holds one file descriptor while the store keeps it (a live window of a
//! few segments per track); `raise_open_file_limit` makes room.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;

/// The sealed mappings alive, by start address: (length, file).
static MAPPINGS: RwLock<BTreeMap<usize, (usize, Arc<OwnedFd>)>> = RwLock::new(BTreeMap::new());

/// Where [`seal`] makes its files, once [`use_directory`] has checked it.
static DIRECTORY: OnceLock<PathBuf> = OnceLock::new();

/// Makes [`seal`] keep segments in unnamed files in `directory` (created if missing)
/// instead of memory files, once it has checked that the directory takes one. Only the
/// first directory set counts.
pub fn use_directory(directory: &Path) -> io::Result<()> {
    std::fs::create_dir_all(directory)?;
    drop(unnamed_file(directory)?);
    // A second call keeps the first directory: the files already made stay valid.
    let _ = DIRECTORY.set(directory.to_owned());
    Ok(())
}

/// `bytes`, copied into a file that can no longer change (see the module's
/// documentation) and mapped read-only. Empty bytes stay as they are (nothing to map).
pub fn seal(bytes: &[u8]) -> io::Result<Bytes> {
    if bytes.is_empty() {
        return Ok(Bytes::new());
    }
    let fd = match DIRECTORY.get().map(|dir| write_unnamed(dir, bytes)) {
        Some(Ok(fd)) => fd,
        Some(Err(error)) => {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(%error, "Cannot write a segment file; segments go to memory files.");
            });
            write_sealed_memfd(bytes)?
        }
        None => write_sealed_memfd(bytes)?,
    };
    // SAFETY: a fresh read-only shared mapping of the whole file, which can no longer
    // change size or content; the result is checked.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes.len(),
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let mapping = Mapping {
        ptr: ptr.cast::<u8>(),
        len: bytes.len(),
    };
    MAPPINGS
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(ptr as usize, (bytes.len(), Arc::new(fd)));
    Ok(Bytes::from_owner(mapping))
}

/// An unnamed file in `directory`, open for reading and writing.
fn unnamed_file(directory: &Path) -> io::Result<OwnedFd> {
    let path = std::ffi::CString::new(directory.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the path"))?;
    // SAFETY: a NUL-terminated path and valid flags; the result is checked.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
            0o600,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `bytes` in an unnamed file in `directory`, returned open read-only: the writable
/// descriptor is closed, so nothing can change the file any more.
fn write_unnamed(directory: &Path, bytes: &[u8]) -> io::Result<OwnedFd> {
    let mut file = File::from(unnamed_file(directory)?);
    file.write_all(bytes)?;
    // Opening the descriptor's /proc link opens the file itself, here read-only.
    let path = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the path"))?;
    // SAFETY: a NUL-terminated path and valid flags; the result is checked.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `bytes` in a memfd sealed against any change.
fn write_sealed_memfd(bytes: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated name and valid flags; the result is checked.
    let fd = unsafe {
        libc::memfd_create(
            c"headend-segment".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = File::from(fd);
    file.write_all(bytes)?;
    let fd = OwnedFd::from(file);
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
    // SAFETY: fcntl on a valid descriptor we own.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// The sealed file `slice` lies in and the slice's offset in it, if it lies wholly in
/// one. The file stays open as long as the returned handle lives.
pub fn find(slice: &[u8]) -> Option<(SealedFile, u64)> {
    if slice.is_empty() {
        return None;
    }
    let start = slice.as_ptr() as usize;
    let mappings = MAPPINGS.read().unwrap_or_else(|e| e.into_inner());
    let (&base, (len, fd)) = mappings.range(..=start).next_back()?;
    let end = start.checked_add(slice.len())?;
    (end <= base + len).then(|| (SealedFile(Arc::clone(fd)), (start - base) as u64))
}

/// An open sealed file, as [`find`] returns it.
#[derive(Debug, Clone)]
pub struct SealedFile(Arc<OwnedFd>);

impl AsFd for SealedFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Raises this process's soft limit on open files to its hard limit: each sealed
/// segment holds a descriptor, beside every client connection. Returns the limit.
pub fn raise_open_file_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit with a valid pointer to a local.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(limit.rlim_cur)
}

/// A read-only mapping of a sealed file, owned by the `Bytes` over it; unmapped, and
/// forgotten by the registry, when the last of those goes.
struct Mapping {
    ptr: *const u8,
    len: usize,
}

// SAFETY: the mapping is read-only and its file can no longer be written (sealed, or
// with no writable descriptor left), so the memory never changes while it is mapped;
// sharing or moving the pointer across threads is sound.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes until `drop`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Out of the registry first, so no lookup finds a file for an address that is
        // about to be unmapped (and perhaps mapped again for something else).
        MAPPINGS
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(self.ptr as usize));
        // SAFETY: the mapping `seal` made, unmapped once; no `Bytes` refers to it now.
        unsafe {
            libc::munmap(self.ptr.cast_mut().cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pread(file: &SealedFile, offset: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        // SAFETY: reads into a buffer of `len` bytes from a valid descriptor.
        let n = unsafe {
            libc::pread(
                file.as_fd().as_raw_fd(),
                out.as_mut_ptr().cast(),
                len,
                offset as libc::off_t,
            )
        };
        assert_eq!(n, len as isize);
        out
    }

    #[test]
    fn sealed_bytes_read_as_the_original_and_are_found_in_their_file() {
        let original: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        let sealed = seal(&original).expect("sealed");
        assert_eq!(&sealed[..], &original[..]);
        // A slice (a range request) is found at its offset in the same file.
        let part = sealed.slice(1000..5000);
        let (file, offset) = find(&part).expect("in a sealed file");
        assert_eq!(offset, 1000);
        assert_eq!(pread(&file, offset, part.len()), &original[1000..5000]);
        // Ordinary memory is not.
        assert!(find(&original).is_none());
        assert!(find(&[]).is_none());
    }

    #[test]
    fn an_unnamed_file_holds_the_bytes_and_cannot_be_written() {
        let dir = std::env::temp_dir().join(format!("headend-sealed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("directory");
        let fd = write_unnamed(&dir, b"segment bytes").expect("written");
        let file = SealedFile(Arc::new(fd));
        assert_eq!(pread(&file, 0, 13), b"segment bytes");
        // SAFETY: a write attempt on a valid descriptor; it must fail.
        let written = unsafe { libc::pwrite(file.as_fd().as_raw_fd(), b"x".as_ptr().cast(), 1, 0) };
        assert_eq!(written, -1, "the read-only descriptor took a write");
        // It has no name: the directory stays empty.
        assert_eq!(std::fs::read_dir(&dir).expect("listed").count(), 0);
        std::fs::remove_dir(&dir).expect("removed");
        // A directory that cannot be made is refused.
        assert!(use_directory(Path::new("/proc/headend-no-such-directory")).is_err());
    }

    #[test]
    fn a_sealed_file_cannot_change_and_is_forgotten_when_dropped() {
        let sealed = seal(b"segment").expect("sealed");
        let (file, _) = find(&sealed).expect("found");
        // SAFETY: a write attempt on a valid descriptor; it must fail.
        let written = unsafe { libc::pwrite(file.as_fd().as_raw_fd(), b"x".as_ptr().cast(), 1, 0) };
        assert_eq!(written, -1, "a sealed file took a write");
        let address = sealed.as_ptr() as usize;
        drop(sealed);
        // Another test may have mapped something new at the same address since.
        let registered = MAPPINGS
            .read()
            .unwrap()
            .get(&address)
            .is_some_and(|(_, fd)| Arc::ptr_eq(fd, &file.0));
        assert!(!registered, "a dropped mapping is still registered");
        // The handle found earlier still reads the file.
        assert_eq!(pread(&file, 0, 7), b"segment");
        assert_eq!(seal(&[]).expect("empty").len(), 0);
    }
}
