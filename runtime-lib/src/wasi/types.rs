//! WASI preview1 constants and record layouts (from the witx definitions in
//! `WebAssembly/WASI`, `legacy/preview1/witx/typenames.witx`, and the older
//! `wasi_unstable` ones where they differ).
//!
//! Records are written to guest memory field by field at their witx offsets
//! (little-endian), never by transmuting host structs, so host padding and
//! endianness cannot leak into the guest.

use std::io;

/// A WASI error number (`errno`, a u16 in witx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub u16);

impl Errno {
    pub const SUCCESS: Errno = Errno(0);
    pub const TOOBIG: Errno = Errno(1);
    pub const ACCES: Errno = Errno(2);
    pub const ADDRINUSE: Errno = Errno(3);
    pub const ADDRNOTAVAIL: Errno = Errno(4);
    pub const AFNOSUPPORT: Errno = Errno(5);
    pub const AGAIN: Errno = Errno(6);
    pub const ALREADY: Errno = Errno(7);
    pub const BADF: Errno = Errno(8);
    pub const BADMSG: Errno = Errno(9);
    pub const BUSY: Errno = Errno(10);
    pub const CANCELED: Errno = Errno(11);
    pub const CHILD: Errno = Errno(12);
    pub const CONNABORTED: Errno = Errno(13);
    pub const CONNREFUSED: Errno = Errno(14);
    pub const CONNRESET: Errno = Errno(15);
    pub const DEADLK: Errno = Errno(16);
    pub const DESTADDRREQ: Errno = Errno(17);
    pub const DOM: Errno = Errno(18);
    pub const DQUOT: Errno = Errno(19);
    pub const EXIST: Errno = Errno(20);
    pub const FAULT: Errno = Errno(21);
    pub const FBIG: Errno = Errno(22);
    pub const HOSTUNREACH: Errno = Errno(23);
    pub const IDRM: Errno = Errno(24);
    pub const ILSEQ: Errno = Errno(25);
    pub const INPROGRESS: Errno = Errno(26);
    pub const INTR: Errno = Errno(27);
    pub const INVAL: Errno = Errno(28);
    pub const IO: Errno = Errno(29);
    pub const ISCONN: Errno = Errno(30);
    pub const ISDIR: Errno = Errno(31);
    pub const LOOP: Errno = Errno(32);
    pub const MFILE: Errno = Errno(33);
    pub const MLINK: Errno = Errno(34);
    pub const MSGSIZE: Errno = Errno(35);
    pub const MULTIHOP: Errno = Errno(36);
    pub const NAMETOOLONG: Errno = Errno(37);
    pub const NETDOWN: Errno = Errno(38);
    pub const NETRESET: Errno = Errno(39);
    pub const NETUNREACH: Errno = Errno(40);
    pub const NFILE: Errno = Errno(41);
    pub const NOBUFS: Errno = Errno(42);
    pub const NODEV: Errno = Errno(43);
    pub const NOENT: Errno = Errno(44);
    pub const NOEXEC: Errno = Errno(45);
    pub const NOLCK: Errno = Errno(46);
    pub const NOLINK: Errno = Errno(47);
    pub const NOMEM: Errno = Errno(48);
    pub const NOMSG: Errno = Errno(49);
    pub const NOPROTOOPT: Errno = Errno(50);
    pub const NOSPC: Errno = Errno(51);
    pub const NOSYS: Errno = Errno(52);
    pub const NOTCONN: Errno = Errno(53);
    pub const NOTDIR: Errno = Errno(54);
    pub const NOTEMPTY: Errno = Errno(55);
    pub const NOTRECOVERABLE: Errno = Errno(56);
    pub const NOTSOCK: Errno = Errno(57);
    pub const NOTSUP: Errno = Errno(58);
    pub const NOTTY: Errno = Errno(59);
    pub const NXIO: Errno = Errno(60);
    pub const OVERFLOW: Errno = Errno(61);
    pub const OWNERDEAD: Errno = Errno(62);
    pub const PERM: Errno = Errno(63);
    pub const PIPE: Errno = Errno(64);
    pub const PROTO: Errno = Errno(65);
    pub const PROTONOSUPPORT: Errno = Errno(66);
    pub const PROTOTYPE: Errno = Errno(67);
    pub const RANGE: Errno = Errno(68);
    pub const ROFS: Errno = Errno(69);
    pub const SPIPE: Errno = Errno(70);
    pub const SRCH: Errno = Errno(71);
    pub const STALE: Errno = Errno(72);
    pub const TIMEDOUT: Errno = Errno(73);
    pub const TXTBSY: Errno = Errno(74);
    pub const XDEV: Errno = Errno(75);
    pub const NOTCAPABLE: Errno = Errno(76);

    /// The WASI errno for a host `errno` value. Unknown values become `EIO`.
    pub fn from_host(code: i32) -> Errno {
        use libc::*;
        match code {
            0 => Errno::SUCCESS,
            E2BIG => Errno::TOOBIG,
            EACCES => Errno::ACCES,
            EADDRINUSE => Errno::ADDRINUSE,
            EADDRNOTAVAIL => Errno::ADDRNOTAVAIL,
            EAFNOSUPPORT => Errno::AFNOSUPPORT,
            EAGAIN => Errno::AGAIN,
            EALREADY => Errno::ALREADY,
            EBADF => Errno::BADF,
            EBADMSG => Errno::BADMSG,
            EBUSY => Errno::BUSY,
            ECANCELED => Errno::CANCELED,
            ECHILD => Errno::CHILD,
            ECONNABORTED => Errno::CONNABORTED,
            ECONNREFUSED => Errno::CONNREFUSED,
            ECONNRESET => Errno::CONNRESET,
            EDEADLK => Errno::DEADLK,
            EDESTADDRREQ => Errno::DESTADDRREQ,
            EDOM => Errno::DOM,
            EDQUOT => Errno::DQUOT,
            EEXIST => Errno::EXIST,
            EFAULT => Errno::FAULT,
            EFBIG => Errno::FBIG,
            EHOSTUNREACH => Errno::HOSTUNREACH,
            EIDRM => Errno::IDRM,
            EILSEQ => Errno::ILSEQ,
            EINPROGRESS => Errno::INPROGRESS,
            EINTR => Errno::INTR,
            EINVAL => Errno::INVAL,
            EIO => Errno::IO,
            EISCONN => Errno::ISCONN,
            EISDIR => Errno::ISDIR,
            ELOOP => Errno::LOOP,
            EMFILE => Errno::MFILE,
            EMLINK => Errno::MLINK,
            EMSGSIZE => Errno::MSGSIZE,
            EMULTIHOP => Errno::MULTIHOP,
            ENAMETOOLONG => Errno::NAMETOOLONG,
            ENETDOWN => Errno::NETDOWN,
            ENETRESET => Errno::NETRESET,
            ENETUNREACH => Errno::NETUNREACH,
            ENFILE => Errno::NFILE,
            ENOBUFS => Errno::NOBUFS,
            ENODEV => Errno::NODEV,
            ENOENT => Errno::NOENT,
            ENOEXEC => Errno::NOEXEC,
            ENOLCK => Errno::NOLCK,
            ENOLINK => Errno::NOLINK,
            ENOMEM => Errno::NOMEM,
            ENOMSG => Errno::NOMSG,
            ENOPROTOOPT => Errno::NOPROTOOPT,
            ENOSPC => Errno::NOSPC,
            ENOSYS => Errno::NOSYS,
            ENOTCONN => Errno::NOTCONN,
            ENOTDIR => Errno::NOTDIR,
            ENOTEMPTY => Errno::NOTEMPTY,
            ENOTRECOVERABLE => Errno::NOTRECOVERABLE,
            ENOTSOCK => Errno::NOTSOCK,
            ENOTSUP => Errno::NOTSUP,
            ENOTTY => Errno::NOTTY,
            ENXIO => Errno::NXIO,
            EOVERFLOW => Errno::OVERFLOW,
            EOWNERDEAD => Errno::OWNERDEAD,
            EPERM => Errno::PERM,
            EPIPE => Errno::PIPE,
            EPROTO => Errno::PROTO,
            EPROTONOSUPPORT => Errno::PROTONOSUPPORT,
            EPROTOTYPE => Errno::PROTOTYPE,
            ERANGE => Errno::RANGE,
            EROFS => Errno::ROFS,
            ESPIPE => Errno::SPIPE,
            ESRCH => Errno::SRCH,
            ESTALE => Errno::STALE,
            ETIMEDOUT => Errno::TIMEDOUT,
            ETXTBSY => Errno::TXTBSY,
            EXDEV => Errno::XDEV,
            _ => Errno::IO,
        }
    }
}

impl From<io::Error> for Errno {
    /// OS errors keep their meaning. cap-std reports a sandbox escape (`..` above
    /// the preopen, an absolute path, a symlink leading outside) as
    /// `PermissionDenied` without an OS code; wasmtime's preview1 maps that to
    /// `EPERM`, and so do we.
    fn from(err: io::Error) -> Errno {
        if let Some(code) = err.raw_os_error() {
            return Errno::from_host(code);
        }
        match err.kind() {
            io::ErrorKind::NotFound => Errno::NOENT,
            io::ErrorKind::PermissionDenied => Errno::PERM,
            io::ErrorKind::AlreadyExists => Errno::EXIST,
            io::ErrorKind::InvalidInput => Errno::INVAL,
            io::ErrorKind::InvalidData => Errno::ILSEQ,
            io::ErrorKind::Interrupted => Errno::INTR,
            io::ErrorKind::WouldBlock => Errno::AGAIN,
            io::ErrorKind::Unsupported => Errno::NOTSUP,
            _ => Errno::IO,
        }
    }
}

impl From<rustix::io::Errno> for Errno {
    fn from(err: rustix::io::Errno) -> Errno {
        Errno::from_host(err.raw_os_error())
    }
}

pub type WasiResult<T> = Result<T, Errno>;

/// Which of the two module versions an import came from: a few records and enum
/// values differ between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `wasi_snapshot_preview1`.
    Preview1,
    /// `wasi_unstable` (preview0).
    Unstable,
}

// filetype
pub const FILETYPE_UNKNOWN: u8 = 0;
pub const FILETYPE_BLOCK_DEVICE: u8 = 1;
pub const FILETYPE_CHARACTER_DEVICE: u8 = 2;
pub const FILETYPE_DIRECTORY: u8 = 3;
pub const FILETYPE_REGULAR_FILE: u8 = 4;
pub const FILETYPE_SOCKET_STREAM: u8 = 6;
pub const FILETYPE_SYMBOLIC_LINK: u8 = 7;

// fdflags (u16)
pub const FDFLAGS_APPEND: u16 = 1 << 0;
pub const FDFLAGS_DSYNC: u16 = 1 << 1;
pub const FDFLAGS_NONBLOCK: u16 = 1 << 2;
pub const FDFLAGS_RSYNC: u16 = 1 << 3;
pub const FDFLAGS_SYNC: u16 = 1 << 4;
pub const FDFLAGS_ALL: u16 = 0x1f;

// oflags (u16)
pub const OFLAGS_CREAT: u16 = 1 << 0;
pub const OFLAGS_DIRECTORY: u16 = 1 << 1;
pub const OFLAGS_EXCL: u16 = 1 << 2;
pub const OFLAGS_TRUNC: u16 = 1 << 3;
pub const OFLAGS_ALL: u16 = 0xf;

// lookupflags (u32)
pub const LOOKUP_SYMLINK_FOLLOW: u32 = 1 << 0;

// fstflags (u16)
pub const FSTFLAGS_ATIM: u16 = 1 << 0;
pub const FSTFLAGS_ATIM_NOW: u16 = 1 << 1;
pub const FSTFLAGS_MTIM: u16 = 1 << 2;
pub const FSTFLAGS_MTIM_NOW: u16 = 1 << 3;
pub const FSTFLAGS_ALL: u16 = 0xf;

// rights (u64)
pub const RIGHT_FD_DATASYNC: u64 = 1 << 0;
pub const RIGHT_FD_READ: u64 = 1 << 1;
pub const RIGHT_FD_SEEK: u64 = 1 << 2;
pub const RIGHT_FD_FDSTAT_SET_FLAGS: u64 = 1 << 3;
pub const RIGHT_FD_SYNC: u64 = 1 << 4;
pub const RIGHT_FD_TELL: u64 = 1 << 5;
pub const RIGHT_FD_WRITE: u64 = 1 << 6;
pub const RIGHT_FD_ADVISE: u64 = 1 << 7;
pub const RIGHT_FD_ALLOCATE: u64 = 1 << 8;
pub const RIGHT_PATH_CREATE_DIRECTORY: u64 = 1 << 9;
pub const RIGHT_PATH_CREATE_FILE: u64 = 1 << 10;
pub const RIGHT_PATH_LINK_SOURCE: u64 = 1 << 11;
pub const RIGHT_PATH_LINK_TARGET: u64 = 1 << 12;
pub const RIGHT_PATH_OPEN: u64 = 1 << 13;
pub const RIGHT_FD_READDIR: u64 = 1 << 14;
pub const RIGHT_PATH_READLINK: u64 = 1 << 15;
pub const RIGHT_PATH_RENAME_SOURCE: u64 = 1 << 16;
pub const RIGHT_PATH_RENAME_TARGET: u64 = 1 << 17;
pub const RIGHT_PATH_FILESTAT_GET: u64 = 1 << 18;
pub const RIGHT_PATH_FILESTAT_SET_SIZE: u64 = 1 << 19;
pub const RIGHT_PATH_FILESTAT_SET_TIMES: u64 = 1 << 20;
pub const RIGHT_FD_FILESTAT_GET: u64 = 1 << 21;
pub const RIGHT_FD_FILESTAT_SET_SIZE: u64 = 1 << 22;
pub const RIGHT_FD_FILESTAT_SET_TIMES: u64 = 1 << 23;
pub const RIGHT_PATH_SYMLINK: u64 = 1 << 24;
pub const RIGHT_PATH_REMOVE_DIRECTORY: u64 = 1 << 25;
pub const RIGHT_PATH_UNLINK_FILE: u64 = 1 << 26;
pub const RIGHT_POLL_FD_READWRITE: u64 = 1 << 27;
pub const RIGHT_SOCK_SHUTDOWN: u64 = 1 << 28;
pub const RIGHT_SOCK_ACCEPT: u64 = 1 << 29;
/// Every right preview1 defines.
pub const RIGHTS_ALL: u64 = (1 << 30) - 1;

/// What a preopened directory reports as its base rights (the set userlands such
/// as wasi-libc expect; wasmtime reports exactly this set).
pub const PREOPEN_RIGHTS_BASE: u64 = RIGHT_PATH_CREATE_DIRECTORY
    | RIGHT_PATH_CREATE_FILE
    | RIGHT_PATH_LINK_SOURCE
    | RIGHT_PATH_LINK_TARGET
    | RIGHT_PATH_OPEN
    | RIGHT_FD_READDIR
    | RIGHT_PATH_READLINK
    | RIGHT_PATH_RENAME_SOURCE
    | RIGHT_PATH_RENAME_TARGET
    | RIGHT_PATH_SYMLINK
    | RIGHT_PATH_REMOVE_DIRECTORY
    | RIGHT_PATH_UNLINK_FILE
    | RIGHT_PATH_FILESTAT_GET
    | RIGHT_PATH_FILESTAT_SET_TIMES
    | RIGHT_FD_FILESTAT_GET
    | RIGHT_FD_FILESTAT_SET_TIMES;

/// ... and as the rights files opened beneath it may inherit.
pub const PREOPEN_RIGHTS_INHERITING: u64 = PREOPEN_RIGHTS_BASE
    | RIGHT_FD_DATASYNC
    | RIGHT_FD_READ
    | RIGHT_FD_SEEK
    | RIGHT_FD_FDSTAT_SET_FLAGS
    | RIGHT_FD_SYNC
    | RIGHT_FD_TELL
    | RIGHT_FD_WRITE
    | RIGHT_FD_ADVISE
    | RIGHT_FD_ALLOCATE
    | RIGHT_FD_FILESTAT_GET
    | RIGHT_FD_FILESTAT_SET_SIZE
    | RIGHT_FD_FILESTAT_SET_TIMES
    | RIGHT_POLL_FD_READWRITE;

// clockid (u32)
pub const CLOCK_REALTIME: u32 = 0;
pub const CLOCK_MONOTONIC: u32 = 1;
pub const CLOCK_PROCESS_CPUTIME: u32 = 2;
pub const CLOCK_THREAD_CPUTIME: u32 = 3;

// whence (u8): the two versions number them differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whence {
    Set,
    Cur,
    End,
}

impl Whence {
    pub fn decode(raw: u32, flavor: Flavor) -> WasiResult<Whence> {
        match (flavor, raw) {
            (Flavor::Preview1, 0) | (Flavor::Unstable, 2) => Ok(Whence::Set),
            (Flavor::Preview1, 1) | (Flavor::Unstable, 0) => Ok(Whence::Cur),
            (Flavor::Preview1, 2) | (Flavor::Unstable, 1) => Ok(Whence::End),
            _ => Err(Errno::INVAL),
        }
    }
}

// eventtype (u8)
pub const EVENTTYPE_CLOCK: u8 = 0;
pub const EVENTTYPE_FD_READ: u8 = 1;
pub const EVENTTYPE_FD_WRITE: u8 = 2;
// eventrwflags (u16)
pub const EVENTRWFLAGS_HANGUP: u16 = 1;
// subclockflags (u16)
pub const SUBCLOCKFLAGS_ABSTIME: u16 = 1;

/// `dirent`: d_next u64 @0, d_ino u64 @8, d_namlen u32 @16, d_type u8 @20 (both versions).
pub const DIRENT_SIZE: usize = 24;
/// `event`: userdata u64 @0, error u16 @8, type u8 @10, nbytes u64 @16, flags u16 @24.
pub const EVENT_SIZE: u32 = 32;
/// `fdstat`: filetype u8 @0, flags u16 @2, rights_base u64 @8, rights_inheriting u64 @16.
pub const FDSTAT_SIZE: u32 = 24;
/// `prestat`: tag u8 @0 (0 = dir), pr_name_len u32 @4.
pub const PRESTAT_SIZE: u32 = 8;

/// `subscription` size: preview1 = userdata u64 @0, tag u8 @8, union @16 (clock:
/// id u32 @16, timeout u64 @24, precision u64 @32, flags u16 @40; fd: u32 @16).
/// wasi_unstable's clock has an extra `identifier` u64 first (id @24, timeout @32,
/// precision @40, flags @48).
pub fn subscription_size(flavor: Flavor) -> u32 {
    match flavor {
        Flavor::Preview1 => 48,
        Flavor::Unstable => 56,
    }
}

/// `filestat` size: preview1 has a u64 nlink (64 bytes), wasi_unstable a u32 one
/// (56 bytes).
pub fn filestat_size(flavor: Flavor) -> u32 {
    match flavor {
        Flavor::Preview1 => 64,
        Flavor::Unstable => 56,
    }
}

/// `filestat` contents, independent of layout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filestat {
    pub dev: u64,
    pub ino: u64,
    pub filetype: u8,
    pub nlink: u64,
    pub size: u64,
    pub atim: u64,
    pub mtim: u64,
    pub ctim: u64,
}

impl Filestat {
    /// The record as the guest of `flavor` expects it.
    pub fn encode(&self, flavor: Flavor) -> Vec<u8> {
        let mut out = vec![0u8; filestat_size(flavor) as usize];
        out[0..8].copy_from_slice(&self.dev.to_le_bytes());
        out[8..16].copy_from_slice(&self.ino.to_le_bytes());
        out[16] = self.filetype;
        match flavor {
            Flavor::Preview1 => {
                out[24..32].copy_from_slice(&self.nlink.to_le_bytes());
                out[32..40].copy_from_slice(&self.size.to_le_bytes());
                out[40..48].copy_from_slice(&self.atim.to_le_bytes());
                out[48..56].copy_from_slice(&self.mtim.to_le_bytes());
                out[56..64].copy_from_slice(&self.ctim.to_le_bytes());
            }
            Flavor::Unstable => {
                // nlink is a u32 there; saturate rather than wrap.
                let nlink = u32::try_from(self.nlink).unwrap_or(u32::MAX);
                out[20..24].copy_from_slice(&nlink.to_le_bytes());
                out[24..32].copy_from_slice(&self.size.to_le_bytes());
                out[32..40].copy_from_slice(&self.atim.to_le_bytes());
                out[40..48].copy_from_slice(&self.mtim.to_le_bytes());
                out[48..56].copy_from_slice(&self.ctim.to_le_bytes());
            }
        }
        out
    }
}
