//! Unit tests of the safe WASI layer on temporary directories: the sandbox (`..`,
//! absolute paths, symlink escapes through chains and absolute targets), hostile
//! pointers and lengths, rights, readdir cookies, the wasi_unstable layouts and the
//! runtime option parser.

use std::fs;

use super::types::*;
use super::*;

const PAGE: usize = 65536;
/// Where tests put path strings, and where results go.
const PATH: u32 = 1024;
const OUT: u32 = 2048;
const BUF: u32 = 4096;

struct Fixture {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    ctx: WasiCtx,
    mem: Vec<u8>,
}

/// A preopen "sandbox" (fd 3) over `<tmp>/sandbox`, next to a `secret.txt` that the
/// guest must never reach.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("sandbox");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("hello.txt"), b"hello").unwrap();
    fs::create_dir(root.join("sub")).unwrap();
    fs::write(tmp.path().join("secret.txt"), b"secret").unwrap();
    let ctx = WasiCtxBuilder::new()
        .arg("prog")
        .preopen_dir(&root, "sandbox")
        .unwrap()
        .build();
    Fixture {
        _tmp: tmp,
        root,
        ctx,
        mem: vec![0; PAGE],
    }
}

impl Fixture {
    fn put(&mut self, at: u32, bytes: &[u8]) -> u32 {
        self.mem[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
        bytes.len() as u32
    }

    fn open(&mut self, path: &str, dirflags: u32, oflags: u32, rights: u64) -> WasiResult<u32> {
        let len = self.put(PATH, path.as_bytes());
        let mut mem = GuestMemory::new(&mut self.mem);
        path_open(
            &mut self.ctx,
            &mut mem,
            3,
            dirflags,
            PATH,
            len,
            oflags,
            rights,
            rights,
            0,
            OUT,
        )?;
        Ok(u32::from_le_bytes(
            self.mem[OUT as usize..OUT as usize + 4].try_into().unwrap(),
        ))
    }

    fn stat(&mut self, path: &str, follow: bool) -> WasiResult<()> {
        let len = self.put(PATH, path.as_bytes());
        let mut mem = GuestMemory::new(&mut self.mem);
        let flags = if follow { LOOKUP_SYMLINK_FOLLOW } else { 0 };
        path_filestat_get(
            &mut self.ctx,
            &mut mem,
            3,
            flags,
            PATH,
            len,
            OUT,
            Flavor::Preview1,
        )
    }

    fn u64_at(&self, at: u32) -> u64 {
        u64::from_le_bytes(self.mem[at as usize..at as usize + 8].try_into().unwrap())
    }

    fn u32_at(&self, at: u32) -> u32 {
        u32::from_le_bytes(self.mem[at as usize..at as usize + 4].try_into().unwrap())
    }
}

const READ: u64 = RIGHT_FD_READ;
const RW: u64 = RIGHT_FD_READ | RIGHT_FD_WRITE;

// ---------------------------------------------------------------- sandbox

#[test]
fn dotdot_and_absolute_paths_are_refused() {
    let mut f = fixture();
    for path in [
        "../secret.txt",
        "sub/../../secret.txt",
        "/etc/passwd",
        "/",
        "..",
        "./../sandbox/hello.txt",
    ] {
        assert_eq!(f.open(path, 0, 0, READ), Err(Errno::PERM), "{path}");
        assert_eq!(f.stat(path, true), Err(Errno::PERM), "{path}");
    }
    assert!(f.open("sub/../hello.txt", 0, 0, READ).is_ok());
    // Creating outside is refused too, and nothing appears there.
    assert_eq!(
        f.open("../created.txt", 0, OFLAGS_CREAT as u32, RW),
        Err(Errno::PERM)
    );
    assert!(!f.root.parent().unwrap().join("created.txt").exists());
}

#[test]
fn symlink_escapes_are_refused_through_chains() {
    let mut f = fixture();
    std::os::unix::fs::symlink("../secret.txt", f.root.join("out1")).unwrap();
    std::os::unix::fs::symlink("out1", f.root.join("chain")).unwrap();
    std::os::unix::fs::symlink("sub/../../secret.txt", f.root.join("out2")).unwrap();
    std::os::unix::fs::symlink("hello.txt", f.root.join("inside")).unwrap();
    std::os::unix::fs::symlink("inside", f.root.join("inside2")).unwrap();
    for path in ["out1", "chain", "out2", "chain/x"] {
        let r = f.open(path, LOOKUP_SYMLINK_FOLLOW, 0, READ);
        assert!(
            r == Err(Errno::PERM) || r == Err(Errno::NOTDIR),
            "{path}: {r:?}"
        );
    }
    assert_eq!(f.stat("chain", true), Err(Errno::PERM));
    // Inside the preopen, chains resolve.
    let fd = f.open("inside2", LOOKUP_SYMLINK_FOLLOW, 0, READ).unwrap();
    let mut mem = GuestMemory::new(&mut f.mem);
    mem.write_u32(BUF, BUF + 64).unwrap();
    mem.write_u32(BUF + 4, 16).unwrap();
    fd_read(&mut f.ctx, &mut mem, fd, BUF, 1, OUT).unwrap();
    assert_eq!(&f.mem[BUF as usize + 64..BUF as usize + 69], b"hello");
    // Without follow, a symlink is not opened.
    assert_eq!(f.open("inside", 0, 0, READ), Err(Errno::LOOP));
}

#[test]
fn absolute_symlinks_are_refused_even_inside() {
    let mut f = fixture();
    let target = f.root.join("hello.txt");
    std::os::unix::fs::symlink(&target, f.root.join("abs")).unwrap();
    assert_eq!(
        f.open("abs", LOOKUP_SYMLINK_FOLLOW, 0, READ),
        Err(Errno::PERM)
    );
    // Nor can the guest create one.
    let old = f.put(PATH, b"/etc/passwd");
    let new = f.put(PATH + 100, b"planted");
    let mut mem = GuestMemory::new(&mut f.mem);
    assert_eq!(
        path_symlink(&mut f.ctx, &mut mem, PATH, old, 3, PATH + 100, new),
        Err(Errno::PERM)
    );
    assert!(!f.root.join("planted").exists());
}

#[test]
fn rename_and_link_cannot_leave_the_preopen() {
    let mut f = fixture();
    let old = f.put(PATH, b"hello.txt");
    let new = f.put(PATH + 100, b"../moved.txt");
    let mut mem = GuestMemory::new(&mut f.mem);
    assert_eq!(
        path_rename(&mut f.ctx, &mut mem, 3, PATH, old, 3, PATH + 100, new),
        Err(Errno::PERM)
    );
    assert_eq!(
        path_link(&mut f.ctx, &mut mem, 3, 0, PATH, old, 3, PATH + 100, new),
        Err(Errno::PERM)
    );
    assert!(f.root.join("hello.txt").exists());
}

// ---------------------------------------------------------------- hostile pointers

#[test]
fn wild_pointers_and_lengths_are_efault() {
    let mut f = fixture();
    let end = PAGE as u32;
    let mut mem = GuestMemory::new(&mut f.mem);
    // Result pointers past the end, straddling it, and near u32::MAX.
    for out in [end, end - 3, u32::MAX - 1, u32::MAX] {
        assert_eq!(
            args_sizes_get(&mut f.ctx, &mut mem, out, 0),
            Err(Errno::FAULT)
        );
        assert_eq!(
            fd_fdstat_get(&mut f.ctx, &mut mem, 1, out),
            Err(Errno::FAULT)
        );
        assert_eq!(fd_tell(&mut f.ctx, &mut mem, 1, out), Err(Errno::FAULT));
    }
    // Buffers whose ptr + len overflows u32 or passes the end.
    assert_eq!(
        random_get(&mut f.ctx, &mut mem, u32::MAX, 2),
        Err(Errno::FAULT)
    );
    assert_eq!(
        random_get(&mut f.ctx, &mut mem, 1, u32::MAX),
        Err(Errno::FAULT)
    );
    assert_eq!(
        random_get(&mut f.ctx, &mut mem, end - 10, 11),
        Err(Errno::FAULT)
    );
    assert!(random_get(&mut f.ctx, &mut mem, end - 10, 10).is_ok());
    // Path strings out of bounds.
    assert_eq!(
        path_create_directory(&mut f.ctx, &mut mem, 3, u32::MAX - 2, 10),
        Err(Errno::FAULT)
    );
    // An iovec array whose count * 8 overflows, and iovecs pointing outside.
    assert_eq!(
        fd_write(&mut f.ctx, &mut mem, 1, 0, 0x2000_0000, OUT),
        Err(Errno::FAULT)
    );
    mem.write_u32(BUF, u32::MAX - 4).unwrap();
    mem.write_u32(BUF + 4, 100).unwrap();
    assert_eq!(
        fd_write(&mut f.ctx, &mut mem, 1, BUF, 1, OUT),
        Err(Errno::FAULT)
    );
    assert_eq!(
        fd_read(&mut f.ctx, &mut mem, 0, BUF, 1, OUT),
        Err(Errno::FAULT)
    );
    // poll_oneoff with a subscription count whose size overflows.
    assert_eq!(
        poll_oneoff(&mut f.ctx, &mut mem, 0, 0, u32::MAX, OUT, Flavor::Preview1),
        Err(Errno::FAULT)
    );
    // readdir into a buffer past the end.
    assert_eq!(
        fd_readdir(&mut f.ctx, &mut mem, 3, end - 4, 100, 0, OUT),
        Err(Errno::FAULT)
    );
    // args_get with a buffer that does not fit.
    assert_eq!(
        args_get(&mut f.ctx, &mut mem, 0, end - 2),
        Err(Errno::FAULT)
    );
}

#[test]
fn bad_out_pointer_does_not_leak_a_descriptor() {
    let mut f = fixture();
    let len = f.put(PATH, b"hello.txt");
    let before = f.ctx.fds.len();
    let mut mem = GuestMemory::new(&mut f.mem);
    let r = path_open(
        &mut f.ctx,
        &mut mem,
        3,
        0,
        PATH,
        len,
        0,
        READ,
        READ,
        0,
        u32::MAX,
    );
    assert_eq!(r, Err(Errno::FAULT));
    assert_eq!(f.ctx.fds.len(), before);
}

#[test]
fn invalid_utf8_paths_are_ilseq() {
    let mut f = fixture();
    f.put(PATH, &[0x66, 0xff, 0x66]);
    let mut mem = GuestMemory::new(&mut f.mem);
    assert_eq!(
        path_create_directory(&mut f.ctx, &mut mem, 3, PATH, 3),
        Err(Errno::ILSEQ)
    );
}

// ---------------------------------------------------------------- rights

#[test]
fn read_only_files_cannot_be_written_and_dirs_cannot_be_read() {
    let mut f = fixture();
    let fd = f.open("hello.txt", 0, 0, READ).unwrap();
    let mut mem = GuestMemory::new(&mut f.mem);
    mem.write_u32(BUF, BUF + 64).unwrap();
    mem.write_u32(BUF + 4, 3).unwrap();
    assert_eq!(
        fd_write(&mut f.ctx, &mut mem, fd, BUF, 1, OUT),
        Err(Errno::BADF)
    );
    fd_fdstat_get(&mut f.ctx, &mut mem, fd, OUT).unwrap();
    assert_eq!(f.u64_at(OUT + 8) & RIGHT_FD_WRITE, 0);
    assert_eq!(fs::read(f.root.join("hello.txt")).unwrap(), b"hello");

    let dir = f.open("sub", 0, 0, READ).unwrap();
    let mut mem = GuestMemory::new(&mut f.mem);
    assert_eq!(
        fd_read(&mut f.ctx, &mut mem, dir, BUF, 1, OUT),
        Err(Errno::BADF)
    );
    assert_eq!(
        fd_seek(&mut f.ctx, &mut mem, dir, 0, 0, OUT, Flavor::Preview1),
        Err(Errno::BADF)
    );
    assert_eq!(f.open("sub", 0, 0, RW), Err(Errno::ISDIR));
    assert_eq!(
        f.open("hello.txt", 0, OFLAGS_DIRECTORY as u32, READ),
        Err(Errno::NOTDIR)
    );
}

/// DIRECTORY combined with CREAT, EXCL or TRUNC is EINVAL before anything is opened:
/// it once truncated the file it named (then reported ENOTDIR), or left a stray
/// regular file behind.
#[test]
fn directory_with_creat_excl_or_trunc_touches_nothing() {
    let mut f = fixture();
    let dir = OFLAGS_DIRECTORY as u32;
    for extra in [
        OFLAGS_TRUNC,
        OFLAGS_CREAT,
        OFLAGS_EXCL,
        OFLAGS_CREAT | OFLAGS_EXCL,
    ] {
        let oflags = dir | extra as u32;
        for rights in [READ, RW] {
            assert_eq!(f.open("hello.txt", 0, oflags, rights), Err(Errno::INVAL));
            assert_eq!(f.open("missing", 0, oflags, rights), Err(Errno::INVAL));
            assert_eq!(f.open("sub", 0, oflags, rights), Err(Errno::INVAL));
        }
    }
    assert_eq!(fs::read(f.root.join("hello.txt")).unwrap(), b"hello");
    assert!(!f.root.join("missing").exists());
    // DIRECTORY alone: a directory opens, a file is ENOTDIR and stays intact, a
    // symlink to a directory is followed only when asked.
    assert!(f.open("sub", 0, dir, READ).is_ok());
    assert_eq!(f.open("hello.txt", 0, dir, RW), Err(Errno::NOTDIR));
    assert_eq!(fs::read(f.root.join("hello.txt")).unwrap(), b"hello");
    std::os::unix::fs::symlink("sub", f.root.join("link")).unwrap();
    assert!(f.open("link", LOOKUP_SYMLINK_FOLLOW, dir, READ).is_ok());
    assert!(matches!(
        f.open("link", 0, dir, READ),
        Err(Errno::NOTDIR | Errno::LOOP)
    ));
}

#[test]
fn write_only_files_cannot_be_read() {
    let mut f = fixture();
    let fd = f
        .open("new.txt", 0, OFLAGS_CREAT as u32, RIGHT_FD_WRITE)
        .unwrap();
    let mut mem = GuestMemory::new(&mut f.mem);
    mem.write_u32(BUF, BUF + 64).unwrap();
    mem.write_u32(BUF + 4, 3).unwrap();
    assert_eq!(
        fd_read(&mut f.ctx, &mut mem, fd, BUF, 1, OUT),
        Err(Errno::BADF)
    );
}

// ---------------------------------------------------------------- file I/O

#[test]
fn seek_past_end_append_and_pwrite() {
    let mut f = fixture();
    let fd = f
        .open("a.txt", 0, (OFLAGS_CREAT | OFLAGS_TRUNC) as u32, RW)
        .unwrap();
    let n = f.put(BUF + 64, b"abc");
    let mut mem = GuestMemory::new(&mut f.mem);
    mem.write_u32(BUF, BUF + 64).unwrap();
    mem.write_u32(BUF + 4, n).unwrap();
    fd_seek(&mut f.ctx, &mut mem, fd, 10, 0, OUT, Flavor::Preview1).unwrap();
    fd_write(&mut f.ctx, &mut mem, fd, BUF, 1, OUT).unwrap();
    assert_eq!(fs::metadata(f.root.join("a.txt")).unwrap().len(), 13);
    assert_eq!(
        fd_seek(&mut f.ctx, &mut mem, fd, -1, 0, OUT, Flavor::Preview1),
        Err(Errno::INVAL)
    );
    assert_eq!(
        fd_seek(&mut f.ctx, &mut mem, fd, -100, 1, OUT, Flavor::Preview1),
        Err(Errno::INVAL)
    );
    // Append: writes land at the end whatever the position.
    fd_fdstat_set_flags(&mut f.ctx, &mut mem, fd, FDFLAGS_APPEND as u32).unwrap();
    fd_seek(&mut f.ctx, &mut mem, fd, 0, 0, OUT, Flavor::Preview1).unwrap();
    fd_write(&mut f.ctx, &mut mem, fd, BUF, 1, OUT).unwrap();
    fd_tell(&mut f.ctx, &mut mem, fd, OUT).unwrap();
    assert_eq!(f.u64_at(OUT), 16);
    let data = fs::read(f.root.join("a.txt")).unwrap();
    assert_eq!(&data[..3], &[0, 0, 0]);
    assert_eq!(&data[10..], b"abcabc");
}

#[test]
fn fd_write_writes_the_first_nonempty_ciovec() {
    let mut f = fixture();
    let fd = f.open("b.txt", 0, OFLAGS_CREAT as u32, RW).unwrap();
    f.put(BUF + 64, b"xyz");
    let mut mem = GuestMemory::new(&mut f.mem);
    for (i, (ptr, len)) in [(BUF + 64, 0), (BUF + 64, 2), (BUF + 66, 1)]
        .iter()
        .enumerate()
    {
        mem.write_u32(BUF + 8 * i as u32, *ptr).unwrap();
        mem.write_u32(BUF + 8 * i as u32 + 4, *len).unwrap();
    }
    fd_write(&mut f.ctx, &mut mem, fd, BUF, 3, OUT).unwrap();
    assert_eq!(f.u32_at(OUT), 2);
    assert_eq!(fs::read(f.root.join("b.txt")).unwrap(), b"xy");
}

// ---------------------------------------------------------------- readdir

fn parse_dirents(buf: &[u8]) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + DIRENT_SIZE <= buf.len() {
        let next = u64::from_le_bytes(buf[off..off + 8].try_into().unwrap());
        let namlen = u32::from_le_bytes(buf[off + 16..off + 20].try_into().unwrap()) as usize;
        if off + DIRENT_SIZE + namlen > buf.len() {
            break;
        }
        let name =
            String::from_utf8(buf[off + DIRENT_SIZE..off + DIRENT_SIZE + namlen].to_vec()).unwrap();
        out.push((next, name));
        off += DIRENT_SIZE + namlen;
    }
    out
}

#[test]
fn readdir_cookies_cover_a_big_directory() {
    let mut f = fixture();
    for i in 0..300 {
        fs::write(f.root.join("sub").join(format!("entry-{i:03}")), b"").unwrap();
    }
    let dir = f
        .open("sub", 0, OFLAGS_DIRECTORY as u32, READ | RIGHT_FD_READDIR)
        .unwrap();
    let mut names = Vec::new();
    let mut cookie = 0u64;
    let buf_len = 200u32;
    loop {
        let mut mem = GuestMemory::new(&mut f.mem);
        fd_readdir(&mut f.ctx, &mut mem, dir, BUF, buf_len, cookie, OUT).unwrap();
        let used = f.u32_at(OUT);
        let entries = parse_dirents(&f.mem[BUF as usize..(BUF + used) as usize]);
        for (next, name) in &entries {
            assert_eq!(*next, cookie + 1, "d_next must count entries");
            cookie = *next;
            names.push(name.clone());
        }
        if used < buf_len {
            break;
        }
        assert!(
            !entries.is_empty(),
            "a 200-byte buffer holds at least one entry"
        );
    }
    assert_eq!(names.len(), 302);
    assert_eq!(&names[..2], &[".", ".."]);
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 302, "no entry twice");
}

#[test]
fn readdir_truncates_the_last_entry_to_the_buffer() {
    let mut f = fixture();
    f.mem[BUF as usize..BUF as usize + 64].fill(0xAA);
    let mut mem = GuestMemory::new(&mut f.mem);
    fd_readdir(&mut f.ctx, &mut mem, 3, BUF, 30, 0, OUT).unwrap();
    assert_eq!(f.u32_at(OUT), 30, "a full buffer signals more entries");
    // "." (24 + 1 bytes) then 5 bytes of the ".." header; nothing beyond.
    assert_eq!(f.u64_at(BUF), 1);
    assert_eq!(f.mem[BUF as usize + 24], b'.');
    assert_eq!(f.mem[BUF as usize + 30], 0xAA);
}

// ---------------------------------------------------------------- misc semantics

#[test]
fn renumber_requires_both_descriptors() {
    let mut f = fixture();
    let a = f.open("hello.txt", 0, 0, READ).unwrap();
    let b = f.open("hello.txt", 0, 0, READ).unwrap();
    let mut mem = GuestMemory::new(&mut f.mem);
    assert_eq!(fd_renumber(&mut f.ctx, &mut mem, a, 50), Err(Errno::BADF));
    fd_renumber(&mut f.ctx, &mut mem, a, b).unwrap();
    assert_eq!(fd_close(&mut f.ctx, &mut mem, a), Err(Errno::BADF));
    fd_close(&mut f.ctx, &mut mem, b).unwrap();
}

#[test]
fn descriptor_numbers_reuse_the_highest_freed() {
    let mut f = fixture();
    let a = f.open("hello.txt", 0, 0, READ).unwrap();
    let b = f.open("hello.txt", 0, 0, READ).unwrap();
    assert_eq!((a, b), (4, 5));
    let mut mem = GuestMemory::new(&mut f.mem);
    fd_close(&mut f.ctx, &mut mem, a).unwrap();
    fd_close(&mut f.ctx, &mut mem, b).unwrap();
    assert_eq!(f.open("hello.txt", 0, 0, READ).unwrap(), 5);
    assert_eq!(f.open("hello.txt", 0, 0, READ).unwrap(), 4);
}

#[test]
fn stdio_errnos_match_wasmtime() {
    let mut f = fixture();
    let mut mem = GuestMemory::new(&mut f.mem);
    assert_eq!(
        fd_seek(&mut f.ctx, &mut mem, 1, 0, 1, OUT, Flavor::Preview1),
        Err(Errno::SPIPE)
    );
    assert_eq!(fd_tell(&mut f.ctx, &mut mem, 0, OUT), Err(Errno::SPIPE));
    assert_eq!(
        fd_pwrite(&mut f.ctx, &mut mem, 1, BUF, 0, 0, OUT),
        Err(Errno::SPIPE)
    );
    assert_eq!(
        fd_pread(&mut f.ctx, &mut mem, 0, BUF, 0, 0, OUT),
        Err(Errno::SPIPE)
    );
    assert_eq!(
        fd_fdstat_set_rights(&mut f.ctx, &mut mem, 1, 0, 0),
        Err(Errno::BADF)
    );
    assert_eq!(
        fd_fdstat_set_rights(&mut f.ctx, &mut mem, 3, 0, 0),
        Err(Errno::NOTSUP)
    );
    assert_eq!(
        sock_shutdown(&mut f.ctx, &mut mem, 1, 0),
        Err(Errno::NOTSOCK)
    );
    assert_eq!(sock_shutdown(&mut f.ctx, &mut mem, 77, 0), Err(Errno::BADF));
    assert_eq!(proc_raise(&mut f.ctx, &mut mem, 15), Err(Errno::NOTSUP));
    assert_eq!(
        poll_oneoff(&mut f.ctx, &mut mem, BUF, OUT, 0, OUT, Flavor::Preview1),
        Err(Errno::INVAL)
    );
}

#[test]
fn unstable_layouts() {
    let mut f = fixture();
    let fd = f.open("hello.txt", 0, 0, READ | RIGHT_FD_SEEK).unwrap();
    let mut mem = GuestMemory::new(&mut f.mem);
    // wasi_unstable: whence END = 1, SET = 2, CUR = 0.
    fd_seek(&mut f.ctx, &mut mem, fd, -2, 1, OUT, Flavor::Unstable).unwrap();
    assert_eq!(mem.read_u64(OUT).unwrap(), 3);
    fd_seek(&mut f.ctx, &mut mem, fd, 1, 2, OUT, Flavor::Unstable).unwrap();
    assert_eq!(mem.read_u64(OUT).unwrap(), 1);
    fd_seek(&mut f.ctx, &mut mem, fd, 1, 0, OUT, Flavor::Unstable).unwrap();
    assert_eq!(mem.read_u64(OUT).unwrap(), 2);
    // filestat: u32 nlink at 20, size at 24 (56 bytes).
    mem.slice_mut(OUT, 64).unwrap().fill(0xEE);
    fd_filestat_get(&mut f.ctx, &mut mem, fd, OUT, Flavor::Unstable).unwrap();
    assert_eq!(mem.slice(OUT + 16, 1).unwrap()[0], FILETYPE_REGULAR_FILE);
    assert_eq!(mem.read_u32(OUT + 20).unwrap(), 1);
    assert_eq!(mem.read_u64(OUT + 24).unwrap(), 5);
    assert_eq!(mem.slice(OUT + 56, 1).unwrap()[0], 0xEE, "56 bytes only");
    // Preview1: u64 nlink at 24, size at 32.
    fd_filestat_get(&mut f.ctx, &mut mem, fd, OUT, Flavor::Preview1).unwrap();
    assert_eq!(mem.read_u64(OUT + 24).unwrap(), 1);
    assert_eq!(mem.read_u64(OUT + 32).unwrap(), 5);
    // poll_oneoff with the unstable clock subscription (timeout at 32, flags at 48):
    // an absolute monotonic deadline of 0 has passed.
    mem.slice_mut(BUF, 112).unwrap().fill(0);
    mem.write_u64(BUF, 9).unwrap();
    mem.write_u32(BUF + 24, CLOCK_MONOTONIC).unwrap();
    mem.write_u16(BUF + 48, SUBCLOCKFLAGS_ABSTIME).unwrap();
    mem.write_u64(BUF + 56, 10).unwrap(); // second subscription: 60 s relative timer
    mem.write_u32(BUF + 56 + 24, CLOCK_MONOTONIC).unwrap();
    mem.write_u64(BUF + 56 + 32, 60_000_000_000).unwrap();
    poll_oneoff(
        &mut f.ctx,
        &mut mem,
        BUF,
        BUF + 512,
        2,
        OUT,
        Flavor::Unstable,
    )
    .unwrap();
    assert_eq!(mem.read_u32(OUT).unwrap(), 1);
    assert_eq!(mem.read_u64(BUF + 512).unwrap(), 9);
}

#[test]
fn resolve_knows_both_modules() {
    let p1 = resolve("wasi_snapshot_preview1", "path_open").unwrap();
    assert_eq!(p1.ty.params.len(), 9);
    assert_eq!(p1.ty.results, vec![crate::abi::ValType::I32]);
    let exit = resolve("wasi_unstable", "proc_exit").unwrap();
    assert!(exit.ty.results.is_empty());
    assert!(resolve("wasi_snapshot_preview1", "sock_accept").is_some());
    assert!(resolve("wasi_unstable", "sock_accept").is_none());
    assert!(resolve("env", "fd_write").is_none());
    assert!(resolve("wasi_snapshot_preview1", "nope").is_none());
    let names = [
        "args_get",
        "args_sizes_get",
        "environ_get",
        "environ_sizes_get",
        "clock_res_get",
        "clock_time_get",
        "fd_advise",
        "fd_allocate",
        "fd_close",
        "fd_datasync",
        "fd_fdstat_get",
        "fd_fdstat_set_flags",
        "fd_fdstat_set_rights",
        "fd_filestat_get",
        "fd_filestat_set_size",
        "fd_filestat_set_times",
        "fd_pread",
        "fd_prestat_get",
        "fd_prestat_dir_name",
        "fd_pwrite",
        "fd_read",
        "fd_readdir",
        "fd_renumber",
        "fd_seek",
        "fd_sync",
        "fd_tell",
        "fd_write",
        "path_create_directory",
        "path_filestat_get",
        "path_filestat_set_times",
        "path_link",
        "path_open",
        "path_readlink",
        "path_remove_directory",
        "path_rename",
        "path_symlink",
        "path_unlink_file",
        "poll_oneoff",
        "proc_exit",
        "proc_raise",
        "random_get",
        "sched_yield",
        "sock_accept",
        "sock_recv",
        "sock_send",
        "sock_shutdown",
    ];
    for name in names {
        assert!(resolve("wasi_snapshot_preview1", name).is_some(), "{name}");
    }
}

// ---------------------------------------------------------------- hardening (issue 10)

/// Lists `dir` from cookie 0 with `buf_len`-byte buffers (as wasi-libc does),
/// creating `<root>/big/late` on the host after the first call.
fn list_all(
    f: &mut Fixture,
    dir: u32,
    buf_len: u32,
    late: Option<&std::path::Path>,
) -> Vec<String> {
    let mut names = Vec::new();
    let mut cookie = 0u64;
    let mut first = true;
    loop {
        let mut mem = GuestMemory::new(&mut f.mem);
        fd_readdir(&mut f.ctx, &mut mem, dir, BUF, buf_len, cookie, OUT).unwrap();
        if std::mem::take(&mut first)
            && let Some(late) = late
        {
            fs::write(late, b"").unwrap();
        }
        let used = f.u32_at(OUT);
        let entries = parse_dirents(&f.mem[BUF as usize..(BUF + used) as usize]);
        for (next, name) in &entries {
            assert_eq!(*next, cookie + 1);
            cookie = *next;
            names.push(name.clone());
        }
        if used < buf_len {
            return names;
        }
        assert!(!entries.is_empty());
    }
}

/// A listing is read and stat-ed once, then served by cookie: a directory of
/// 100,000 entries listed through a 4 KiB buffer (hundreds of calls) does not
/// re-read the directory per call (which was quadratic). Structural check: a
/// file created after the first call stays out of this listing, and a new
/// listing (cookie 0) shows it.
#[test]
fn readdir_reads_a_directory_once_per_listing() {
    let mut f = fixture();
    let big = f.root.join("big");
    fs::create_dir(&big).unwrap();
    const N: usize = 100_000;
    for i in 0..N {
        fs::File::create(big.join(format!("f{i}"))).unwrap();
    }
    let dir = f
        .open("big", 0, OFLAGS_DIRECTORY as u32, READ | RIGHT_FD_READDIR)
        .unwrap();
    let late = big.join("late");
    let names = list_all(&mut f, dir, 4096, Some(&late));
    assert_eq!(names.len(), N + 2);
    assert!(
        !names.iter().any(|n| n == "late"),
        "listing was rebuilt mid-way"
    );
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), N + 2, "no entry twice");
    // rewinddir (cookie 0) starts a fresh listing.
    let again = list_all(&mut f, dir, 32768, None);
    assert_eq!(again.len(), N + 3);
    assert!(again.iter().any(|n| n == "late"));
}

/// An entry removed between the directory read and its stat is skipped; it does
/// not fail the listing with ENOENT.
#[test]
fn readdir_skips_an_entry_that_vanished_before_its_stat() {
    let f = fixture();
    let dir = cap_std::fs::Dir::open_ambient_dir(&f.root, cap_std::ambient_authority()).unwrap();
    let mut names = super::calls::list_names(&dir).unwrap();
    names.sort();
    assert_eq!(names, ["hello.txt", "sub"]);
    fs::remove_file(f.root.join("hello.txt")).unwrap();
    let listing = super::calls::build_listing(&dir, names).unwrap();
    let got: Vec<&[u8]> = listing.entries.iter().map(|e| &*e.name).collect();
    assert_eq!(got, [&b"."[..], b"..", b"sub"]);
    assert_eq!(listing.entries[2].filetype, FILETYPE_DIRECTORY);
}

/// Times past what 64-bit nanoseconds hold saturate instead of failing the stat
/// (wasmtime 49 says EOVERFLOW; the hardening issue asks not to lose the whole stat
/// to one field); times before the epoch or unknown are 0, as in wasmtime.
#[test]
fn timestamps_saturate_beyond_64_bit_nanoseconds() {
    use super::calls::timestamp;
    use std::time::{Duration, UNIX_EPOCH};
    let at = |d: Duration| Ok(cap_std::time::SystemTime::from_std(UNIX_EPOCH + d));
    let before = Ok(cap_std::time::SystemTime::from_std(
        UNIX_EPOCH - Duration::from_secs(2_208_988_800),
    ));
    assert_eq!(timestamp(before), 0);
    assert_eq!(timestamp(at(Duration::from_nanos(1))), 1);
    assert_eq!(
        timestamp(at(Duration::from_secs(18_446_744_073))),
        18_446_744_073_000_000_000
    );
    assert_eq!(timestamp(at(Duration::from_nanos(u64::MAX))), u64::MAX);
    assert_eq!(
        timestamp(at(Duration::from_nanos(u64::MAX) + Duration::from_nanos(1))),
        u64::MAX
    );
    assert_eq!(timestamp(at(Duration::from_secs(1 << 40))), u64::MAX);
    assert_eq!(timestamp(Err(std::io::Error::other("no birth time"))), 0);
}

/// The largest single heap allocation made by this thread while `f` runs: a
/// counting global allocator (this test binary only), per thread so that tests
/// running in parallel do not disturb each other.
mod alloc_probe {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static LARGEST: Cell<usize> = const { Cell::new(0) };
    }

    struct Probe;

    fn note(size: usize) {
        // try_with: the slot may already be gone while a thread exits.
        let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    }

    // SAFETY: every method forwards to the system allocator unchanged.
    unsafe impl GlobalAlloc for Probe {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            // SAFETY: same contract as ours.
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            // SAFETY: same contract as ours.
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: same contract as ours.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note(new_size);
            // SAFETY: same contract as ours.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static GLOBAL: Probe = Probe;

    pub fn largest_allocation_in<R>(f: impl FnOnce() -> R) -> (usize, R) {
        LARGEST.with(|l| l.set(0));
        let r = f();
        (LARGEST.with(|l| l.get()), r)
    }
}

/// No allocation sized by a guest-chosen count or length: every call below gets
/// the largest values its memory allows, and the host allocates no more than
/// a small bound however large they are.
#[test]
fn guest_sized_arguments_do_not_size_host_allocations() {
    use alloc_probe::largest_allocation_in;
    const MEM: usize = 96 << 20;
    const BOUND: usize = 256 << 10;
    let mut f = fixture();
    let mut big = vec![0u8; MEM];
    let nsubs = (MEM as u32 / 2) / 48;
    let events = MEM as u32 / 2;
    // poll_oneoff: 1M subscriptions, each an fd_write on stdout (ready at once).
    for i in 0..nsubs as usize {
        let at = i * 48;
        big[at..at + 8].copy_from_slice(&(i as u64).to_le_bytes());
        big[at + 8] = 2; // FD_WRITE
        big[at + 16..at + 20].copy_from_slice(&1u32.to_le_bytes());
    }
    let out = MEM as u32 - 8;
    let (largest, r) = largest_allocation_in(|| {
        let mut mem = GuestMemory::new(&mut big);
        poll_oneoff(
            &mut f.ctx,
            &mut mem,
            0,
            events,
            nsubs,
            out,
            Flavor::Preview1,
        )
    });
    r.unwrap();
    assert_eq!(
        u32::from_le_bytes(big[out as usize..][..4].try_into().unwrap()),
        nsubs
    );
    let last = events as usize + (nsubs as usize - 1) * 32;
    assert_eq!(
        u64::from_le_bytes(big[last..last + 8].try_into().unwrap()),
        nsubs as u64 - 1
    );
    assert!(largest < BOUND, "poll_oneoff allocated {largest} bytes");

    // The other calls that take counts and lengths, with the largest ones.
    big.fill(0);
    let len = MEM as u32 - 4096;
    let (largest, _) = largest_allocation_in(|| {
        let mut mem = GuestMemory::new(&mut big);
        let ctx = &mut f.ctx;
        let _ = fd_write(ctx, &mut mem, 1, 0, len / 8, out);
        let _ = fd_read(ctx, &mut mem, 3, 0, len / 8, out);
        let _ = fd_pread(ctx, &mut mem, 3, 0, len / 8, 0, out);
        let _ = fd_pwrite(ctx, &mut mem, 3, 0, len / 8, 0, out);
        let _ = fd_readdir(ctx, &mut mem, 3, 0, len, 0, out);
        let _ = random_get(ctx, &mut mem, 0, len);
        let _ = path_open(ctx, &mut mem, 3, 0, 0, len, 0, READ, READ, 0, out);
        let _ = path_filestat_get(ctx, &mut mem, 3, 0, 0, len, out, Flavor::Preview1);
        let _ = path_readlink(ctx, &mut mem, 3, 0, len, 0, len, out);
        let _ = path_rename(ctx, &mut mem, 3, 0, len, 3, 0, len);
        let _ = path_symlink(ctx, &mut mem, 0, len, 3, 0, len);
        let _ = path_link(ctx, &mut mem, 3, 0, 0, len, 3, 0, len);
        let _ = fd_prestat_dir_name(ctx, &mut mem, 3, 0, len);
        let _ = args_get(ctx, &mut mem, 0, 4096);
        let _ = environ_get(ctx, &mut mem, 0, 4096);
    });
    assert!(largest < BOUND, "a call allocated {largest} bytes");
}

// ---------------------------------------------------------------- found by fuzz/wasi

/// Undefined flag bits and enum values (on which wasmtime traps) are EINVAL
/// before anything happens: no file created, linked or touched, and EINVAL wins
/// over a bad descriptor.
#[test]
fn undefined_flags_are_einval_before_any_effect() {
    let mut f = fixture();
    let creat = OFLAGS_CREAT as u32;
    // path_open: lookupflags, rights (base and inheriting) and fdflags.
    let len = f.put(PATH, b"new.txt");
    for (dirflags, base, inheriting, fdflags) in [
        (2, READ, READ, 0),
        (LOOKUP_SYMLINK_FOLLOW | 4, READ, READ, 0),
        (0, READ | (1 << 30), READ, 0),
        (0, READ, u64::MAX, 0),
        (0, READ, READ, 0x20),
        (0, READ, READ, 0x1_0000),
    ] {
        let mut mem = GuestMemory::new(&mut f.mem);
        let r = path_open(
            &mut f.ctx, &mut mem, 3, dirflags, PATH, len, creat, base, inheriting, fdflags, OUT,
        );
        assert_eq!(
            r,
            Err(Errno::INVAL),
            "{dirflags} {base:x} {inheriting:x} {fdflags:x}"
        );
    }
    assert!(!f.root.join("new.txt").exists());
    let len = f.put(PATH, b"hello.txt");
    let len2 = f.put(BUF, b"link.txt");
    let mut mem = GuestMemory::new(&mut f.mem);
    let ctx = &mut f.ctx;
    assert_eq!(
        path_link(ctx, &mut mem, 3, 2, PATH, len, 3, BUF, len2),
        Err(Errno::INVAL)
    );
    assert_eq!(
        path_filestat_set_times(ctx, &mut mem, 3, 4, PATH, len, 5, 5, FSTFLAGS_MTIM as u32),
        Err(Errno::INVAL)
    );
    assert_eq!(
        path_filestat_get(ctx, &mut mem, 3, 2, PATH, len, OUT, Flavor::Preview1),
        Err(Errno::INVAL)
    );
    // An undefined whence beats a bad descriptor; flags are checked before the fd.
    assert_eq!(
        fd_seek(ctx, &mut mem, 99, 0, 3, OUT, Flavor::Preview1),
        Err(Errno::INVAL)
    );
    assert_eq!(
        fd_fdstat_set_flags(ctx, &mut mem, 99, 0x20),
        Err(Errno::INVAL)
    );
    assert_eq!(
        fd_fdstat_set_rights(ctx, &mut mem, 3, 1 << 40, 0),
        Err(Errno::INVAL)
    );
    assert_eq!(proc_raise(ctx, &mut mem, 31), Err(Errno::INVAL));
    assert_eq!(proc_raise(ctx, &mut mem, 15), Err(Errno::NOTSUP));
    assert_eq!(sock_shutdown(ctx, &mut mem, 3, 4), Err(Errno::INVAL));
    assert_eq!(sock_shutdown(ctx, &mut mem, 3, 3), Err(Errno::NOTSOCK));
    assert_eq!(sock_send(ctx, &mut mem, 3, 0, 0, 1, OUT), Err(Errno::INVAL));
    assert_eq!(
        sock_recv(ctx, &mut mem, 3, 0, 0, 4, OUT, OUT),
        Err(Errno::INVAL)
    );
    assert_eq!(sock_accept(ctx, &mut mem, 3, 0x20, OUT), Err(Errno::INVAL));
    assert!(!f.root.join("link.txt").exists());
    let mtime = fs::metadata(f.root.join("hello.txt"))
        .unwrap()
        .modified()
        .unwrap();
    assert_ne!(
        mtime,
        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(5)
    );
}

/// wasmtime refuses the sync fdflags at open with ENOTSUP; wasmc created the file
/// (with O_SYNC) and opened it.
#[test]
fn path_open_sync_flags_are_enotsup_and_create_nothing() {
    let mut f = fixture();
    let len = f.put(PATH, b"new.txt");
    for sync in [FDFLAGS_SYNC, FDFLAGS_DSYNC, FDFLAGS_RSYNC] {
        let mut mem = GuestMemory::new(&mut f.mem);
        let r = path_open(
            &mut f.ctx,
            &mut mem,
            3,
            0,
            PATH,
            len,
            (OFLAGS_CREAT | OFLAGS_TRUNC) as u32,
            RW,
            RW,
            sync as u32,
            OUT,
        );
        assert_eq!(r, Err(Errno::NOTSUP));
    }
    assert!(!f.root.join("new.txt").exists());
    // A bad directory descriptor is still EBADF first.
    let mut mem = GuestMemory::new(&mut f.mem);
    let r = path_open(&mut f.ctx, &mut mem, 99, 0, PATH, len, 0, RW, RW, 0x10, OUT);
    assert_eq!(r, Err(Errno::BADF));
}

/// FD_READ / FD_WRITE in fd_fdstat_get follow the host open mode, as wasmtime:
/// CREAT or TRUNC open for writing, and no FD_WRITE right opens for reading.
#[test]
fn fdstat_rights_follow_the_open_mode() {
    let mut f = fixture();
    let rights_of = |f: &mut Fixture, fd: u32| {
        let mut mem = GuestMemory::new(&mut f.mem);
        fd_fdstat_get(&mut f.ctx, &mut mem, fd, OUT).unwrap();
        f.u64_at(OUT + 8)
    };
    let fd = f.open("created", 0, OFLAGS_CREAT as u32, 0).unwrap();
    let r = rights_of(&mut f, fd);
    assert_eq!(
        r & (RIGHT_FD_READ | RIGHT_FD_WRITE),
        RIGHT_FD_READ | RIGHT_FD_WRITE
    );
    let fd = f.open("hello.txt", 0, 0, RIGHT_FD_WRITE).unwrap();
    let r = rights_of(&mut f, fd);
    assert_eq!(r & (RIGHT_FD_READ | RIGHT_FD_WRITE), RIGHT_FD_WRITE);
    let fd = f.open("hello.txt", 0, 0, 0).unwrap();
    let r = rights_of(&mut f, fd);
    assert_eq!(r & (RIGHT_FD_READ | RIGHT_FD_WRITE), RIGHT_FD_READ);
}

/// DIRECTORY without SYMLINK_FOLLOW on a symlink is ELOOP (wasmtime), and a
/// directory asked for FD_WRITE is EISDIR.
#[test]
fn path_open_directory_symlink_and_write() {
    let mut f = fixture();
    let dir = OFLAGS_DIRECTORY as u32;
    std::os::unix::fs::symlink("sub", f.root.join("ldir")).unwrap();
    std::os::unix::fs::symlink("hello.txt", f.root.join("lfile")).unwrap();
    assert_eq!(f.open("ldir", 0, dir, READ), Err(Errno::LOOP));
    assert_eq!(f.open("lfile", 0, dir, READ), Err(Errno::LOOP));
    assert!(f.open("ldir", LOOKUP_SYMLINK_FOLLOW, dir, READ).is_ok());
    assert_eq!(f.open("sub", 0, dir, RIGHT_FD_WRITE), Err(Errno::ISDIR));
    assert_eq!(f.open("sub", 0, dir, RW), Err(Errno::ISDIR));
}

fn rename(f: &mut Fixture, from: &str, to: &str) -> WasiResult<()> {
    let a = f.put(PATH, from.as_bytes());
    let b = f.put(BUF, to.as_bytes());
    let mut mem = GuestMemory::new(&mut f.mem);
    path_rename(&mut f.ctx, &mut mem, 3, PATH, a, 3, BUF, b)
}

/// A trailing slash names a directory: renaming a file with one is ENOTDIR and
/// moves nothing (cap-std dropped the slash and renamed); escapes stay EPERM.
#[test]
fn rename_with_a_trailing_slash_needs_a_directory() {
    let mut f = fixture();
    assert_eq!(rename(&mut f, "hello.txt", "moved/"), Err(Errno::NOTDIR));
    assert_eq!(rename(&mut f, "hello.txt/", "moved"), Err(Errno::NOTDIR));
    assert_eq!(rename(&mut f, "hello.txt", "sub/"), Err(Errno::NOTDIR));
    assert!(f.root.join("hello.txt").exists());
    assert_eq!(rename(&mut f, "hello.txt", "/"), Err(Errno::PERM));
    assert_eq!(rename(&mut f, "hello.txt", "../x/"), Err(Errno::PERM));
    assert_eq!(rename(&mut f, "missing/", "x"), Err(Errno::NOENT));
    assert_eq!(rename(&mut f, "hello.txt/", ""), Err(Errno::NOENT));
    assert_eq!(rename(&mut f, "hello.txt/", ".."), Err(Errno::PERM));
    let long = "x".repeat(300);
    assert_eq!(rename(&mut f, "hello.txt/", &long), Err(Errno::NAMETOOLONG));
    assert_eq!(rename(&mut f, "hello.txt/", "a\0b"), Err(Errno::INVAL));
    fs::create_dir(f.root.join("d")).unwrap();
    assert_eq!(rename(&mut f, "d/", "e/"), Ok(()));
    assert!(f.root.join("e").is_dir());
}

fn put_sub(mem: &mut [u8], at: usize, userdata: u64, tag: u8, a: u32, timeout: u64, flags: u16) {
    mem[at..at + 48].fill(0);
    mem[at..at + 8].copy_from_slice(&userdata.to_le_bytes());
    mem[at + 8] = tag;
    mem[at + 16..at + 20].copy_from_slice(&a.to_le_bytes());
    mem[at + 24..at + 32].copy_from_slice(&timeout.to_le_bytes());
    mem[at + 40..at + 42].copy_from_slice(&flags.to_le_bytes());
}

/// poll_oneoff as wasmtime run 49: a lone relative timer reports nbytes 1; an
/// undefined clock id is EINVAL even then; with a descriptor ready at once, only
/// descriptors are reported (not a zero relative timeout, not even a time long
/// past); with clocks only, the past ones are.
#[test]
fn poll_oneoff_reports_what_wasmtime_does() {
    let mut f = fixture();
    let subs = BUF as usize;
    let events = BUF + 1024;
    put_sub(&mut f.mem, subs, 42, 0, CLOCK_MONOTONIC, 1000, 0);
    let mut mem = GuestMemory::new(&mut f.mem);
    poll_oneoff(&mut f.ctx, &mut mem, BUF, events, 1, OUT, Flavor::Preview1).unwrap();
    assert_eq!(f.u32_at(OUT), 1);
    assert_eq!(f.u64_at(events), 42);
    assert_eq!(f.u64_at(events + 16), 1, "nbytes");
    put_sub(&mut f.mem, subs, 42, 0, 9, 1000, 0);
    let mut mem = GuestMemory::new(&mut f.mem);
    assert_eq!(
        poll_oneoff(&mut f.ctx, &mut mem, BUF, events, 1, OUT, Flavor::Preview1),
        Err(Errno::INVAL)
    );
    // [relative 0 on realtime, stdout writable, absolute monotonic 0 (past)].
    put_sub(&mut f.mem, subs, 1, 0, CLOCK_REALTIME, 0, 0);
    put_sub(&mut f.mem, subs + 48, 2, 2, 1, 0, 0);
    put_sub(
        &mut f.mem,
        subs + 96,
        3,
        0,
        CLOCK_MONOTONIC,
        0,
        SUBCLOCKFLAGS_ABSTIME,
    );
    let mut mem = GuestMemory::new(&mut f.mem);
    poll_oneoff(&mut f.ctx, &mut mem, BUF, events, 3, OUT, Flavor::Preview1).unwrap();
    assert_eq!(f.u32_at(OUT), 1);
    assert_eq!(f.u64_at(events), 2);
    // [absolute monotonic 0 (past), relative 10 s]: the past one.
    put_sub(
        &mut f.mem,
        subs,
        3,
        0,
        CLOCK_MONOTONIC,
        0,
        SUBCLOCKFLAGS_ABSTIME,
    );
    put_sub(
        &mut f.mem,
        subs + 48,
        4,
        0,
        CLOCK_MONOTONIC,
        10_000_000_000,
        0,
    );
    let mut mem = GuestMemory::new(&mut f.mem);
    poll_oneoff(&mut f.ctx, &mut mem, BUF, events, 2, OUT, Flavor::Preview1).unwrap();
    assert_eq!(f.u32_at(OUT), 1);
    assert_eq!(f.u64_at(events), 3);
}

/// fd_filestat_set_times works on directories the guest opened (cap-std's are
/// O_PATH, which futimens refuses with EBADF); on a preopen it is EBADF, as in
/// wasmtime 49 (whose preopens are O_PATH too).
#[test]
fn set_times_on_a_directory_descriptor() {
    let mut f = fixture();
    let dir = f
        .open("sub", 0, OFLAGS_DIRECTORY as u32, READ | RIGHT_FD_READDIR)
        .unwrap();
    let mut mem = GuestMemory::new(&mut f.mem);
    let flags = (FSTFLAGS_ATIM | FSTFLAGS_MTIM) as u32;
    let (a, m) = (5_000_000_007, 6_000_000_009);
    fd_filestat_set_times(&mut f.ctx, &mut mem, dir, a, m, flags).unwrap();
    fd_filestat_get(&mut f.ctx, &mut mem, dir, OUT, Flavor::Preview1).unwrap();
    assert_eq!(mem.read_u64(OUT + 40).unwrap(), a);
    assert_eq!(mem.read_u64(OUT + 48).unwrap(), m);
    assert_eq!(
        fd_filestat_set_times(&mut f.ctx, &mut mem, 3, a, m, flags),
        Err(Errno::BADF)
    );
}

/// A read-only file refuses even an empty write (the host would accept it).
#[test]
fn empty_write_to_a_read_only_file_is_ebadf() {
    let mut f = fixture();
    let fd = f.open("hello.txt", 0, 0, READ).unwrap();
    let mut mem = GuestMemory::new(&mut f.mem);
    mem.write_u32(BUF, BUF + 64).unwrap();
    mem.write_u32(BUF + 4, 0).unwrap();
    assert_eq!(
        fd_write(&mut f.ctx, &mut mem, fd, BUF, 1, OUT),
        Err(Errno::BADF)
    );
    assert_eq!(
        fd_pwrite(&mut f.ctx, &mut mem, fd, BUF, 1, 0, OUT),
        Err(Errno::BADF)
    );
    let fd = f.open("hello.txt", 0, 0, RW).unwrap();
    let mut mem = GuestMemory::new(&mut f.mem);
    assert_eq!(fd_write(&mut f.ctx, &mut mem, fd, BUF, 1, OUT), Ok(()));
}

/// wasmtime's stdin answers a read into empty buffers with EINTR.
#[test]
fn empty_read_of_stdin_is_eintr() {
    let mut f = fixture();
    let mut mem = GuestMemory::new(&mut f.mem);
    mem.write_u32(BUF, BUF + 64).unwrap();
    mem.write_u32(BUF + 4, 0).unwrap();
    assert_eq!(
        fd_read(&mut f.ctx, &mut mem, 0, BUF, 1, OUT),
        Err(Errno::INTR)
    );
    assert_eq!(
        fd_read(&mut f.ctx, &mut mem, 0, BUF, 0, OUT),
        Err(Errno::INTR)
    );
}
