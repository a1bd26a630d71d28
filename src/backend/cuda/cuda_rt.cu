/* cuda_rt.cu - the CUDA backend's runtime half: devices, the executor
 * (stream, cuBLAS handle, sticky error, scratch), memory and graphs. See
 * cuda.h for the contract; the kernels are in cuda_kern.cu. */
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <atomic>

#include "cuda_internal.h"

static std::atomic<uint64_t> g_allocated{0};

extern "C" int hl_cu_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear it */
        return 0;
    }
    return n;
}

extern "C" const char *hl_cu_unavailable_reason(void) {
    int n = 0;
    cudaError_t rc = cudaGetDeviceCount(&n);
    if (rc != cudaSuccess) {
        cudaGetLastError();
        return cudaGetErrorString(rc);
    }
    return n ? "" : "no CUDA device";
}

extern "C" int hl_cu_device_info(int device, hl_cu_info *info, hl_err *e) {
    cudaDeviceProp p;
    cudaError_t rc = cudaGetDeviceProperties(&p, device);
    if (rc != cudaSuccess) return hl_errf(e, "cuda: device %d: %s", device, cudaGetErrorString(rc));
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "%s", p.name);
    info->cc_major = p.major;
    info->cc_minor = p.minor;
    info->n_sm = p.multiProcessorCount;
    int clock_khz = 0, bus = 0;
    cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device);
    cudaDeviceGetAttribute(&bus, cudaDevAttrGlobalMemoryBusWidth, device);
    info->bandwidth = 2.0 * (double)clock_khz * 1e3 * (double)bus / 8.0;
    int cur = 0;
    cudaGetDevice(&cur);
    if (cudaSetDevice(device) == cudaSuccess) {
        size_t fr = 0, tot = 0;
        if (cudaMemGetInfo(&fr, &tot) == cudaSuccess) {
            info->mem_free = fr;
            info->mem_total = tot;
        }
        cudaSetDevice(cur);
    }
    cudaGetLastError();
    return 0;
}

extern "C" bool hl_cu_supports(hl_dtype t, int n_in) {
    if (n_in <= 0 || n_in % 32) return false;
    switch (t) {
    case HL_F32: case HL_F16: case HL_BF16: case HL_Q4_0: case HL_Q4_1: case HL_Q5_0:
    case HL_Q5_1: case HL_Q8_0:
        return true;
    case HL_Q2_K: case HL_Q3_K: case HL_Q4_K: case HL_Q5_K: case HL_Q6_K:
        return n_in % 256 == 0;
    default:
        return false;
    }
}

int hl_cu_set_error(hl_cu *cu, cudaError_t rc, const char *what) {
    if (rc == cudaSuccess) return 0;
    if (!cu->failed) {
        cu->failed = true;
        snprintf(cu->err, sizeof cu->err, "cuda: %s: %s", what, cudaGetErrorString(rc));
    }
    return -1;
}

void hl_cu_after_launch(hl_cu *cu, const char *what) {
    cudaError_t rc = cudaGetLastError();
    if (rc != cudaSuccess) hl_cu_set_error(cu, rc, what);
}

static int take_error(hl_cu *cu, hl_err *e) {
    if (!cu->failed) return 0;
    return hl_errf(e, "%s", cu->err);
}

extern "C" int hl_cu_new(hl_cu **out, int device, hl_err *e) {
    *out = NULL;
    int n = hl_cu_device_count();
    if (device < 0 || device >= n)
        return hl_errf(e, "cuda: no device %d (%d found: %s)", device, n,
                       n ? "" : hl_cu_unavailable_reason());
    cudaError_t rc = cudaSetDevice(device);
    if (rc != cudaSuccess) return hl_errf(e, "cuda: device %d: %s", device, cudaGetErrorString(rc));
    hl_cu *cu = (hl_cu *)calloc(1, sizeof *cu);
    if (!cu) return hl_errf(e, "cuda: out of memory");
    cu->device = device;
    rc = cudaStreamCreateWithFlags(&cu->stream, cudaStreamNonBlocking);
    if (rc != cudaSuccess) {
        free(cu);
        return hl_errf(e, "cuda: cannot create a stream: %s", cudaGetErrorString(rc));
    }
    cublasStatus_t bs = cublasCreate(&cu->blas);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        cudaStreamDestroy(cu->stream);
        free(cu);
        return hl_errf(e, "cuda: cublasCreate failed (status %d)", (int)bs);
    }
    cublasSetStream(cu->blas, cu->stream);
    /* A fixed workspace, so cuBLAS allocates nothing while a graph records. */
    cu->blas_ws_bytes = 32u << 20;
    if (cudaMalloc(&cu->blas_ws, cu->blas_ws_bytes) != cudaSuccess ||
        cublasSetWorkspace(cu->blas, cu->blas_ws, cu->blas_ws_bytes) != CUBLAS_STATUS_SUCCESS) {
        cudaGetLastError();
        hl_cu_free(cu);
        return hl_errf(e, "cuda: cannot allocate the cuBLAS workspace");
    }
    /* HL_CUDA_OVERLAP (bits of c_overlap in cuda_kern.cu) is for A/B runs */
    const char *ov = getenv("HL_CUDA_OVERLAP");
    hl_cu_set_overlap(ov ? atoi(ov) : -1);
    *out = cu;
    return 0;
}

extern "C" void hl_cu_free(hl_cu *cu) {
    if (!cu) return;
    cudaSetDevice(cu->device);
    if (cu->stream) cudaStreamSynchronize(cu->stream);
    if (cu->blas) cublasDestroy(cu->blas);
    cudaFree(cu->blas_ws);
    hl_cu_dealloc(cu->wh);
    hl_cu_dealloc(cu->xh);
    hl_cu_dealloc(cu->q8);
    hl_cu_dealloc(cu->q8ds);
    if (cu->stream) cudaStreamDestroy(cu->stream);
    cudaGetLastError();
    free(cu);
}

extern "C" void hl_cu_bind(hl_cu *cu) {
    int cur = -1;
    if (cudaGetDevice(&cur) != cudaSuccess || cur != cu->device)
        hl_cu_set_error(cu, cudaSetDevice(cu->device), "select device");
}

/* Each allocation carries its size in a 256-byte header (keeping the
 * pointer's 256-byte alignment), so hl_cu_allocated can count frees. */
#define HDR 256
extern "C" void *hl_cu_alloc(hl_cu *cu, size_t bytes, hl_err *e) {
    if (cu) cudaSetDevice(cu->device);
    void *p = NULL;
    cudaError_t rc = cudaMalloc(&p, bytes + HDR + 64); /* tail: kernels may read whole 16-byte words past a row */
    if (rc != cudaSuccess) {
        cudaGetLastError();
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        hl_errf(e, "cuda: cannot allocate %.1f MiB of device memory (%.1f MiB free of %.1f): %s",
                (double)bytes / (1 << 20), (double)fr / (1 << 20), (double)tot / (1 << 20),
                cudaGetErrorString(rc));
        return NULL;
    }
    size_t sz = bytes;
    if (cudaMemcpy(p, &sz, sizeof sz, cudaMemcpyHostToDevice) != cudaSuccess) {
        cudaGetLastError();
        cudaFree(p);
        hl_errf(e, "cuda: cannot write device memory");
        return NULL;
    }
    g_allocated += bytes;
    return (char *)p + HDR;
}

extern "C" void hl_cu_dealloc(void *dev) {
    if (!dev) return;
    void *p = (char *)dev - HDR;
    size_t sz = 0;
    if (cudaMemcpy(&sz, p, sizeof sz, cudaMemcpyDeviceToHost) == cudaSuccess) g_allocated -= sz;
    cudaFree(p);
    cudaGetLastError();
}

extern "C" uint64_t hl_cu_allocated(void) { return g_allocated.load(); }

extern "C" void *hl_cu_host_alloc(size_t bytes, hl_err *e) {
    void *p = NULL;
    cudaError_t rc = cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocDefault);
    if (rc != cudaSuccess) {
        cudaGetLastError();
        hl_errf(e, "cuda: cannot allocate %.1f MiB of pinned host memory: %s",
                (double)bytes / (1 << 20), cudaGetErrorString(rc));
        return NULL;
    }
    return p;
}

extern "C" void hl_cu_host_free(void *p) {
    if (p) cudaFreeHost(p);
}

extern "C" int hl_cu_upload(hl_cu *cu, void *dev, const void *host, size_t bytes, hl_err *e) {
    /* cudaMemcpy from pageable memory may return before the copy lands, and
     * executors' streams do not wait for the default stream: synchronize */
    cudaError_t rc = cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice);
    if (rc == cudaSuccess) rc = cudaDeviceSynchronize();
    if (rc != cudaSuccess) {
        cudaGetLastError();
        (void)cu;
        return hl_errf(e, "cuda: upload of %.1f MiB failed: %s", (double)bytes / (1 << 20),
                       cudaGetErrorString(rc));
    }
    return 0;
}

extern "C" int hl_cu_upload_rows(hl_cu *cu, void *dev, size_t dpitch, const void *host, size_t spitch,
                                 size_t width, size_t rows, hl_err *e) {
    cudaError_t rc = cudaMemcpy2D(dev, dpitch, host, spitch, width, rows, cudaMemcpyHostToDevice);
    if (rc == cudaSuccess) rc = cudaDeviceSynchronize(); /* as hl_cu_upload */
    if (rc != cudaSuccess) {
        cudaGetLastError();
        (void)cu;
        return hl_errf(e, "cuda: upload of %zu rows of %zu bytes failed: %s", rows, width,
                       cudaGetErrorString(rc));
    }
    return 0;
}

extern "C" void hl_cu_copy_h2d(hl_cu *cu, void *dev, const void *host, size_t bytes) {
    hl_cu_set_error(cu, cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, cu->stream),
                    "copy to device");
}

extern "C" void hl_cu_copy_d2h(hl_cu *cu, void *host, const void *dev, size_t bytes) {
    hl_cu_set_error(cu, cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, cu->stream),
                    "copy to host");
}

extern "C" void hl_cu_memset(hl_cu *cu, void *dev, int byte, size_t bytes) {
    hl_cu_set_error(cu, cudaMemsetAsync(dev, byte, bytes, cu->stream), "memset");
}

extern "C" int hl_cu_sync(hl_cu *cu, hl_err *e) {
    hl_cu_set_error(cu, cudaStreamSynchronize(cu->stream), "synchronize");
    return take_error(cu, e);
}

extern "C" int hl_cu_reserve(hl_cu *cu, size_t max_weights, int max_tok, int max_in, hl_err *e) {
    size_t xh = (size_t)max_tok * (size_t)max_in;
    if (max_weights > cu->wh_elems) {
        hl_cu_dealloc(cu->wh);
        cu->wh_elems = 0;
        if (!(cu->wh = (__half *)hl_cu_alloc(cu, max_weights * sizeof(__half), e))) return -1;
        cu->wh_elems = max_weights;
    }
    if (xh > cu->xh_elems) {
        hl_cu_dealloc(cu->xh);
        cu->xh_elems = 0;
        if (!(cu->xh = (__half *)hl_cu_alloc(cu, xh * sizeof(__half), e))) return -1;
        cu->xh_elems = xh;
    }
    size_t q8 = 8 * (size_t)max_in;
    if (q8 > cu->q8_elems) {
        hl_cu_dealloc(cu->q8);
        hl_cu_dealloc(cu->q8ds);
        cu->q8 = NULL, cu->q8ds = NULL, cu->q8_elems = 0;
        if (!(cu->q8 = (int8_t *)hl_cu_alloc(cu, q8, e)) ||
            !(cu->q8ds = (float *)hl_cu_alloc(cu, q8 / 32 * 2 * sizeof(float), e)))
            return -1;
        cu->q8_elems = q8;
    }
    return 0;
}

struct hl_cu_graph {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
};

extern "C" int hl_cu_graph_begin(hl_cu *cu, hl_err *e) {
    if (take_error(cu, e) < 0) return -1;
    cudaError_t rc = cudaStreamBeginCapture(cu->stream, cudaStreamCaptureModeThreadLocal);
    if (rc != cudaSuccess) {
        cudaGetLastError();
        return hl_errf(e, "cuda: cannot start a graph capture: %s", cudaGetErrorString(rc));
    }
    return 0;
}

extern "C" int hl_cu_graph_end(hl_cu *cu, hl_cu_graph **out, hl_err *e) {
    *out = NULL;
    cudaGraph_t g = NULL;
    cudaError_t rc = cudaStreamEndCapture(cu->stream, &g);
    if (rc != cudaSuccess || cu->failed) {
        cudaGetLastError();
        if (g) cudaGraphDestroy(g);
        cu->failed = false; /* a failed capture leaves the executor usable */
        return hl_errf(e, "cuda: graph capture failed: %s",
                       rc != cudaSuccess ? cudaGetErrorString(rc) : cu->err);
    }
    hl_cu_graph *h = (hl_cu_graph *)calloc(1, sizeof *h);
    if (!h) {
        cudaGraphDestroy(g);
        return hl_errf(e, "cuda: out of memory");
    }
    h->graph = g;
    rc = cudaGraphInstantiate(&h->exec, g, 0);
    if (rc != cudaSuccess) {
        cudaGetLastError();
        cudaGraphDestroy(g);
        free(h);
        return hl_errf(e, "cuda: cannot instantiate a graph: %s", cudaGetErrorString(rc));
    }
    *out = h;
    return 0;
}

extern "C" int hl_cu_graph_launch(hl_cu *cu, hl_cu_graph *g, hl_err *e) {
    hl_cu_set_error(cu, cudaGraphLaunch(g->exec, cu->stream), "graph launch");
    return take_error(cu, e);
}

extern "C" void hl_cu_graph_free(hl_cu_graph *g) {
    if (!g) return;
    cudaGraphExecDestroy(g->exec);
    cudaGraphDestroy(g->graph);
    free(g);
}

/* Device-to-device copies of 1 GiB, best of 5, counting bytes read plus
 * bytes written: the ceiling a memory-bound kernel can approach. */
extern "C" double hl_cu_copy_bandwidth(int device) {
    if (cudaSetDevice(device) != cudaSuccess) return 0;
    const size_t bytes = (size_t)1 << 30;
    void *a = NULL, *b = NULL;
    double best = 0;
    cudaEvent_t e0, e1;
    if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) goto out;
    cudaMemset(a, 1, bytes);
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    for (int r = 0; r < 6; r++) {
        cudaEventRecord(e0);
        cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
        cudaEventRecord(e1);
        cudaEventSynchronize(e1);
        float ms = 0;
        cudaEventElapsedTime(&ms, e0, e1);
        if (r > 0 && ms > 0 && 2.0 * bytes / (ms * 1e-3) > best) best = 2.0 * bytes / (ms * 1e-3);
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
out:
    cudaFree(a);
    cudaFree(b);
    cudaGetLastError();
    return best;
}
