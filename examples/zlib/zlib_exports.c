/* The wasm side of the zlib example: zlib's one-shot API exported from a WASI
   reactor (no main), with guest pointers as plain i32 offsets. Compiled together with
   the zlib sources by build.sh. */
#include <stdint.h>
#include <stdlib.h>
#include "zlib.h"

#define EXPORT(name) __attribute__((export_name(name)))

/* Guest buffers for the host to fill and read (0 when out of memory). */
EXPORT("alloc") void *wz_alloc(uint32_t size) { return malloc(size ? size : 1); }
EXPORT("free") void wz_free(void *p) { free(p); }

/* Worst-case size of compress(len). */
EXPORT("bound") uint32_t wz_bound(uint32_t len) { return (uint32_t)compressBound(len); }

/* Compressed length, or a negative zlib error code. */
EXPORT("compress") int32_t wz_compress(int32_t level, const uint8_t *src, uint32_t len,
                                       uint8_t *dst, uint32_t cap) {
    uLongf out = cap;
    int rc = compress2(dst, &out, src, len, level);
    return rc == Z_OK ? (int32_t)out : rc;
}

/* Decompressed length, or a negative zlib error code. */
EXPORT("uncompress") int32_t wz_uncompress(const uint8_t *src, uint32_t len, uint8_t *dst,
                                           uint32_t cap) {
    uLongf out = cap;
    int rc = uncompress(dst, &out, src, len);
    return rc == Z_OK ? (int32_t)out : rc;
}

EXPORT("crc32") uint32_t wz_crc32(const uint8_t *p, uint32_t len) {
    return (uint32_t)crc32(0L, p, len);
}

EXPORT("adler32") uint32_t wz_adler32(const uint8_t *p, uint32_t len) {
    return (uint32_t)adler32(1L, p, len);
}

EXPORT("version") const char *wz_version(void) { return zlibVersion(); }
