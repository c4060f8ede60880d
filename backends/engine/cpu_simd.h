/*
 * cpu_simd.h - what the CPU device's kernel files share: whether the x86
 * AVX2 kernels are compiled, and their attributes (each kernel carries its
 * target, so the rest of the library builds for any x86-64).
 */
#ifndef SSFTEVAL_ENGINE_CPU_SIMD_H
#define SSFTEVAL_ENGINE_CPU_SIMD_H

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define SSF_CPU_X86 1
#include <immintrin.h>
/* complete unrolling keeps the accumulators in registers */
#define UNROLL _Pragma("GCC unroll 4")
#define UNROLL8 _Pragma("GCC unroll 8")
#define SSF_AVX2 __attribute__((target("avx2,fma")))
#define SSF_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline

#ifdef SSF_HAVE_LIBMVEC
/* glibc's AVX2 expf of 8 lanes (libmvec), by its vector-ABI name. */
/* NOLINTNEXTLINE(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp) */
SSF_AVX2 __m256 _ZGVdN8v_expf(__m256 x);
#define SSF_EXP8(x) _ZGVdN8v_expf(x)
#endif
#endif

#endif
