/* The driver of executables built by `netc build`: reads rows (CSV on stdin or from a file,
 * IDX or NPY files), calls the compiled model and prints one line per row in the format of
 * `netc predict`: the class, then the class probabilities (or a JSON array with --format json).
 * netc prepends the MODEL_* macros and includes the model's header before this file. */

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows per call of the model: 256, or fewer when it was built with a smaller --batch-max. */
#define ROWS_PER_CALL (MODEL_BATCH_MAX < 256 ? MODEL_BATCH_MAX : 256)

static const char *program_name = MODEL_PROGRAM;
static size_t fixed6(float v, char *out);
static int blank(char c);
static int json = 0;
static int first_json_row = 1;

/* Text from the input or the command line, safe to print: control characters (and bytes that
 * are not printable ASCII) become \xNN escapes, and at most 40 bytes are shown. Two buffers, so
 * a message can show two texts. */
static const char *shown(const char *text, size_t length) {
    static char buffers[2][40 * 4 + 4];
    static int which = 0;
    char *out = buffers[which];
    which = 1 - which;
    size_t o = 0;
    for (size_t i = 0; i < length && text[i]; i++) {
        if (i == 40) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char c = (unsigned char)text[i];
        if (c < 0x20 || c == 0x7f) o += (size_t)sprintf(out + o, "\\x%02x", c);
        else out[o++] = (char)c;
    }
    out[o] = '\0';
    return out;
}

static const char *shown_all(const char *text) { return shown(text, strlen(text)); }

static void die(const char *message, const char *detail) {
    fprintf(stderr, "error: %s%s%s\n", message, detail ? ": " : "", detail ? shown_all(detail) : "");
    exit(1);
}

/* Standard output failed: quiet for a closed pipe (like netc, status 141), a message otherwise. */
static void output_failed(void) {
    if (errno == EPIPE) exit(141);
    fprintf(stderr, "error: cannot write the predictions to standard output: %s\n", strerror(errno));
    exit(1);
}

static void usage(FILE *to) {
    fprintf(to,
            "usage: %s [--format text|json] [FILE]\n\n"
            "Runs the model `%s` (spec hash %s) on rows of %d numbers%s and prints, per row,\n"
            "the predicted class and then the %s, like `netc predict`.\n\n"
            "FILE is a CSV file (one row per line, %d comma-separated numbers, no label column),\n"
            "an IDX file (.idx or -ubyte) or an NPY file (.npy) holding rows of %d values;\n"
            "without FILE, CSV rows are read from standard input. Give raw features: the\n"
            "normalization used in training is compiled into the model.\n",
            program_name, MODEL_NAME(), MODEL_HASH(), MODEL_INPUT_WIDTH, MODEL_INPUT_SHAPE,
            MODEL_PROBABILITIES ? "class probabilities" : "output values", MODEL_INPUT_WIDTH,
            MODEL_INPUT_WIDTH);
}

/* Rows waiting to be predicted. */
static float batch[ROWS_PER_CALL * MODEL_INPUT_WIDTH];
static float outputs[ROWS_PER_CALL * MODEL_OUTPUT_WIDTH];
static size_t pending = 0;
static size_t total_rows = 0;

static void print_row(const float *out) {
    float probabilities[MODEL_OUTPUT_WIDTH + 1];
    int count = MODEL_OUTPUT_WIDTH, best = 0;
    if (MODEL_OUTPUT_WIDTH == 1) {
        probabilities[0] = 1.0f - out[0];
        probabilities[1] = out[0];
        count = 2;
        best = out[0] >= 0.5f;
    } else {
        for (int i = 0; i < MODEL_OUTPUT_WIDTH; i++) {
            probabilities[i] = out[i];
            if (out[i] > out[best]) best = i;
        }
    }
    if (json) {
        printf("%s{\"class\":%d,\"probabilities\":[", first_json_row ? "" : ",", best);
        for (int i = 0; i < count; i++) printf("%s%.9g", i ? "," : "", probabilities[i]);
        printf("]}");
        first_json_row = 0;
    } else {
        /* The line printf("%d", best), then " %.6f" per value, would print, written at once. */
        char line[16 + (MODEL_OUTPUT_WIDTH + 1) * 64];
        size_t n = (size_t)sprintf(line, "%d", best);
        for (int i = 0; i < count; i++) {
            line[n++] = ' ';
            n += fixed6(probabilities[i], line + n);
        }
        line[n++] = '\n';
        fwrite(line, 1, n, stdout);
    }
}

static void flush_batch(void) {
    if (pending == 0) return;
    int code = MODEL_PREDICT(batch, pending, outputs);
    if (code != 0) {
        fprintf(stderr, "error: the model returned error code %d\n", code);
        exit(1);
    }
    for (size_t r = 0; r < pending; r++) print_row(outputs + r * MODEL_OUTPUT_WIDTH);
    if (ferror(stdout)) output_failed();
    pending = 0;
}

static float *next_row(void) {
    if (pending == ROWS_PER_CALL) flush_batch();
    total_rows++;
    return batch + (pending++) * MODEL_INPUT_WIDTH;
}

/* Blanks around a cell, as netc trims them (a line break ends the row). */
static int blank(char c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r'; }

/* Writes what printf("%.6f", (double)v) writes to `out` (at most 60 bytes; no terminating
 * NUL) and returns its length. Values below 1e9 in magnitude are rounded here, exactly: v is
 * m 2^e with an integer m < 2^24, so v 10^6 is m 10^6 (< 2^44) shifted, rounded to the nearest
 * integer, ties to even, as glibc rounds. Others (and NaN) go to snprintf. printf's cost was
 * most of the time of printing a row. */
static size_t fixed6(float v, char *out) {
    if (!(fabsf(v) < 1e9f)) return (size_t)snprintf(out, 60, "%.6f", v);
    uint32_t bits;
    memcpy(&bits, &v, 4);
    int negative = (int)(bits >> 31), field = (int)((bits >> 23) & 0xff);
    uint64_t m = bits & 0x7fffff;
    int e = -149;
    if (field != 0) {
        m |= 0x800000;
        e = field - 150;
    }
    uint64_t q;
    if (e >= 0) {
        q = (m << e) * 1000000u;
    } else if (-e >= 45) {
        q = 0; /* m 10^6 < 2^44 <= half of 2^-e */
    } else {
        int s = -e;
        uint64_t scaled = m * 1000000u, rest = scaled & ((UINT64_C(1) << s) - 1), half = UINT64_C(1) << (s - 1);
        q = scaled >> s;
        if (rest > half || (rest == half && (q & 1))) q++;
    }
    char digits[24];
    int d = 0;
    uint64_t whole = q / 1000000u, fraction = q % 1000000u;
    size_t n = 0;
    if (negative) out[n++] = '-';
    do {
        digits[d++] = (char)('0' + whole % 10);
        whole /= 10;
    } while (whole);
    while (d) out[n++] = digits[--d];
    out[n++] = '.';
    for (int i = 5; i >= 0; i--) {
        out[n + (size_t)i] = (char)('0' + fraction % 10);
        fraction /= 10;
    }
    return n + 6;
}

/* Reads the number at `p` as strtof would, for the plain decimals rows are made of: an
 * optional sign, digits with an optional point, an optional exponent, followed by a comma, a
 * blank, the line's end or the string's. Returns 0 (and the caller uses strtof) for anything
 * else, or when the value is not exact in one step: more than 2^24 as an integer mantissa m,
 * or a decimal exponent beyond +-10. Within those, m and 10^|e| are floats and m * 10^e or
 * m / 10^-e is one correctly rounded operation, so the result is strtof's bit for bit
 * (Clinger's fast path). strtof was most of the time of reading a row. */
static int fast_float(const char *p, float *value, char **end) {
    static const float powers[11] = {1e0f, 1e1f, 1e2f, 1e3f, 1e4f, 1e5f, 1e6f, 1e7f, 1e8f, 1e9f, 1e10f};
    const char *q = p;
    int negative = 0;
    if (*q == '+' || *q == '-') negative = *q++ == '-';
    uint64_t m = 0;
    int digits = 0, significant = 0, exponent = 0;
    for (; *q >= '0' && *q <= '9'; q++, digits++) {
        if (m || *q != '0') significant++;
        if (significant > 9) return 0;
        m = m * 10 + (uint64_t)(*q - '0');
    }
    if (*q == '.') {
        for (q++; *q >= '0' && *q <= '9'; q++, digits++) {
            if (m || *q != '0') significant++;
            if (significant > 9) return 0;
            m = m * 10 + (uint64_t)(*q - '0');
            exponent--;
        }
    }
    if (digits == 0) return 0;
    if (*q == 'e' || *q == 'E') {
        const char *r = q + 1;
        int minus = 0, written = 0;
        if (*r == '+' || *r == '-') minus = *r++ == '-';
        if (!(*r >= '0' && *r <= '9')) return 0; /* strtof would stop before the e: not a plain row */
        for (; *r >= '0' && *r <= '9'; r++) {
            if (written < 1000) written = written * 10 + (*r - '0');
        }
        exponent += minus ? -written : written;
        q = r;
    }
    if (!(*q == ',' || *q == '\n' || *q == '\0' || blank(*q))) return 0;
    if (m > (UINT64_C(1) << 24) || exponent < -10 || exponent > 10) return 0;
    float f = (float)m;
    f = exponent < 0 ? f / powers[-exponent] : f * powers[exponent];
    *value = negative ? -f : f;
    *end = (char *)q;
    return 1;
}

static void read_csv(FILE *in, const char *name) {
    char *line = NULL;
    size_t capacity = 0;
    ssize_t length;
    size_t line_number = 0;
    while ((length = getline(&line, &capacity, in)) != -1) {
        line_number++;
        char *p = line;
        if (strlen(line) != (size_t)length) {
            fprintf(stderr, "error: %s, row %zu: a NUL byte; this is not a text file\n", shown_all(name), line_number);
            exit(1);
        }
        /* A UTF-8 byte-order mark (spreadsheets write one) is not data. */
        if (line_number == 1 && memcmp(p, "\xef\xbb\xbf", length >= 3 ? 3 : (size_t)length + 1) == 0) p += 3;
        while (*p && isspace((unsigned char)*p)) p++;
        if (*p == '\0') continue;
        float *row = next_row();
        int column = 0;
        for (;;) {
            while (blank(*p)) p++;
            char *end;
            float value;
            if (!fast_float(p, &value, &end)) {
                value = strtof(p, &end);
                size_t n = strcspn(p, ",\r\n");
                /* netc reads no hexadecimal floats, NaN or infinities (nor numbers too large
                 * for a float); neither does the executable. */
                int hex = memchr(p, 'x', (size_t)(end - p)) || memchr(p, 'X', (size_t)(end - p));
                if (end == p || hex || !isfinite(value)) {
                    fprintf(stderr, "error: %s, row %zu, column %d: `%s` is not a %s\n", shown_all(name), line_number,
                            column + 1, shown(p, n), end == p || hex ? "number" : "finite number");
                    exit(1);
                }
            }
            if (column >= MODEL_INPUT_WIDTH) {
                fprintf(stderr, "error: %s, row %zu: more than %d values; the model takes %d per row (remove any label column)\n",
                        shown_all(name), line_number, MODEL_INPUT_WIDTH, MODEL_INPUT_WIDTH);
                exit(1);
            }
            row[column++] = value;
            p = end;
            while (blank(*p)) p++;
            if (*p == ',') {
                p++;
                continue;
            }
            if (*p == '\n' || *p == '\0') break;
            fprintf(stderr, "error: %s, row %zu, column %d: unexpected `%s` after a number\n", shown_all(name), line_number,
                    column, shown(p, 1));
            exit(1);
        }
        if (column != MODEL_INPUT_WIDTH) {
            fprintf(stderr, "error: %s, row %zu: %d values, but the model takes %d per row\n", shown_all(name), line_number, column,
                    MODEL_INPUT_WIDTH);
            exit(1);
        }
    }
    free(line);
}

static void read_exact(FILE *in, void *buffer, size_t bytes, const char *name, size_t row) {
    if (fread(buffer, 1, bytes, in) != bytes) {
        fprintf(stderr, "error: %s: truncated at row %zu\n", shown_all(name), row + 1);
        exit(1);
    }
}

/* Element kinds: 0 u8, 1 i8, 2 i16, 3 u16, 4 i32, 5 f32, 6 u32, 8 i64, 9 f64, 10 u64. */
static int element_size(int kind) { return kind <= 1 ? 1 : kind <= 3 ? 2 : kind <= 6 ? 4 : 8; }

static double element(const unsigned char *p, int kind, int big_endian) {
    unsigned char b[8];
    int size = element_size(kind);
    for (int i = 0; i < size; i++) b[i] = big_endian ? p[size - 1 - i] : p[i];
    switch (kind) {
    case 0: return (double)p[0];
    case 1: return (double)(int8_t)p[0];
    case 2: { int16_t v; memcpy(&v, b, 2); return v; }
    case 3: { uint16_t v; memcpy(&v, b, 2); return v; }
    case 4: { int32_t v; memcpy(&v, b, 4); return v; }
    case 5: { float v; memcpy(&v, b, 4); return v; }
    case 6: { uint32_t v; memcpy(&v, b, 4); return v; }
    case 8: { int64_t v; memcpy(&v, b, 8); return (double)v; }
    case 10: { uint64_t v; memcpy(&v, b, 8); return (double)v; }
    default: { double v; memcpy(&v, b, 8); return v; }
    }
}

static void read_elements(FILE *in, const char *name, size_t rows, size_t width, int kind, int big_endian) {
    if (width != MODEL_INPUT_WIDTH) {
        fprintf(stderr, "error: %s holds rows of %zu values, but the model takes %d\n", shown_all(name), width, MODEL_INPUT_WIDTH);
        exit(1);
    }
    size_t row_bytes = width * (size_t)element_size(kind);
    unsigned char *raw = malloc(row_bytes);
    if (!raw) die("out of memory", NULL);
    for (size_t r = 0; r < rows; r++) {
        read_exact(in, raw, row_bytes, name, r);
        float *row = next_row();
        for (size_t i = 0; i < width; i++) {
            row[i] = (float)element(raw + i * element_size(kind), kind, big_endian);
            if (!isfinite(row[i])) {
                fprintf(stderr, "error: %s, row %zu, column %zu: the value is NaN or infinite\n", shown_all(name), r + 1, i + 1);
                exit(1);
            }
        }
    }
    free(raw);
    if (fgetc(in) != EOF) die("the file has more bytes than its header promises", name);
}

static void read_idx(FILE *in, const char *name) {
    unsigned char head[4];
    if (fread(head, 1, 4, in) != 4 || head[0] != 0 || head[1] != 0) die("not an IDX file (wrong magic number)", name);
    int kind;
    switch (head[2]) {
    case 0x08: kind = 0; break;
    case 0x09: kind = 1; break;
    case 0x0B: kind = 2; break;
    case 0x0C: kind = 4; break;
    case 0x0D: kind = 5; break;
    case 0x0E: kind = 9; break;
    default: die("unknown IDX element type", name); return;
    }
    int dims = head[3];
    if (dims < 1 || dims > 8) die("IDX files with 1 to 8 dimensions only", name);
    size_t shape[8], width = 1;
    for (int i = 0; i < dims; i++) {
        unsigned char d[4];
        if (fread(d, 1, 4, in) != 4) die("truncated IDX header", name);
        shape[i] = ((size_t)d[0] << 24) | ((size_t)d[1] << 16) | ((size_t)d[2] << 8) | d[3];
        if (shape[i] == 0) die("the IDX file has a zero dimension, so it holds no values", name);
        if (i > 0) width *= shape[i];
    }
    read_elements(in, name, shape[0], width, kind, 1);
}

static void read_npy(FILE *in, const char *name) {
    unsigned char magic[10];
    if (fread(magic, 1, 10, in) != 10 || memcmp(magic, "\x93NUMPY", 6) != 0) die("not an NPY file (wrong magic)", name);
    if (magic[6] < 1 || magic[6] > 3) die("unsupported NPY version", name);
    size_t header_length = magic[8] | ((size_t)magic[9] << 8);
    if (magic[6] >= 2) {
        unsigned char more[2];
        if (fread(more, 1, 2, in) != 2) die("truncated NPY header", name);
        header_length |= ((size_t)more[0] << 16) | ((size_t)more[1] << 24);
    }
    if (header_length > 1 << 16) die("NPY header longer than 64 KiB", name);
    char *header = calloc(1, header_length + 1);
    if (!header) die("out of memory", NULL);
    if (fread(header, 1, header_length, in) != header_length) die("truncated NPY header", name);
    for (size_t i = 0; i < header_length; i++) {
        unsigned char c = (unsigned char)header[i];
        if (!(c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7f))) die("the NPY header is not ASCII text", name);
    }
    const char *descr = strstr(header, "'descr'");
    const char *shape = strstr(header, "'shape'");
    if (!descr || !shape) die("NPY header without descr or shape", name);
    if (strstr(header, "'fortran_order': True")) die("Fortran-ordered NPY arrays are not supported", name);
    /* The dtypes netc reads, with the same names: the quoted value after 'descr':. */
    static const struct { const char *descr; int kind; } dtypes[] = {
        {"|u1", 0}, {"<u1", 0}, {"|i1", 1}, {"<i1", 1}, {"<i2", 2}, {"<u2", 3}, {"<i4", 4},
        {"<f4", 5}, {"<u4", 6}, {"<i8", 8}, {"<f8", 9}, {"<u8", 10},
    };
    const char *value = descr + 7;
    while (*value == ' ') value++;
    if (*value == ':') value++;
    while (*value == ' ') value++;
    int kind = -1;
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++) {
        if (*value == '\'' && strncmp(value + 1, dtypes[i].descr, 3) == 0 && value[4] == '\'') kind = dtypes[i].kind;
    }
    if (kind < 0) { die("unsupported NPY dtype (use little-endian ints or floats)", name); return; }
    const char *open = strchr(shape, '(');
    if (!open) die("unreadable NPY shape", name);
    char *end;
    size_t rows = strtoull(open + 1, &end, 10), width = 1;
    while (*end == ' ') end++;
    if (*end == ',') {
        end++;
        while (*end == ' ') end++;
        if (*end != ')') width = strtoull(end, &end, 10);
    }
    free(header);
    if (rows == 0 || width == 0) die("the NPY array has a zero dimension, so it holds no values", name);
    read_elements(in, name, rows, width, kind, 0);
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

#ifndef NETC_DRIVER_SELFTEST
int main(int argc, char **argv) {
    const char *path = NULL;
    int options = 1;
    for (int i = 1; i < argc; i++) {
        if (options && strcmp(argv[i], "--") == 0) {
            options = 0;
        } else if (options && (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)) {
            usage(stdout);
            return fflush(stdout) == 0 ? 0 : 1;
        } else if (options && (strcmp(argv[i], "--format") == 0 || strncmp(argv[i], "--format=", 9) == 0)) {
            const char *f = argv[i][8] == '=' ? argv[i] + 9 : i + 1 < argc ? argv[++i] : NULL;
            if (!f) {
                fprintf(stderr, "error: --format needs a value: text or json\n");
                return 2;
            }
            if (strcmp(f, "json") == 0) json = 1;
            else if (strcmp(f, "text") == 0) json = 0;
            else {
                fprintf(stderr, "error: --format takes text or json, not `%s`\n", shown_all(f));
                return 2;
            }
        } else if (options && argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "error: unknown option %s\n", shown_all(argv[i]));
            usage(stderr);
            return 2;
        } else if (path) {
            die("give at most one input file", argv[i]);
        } else {
            path = argv[i];
        }
    }
    static char out_buffer[1 << 16];
    setvbuf(stdout, out_buffer, _IOFBF, sizeof out_buffer);
    if (json) printf("[");
    if (!path || strcmp(path, "-") == 0) {
        read_csv(stdin, "<stdin>");
    } else {
        if (ends_with(path, ".gz")) die("compressed input is not supported; decompress it first", path);
        FILE *in = fopen(path, "rb");
        if (!in) {
            fprintf(stderr, "error: cannot open %s: %s\n", shown_all(path), strerror(errno));
            return 1;
        }
        if (ends_with(path, ".npy")) read_npy(in, path);
        else if (ends_with(path, ".idx") || ends_with(path, "-ubyte")) read_idx(in, path);
        else read_csv(in, path);
        fclose(in);
    }
    if (total_rows == 0) die("no input rows", path ? path : "<stdin>");
    flush_batch();
    if (json) printf("]\n");
    if (fflush(stdout) != 0 || ferror(stdout) || fclose(stdout) != 0) output_failed();
    return 0;
}
#else
/* tests/aot.rs compiles the driver with -DNETC_DRIVER_SELFTEST: the fast paths against libc,
 * bit for bit and byte for byte, on values of every magnitude and ties. */
static uint64_t state = 88172645463325252u;
static uint64_t next(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

static int check_format(float v) {
    char fast[64], slow[64];
    size_t n = fixed6(v, fast);
    fast[n] = '\0';
    snprintf(slow, sizeof slow, "%.6f", v);
    if (strcmp(fast, slow) != 0) {
        printf("format %a: %s, printf %s\n", v, fast, slow);
        return 1;
    }
    return 0;
}

static int check_parse(const char *text) {
    float fast, slow;
    char *fast_end, *slow_end;
    if (!fast_float(text, &fast, &fast_end)) return 0;
    slow = strtof(text, &slow_end);
    if (memcmp(&fast, &slow, 4) != 0 || fast_end != slow_end) {
        printf("parse %s: %a, strtof %a\n", text, fast, slow);
        return 1;
    }
    return 0;
}

int main(void) {
    int failures = 0;
    long parsed = 0;
    const float edges[] = {0.0f, -0.0f, 1.0f, -1.0f, 0.5f, 0.0078125f, -0.0078125f, 0.0000005f, 1e-7f, -1e-7f,
                           0.9999995f, 0.99999949f, 999999999.0f, 1e9f, -1e9f, 3.4e38f, 1.4e-45f, 1e-38f,
                           123456.789f, 0.1f, 2.5e-6f, 7.8125e-3f, 1.0f / 3.0f, 65536.5f};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) failures += check_format(edges[i]);
    /* Every float with exactly 7 decimals below 1 in binary ties: k 2^-20 rounds at the 7th. */
    for (uint32_t k = 0; k < (1u << 20); k += 7) failures += check_format((float)k / (float)(1 << 20));
    for (int i = 0; i < 2000000; i++) {
        uint32_t bits = (uint32_t)next();
        float v;
        memcpy(&v, &bits, 4);
        if (i % 2) v = (float)(next() % 2000000001) / 1e6f - 1000.0f;
        failures += check_format(v);
    }
    for (int i = 0; i < 2000000 && failures < 20; i++) {
        char text[64];
        uint64_t r = next();
        int whole = (int)(r % 12), fraction = (int)((r >> 8) % 12), e = (int)((r >> 16) % 40) - 20;
        size_t n = 0;
        if ((r >> 24) % 3 == 0) text[n++] = (r >> 26) % 2 ? '-' : '+';
        for (int d = 0; d < whole; d++) text[n++] = (char)('0' + next() % 10);
        if ((r >> 28) % 4) {
            text[n++] = '.';
            for (int d = 0; d < fraction; d++) text[n++] = (char)('0' + next() % 10);
        }
        if ((r >> 32) % 3 == 0) n += (size_t)sprintf(text + n, "%s%d", (r >> 34) % 2 ? "e" : "E", e);
        static const char ends[] = ",\n \t\r";
        text[n++] = ends[(r >> 36) % 5];
        text[n] = '\0';
        failures += check_parse(text);
        float probe;
        char *end;
        parsed += fast_float(text, &probe, &end);
    }
    printf("%d failures, %ld parsed by the fast path\n", failures, parsed);
    return failures != 0 || parsed < 100000;
}
#endif
