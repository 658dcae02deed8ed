// Memory traffic: sieve of Eratosthenes over a large byte array, repeated.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 20000000, rounds = 8, count = 0;
    unsigned char *composite = malloc(n + 1);
    for (int r = 0; r < rounds; r++) {
        memset(composite, 0, n + 1);
        count = 0;
        for (long i = 2; i <= n; i++) {
            if (composite[i]) continue;
            count++;
            if (i > n / i) continue; /* i*i would overflow a 32-bit long */
            for (long j = i * i; j <= n; j += i) composite[j] = 1;
        }
    }
    printf("primes below %d: %d\n", n, count);
    free(composite);
    return 0;
}
