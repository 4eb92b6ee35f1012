/* Per-sample latency of a model built by `netc build`, called with one row at a time.
 * Built by benches/aot_latency.sh with -DHEADER, -DSYMBOL and -DINPUT_WIDTH/-DOUTPUT_WIDTH. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <time.h>
#include HEADER

#define CAT(a, b) a##b
#define XCAT(a, b) CAT(a, b)
#define FN(x) XCAT(SYMBOL, x)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
    static float in[INPUT_WIDTH], out[OUTPUT_WIDTH];
    for (int i = 0; i < INPUT_WIDTH; i++) in[i] = 1.0f;
    for (int i = 0; i < 2000; i++) FN(_predict)(in, 1, out);
    double best = 1e9;
    for (int rep = 0; rep < 5; rep++) {
        int n = 20000;
        double t = now();
        for (int i = 0; i < n; i++) FN(_predict)(in, 1, out);
        double us = (now() - t) / n * 1e6;
        if (us < best) best = us;
    }
    printf("{\"workload\": \"infer1\", \"backend\": \"aot\", \"us_per_sample\": %.3f}\n", best);
    return 0;
}
