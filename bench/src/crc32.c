// Integer crunching and table lookups: CRC-32 of a pseudo-random buffer.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : (size_t)16 << 20;
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    uint8_t *buf = malloc(n);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; buf[i] = (uint8_t)x; }
    uint32_t crc = 0;
    for (int round = 0; round < 10; round++) {
        crc = ~crc;
        for (size_t i = 0; i < n; i++) crc = table[(crc ^ buf[i]) & 0xff] ^ (crc >> 8);
        crc = ~crc;
    }
    printf("crc32 = %08x\n", crc);
    free(buf);
    return 0;
}
