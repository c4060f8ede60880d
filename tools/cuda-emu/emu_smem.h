/*
 * emu_smem.h - the checked shared-memory load and store of the attention
 * emulators (prefill_emu.cpp, decode_emu.cpp), which extract.c's swaps put
 * in place of a kernel's raw accesses.  Include it after the emulator's
 * check_read(p, bytes) and check_write(p, bytes, async): its race and
 * in-flight checks, which differ between the emulators.
 */
#ifndef SSFTEVAL_CUDA_EMU_SMEM_H
#define SSFTEVAL_CUDA_EMU_SMEM_H

template <typename T> static T ld_sh(const T *p)
{
    check_read(p, (int)sizeof(T));
    return *p;
}

/* v as T: a kernel may store an int into a size_t slot */
template <typename T, typename V> static void st_sh(T *p, V v)
{
    check_write(p, (int)sizeof(T), false);
    *p = (T)v;
}

#endif
