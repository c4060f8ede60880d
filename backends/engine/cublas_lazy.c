/*
 * cublas_lazy.c - cuBLAS and cublasLt, loaded when the CUDA device first
 * calls them rather than when the program starts.
 *
 * Linked as libraries, the two cost every command about 0.1 s and 220 MB
 * at start-up (their static initialisers), `grade` and `report` included,
 * which never touch a GPU.  So the build does not link them: each function
 * the CUDA device calls is defined here under cuBLAS's own name and
 * signature, and forwards to the library's, found with dlopen and dlsym on
 * the first call.  When a library cannot be loaded, every call returns
 * CUBLAS_STATUS_NOT_INITIALIZED and cublasGetStatusString says why, so the
 * device's "cublas: ... failed: REASON" line names the library and the fix.
 *
 * The sonames follow the headers the build compiled against (libcublas.so.N
 * for CUBLAS_VER_MAJOR N), as the linked libraries did.  bench/gpu-check.sh,
 * which builds the device without meson, links cuBLAS and omits this file.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

/* CUDA's headers come in by -I, not as system headers, and cublasLt.h
 * declares a function without a prototype. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <cublasLt.h>
#include <cublas_api.h>
#pragma GCC diagnostic pop

#define STR_(x) #x
#define STR(x) STR_(x)
#define CUBLAS_SONAME "libcublas.so." STR(CUBLAS_VER_MAJOR)
#define CUBLASLT_SONAME "libcublasLt.so." STR(CUBLAS_VER_MAJOR)

/* Every function forwarded, with the library that defines it. */
#define CUBLAS_FUNCTIONS(X)                                                                        \
    X(blas, cublasCreate_v2)                                                                       \
    X(blas, cublasDestroy_v2)                                                                      \
    X(blas, cublasGemmEx)                                                                          \
    X(blas, cublasGetStatusString)                                                                 \
    X(blas, cublasSetStream_v2)                                                                    \
    X(blas, cublasSetWorkspace_v2)                                                                 \
    X(lt, cublasLtCreate)                                                                          \
    X(lt, cublasLtDestroy)                                                                         \
    X(lt, cublasLtMatmul)                                                                          \
    X(lt, cublasLtMatmulAlgoCapGetAttribute)                                                       \
    X(lt, cublasLtMatmulAlgoCheck)                                                                 \
    X(lt, cublasLtMatmulAlgoConfigGetAttribute)                                                    \
    X(lt, cublasLtMatmulAlgoConfigSetAttribute)                                                    \
    X(lt, cublasLtMatmulAlgoGetHeuristic)                                                          \
    X(lt, cublasLtMatmulDescInit_internal)                                                         \
    X(lt, cublasLtMatmulDescSetAttribute)                                                          \
    X(lt, cublasLtMatmulPreferenceInit_internal)                                                   \
    X(lt, cublasLtMatmulPreferenceSetAttribute)                                                    \
    X(lt, cublasLtMatrixLayoutInit_internal)

static struct {
#define POINTER(lib, name) __typeof__(name) *name; /* NOLINT(bugprone-macro-parentheses) */
    CUBLAS_FUNCTIONS(POINTER)
#undef POINTER
} real;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[512]; /* empty when both libraries and every symbol loaded */

static void *open_library(const char *soname)
{
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!h && !load_error[0])
        snprintf(load_error, sizeof load_error,
                 "%s could not be loaded (%s); put CUDA's lib64 on LD_LIBRARY_PATH", soname,
                 dlerror());
    return h;
}

/* dlsym hands back a void *: storing it through a void ** is POSIX's way
 * to a function pointer. */
static void resolve(void *lib, const char *soname, const char *name, void **slot)
{
    *slot = dlsym(lib, name);
    if (!*slot && !load_error[0])
        snprintf(load_error, sizeof load_error, "%s lacks %s; use the cuBLAS of CUDA %d", soname,
                 name, CUBLAS_VER_MAJOR);
}

static void load_libraries(void)
{
    void *blas = open_library(CUBLAS_SONAME), *lt = open_library(CUBLASLT_SONAME);
    if (load_error[0]) return;
#define RESOLVE(lib, name)                                                                         \
    resolve((lib), (lib) == blas ? CUBLAS_SONAME : CUBLASLT_SONAME, #name,                         \
            (void **)&real.name); /* NOLINT(bugprone-macro-parentheses) */
    CUBLAS_FUNCTIONS(RESOLVE)
#undef RESOLVE
}

/* Whether the libraries are there; otherwise load_error says why. */
static int loaded(void)
{
    pthread_once(&load_once, load_libraries);
    return load_error[0] == '\0';
}

#define FORWARD(name, ...) return loaded() ? real.name(__VA_ARGS__) : CUBLAS_STATUS_NOT_INITIALIZED

const char *CUBLASWINAPI cublasGetStatusString(cublasStatus_t status)
{
    return loaded() ? real.cublasGetStatusString(status) : load_error;
}

cublasStatus_t CUBLASWINAPI cublasCreate_v2(cublasHandle_t *handle)
{
    FORWARD(cublasCreate_v2, handle);
}

cublasStatus_t CUBLASWINAPI cublasDestroy_v2(cublasHandle_t handle)
{
    FORWARD(cublasDestroy_v2, handle);
}

cublasStatus_t CUBLASWINAPI cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream)
{
    FORWARD(cublasSetStream_v2, handle, stream);
}

cublasStatus_t CUBLASWINAPI cublasSetWorkspace_v2(cublasHandle_t handle, void *workspace,
                                                  size_t bytes)
{
    FORWARD(cublasSetWorkspace_v2, handle, workspace, bytes);
}

cublasStatus_t CUBLASWINAPI cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                                         cublasOperation_t transb, int m, int n, int k,
                                         const void *alpha, const void *A, cudaDataType Atype,
                                         int lda, const void *B, cudaDataType Btype, int ldb,
                                         const void *beta, void *C, cudaDataType Ctype, int ldc,
                                         cublasComputeType_t computeType, cublasGemmAlgo_t algo)
{
    FORWARD(cublasGemmEx, handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb,
            beta, C, Ctype, ldc, computeType, algo);
}

cublasStatus_t CUBLASWINAPI cublasLtCreate(cublasLtHandle_t *handle)
{
    FORWARD(cublasLtCreate, handle);
}

cublasStatus_t CUBLASWINAPI cublasLtDestroy(cublasLtHandle_t handle)
{
    FORWARD(cublasLtDestroy, handle);
}

/* The parameters as cublasLt.h names them. */
cublasStatus_t CUBLASWINAPI cublasLtMatmul(
    cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc, const void *alpha,
    const void *A, cublasLtMatrixLayout_t Adesc, const void *B, cublasLtMatrixLayout_t Bdesc,
    const void *beta, const void *C, cublasLtMatrixLayout_t Cdesc, void *D,
    cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t *algo, void *workspace,
    size_t workspaceSizeInBytes, cudaStream_t stream)
{
    FORWARD(cublasLtMatmul, lightHandle, computeDesc, alpha, A, Adesc, B, Bdesc, beta, C, Cdesc, D,
            Ddesc, algo, workspace, workspaceSizeInBytes, stream);
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulAlgoCapGetAttribute(
    const cublasLtMatmulAlgo_t *algo, cublasLtMatmulAlgoCapAttributes_t attr, void *buf,
    size_t bytes, size_t *written)
{
    FORWARD(cublasLtMatmulAlgoCapGetAttribute, algo, attr, buf, bytes, written);
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulAlgoCheck(
    cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t operationDesc, cublasLtMatrixLayout_t Adesc,
    cublasLtMatrixLayout_t Bdesc, cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
    const cublasLtMatmulAlgo_t *algo, cublasLtMatmulHeuristicResult_t *result)
{
    FORWARD(cublasLtMatmulAlgoCheck, lightHandle, operationDesc, Adesc, Bdesc, Cdesc, Ddesc, algo,
            result);
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulAlgoConfigSetAttribute(
    cublasLtMatmulAlgo_t *algo, cublasLtMatmulAlgoConfigAttributes_t attr, const void *buf,
    size_t bytes)
{
    FORWARD(cublasLtMatmulAlgoConfigSetAttribute, algo, attr, buf, bytes);
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulAlgoConfigGetAttribute(
    const cublasLtMatmulAlgo_t *algo, cublasLtMatmulAlgoConfigAttributes_t attr, void *buf,
    size_t bytes, size_t *written)
{
    FORWARD(cublasLtMatmulAlgoConfigGetAttribute, algo, attr, buf, bytes, written);
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulAlgoGetHeuristic(
    cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t operationDesc, cublasLtMatrixLayout_t Adesc,
    cublasLtMatrixLayout_t Bdesc, cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
    cublasLtMatmulPreference_t preference, int requestedAlgoCount,
    cublasLtMatmulHeuristicResult_t heuristicResultsArray[], int *returnAlgoCount)
{
    FORWARD(cublasLtMatmulAlgoGetHeuristic, lightHandle, operationDesc, Adesc, Bdesc, Cdesc, Ddesc,
            preference, requestedAlgoCount, heuristicResultsArray, returnAlgoCount);
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulDescInit_internal(cublasLtMatmulDesc_t desc, size_t size,
                                                            cublasComputeType_t compute,
                                                            cudaDataType_t scale)
{
    FORWARD(cublasLtMatmulDescInit_internal, desc, size, compute, scale);
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                                           cublasLtMatmulDescAttributes_t attr,
                                                           const void *buf, size_t bytes)
{
    FORWARD(cublasLtMatmulDescSetAttribute, desc, attr, buf, bytes);
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceInit_internal(cublasLtMatmulPreference_t pref,
                                                                  size_t size)
{
    FORWARD(cublasLtMatmulPreferenceInit_internal, pref, size);
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceSetAttribute(
    cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
    size_t bytes)
{
    FORWARD(cublasLtMatmulPreferenceSetAttribute, pref, attr, buf, bytes);
}

cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutInit_internal(cublasLtMatrixLayout_t layout,
                                                              size_t size, cudaDataType type,
                                                              uint64_t rows, uint64_t cols,
                                                              int64_t ld)
{
    FORWARD(cublasLtMatrixLayoutInit_internal, layout, size, type, rows, cols, ld);
}
