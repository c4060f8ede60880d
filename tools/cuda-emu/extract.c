/*
 * extract.c - copies a kernel's source out of its .cu file for the CPU
 * emulators (prefill_emu.cpp, decode_emu.cpp, sample_emu.cpp, pgemm_emu.cpp,
 * rows_emu.cpp): the span between two markers, less the inline-asm helpers
 * the emulator defines itself, with each raw memory access routed through
 * the emulator's checked one (the row kernels' go unrouted: rows_emu.cpp
 * checks their outputs and guard words instead).
 *
 * Every swap must find its text exactly as often as it says: a kernel that
 * changed under the emulator fails here, naming the text, rather than run
 * unchecked.  A kernel may borrow helpers from cuda_common.cuh (COMMON,
 * needed then): their definitions are copied ahead of its span, so that
 * the emulator runs the device's arithmetic rather than a copy of its own.
 * Usage: extract prefill|decode|sample|pgemm|rows KERNEL.cu OUT.inc
 * [COMMON.cuh]
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct swap {
    const char *from, *to;
    int times;
} swap;

typedef struct kernel {
    const char *name, *begin, *end; /* the span: from `begin` up to `end` */
    const char *const *cut;         /* helpers to drop, NULL-terminated */
    const swap *shared, *swaps;     /* swaps: ATTENTION_SWAPS or NULL, then its own; {NULL} ends */
    const char *const *borrow;      /* helpers from cuda_common.cuh, NULL-terminated; or NULL */
} kernel;

/* What both attention kernels have in the same words: the fp8 rows'
 * widening, the K fragments' reads and the K scales'. */
static const swap ATTENTION_SWAPS[] = {
    {"uint4 in = *(const uint4 *)(raw + j * HD + e);",
     "uint4 in = ld_sh((const uint4 *)(raw + j * HD + e));", 1},
    {"dst[0] = make_uint4(o[0], o[1], o[2], o[3]);",
     "st_sh(&dst[0], make_uint4(o[0], o[1], o[2], o[3]));", 1},
    {"dst[1] = make_uint4(o[4], o[5], o[6], o[7]);",
     "st_sh(&dst[1], make_uint4(o[4], o[5], o[6], o[7]));", 1},
    {"uint32_t b0 = *(const uint32_t *)(krow + kk * 16);",
     "uint32_t b0 = ld_sh((const uint32_t *)(krow + kk * 16));", 1},
    {"uint32_t b1 = *(const uint32_t *)(krow + kk * 16 + 8);",
     "uint32_t b1 = ld_sh((const uint32_t *)(krow + kk * 16 + 8));", 1},
    {"float f = ksc ? scale_log2 * ksc[j] : scale_log2;",
     "float f = ksc ? scale_log2 * ld_sh(&ksc[j]) : scale_log2;", 1},
    {NULL, NULL, 0},
};

static const char *const PREFILL_CUT[] = {NULL};

static const swap PREFILL_SWAPS[] = {
    {"stage_offsets<HD, FP8>(smem, stage)[j] = off;",
     "st_sh(&stage_offsets<HD, FP8>(smem, stage)[j], off);", 1},
    {"size_t at = in ? off[j] * ELEM + e : 0;", "size_t at = in ? ld_sh(&off[j]) * ELEM + e : 0;",
     1},
    {"size_t row = in ? off[j] + sel * io.kv.v_offset : 0;",
     "size_t row = in ? ld_sh(&off[j]) + sel * io.kv.v_offset : 0;", 1},
    {"s[nb][e] *= vsc[nb * 8 + 2 * t + (e & 1)];",
     "s[nb][e] *= ld_sh(&vsc[nb * 8 + 2 * t + (e & 1)]);", 1},
    {"? *(const uint32_t *)(qrow + kk * 16) : 0u;",
     "? ld32g((const uint32_t *)(qrow + kk * 16)) : 0u;", 1},
    {"? *(const uint32_t *)(qrow + kk * 16 + 8) : 0u;",
     "? ld32g((const uint32_t *)(qrow + kk * 16 + 8)) : 0u;", 1},
    {"*(uint32_t *)(orow + 8 * n) =\n                pack_bf16(w.o[n][2 * half] * inv, w.o[n][2 * "
     "half + 1] * inv);",
     "st32g((uint32_t *)(orow + 8 * n),\n                pack_bf16(w.o[n][2 * half] * inv, "
     "w.o[n][2 * half + 1] * inv));",
     1},
    {"extern __shared__ __align__(16) char smem[];", "char *smem = emu_smem();", 1},
    {NULL, NULL, 0},
};

static const char *const DECODE_CUT[] = {NULL};

static const swap DECODE_SWAPS[] = {
    {"w[0] *= vsc[2 * t], w[1] *= vsc[2 * t + 1];",
     "w[0] *= ld_sh(&vsc[2 * t]), w[1] *= ld_sh(&vsc[2 * t + 1]);", 1},
    {"w[2] *= vsc[8 + 2 * t], w[3] *= vsc[8 + 2 * t + 1];",
     "w[2] *= ld_sh(&vsc[8 + 2 * t]), w[3] *= ld_sh(&vsc[8 + 2 * t + 1]);", 1},
    {"qf[kk][0] = g < ng ? *(const uint32_t *)q : 0u;",
     "qf[kk][0] = g < ng ? ld32g((const uint32_t *)q) : 0u;", 1},
    {"qf[kk][1] = g < ng ? *(const uint32_t *)(q + 8) : 0u;",
     "qf[kk][1] = g < ng ? ld32g((const uint32_t *)(q + 8)) : 0u;", 1},
    {"orow[(size_t)(h0 + h) * HD + d] = __float2bfloat16(o / L);",
     "st_out(&orow[(size_t)(h0 + h) * HD + d], __float2bfloat16(o / L));", 1},
    {"r = rows ? rows[rl] : rl;", "r = rows ? ld_row(rows, rl) : rl;", 1},
    {"M = fmaxf(M, ml[2 * (i0 + s)]);", "M = fmaxf(M, ld_part(&ml[2 * (i0 + s)]));", 1},
    {"float m = ml[2 * (i0 + s)];", "float m = ld_part(&ml[2 * (i0 + s)]);", 1},
    {"L += w * ml[2 * (i0 + s) + 1];", "L += w * ld_part(&ml[2 * (i0 + s) + 1]);", 1},
    {"o += w * part[(i0 + s) * HD + t];", "o += w * ld_part(&part[(i0 + s) * HD + t]);", 1},
    {"out[((size_t)r * n_heads + h) * HD + t] = __float2bfloat16(o / L);",
     "st_out(&out[((size_t)r * n_heads + h) * HD + t], __float2bfloat16(o / L));", 1},
    {"mine[8 * n + 2 * t] = a.o[n][0], mine[8 * n + 2 * t + 1] = a.o[n][1];",
     "st_sh(&mine[8 * n + 2 * t], a.o[n][0]), st_sh(&mine[8 * n + 2 * t + 1], a.o[n][1]);", 1},
    {"if (t == 0) ml[2 * (warp * SSF_ATTN_MAX_GROUP + g)] = a.m;",
     "if (t == 0) st_sh(&ml[2 * (warp * SSF_ATTN_MAX_GROUP + g)], a.m);", 1},
    {"if (t == 0) ml[2 * (warp * SSF_ATTN_MAX_GROUP + g) + 1] = a.l;",
     "if (t == 0) st_sh(&ml[2 * (warp * SSF_ATTN_MAX_GROUP + g) + 1], a.l);", 1},
    {"M = fmaxf(M, ml[2 * (w * SSF_ATTN_MAX_GROUP + h)]);",
     "M = fmaxf(M, ld_sh(&ml[2 * (w * SSF_ATTN_MAX_GROUP + h)]));", 1},
    {"float f = exp2f(ml[2 * (w * SSF_ATTN_MAX_GROUP + h)] - base);",
     "float f = exp2f(ld_sh(&ml[2 * (w * SSF_ATTN_MAX_GROUP + h)]) - base);", 1},
    {"L += f * ml[2 * (w * SSF_ATTN_MAX_GROUP + h) + 1];",
     "L += f * ld_sh(&ml[2 * (w * SSF_ATTN_MAX_GROUP + h) + 1]);", 1},
    {"o += f * ob[(w * SSF_ATTN_MAX_GROUP + h) * HD + d];",
     "o += f * ld_sh(&ob[(w * SSF_ATTN_MAX_GROUP + h) * HD + d]);", 1},
    {"part[k * HD + d] = o;", "st_part(&part[k * HD + d], o);", 1},
    {"if (d == 0) part[n_parts * HD + 2 * k] = M, part[n_parts * HD + 2 * k + 1] = L;",
     "if (d == 0) st_part(&part[n_parts * HD + 2 * k], M), st_part(&part[n_parts * HD + 2 * k + "
     "1], L);",
     1},
    {"extern __shared__ __align__(16) char smem_raw[];", "char *smem_raw = emu_smem();", 1},
    {"int r = rows ? rows[blockIdx.x] : blockIdx.x,",
     "int r = rows ? ld_row(rows, blockIdx.x) : "
     "blockIdx.x,",
     1},
    {"int p = io.pos[r],", "int p = ld_pos(io.pos, r),", 1},
    {"float2 angle = cs[d];", "float2 angle = ld_cs(&cs[d]);", 2},
    {"pool[krow + col[i]] = __float2bfloat16(k[i]);",
     "st_pool(&pool[krow + col[i]], __float2bfloat16(k[i]));", 1},
    {"pool[vrow + col[i]] = __float2bfloat16(v[i]);",
     "st_pool(&pool[vrow + col[i]], __float2bfloat16(v[i]));", 1},
    {NULL, NULL, 0},
};

static const char *const PGEMM_CUT[] = {NULL};

/* The own GEMM: shared-memory fragment reads checked, global stores
 * through the emulator's (the partials' reads, the fences, the count's
 * atomic are functions it defines). */
static const swap PGEMM_SWAPS[] = {
    {"extern __shared__ __align__(16) char smem[];", "char *smem = emu_smem();", 1},
    {"*(uint32_t *)(Y + at) = pack_bf16(lo, hi);", "st_y((uint32_t *)(Y + at), pack_bf16(lo, hi));",
     1},
    {"uint32_t a0 = *(const uint32_t *)(x0 + k), a1 = *(const uint32_t *)(x8 + k);",
     "uint32_t a0 = ld_sh((const uint32_t *)(x0 + k)), a1 = ld_sh((const uint32_t *)(x8 + k));", 1},
    {"uint32_t a2 = *(const uint32_t *)(x0 + k + 8), a3 = *(const uint32_t *)(x8 + k + 8);",
     "uint32_t a2 = ld_sh((const uint32_t *)(x0 + k + 8)), a3 = ld_sh((const uint32_t *)(x8 + k "
     "+ 8));",
     1},
    {"uint32_t b0 = *(const uint32_t *)w, b1 = *(const uint32_t *)(w + 8);",
     "uint32_t b0 = ld_sh((const uint32_t *)w), b1 = ld_sh((const uint32_t *)(w + 8));", 1},
    {"*(float2 *)(part + at) = make_float2(acc[n][2 * h], acc[n][2 * h + 1]);",
     "pg_st_part((float2 *)(part + at), make_float2(acc[n][2 * h], acc[n][2 * h + 1]));", 1},
    {"*(uint32_t *)(Y + at) = pack_bf16(acc[n][2 * h], acc[n][2 * h + 1]);",
     "st_y((uint32_t *)(Y + at), pack_bf16(acc[n][2 * h], acc[n][2 * h + 1]));", 1},
    {"*(uint32_t *)(Y + at) = pack_bf16(s.x, s.y);",
     "st_y((uint32_t *)(Y + at), pack_bf16(s.x, s.y));", 1},
    {"if (last) *count = 0;", "if (last) st_count(count, 0);", 1},
    /* the fused norm's gains, the residual stream and its sums of squares */
    {"uint32_t g0 = *(const uint32_t *)(gains + k + 2 * t);",
     "uint32_t g0 = ld_sh((const uint32_t *)(gains + k + 2 * t));", 1},
    {"uint32_t g8 = *(const uint32_t *)(gains + k + 8 + 2 * t);",
     "uint32_t g8 = ld_sh((const uint32_t *)(gains + k + 8 + 2 * t));", 1},
    {"float2 x = __bfloat1622float2(*(const __nv_bfloat162 *)x2);",
     "float2 x = __bfloat1622float2(ld_res2(x2));", 1},
    {"*x2 = pack_bf16(lo, hi);", "st_res(x2, pack_bf16(lo, hi));", 1},
    {"fz.res_ss[(size_t)(n0 / SS_GROUP + grp) * MR + row] = ss;",
     "st_ss(&fz.res_ss[(size_t)(n0 / SS_GROUP + grp) * MR + row], ss);", 1},
    {"fz.res_ss[(size_t)(n0 / SS_GROUP + pair / WARP) * MR + row] = ss;",
     "st_ss(&fz.res_ss[(size_t)(n0 / SS_GROUP + pair / WARP) * MR + row], ss);", 1},
    {NULL, NULL, 0},
};

static const char *const SAMPLE_CUT[] = {NULL};

/* The sampler's shared memory: its fields become checked arrays and
 * variables of the emulator's (sh_arr, sh_var: every access bounds- and
 * race-checked), its __shared__ variables live in the emulator's arena, the
 * gathered candidates are read through the checked load, the row and the
 * spec through bounds-checked ones, and the float-to-u64 cast follows PTX's
 * cvt.rzi (NaN to 0, clamped), not the host's. */
static const swap SAMPLE_SWAPS[] = {
    {"struct shared_state {\n"
     "    u64 hist[RADIX_BINS];\n"
     "    u64 warp_sum[SAMPLE_WARPS];\n"
     "    uint32_t cand_key[SAMPLE_CANDIDATES];\n"
     "    int32_t cand_id[SAMPLE_CANDIDATES];\n"
     "    int n_cand; /* gather_candidates' count */\n"
     "    union {\n"
     "        cub::BlockScan<u64, SAMPLE_THREADS>::TempStorage scan;\n"
     "        cub::BlockReduce<u64, SAMPLE_THREADS>::TempStorage sum;\n"
     "    } cub;\n"
     "    u64 u64_out;\n"
     "    int int_out[2];\n"
     "};\n",
     "struct shared_state {\n"
     "    sh_arr<u64, RADIX_BINS> hist;\n"
     "    sh_arr<u64, SAMPLE_WARPS> warp_sum;\n"
     "    sh_arr<uint32_t, SAMPLE_CANDIDATES> cand_key;\n"
     "    sh_arr<int32_t, SAMPLE_CANDIDATES> cand_id;\n"
     "    sh_var<int> n_cand;\n"
     "    union {\n"
     "        cub::BlockScan<u64, SAMPLE_THREADS>::TempStorage scan;\n"
     "        cub::BlockReduce<u64, SAMPLE_THREADS>::TempStorage sum;\n"
     "    } cub;\n"
     "    sh_var<u64> u64_out;\n"
     "    sh_arr<int, 2> int_out;\n"
     "};\n",
     1},
    {"float x = r.x[i];", "float x = ld_logit(&r.x[i]);", 1},
    {"return (u64)(__uint_as_float(key) * MASS_SCALE);",
     "return cvt_rzi_u64(__uint_as_float(key) * MASS_SCALE);", 1},
    {"return c.key[i];", "return ld_sh(&c.key[i]);", 1},
    {"return c.id[i];", "return ld_sh(&c.id[i]);", 1},
    {"__shared__ cub::BlockReduce<arg_best, SAMPLE_THREADS>::TempStorage tmp;",
     "cub::BlockReduce<arg_best, SAMPLE_THREADS>::TempStorage &tmp =\n"
     "        emu_shared<cub::BlockReduce<arg_best, SAMPLE_THREADS>::TempStorage>(1);",
     1},
    {"__shared__ arg_best out;", "sh_var<arg_best> &out = emu_shared<sh_var<arg_best>>(2);", 1},
    {"return *p; /* 16 bytes of logits */", "return ld_logit4(p);", 1},
    {"return *p; /* 4 bytes of logits */", "return ld_logit(p);", 1},
    {"__shared__ shared_state sh;", "shared_state &sh = emu_shared<shared_state>(0);", 1},
    {"const ssf_sample_spec sp = spec[blockIdx.x];",
     "const ssf_sample_spec sp = ld_spec(&spec[blockIdx.x]);", 1},
    {"    if (total > SAMPLE_CANDIDATES) return -1;\n    sort_candidates(sh, total);\n    return "
     "total;\n",
     "    if (total > SAMPLE_CANDIDATES) return emu_gathered(-1, floor, sh);\n"
     "    sort_candidates(sh, total);\n    return emu_gathered(total, floor, sh);\n",
     1},
    {"if (threadIdx.x == 0) ids[blockIdx.x] = id;",
     "if (threadIdx.x == 0) st_id(&ids[blockIdx.x], id);", 1},
    {NULL, NULL, 0},
};

static const char *const ROWS_CUT[] = {NULL};

/* the folded norm's scaling of a q|k|v element, the fold's own arithmetic;
 * the pool walk and the fp8 row store the RoPE kernel writes through */
static const char *const ROWS_BORROW[] = {"normed_biased", "kv_pos", "row_table", "store_fp8_row",
                                          NULL};

/* The row kernels' block reductions share a buffer of the emulator's. */
static const swap ROWS_SWAPS[] = {
    {"__shared__ float buf[WARP];", "float *buf = g_rows_buf;", 3},
    {NULL, NULL, 0},
};

static const kernel KERNELS[] = {
    {"prefill", "#define QB SSF_PREFILL_QB",
     "template <int HD, bool FP8>\nstatic cudaError_t prefill_hd(", PREFILL_CUT, ATTENTION_SWAPS,
     PREFILL_SWAPS, NULL},
    {"decode", "/* ---- paged attention",
     "template <int HD, bool FP8>\nstatic cudaError_t attention_hd(", DECODE_CUT, ATTENTION_SWAPS,
     DECODE_SWAPS, NULL},
    {"sample", "#define SAMPLE_THREADS 1024", "cudaError_t ssfk_sample(", SAMPLE_CUT, NULL,
     SAMPLE_SWAPS, NULL},
    {"pgemm", "/* ---- the small GEMM", "cudaError_t ssfk_pgemm_init(", PGEMM_CUT, NULL,
     PGEMM_SWAPS, NULL},
    {"rows", "__device__ static inline float warp_sum", "/* ---- timing", ROWS_CUT, NULL,
     ROWS_SWAPS, ROWS_BORROW},
};

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cuda-emu extract: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (!s || fread(s, 1, (size_t)n, f) != (size_t)n) die("cannot read %s", path);
    s[n] = '\0';
    fclose(f);
    return s;
}

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what))
        n++;
    return n;
}

/* s with every `from` replaced by `to` (a new string; s is freed). */
static char *replace(char *s, const char *from, const char *to)
{
    size_t lf = strlen(from), lt = strlen(to), n = (size_t)count(s, from);
    char *out = malloc(strlen(s) + n * lt + 1), *o = out;
    const char *p = s, *hit;
    while ((hit = strstr(p, from))) {
        memcpy(o, p, (size_t)(hit - p)), o += hit - p;
        memcpy(o, to, lt), o += lt;
        p = hit + lf;
    }
    strcpy(o, p);
    free(s);
    return out;
}

/* The start of the line holding p. */
static char *line_of(const char *s, char *p)
{
    while (p > s && p[-1] != '\n')
        p--;
    return p;
}

/* Each of the list's swaps on body (a kernel that changed under the
 * emulator dies here, naming the text). */
static char *apply_swaps(char *body, const swap *list)
{
    for (const swap *w = list; w->from; w++) {
        if (count(body, w->from) != w->times)
            die("the kernel no longer has `%s` as often as the swap expects", w->from);
        body = replace(body, w->from, w->to);
    }
    return body;
}

/* Where helper `name`'s definition starts in s: the one line that starts
 * with "__device__ static inline" and names it; *end just past the "}"
 * that closes it at the start of a line. */
static char *find_helper(char *s, const char *name, char **end)
{
    char head[128];
    snprintf(head, sizeof head, "%s(", name);
    char *def = NULL;
    for (char *at = strstr(s, head); at; at = strstr(at + 1, head)) {
        if (at == s || (at[-1] != ' ' && at[-1] != '*')) continue; /* a longer name's tail */
        char *line = line_of(s, at);
        if (strncmp(line, "__device__ static inline ", 25) != 0) continue; /* a call */
        if (def) die("the kernel defines %s twice", name);
        def = line;
    }
    if (!def) die("the kernel no longer defines %s", name);
    char *e = strstr(def, "\n}\n");
    if (!e) die("no end to %s", name);
    *end = e + 3;
    return def;
}

/* Drops the definition of helper `name` from s. */
static char *cut_helper(char *s, const char *name)
{
    char *end, *def = find_helper(s, name, &end);
    memmove(def, end, strlen(end) + 1);
    return s;
}

/* The definitions of the helpers `names` in the file at path, one after
 * another (a new string). */
static char *borrow_helpers(const char *path, const char *const *names)
{
    char *src = slurp(path), *out = strdup("");
    for (const char *const *n = names; *n; n++) {
        char *end, *def = find_helper(src, *n, &end);
        size_t had = strlen(out), len = (size_t)(end - def);
        char *grown = realloc(out, had + len + 1);
        if (!grown) die("out of memory borrowing %s", *n);
        out = grown;
        memcpy(out + had, def, len), out[had + len] = '\0';
    }
    free(src);
    return out;
}

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 5) {
        fprintf(stderr,
                "usage: extract prefill|decode|sample|pgemm|rows KERNEL.cu OUT.inc [COMMON.cuh]\n");
        return 2;
    }
    const kernel *k = NULL;
    for (size_t i = 0; i < sizeof KERNELS / sizeof *KERNELS; i++)
        if (strcmp(argv[1], KERNELS[i].name) == 0) k = &KERNELS[i];
    if (!k) die("no kernel %s (prefill, decode, sample, pgemm or rows)", argv[1]);
    if (k->borrow && argc != 5) die("%s borrows helpers: name cuda_common.cuh", argv[1]);
    char *src = slurp(argv[2]), *b = strstr(src, k->begin), *e = b ? strstr(b, k->end) : NULL;
    if (!b || !e) die("%s lacks the markers of its kernel's span", argv[2]);
    *e = '\0';
    char *body = strdup(b);
    free(src);
    for (const char *const *c = k->cut; *c; c++)
        body = cut_helper(body, *c);
    if (k->shared) body = apply_swaps(body, k->shared);
    body = apply_swaps(body, k->swaps);
    char *helpers = k->borrow ? borrow_helpers(argv[4], k->borrow) : strdup("");
    FILE *out = fopen(argv[3], "w");
    if (!out || fputs(helpers, out) < 0 || fputs(body, out) < 0 || fclose(out) != 0)
        die("cannot write %s", argv[3]);
    free(helpers);
    free(body);
    return 0;
}
