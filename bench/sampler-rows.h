/*
 * sampler-rows.h - the logit rows the device sampler is checked on and the
 * distribution it must draw from them (sampler.c's filters, in double),
 * shared by bench/gpu_check.c (on a GPU) and tools/cuda-emu/sample_emu.cpp
 * (on the CPU), so that both hold the kernel to the same.  C and C++.
 */
#ifndef SSFTEVAL_SAMPLER_ROWS_H
#define SSFTEVAL_SAMPLER_ROWS_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "device.h" /* ssf_sample_spec */

/* Normal-ish logits (sum of 4 uniforms) times scale; padding rows high. */
static inline void fill_logits(float *x, int n, int n_valid, uint32_t seed, double scale)
{
    for (int i = 0; i < n; i++) {
        double u = 0;
        for (int j = 0; j < 4; j++) {
            seed = seed * 1664525u + 1013904223u;
            u += (seed >> 8) / 16777216.0;
        }
        x[i] = i < n_valid ? (float)((u - 2.0) * 1.7 * scale) : 50.0f;
    }
}

/* A language model's row: fill_logits' bulk with 32 ids raised 25 above it,
 * so that the bulk's weights at temperature 0.6 round to no mass at all
 * and top-p keeps a few tokens, as in a trained model's rows. */
static inline void fill_peaked_logits(float *x, int n, int n_valid, uint32_t seed)
{
    fill_logits(x, n, n_valid, seed, 3.0);
    for (int j = 0; j < 32; j++)
        x[(seed + (uint32_t)j * 4099u) % (uint32_t)n_valid] += 25.0f;
}

/* An uncertain language model's row: 300 ids within 3 of the maximum and
 * the rest of the vocabulary fill_logits' bulk 13 below it, which at
 * temperature 0.6 weighs 2^-23 to 2^-39 an id: mass, so that the gathered
 * path's first floor overflows, though top-p keeps only the first few
 * hundred (the bulk of 150,000 such ids weighs under 1% of the row). */
static inline void fill_tail_logits(float *x, int n, int n_valid, uint32_t seed)
{
    fill_logits(x, n, n_valid, seed, 1.0);
    for (int i = 0; i < n_valid; i++)
        x[i] -= 13.0f;
    uint32_t at = seed % (uint32_t)n_valid;
    for (int j = 0; j < 300 && j < n_valid; j++) { /* 4099 apart: distinct ids */
        seed = seed * 1664525u + 1013904223u;
        x[(at + (uint32_t)j * 4099u) % (uint32_t)n_valid] =
            j == 0 ? 0.0f : -3.0f * (float)(seed >> 16) / 65536.0f;
    }
}

/* Heaviest first, ties by id (sampler.c's order); w: the weights. */
static inline int by_weight(const void *a, const void *b, void *w)
{
    const double *sort_w = (const double *)w;
    int x = *(const int *)a, y = *(const int *)b;
    if (sort_w[x] != sort_w[y]) return sort_w[x] > sort_w[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* The distribution sampler.c's filters leave: sorted heaviest first, top-k,
 * the top-p prefix, min-p; p[i] = 0 for a dropped id. */
static inline void reference_dist(const float *x, int n, const ssf_sample_spec *sp, double *p)
{
    double max = -INFINITY, total = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]) && x[i] > max) max = x[i];
    int *order = (int *)malloc((size_t)n * sizeof(int) + 1), m = 0;
    if (!order) abort();
    for (int i = 0; i < n; i++) {
        p[i] = isfinite(x[i]) ? exp(((double)x[i] - max) / sp->temperature) : 0;
        if (p[i] > 0) order[m++] = i;
    }
    qsort_r(order, (size_t)m, sizeof(int), by_weight, p);
    int keep = sp->top_k > 0 && sp->top_k < m ? sp->top_k : m;
    for (int j = 0; j < keep; j++)
        total += p[order[j]];
    if (sp->top_p > 0 && sp->top_p < 1) {
        double mass = 0;
        for (int j = 0; j < keep; j++)
            if ((mass += p[order[j]]) >= sp->top_p * total) {
                keep = j + 1;
                break;
            }
    }
    for (int j = keep; j < m; j++)
        p[order[j]] = 0;
    for (int i = 0; i < n; i++)
        if (p[i] < sp->min_p) p[i] = 0;
    total = 0;
    for (int i = 0; i < n; i++)
        total += p[i];
    for (int i = 0; i < n; i++)
        p[i] /= total;
    free(order);
}

#endif
