/*
** cudadrv.h: the part of the NVIDIA CUDA driver API (libcuda.so.1) that
** cuda.c opens at run time with dlopen, so ltorch builds with no CUDA
** toolkit and one build runs on machines with and without a GPU. Types,
** constants and signatures follow NVIDIA's CUDA Driver API reference
** ("Data types used by CUDA driver", "Error Handling", "Initialization",
** "Device Management", "Primary Context Management", "Context Management",
** "Memory Management", "Stream Management"); the exported symbol of each
** entry point is the name in CUDRV_FUNCS (the _v2 symbols are the 64-bit
** forms cuda.h maps the plain names to since CUDA 3.2/4.0/11.0).
** Nothing here is code: one X-macro list of entry points, used by cuda.c
** for its table of function pointers and by spec/cuda/fake_cuda.c, the
** driver the specs run against on machines without a GPU.
*/
#ifndef CUDADRV_H
#define CUDADRV_H

#include <stddef.h>

typedef int CUresult;                       /* enum cudaError_enum */
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;     /* CUdeviceptr_v2 */
typedef struct CUctx_st *CUcontext;
typedef struct CUstream_st *CUstream;

enum {
  CUDA_SUCCESS = 0,
  CUDA_ERROR_INVALID_VALUE = 1,
  CUDA_ERROR_OUT_OF_MEMORY = 2,
  CUDA_ERROR_NOT_INITIALIZED = 3,
  CUDA_ERROR_NO_DEVICE = 100,
  CUDA_ERROR_INVALID_DEVICE = 101,
  CUDA_ERROR_INVALID_CONTEXT = 201,
  CUDA_ERROR_INVALID_HANDLE = 400,
};

#define CU_MEMHOSTALLOC_PORTABLE 0x01u      /* pinned memory usable from every context */
#define CU_STREAM_NON_BLOCKING 0x1u         /* no implicit sync with the NULL stream */

/* X(return, symbol, parameters) for each entry point ltorch calls */
#define CUDRV_FUNCS(X) \
  X(CUresult, cuInit, (unsigned int flags)) \
  X(CUresult, cuDriverGetVersion, (int *version)) \
  X(CUresult, cuGetErrorString, (CUresult error, const char **str)) \
  X(CUresult, cuDeviceGetCount, (int *count)) \
  X(CUresult, cuDeviceGet, (CUdevice *device, int ordinal)) \
  X(CUresult, cuDeviceGetName, (char *name, int len, CUdevice dev)) \
  X(CUresult, cuDeviceTotalMem_v2, (size_t *bytes, CUdevice dev)) \
  X(CUresult, cuDevicePrimaryCtxRetain, (CUcontext *ctx, CUdevice dev)) \
  X(CUresult, cuCtxSetCurrent, (CUcontext ctx)) \
  X(CUresult, cuMemAlloc_v2, (CUdeviceptr *dptr, size_t bytes)) \
  X(CUresult, cuMemFree_v2, (CUdeviceptr dptr)) \
  X(CUresult, cuMemHostAlloc, (void **p, size_t bytes, unsigned int flags)) \
  X(CUresult, cuMemFreeHost, (void *p)) \
  X(CUresult, cuMemsetD8_v2, (CUdeviceptr dst, unsigned char value, size_t n)) \
  X(CUresult, cuMemcpyHtoD_v2, (CUdeviceptr dst, const void *src, size_t n)) \
  X(CUresult, cuMemcpyDtoH_v2, (void *dst, CUdeviceptr src, size_t n)) \
  X(CUresult, cuMemcpyDtoD_v2, (CUdeviceptr dst, CUdeviceptr src, size_t n)) \
  X(CUresult, cuMemcpyHtoDAsync_v2, (CUdeviceptr dst, const void *src, size_t n, CUstream stream)) \
  X(CUresult, cuMemcpyDtoHAsync_v2, (void *dst, CUdeviceptr src, size_t n, CUstream stream)) \
  X(CUresult, cuStreamCreate, (CUstream *stream, unsigned int flags)) \
  X(CUresult, cuStreamSynchronize, (CUstream stream)) \
  X(CUresult, cuStreamDestroy_v2, (CUstream stream))

#endif
