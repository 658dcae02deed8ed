/*
 * WASI call-script interpreter for the differential fuzzer (fuzz/wasi/fuzz_wasi.py).
 *
 * The script is argv[1]: one command per line. It calls the raw preview1 imports
 * (declared below with plain integer parameters, so any pointer, length, flag or
 * descriptor can be passed), and prints one line per call and per dump, unbuffered,
 * so that the output up to a trap survives.
 *
 *   # ...                a comment
 *   z OFF LEN            zero arena bytes [OFF, OFF+LEN)
 *   w OFF HEX            write bytes at arena offset OFF
 *   I OFF A:N ...        write iovec records {arena + A, N} at arena offset OFF
 *   c NAME ARG...        call NAME; prints "NAME errno"
 *   d OFF LEN TAG        print "TAG <hex>" of arena bytes (the driver decodes TAG)
 *   r OFF                if the last call succeeded, remember the u32 at OFF as the
 *                        next register (an fd it returned)
 *   L FD BUFLEN          list FD with fd_readdir through BUFLEN-byte buffers, from
 *                        cookie 0, following d_next like wasi-libc; prints one
 *                        "ent <next> <type> <ino> <hexname>" per entry, then "L errno"
 *
 * Arguments: decimal or 0x hex (negative allowed), "A+N" = arena address + N,
 * "E-N" = end of linear memory - N, "Rk" = register k (or 4242 when unset).
 * The arena is the only memory the script writes; the driver lays it out.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT(name) \
    __attribute__((import_module("wasi_snapshot_preview1"), import_name(#name)))

typedef int32_t I;
typedef int64_t J;
IMPORT(args_get) I w_args_get(I, I);
IMPORT(args_sizes_get) I w_args_sizes_get(I, I);
IMPORT(environ_get) I w_environ_get(I, I);
IMPORT(environ_sizes_get) I w_environ_sizes_get(I, I);
IMPORT(clock_res_get) I w_clock_res_get(I, I);
IMPORT(clock_time_get) I w_clock_time_get(I, J, I);
IMPORT(fd_advise) I w_fd_advise(I, J, J, I);
IMPORT(fd_allocate) I w_fd_allocate(I, J, J);
IMPORT(fd_close) I w_fd_close(I);
IMPORT(fd_datasync) I w_fd_datasync(I);
IMPORT(fd_fdstat_get) I w_fd_fdstat_get(I, I);
IMPORT(fd_fdstat_set_flags) I w_fd_fdstat_set_flags(I, I);
IMPORT(fd_fdstat_set_rights) I w_fd_fdstat_set_rights(I, J, J);
IMPORT(fd_filestat_get) I w_fd_filestat_get(I, I);
IMPORT(fd_filestat_set_size) I w_fd_filestat_set_size(I, J);
IMPORT(fd_filestat_set_times) I w_fd_filestat_set_times(I, J, J, I);
IMPORT(fd_pread) I w_fd_pread(I, I, I, J, I);
IMPORT(fd_prestat_get) I w_fd_prestat_get(I, I);
IMPORT(fd_prestat_dir_name) I w_fd_prestat_dir_name(I, I, I);
IMPORT(fd_pwrite) I w_fd_pwrite(I, I, I, J, I);
IMPORT(fd_read) I w_fd_read(I, I, I, I);
IMPORT(fd_readdir) I w_fd_readdir(I, I, I, J, I);
IMPORT(fd_renumber) I w_fd_renumber(I, I);
IMPORT(fd_seek) I w_fd_seek(I, J, I, I);
IMPORT(fd_sync) I w_fd_sync(I);
IMPORT(fd_tell) I w_fd_tell(I, I);
IMPORT(fd_write) I w_fd_write(I, I, I, I);
IMPORT(path_create_directory) I w_path_create_directory(I, I, I);
IMPORT(path_filestat_get) I w_path_filestat_get(I, I, I, I, I);
IMPORT(path_filestat_set_times) I w_path_filestat_set_times(I, I, I, I, J, J, I);
IMPORT(path_link) I w_path_link(I, I, I, I, I, I, I);
IMPORT(path_open) I w_path_open(I, I, I, I, I, J, J, I, I);
IMPORT(path_readlink) I w_path_readlink(I, I, I, I, I, I);
IMPORT(path_remove_directory) I w_path_remove_directory(I, I, I);
IMPORT(path_rename) I w_path_rename(I, I, I, I, I, I);
IMPORT(path_symlink) I w_path_symlink(I, I, I, I, I);
IMPORT(path_unlink_file) I w_path_unlink_file(I, I, I);
IMPORT(poll_oneoff) I w_poll_oneoff(I, I, I, I);
IMPORT(random_get) I w_random_get(I, I);
IMPORT(sched_yield) I w_sched_yield(void);
IMPORT(sock_accept) I w_sock_accept(I, I, I);
IMPORT(sock_recv) I w_sock_recv(I, I, I, I, I, I);
IMPORT(sock_send) I w_sock_send(I, I, I, I, I);
IMPORT(sock_shutdown) I w_sock_shutdown(I, I);
IMPORT(proc_raise) I w_proc_raise(I);

#define ARENA 65536
static _Alignas(16) uint8_t arena[ARENA];
static uint32_t regs[64];
static int nregs;
static int last_errno;

static int64_t arg(const char *t) {
    if (t[0] == 'A' && t[1] == '+')
        return (int64_t)(uintptr_t)arena + strtoll(t + 2, NULL, 0);
    if (t[0] == 'E' && t[1] == '-')
        return (int64_t)__builtin_wasm_memory_size(0) * 65536 - strtoll(t + 2, NULL, 0);
    if (t[0] == 'R') {
        long k = strtol(t + 1, NULL, 10);
        return nregs ? regs[k % nregs] : 4242;
    }
    if (t[0] == '-')
        return strtoll(t, NULL, 0);
    return (int64_t)strtoull(t, NULL, 0);
}

static int in_arena(long off, long len) {
    return off >= 0 && len >= 0 && off <= ARENA && len <= ARENA - off;
}

static void hex(const uint8_t *p, long n) {
    static const char digits[] = "0123456789abcdef";
    char *s = malloc(2 * n + 1);
    for (long i = 0; i < n; i++) {
        s[2 * i] = digits[p[i] >> 4];
        s[2 * i + 1] = digits[p[i] & 15];
    }
    s[2 * n] = 0;
    fputs(s, stdout);
    free(s);
}

/* Calls `name` with a[0..]; -1 for an unknown name. */
static int call(const char *n, int64_t *a) {
#define C(nm, expr) if (!strcmp(n, #nm)) return expr;
    C(args_get, w_args_get(a[0], a[1]))
    C(args_sizes_get, w_args_sizes_get(a[0], a[1]))
    C(environ_get, w_environ_get(a[0], a[1]))
    C(environ_sizes_get, w_environ_sizes_get(a[0], a[1]))
    C(clock_res_get, w_clock_res_get(a[0], a[1]))
    C(clock_time_get, w_clock_time_get(a[0], a[1], a[2]))
    C(fd_advise, w_fd_advise(a[0], a[1], a[2], a[3]))
    C(fd_allocate, w_fd_allocate(a[0], a[1], a[2]))
    C(fd_close, w_fd_close(a[0]))
    C(fd_datasync, w_fd_datasync(a[0]))
    C(fd_fdstat_get, w_fd_fdstat_get(a[0], a[1]))
    C(fd_fdstat_set_flags, w_fd_fdstat_set_flags(a[0], a[1]))
    C(fd_fdstat_set_rights, w_fd_fdstat_set_rights(a[0], a[1], a[2]))
    C(fd_filestat_get, w_fd_filestat_get(a[0], a[1]))
    C(fd_filestat_set_size, w_fd_filestat_set_size(a[0], a[1]))
    C(fd_filestat_set_times, w_fd_filestat_set_times(a[0], a[1], a[2], a[3]))
    C(fd_pread, w_fd_pread(a[0], a[1], a[2], a[3], a[4]))
    C(fd_prestat_get, w_fd_prestat_get(a[0], a[1]))
    C(fd_prestat_dir_name, w_fd_prestat_dir_name(a[0], a[1], a[2]))
    C(fd_pwrite, w_fd_pwrite(a[0], a[1], a[2], a[3], a[4]))
    C(fd_read, w_fd_read(a[0], a[1], a[2], a[3]))
    C(fd_readdir, w_fd_readdir(a[0], a[1], a[2], a[3], a[4]))
    C(fd_renumber, w_fd_renumber(a[0], a[1]))
    C(fd_seek, w_fd_seek(a[0], a[1], a[2], a[3]))
    C(fd_sync, w_fd_sync(a[0]))
    C(fd_tell, w_fd_tell(a[0], a[1]))
    C(fd_write, w_fd_write(a[0], a[1], a[2], a[3]))
    C(path_create_directory, w_path_create_directory(a[0], a[1], a[2]))
    C(path_filestat_get, w_path_filestat_get(a[0], a[1], a[2], a[3], a[4]))
    C(path_filestat_set_times, w_path_filestat_set_times(a[0], a[1], a[2], a[3], a[4], a[5], a[6]))
    C(path_link, w_path_link(a[0], a[1], a[2], a[3], a[4], a[5], a[6]))
    C(path_open, w_path_open(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]))
    C(path_readlink, w_path_readlink(a[0], a[1], a[2], a[3], a[4], a[5]))
    C(path_remove_directory, w_path_remove_directory(a[0], a[1], a[2]))
    C(path_rename, w_path_rename(a[0], a[1], a[2], a[3], a[4], a[5]))
    C(path_symlink, w_path_symlink(a[0], a[1], a[2], a[3], a[4]))
    C(path_unlink_file, w_path_unlink_file(a[0], a[1], a[2]))
    C(poll_oneoff, w_poll_oneoff(a[0], a[1], a[2], a[3]))
    C(random_get, w_random_get(a[0], a[1]))
    C(sched_yield, w_sched_yield())
    C(sock_accept, w_sock_accept(a[0], a[1], a[2]))
    C(sock_recv, w_sock_recv(a[0], a[1], a[2], a[3], a[4], a[5]))
    C(sock_send, w_sock_send(a[0], a[1], a[2], a[3], a[4]))
    C(sock_shutdown, w_sock_shutdown(a[0], a[1]))
    C(proc_raise, w_proc_raise(a[0]))
#undef C
    return -1;
}

/* A full listing through `buflen`-byte buffers, as wasi-libc's readdir does. */
static void list(int32_t fd, uint32_t buflen) {
    static uint8_t buf[ARENA];
    if (buflen < 24 || buflen > ARENA) {
        printf("L bad-buflen\n");
        return;
    }
    uint64_t cookie = 0;
    for (int calls = 0; calls < 100000; calls++) {
        uint32_t used = 0;
        int e = w_fd_readdir(fd, (int32_t)(uintptr_t)buf, buflen, cookie, (int32_t)(uintptr_t)&used);
        if (e) {
            printf("L %d\n", e);
            return;
        }
        uint32_t off = 0;
        int complete = 0;
        while (off + 24 <= used) {
            uint64_t next, ino;
            uint32_t namlen;
            memcpy(&next, buf + off, 8);
            memcpy(&ino, buf + off + 8, 8);
            memcpy(&namlen, buf + off + 16, 4);
            if (namlen > used - off - 24)
                break;
            printf("ent %llu %u %llu ", (unsigned long long)next, buf[off + 20],
                   (unsigned long long)ino);
            hex(buf + off + 24, namlen);
            printf("\n");
            cookie = next;
            off += 24 + namlen;
            complete++;
        }
        if (used < buflen) {
            printf("L 0\n");
            return;
        }
        if (!complete) {
            printf("L entry-larger-than-buffer\n");
            return;
        }
    }
    printf("L too-many-calls\n");
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: interp SCRIPT\n");
        return 2;
    }
    char *script = argv[1];
    for (char *line = strtok(script, "\n"); line; line = strtok(NULL, "\n")) {
        char *tok[16];
        int nt = 0;
        char *save;
        for (char *t = strtok_r(line, " ", &save); t && nt < 16; t = strtok_r(NULL, " ", &save))
            tok[nt++] = t;
        if (!nt)
            continue;
        switch (tok[0][0]) {
        case '#':
            break;
        case 'z': {
            long off = strtol(tok[1], NULL, 0), len = strtol(tok[2], NULL, 0);
            if (in_arena(off, len))
                memset(arena + off, 0, len);
            break;
        }
        case 'w': {
            long off = strtol(tok[1], NULL, 0);
            long n = nt > 2 ? (long)strlen(tok[2]) / 2 : 0;
            if (!in_arena(off, n))
                break;
            for (long i = 0; i < n; i++) {
                char b[3] = {tok[2][2 * i], tok[2][2 * i + 1], 0};
                arena[off + i] = (uint8_t)strtoul(b, NULL, 16);
            }
            break;
        }
        case 'I': {
            long off = strtol(tok[1], NULL, 0);
            for (int i = 2; i < nt; i++, off += 8) {
                char *colon = strchr(tok[i], ':');
                if (!colon || !in_arena(off, 8))
                    break;
                uint32_t rec[2] = {(uint32_t)(uintptr_t)arena + (uint32_t)strtoul(tok[i], NULL, 0),
                                   (uint32_t)strtoul(colon + 1, NULL, 0)};
                memcpy(arena + off, rec, 8);
            }
            break;
        }
        case 'd': {
            long off = strtol(tok[1], NULL, 0), len = strtol(tok[2], NULL, 0);
            if (!in_arena(off, len))
                break;
            printf("%s ", tok[3]);
            hex(arena + off, len);
            printf("\n");
            break;
        }
        case 'r': {
            long off = strtol(tok[1], NULL, 0);
            if (!last_errno && in_arena(off, 4) && nregs < 64)
                memcpy(&regs[nregs++], arena + off, 4);
            break;
        }
        case 'L':
            list((int32_t)arg(tok[1]), (uint32_t)arg(tok[2]));
            break;
        case 'c': {
            int64_t a[12] = {0};
            for (int i = 2; i < nt && i - 2 < 12; i++)
                a[i - 2] = arg(tok[i]);
            int e = call(tok[1], a);
            last_errno = e;
            printf("%s %d\n", tok[1], e);
            break;
        }
        default:
            printf("? %s\n", tok[0]);
        }
    }
    return 0;
}
