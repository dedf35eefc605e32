/* y = a*x + y over n floats: a loop the compiler vectorises for the target's SIMD width. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifndef TARGET
#define TARGET "unknown"
#endif

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 10000000;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    if (!x || !y) return 1;
    for (long i = 0; i < n; i++) { x[i] = (float)i; y[i] = 1.0f; }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int rep = 0; rep < 10; rep++)
        for (long i = 0; i < n; i++) y[i] = 2.0f * x[i] + y[i];
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    printf("saxpy built for %s: %ld floats x 10 in %.1f ms (y[1] = %.0f)\n", TARGET, n, ms, y[1]);
    free(x); free(y);
    return 0;
}
