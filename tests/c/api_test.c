/* Calls a model built by `netc build` through its C header, including the bad-argument paths.
 * Built by tests/aot.rs with: cc -o api_test api_test.c MODEL.o -lm, with -DHEADER="MODEL.h"
 * and -DP(x)=MODEL_##x naming the model's symbols. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include HEADER

#define CAT(a, b) a##b
#define XCAT(a, b) CAT(a, b)
#define FN(x) XCAT(SYMBOL, x)

int main(void) {
    static float in[3 * INPUT_WIDTH], out[3 * OUTPUT_WIDTH];
    for (int i = 0; i < 3 * INPUT_WIDTH; i++) in[i] = (float)(i % 17) / 4.0f;
    if (FN(_predict)(NULL, 1, out) != ERROR_NULL) { puts("FAIL null inputs"); return 1; }
    if (FN(_predict)(in, 1, NULL) != ERROR_NULL) { puts("FAIL null outputs"); return 1; }
    out[0] = -7.0f;
    if (FN(_predict)(in, (size_t)BATCH_MAX + 1, out) != ERROR_ROWS) { puts("FAIL rows over the limit"); return 1; }
    if (out[0] != -7.0f) { puts("FAIL outputs touched on error"); return 1; }
    if (FN(_predict)(in, 0, out) != OK_CODE) { puts("FAIL zero rows"); return 1; }
    if (FN(_predict)(in, 3, out) != OK_CODE) { puts("FAIL predict"); return 1; }
    for (int r = 0; r < 3; r++) {
        float sum = 0.0f;
        for (int j = 0; j < OUTPUT_WIDTH; j++) {
            if (!(out[r * OUTPUT_WIDTH + j] >= 0.0f)) { puts("FAIL negative or NaN probability"); return 1; }
            sum += out[r * OUTPUT_WIDTH + j];
        }
        if (fabsf(sum - 1.0f) > 1e-4f) { printf("FAIL row %d sums to %f\n", r, sum); return 1; }
    }
    printf("%s %s", FN(_model_name)(), FN(_spec_hash)());
    for (int j = 0; j < OUTPUT_WIDTH; j++) printf(" %.6f", out[j]);
    printf("\n");
    return 0;
}
