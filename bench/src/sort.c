// Indirect calls: libc qsort with a comparison callback over 2M integers, repeated.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
static int cmp(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}
int main(int argc, char **argv) {
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : 2000000;
    uint32_t *v = malloc(n * sizeof *v);
    uint64_t sum = 0;
    for (int round = 0; round < 3; round++) {
        uint32_t s = 12345 + round;
        for (size_t i = 0; i < n; i++) { s = s * 1103515245u + 12345u; v[i] = s; }
        qsort(v, n, sizeof *v, cmp);
        sum += v[n / 2];
    }
    printf("median sum = %llu\n", (unsigned long long)sum);
    free(v);
    return 0;
}
