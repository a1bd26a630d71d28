/* cuda_internal.h - what the backend's two translation units share: the
 * executor's fields and the error helpers. Not part of the interface. */
#ifndef HL_CUDA_INTERNAL_H
#define HL_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

extern "C" {
#include "../../util/dtype.h"
#include "../../util/err.h"
}
#include "cuda.h"

struct hl_cu {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_ws;
    size_t blas_ws_bytes;
    __half *wh, *xh; /* f16 scratch of the cuBLAS path */
    size_t wh_elems, xh_elems;
    int8_t *q8;  /* int8 activations the matmul makes itself */
    float *q8ds;
    size_t q8_elems;
    bool failed;
    char err[HL_ERR_MSG_MAX];
};

/* Records the first failure on the executor; returns -1 on failure. */
int hl_cu_set_error(hl_cu *cu, cudaError_t rc, const char *what);
/* How far kernels overlap their predecessors (cuda_kern.cu's c_overlap;
 * mode < 0: the default); per device, set by hl_cu_new. */
extern "C" void hl_cu_set_overlap(int mode);
/* Checks the last launch. */
void hl_cu_after_launch(hl_cu *cu, const char *what);

#endif
