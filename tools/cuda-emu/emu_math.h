/*
 * emu_math.h - cuda_common.cuh's arithmetic helpers, from their spec, for
 * the emulators whose kernels call them: BF16 rounding, the RMSNorm's
 * pieces, SwiGLU's element and the rotate-half RoPE pair.  The device's
 * rsqrtf and expf may differ from the host's in the last bit; the
 * emulators hold kernels to references with tolerances, or to each other.
 */
#ifndef SSFTEVAL_CUDA_EMU_MATH_H
#define SSFTEVAL_CUDA_EMU_MATH_H

#include "emu.h"

#define EMU_MATH_UNUSED __attribute__((unused))

EMU_MATH_UNUSED static float rsqrtf(float v)
{
    return 1.0f / sqrtf(v);
}
EMU_MATH_UNUSED static float round_bf16(float v)
{
    return bf2f(f2bf(v));
}
EMU_MATH_UNUSED static float residual_add(float x, float add)
{
    return round_bf16(x + add);
}
EMU_MATH_UNUSED static float rms_rstd(float sum_sq, int n, float eps)
{
    return rsqrtf(sum_sq / (float)n + eps);
}
EMU_MATH_UNUSED static float rms_scaled(float x, float rstd, float gain)
{
    return round_bf16(x * rstd) * gain;
}
EMU_MATH_UNUSED static bf16 silu_times(float g, float u)
{
    float a = round_bf16(g / (1.0f + expf(-g)));
    return f2bf(a * u);
}
/* the products pinned as the device's __fmaf_rn and __fmul_rn pin them */
EMU_MATH_UNUSED static float2 rope_pair(float x1, float x2, float2 cs)
{
    return float2{round_bf16(fmaf(x1, cs.x, -(x2 * cs.y))), round_bf16(fmaf(x2, cs.x, x1 * cs.y))};
}

#endif
