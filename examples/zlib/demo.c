/* The embedder of the zlib example: compresses a file and a generated text at
   several levels, checks the round trip and prints sizes and checksums.
   Built two ways from this one file by build.sh and tests/embed.rs:
     - with zlib compiled to wasm, sandboxed in libwz.a, through wz.h (the default);
     - with -DNATIVE, against the same zlib sources compiled natively.
   Both must print the same text (examples/zlib/expected.txt is the native one). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef NATIVE
#include "zlib.h"
static const char *version(void) { return zlibVersion(); }
static uint32_t checksum_crc32(const uint8_t *p, uint32_t n) { return (uint32_t)crc32(0, p, n); }
static uint32_t checksum_adler32(const uint8_t *p, uint32_t n) { return (uint32_t)adler32(1, p, n); }
/* compressed bytes in *out (malloc'ed), length returned, negative on error */
static int32_t pack(int level, const uint8_t *src, uint32_t n, uint8_t **out) {
    uLongf len = compressBound(n);
    *out = malloc(len);
    int rc = compress2(*out, &len, src, n, level);
    return rc == Z_OK ? (int32_t)len : rc;
}
static int32_t unpack(const uint8_t *src, uint32_t n, uint8_t *dst, uint32_t cap) {
    uLongf len = cap;
    int rc = uncompress(dst, &len, src, n);
    return rc == Z_OK ? (int32_t)len : rc;
}
static void setup(void) {}
static void teardown(void) {}
#else
#include "wz.h"
static wz_instance *zlib;

static void fail(const char *what) {
    fprintf(stderr, "%s: %s\n", what, wz_last_error(zlib));
    exit(1);
}
static void setup(void) {
    char *error = NULL;
    wz_config *config = wz_config_new();
    wz_config_max_memory(config, 256u << 20);
    zlib = wz_instantiate(config, &error);
    wz_config_free(config);
    if (!zlib) {
        fprintf(stderr, "cannot instantiate zlib: %s\n", error);
        exit(1);
    }
}
static void teardown(void) { wz_instance_free(zlib); }
/* guest buffer of n bytes, optionally filled from the host */
static int32_t guest_alloc(uint32_t n, const uint8_t *data) {
    int32_t p;
    if (wz_export_alloc(zlib, (int32_t)n, &p) != WZ_OK) fail("alloc");
    if (p == 0) { fprintf(stderr, "guest out of memory\n"); exit(1); }
    size_t length;
    uint8_t *memory = wz_memory(zlib, &length);
    if ((uint64_t)(uint32_t)p + n > length) { fprintf(stderr, "bad guest pointer\n"); exit(1); }
    if (data) memcpy(memory + p, data, n);
    return p;
}
static void guest_free(int32_t p) { if (wz_export_free(zlib, p) != WZ_OK) fail("free"); }
static const char *version(void) {
    int32_t p;
    if (wz_export_version(zlib, &p) != WZ_OK) fail("version");
    size_t length;
    const char *memory = (const char *)wz_memory(zlib, &length);
    /* a guest string is only trusted up to the end of guest memory */
    if ((uint32_t)p >= length || memchr(memory + p, 0, length - (uint32_t)p) == NULL) return "?";
    return memory + p;
}
static uint32_t checksum(int adler, const uint8_t *data, uint32_t n) {
    int32_t p = guest_alloc(n, data), sum;
    int status = adler ? wz_export_adler32(zlib, p, (int32_t)n, &sum)
                       : wz_export_crc32(zlib, p, (int32_t)n, &sum);
    if (status != WZ_OK) fail("checksum");
    guest_free(p);
    return (uint32_t)sum;
}
static uint32_t checksum_crc32(const uint8_t *p, uint32_t n) { return checksum(0, p, n); }
static uint32_t checksum_adler32(const uint8_t *p, uint32_t n) { return checksum(1, p, n); }
static int32_t pack(int level, const uint8_t *src, uint32_t n, uint8_t **out) {
    int32_t bound, len;
    if (wz_export_bound(zlib, (int32_t)n, &bound) != WZ_OK) fail("bound");
    int32_t in = guest_alloc(n, src), dst = guest_alloc((uint32_t)bound, NULL);
    if (wz_export_compress(zlib, level, in, (int32_t)n, dst, bound, &len) != WZ_OK) fail("compress");
    if (len > bound) { fprintf(stderr, "guest returned a bad length\n"); exit(1); }
    if (len >= 0) {
        size_t length;
        uint8_t *memory = wz_memory(zlib, &length);
        *out = malloc((size_t)len + 1);
        memcpy(*out, memory + dst, (size_t)len);
    }
    guest_free(in);
    guest_free(dst);
    return len;
}
static int32_t unpack(const uint8_t *src, uint32_t n, uint8_t *dst, uint32_t cap) {
    int32_t in = guest_alloc(n, src), out = guest_alloc(cap, NULL), len;
    if (wz_export_uncompress(zlib, in, (int32_t)n, out, (int32_t)cap, &len) != WZ_OK) fail("uncompress");
    if (len > (int32_t)cap) { fprintf(stderr, "guest returned a bad length\n"); exit(1); }
    if (len > 0) {
        size_t length;
        uint8_t *memory = wz_memory(zlib, &length);
        memcpy(dst, memory + out, (size_t)len);
    }
    guest_free(in);
    guest_free(out);
    return len;
}
#endif

/* FNV-1a of the compressed bytes: the output shows they are identical, not only as long */
static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static void report(const char *name, const uint8_t *data, uint32_t n) {
    printf("%s: %u bytes, crc32 %08x, adler32 %08x\n", name, n, checksum_crc32(data, n),
           checksum_adler32(data, n));
    for (int level = 0; level <= 9; level += 3) {
        uint8_t *packed = NULL;
        int32_t len = pack(level, data, n, &packed);
        if (len < 0) { printf("  level %d: error %d\n", level, len); continue; }
        uint8_t *back = malloc(n + 1);
        int32_t got = unpack(packed, (uint32_t)len, back, n);
        int same = got == (int32_t)n && memcmp(back, data, n) == 0;
        printf("  level %d: %d bytes, fnv1a %016llx, round trip %s\n", level, len,
               (unsigned long long)fnv1a(packed, (size_t)len), same ? "ok" : "FAILED");
        /* corrupted input is an error, never a crash */
        if (len > 8) {
            packed[len / 2] ^= 0x55;
            printf("  level %d corrupted: %s\n", level, unpack(packed, (uint32_t)len, back, n) < 0 ? "rejected" : "accepted");
        }
        free(back);
        free(packed);
    }
}

int main(int argc, char **argv) {
    setup();
    printf("zlib %s\n", version());
    /* a generated text: words from a fixed-seed generator */
    static const char *words[] = {"sandbox", "wasm", "library", "zlib", "deflate", "the", "a", "of", "memory", "trap"};
    size_t cap = 1 << 20, n = 0;
    uint8_t *text = malloc(cap);
    uint32_t seed = 12345;
    while (n + 16 < cap) {
        seed = seed * 1103515245u + 12345u;
        const char *w = words[(seed >> 16) % 10];
        size_t len = strlen(w);
        memcpy(text + n, w, len);
        n += len;
        text[n++] = (seed >> 8) % 13 == 0 ? '\n' : ' ';
    }
    report("generated", text, (uint32_t)n);
    free(text);
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) { perror(argv[i]); return 1; }
        uint8_t *data = malloc(16 << 20);
        size_t got = fread(data, 1, 16 << 20, f);
        fclose(f);
        const char *base = strrchr(argv[i], '/');
        report(base ? base + 1 : argv[i], data, (uint32_t)got);
        free(data);
    }
    teardown();
    return 0;
}
