/*
** cuda.c: device storages through the NVIDIA driver API, opened at run time.
** The driver (libcuda.so.1, or the library named by LTORCH_CUDA_DRIVER) is
** opened with dlopen on first use, so one build runs on machines with and
** without a GPU; without a driver or device every call fails with a message
** saying so. cudadrv.h lists the entry points.
**
** A device storage is an lt_storage with device LT_CUDA: data holds the
** CUdeviceptr, never dereferenced on the host. Copies between host and
** device go through two pinned staging buffers of STAGE bytes and two
** streams per device: chunk n+1 is copied into one buffer while the device
** copies chunk n out of the other (a transfer: lt_cuda_xfer). Small
** tensors share a buffer, so a state dict of thousands of them costs a few
** stream syncs, not one per tensor. One transfer runs at a time (the
** staging buffers are the process's); lua_States in several threads wait
** for each other here.
**
** Each device's primary context is retained on first use and made current
** on the calling thread before every driver call (contexts are per thread
** in the driver API).
** Layer: above storage (it makes storages), below deferred, the formats and
** the bindings.
*/
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cudadrv.h"
#include "lt.h"

#define STAGE ((size_t)8 << 20)   /* bytes per staging buffer */
#define MAX_DEVICES 64

static struct {
#define X(ret, name, args) ret (*name) args;
  CUDRV_FUNCS(X)
#undef X
} drv;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char init_err[LT_MSG];     /* why CUDA cannot be used; "" when it can */
static int ndev;

typedef struct devstate {
  CUcontext ctx;
  CUstream stream[2];
} devstate;
static devstate devs[MAX_DEVICES];
static pthread_mutex_t dev_mu = PTHREAD_MUTEX_INITIALIZER;   /* devs[] setup */
static pthread_mutex_t xfer_mu = PTHREAD_MUTEX_INITIALIZER;  /* the staging buffers */
static void *stage[2];
static atomic_size_t live_bytes;
static atomic_size_t live_storages;   /* zero: no tensor of this process is on a device */

static const char *errname(CUresult r) {
  const char *s = NULL;
  if (drv.cuGetErrorString && drv.cuGetErrorString(r, &s) == CUDA_SUCCESS && s) return s;
  return "unknown error";
}

static int drv_fail(char *err, const char *call, int dev, CUresult r) {
  if (dev >= 0) snprintf(err, LT_MSG, "CUDA error in %s on cuda:%d: %s (%d)", call, dev, errname(r), r);
  else snprintf(err, LT_MSG, "CUDA error in %s: %s (%d)", call, errname(r), r);
  return -1;
}

static void open_driver(void) {
  const char *path = getenv("LTORCH_CUDA_DRIVER");
  if (!path || !*path) path = "libcuda.so.1";
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    snprintf(init_err, sizeof init_err, "CUDA is not available: the NVIDIA driver library (%s) "
             "cannot be opened: %s", path, dlerror());
    return;
  }
#define X(ret, name, args) \
  *(void **)&drv.name = dlsym(h, #name); \
  if (!drv.name) { \
    snprintf(init_err, sizeof init_err, "CUDA is not available: %s has no %s (driver too old?)", path, #name); \
    memset(&drv, 0, sizeof drv); \
    return; \
  }
  CUDRV_FUNCS(X)
#undef X
  CUresult r = drv.cuInit(0);
  if (r == CUDA_ERROR_NO_DEVICE) {
    snprintf(init_err, sizeof init_err, "CUDA is not available: no CUDA-capable device is detected");
    return;
  }
  if (r != CUDA_SUCCESS) {
    drv_fail(init_err, "cuInit", -1, r);
    return;
  }
  int n = 0;
  r = drv.cuDeviceGetCount(&n);
  if (r != CUDA_SUCCESS) { drv_fail(init_err, "cuDeviceGetCount", -1, r); return; }
  if (n <= 0) {
    snprintf(init_err, sizeof init_err, "CUDA is not available: no CUDA-capable device is detected");
    return;
  }
  ndev = n > MAX_DEVICES ? MAX_DEVICES : n;
}

int lt_cuda_count(char *err) {
  pthread_once(&once, open_driver);
  if (ndev == 0) {
    if (err) snprintf(err, LT_MSG, "%s", init_err);
    return -1;
  }
  return ndev;
}

/* make dev's context current on this thread, retaining it on first use */
static int use_device(int dev, char *err) {
  if (lt_cuda_count(err) < 0) return -1;
  if (dev < 0 || dev >= ndev) {
    snprintf(err, LT_MSG, "CUDA device cuda:%d does not exist (%d device%s)", dev, ndev, ndev == 1 ? "" : "s");
    return -1;
  }
  pthread_mutex_lock(&dev_mu);
  CUresult r = CUDA_SUCCESS;
  const char *call = NULL;
  if (!devs[dev].ctx) {
    CUdevice d;
    if ((r = drv.cuDeviceGet(&d, dev)) != CUDA_SUCCESS) call = "cuDeviceGet";
    else if ((r = drv.cuDevicePrimaryCtxRetain(&devs[dev].ctx, d)) != CUDA_SUCCESS) call = "cuDevicePrimaryCtxRetain";
  }
  if (!call && (r = drv.cuCtxSetCurrent(devs[dev].ctx)) != CUDA_SUCCESS) call = "cuCtxSetCurrent";
  for (int i = 0; !call && i < 2; i++)
    if (!devs[dev].stream[i] && (r = drv.cuStreamCreate(&devs[dev].stream[i], CU_STREAM_NON_BLOCKING)) != CUDA_SUCCESS)
      call = "cuStreamCreate";
  pthread_mutex_unlock(&dev_mu);
  return call ? drv_fail(err, call, dev, r) : 0;
}

int lt_cuda_device_name(int dev, char *name, size_t len, char *err) {
  if (use_device(dev, err)) return -1;
  CUdevice d;
  CUresult r = drv.cuDeviceGet(&d, dev);
  if (r == CUDA_SUCCESS) r = drv.cuDeviceGetName(name, (int)len, d);
  return r == CUDA_SUCCESS ? 0 : drv_fail(err, "cuDeviceGetName", dev, r);
}

size_t lt_cuda_live_bytes(void) { return atomic_load(&live_bytes); }
size_t lt_cuda_live_storages(void) { return atomic_load(&live_storages); }

static CUdeviceptr dptr(const lt_storage *s) { return (CUdeviceptr)(uintptr_t)s->data; }

static void device_release(lt_storage *s) {
  char err[LT_MSG];
  if (s->nbytes && use_device(s->device_index, err) == 0) drv.cuMemFree_v2(dptr(s));
  atomic_fetch_sub(&live_bytes, s->nbytes);
  atomic_fetch_sub(&live_storages, 1);
}

lt_storage *lt_cuda_alloc(int dev, size_t nbytes, int zero, char *err) {
  if (use_device(dev, err)) return NULL;
  CUdeviceptr p = 0;
  if (nbytes) {
    CUresult r = drv.cuMemAlloc_v2(&p, nbytes);
    if (r == CUDA_ERROR_OUT_OF_MEMORY) {
      snprintf(err, LT_MSG, "CUDA out of memory on cuda:%d: %zu bytes could not be allocated", dev, nbytes);
      return NULL;
    }
    if (r != CUDA_SUCCESS) { drv_fail(err, "cuMemAlloc", dev, r); return NULL; }
    if (zero && (r = drv.cuMemsetD8_v2(p, 0, nbytes)) != CUDA_SUCCESS) {
      drv.cuMemFree_v2(p);
      drv_fail(err, "cuMemsetD8", dev, r);
      return NULL;
    }
  }
  lt_storage *s = lt_storage_wrap((void *)(uintptr_t)p, nbytes, device_release, NULL);
  if (!s) {
    if (p) drv.cuMemFree_v2(p);
    snprintf(err, LT_MSG, "out of memory");
    return NULL;
  }
  s->device = LT_CUDA;
  s->device_index = dev;
  atomic_fetch_add(&live_bytes, nbytes);
  atomic_fetch_add(&live_storages, 1);
  return s;
}

/* ---- transfers through the staging buffers ---------------------------------- */

int lt_cuda_xfer_begin(lt_cuda_xfer *x, int dev, char *err) {
  memset(x, 0, sizeof *x);
  x->dev = dev;
  x->err = err;
  if (use_device(dev, err)) return -1;
  pthread_mutex_lock(&xfer_mu);
  for (int i = 0; i < 2; i++) {
    if (stage[i]) continue;
    CUresult r = drv.cuMemHostAlloc(&stage[i], STAGE, CU_MEMHOSTALLOC_PORTABLE);
    if (r != CUDA_SUCCESS) {
      stage[i] = NULL;
      pthread_mutex_unlock(&xfer_mu);
      return drv_fail(err, "cuMemHostAlloc", dev, r);
    }
  }
  x->locked = 1;
  return 0;
}

/* wait for buffer i's copies; after it, the buffer may be refilled */
static int drain(lt_cuda_xfer *x, int i) {
  if (!x->pending[i]) return 0;
  x->pending[i] = 0;
  CUresult r = drv.cuStreamSynchronize(devs[x->dev].stream[i]);
  if (r != CUDA_SUCCESS) { x->failed = 1; return drv_fail(x->err, "cuStreamSynchronize", x->dev, r); }
  /* device to host: the chunks waiting in buffer i go to their places */
  for (size_t k = 0; k < x->nout[i]; k++) memcpy(x->out[i][k].dst, x->out[i][k].src, x->out[i][k].n);
  x->nout[i] = 0;
  return 0;
}

/* room for n bytes in the current buffer (n <= STAGE), switching buffers
   when it is full */
static char *room(lt_cuda_xfer *x, size_t n) {
  if (x->pos + n > STAGE || (x->nout[x->cur] == LT_CUDA_XFER_OUT)) {
    x->cur ^= 1;
    x->pos = 0;
    if (drain(x, x->cur)) return NULL;
  }
  char *p = (char *)stage[x->cur] + x->pos;
  x->pos += n;
  return p;
}

int lt_cuda_xfer_h2d(lt_cuda_xfer *x, lt_storage *dst, size_t off, const void *src, size_t n) {
  if (x->failed) return -1;
  if (off > dst->nbytes || n > dst->nbytes - off) {
    x->failed = 1;
    snprintf(x->err, LT_MSG, "copy to the GPU of %zu bytes at %zu: outside the storage of %zu bytes", n, off, dst->nbytes);
    return -1;
  }
  const char *s = src;
  while (n) {
    size_t c = n < STAGE ? n : STAGE;
    char *b = room(x, c);
    if (!b) return -1;
    memcpy(b, s, c);
    CUresult r = drv.cuMemcpyHtoDAsync_v2(dptr(dst) + off, b, c, devs[x->dev].stream[x->cur]);
    if (r != CUDA_SUCCESS) { x->failed = 1; return drv_fail(x->err, "cuMemcpyHtoDAsync", x->dev, r); }
    x->pending[x->cur] = 1;
    s += c, off += c, n -= c;
  }
  return 0;
}

int lt_cuda_xfer_d2h(lt_cuda_xfer *x, void *dst, const lt_storage *src, size_t off, size_t n) {
  if (x->failed) return -1;
  if (off > src->nbytes || n > src->nbytes - off) {
    x->failed = 1;
    snprintf(x->err, LT_MSG, "copy from the GPU of %zu bytes at %zu: outside the storage of %zu bytes", n, off, src->nbytes);
    return -1;
  }
  char *d = dst;
  while (n) {
    size_t c = n < STAGE ? n : STAGE;
    char *b = room(x, c);
    if (!b) return -1;
    CUresult r = drv.cuMemcpyDtoHAsync_v2(b, dptr(src) + off, c, devs[x->dev].stream[x->cur]);
    if (r != CUDA_SUCCESS) { x->failed = 1; return drv_fail(x->err, "cuMemcpyDtoHAsync", x->dev, r); }
    x->pending[x->cur] = 1;
    x->out[x->cur][x->nout[x->cur]++] = (struct lt_cuda_out){d, b, c};
    d += c, off += c, n -= c;
  }
  return 0;
}

/* waits for every copy; returns -1 when any step failed (x->err says why) */
int lt_cuda_xfer_end(lt_cuda_xfer *x) {
  if (!x->locked) return -1;
  int rc = x->failed ? -1 : 0;
  for (int i = 0; i < 2; i++) {
    if (x->failed) {   /* still wait: the buffers are reused by the next transfer */
      if (x->pending[i]) drv.cuStreamSynchronize(devs[x->dev].stream[i]);
      x->pending[i] = 0;
    } else if (drain(x, i)) rc = -1;
  }
  x->locked = 0;
  pthread_mutex_unlock(&xfer_mu);
  return rc;
}

int lt_cuda_d2d(lt_storage *dst, size_t doff, const lt_storage *src, size_t soff, size_t n, char *err) {
  if (n == 0) return 0;
  if (doff > dst->nbytes || n > dst->nbytes - doff || soff > src->nbytes || n > src->nbytes - soff) {
    snprintf(err, LT_MSG, "GPU copy of %zu bytes: outside a storage", n);
    return -1;
  }
  if (dst->device_index == src->device_index) {
    if (use_device(dst->device_index, err)) return -1;
    CUresult r = drv.cuMemcpyDtoD_v2(dptr(dst) + doff, dptr(src) + soff, n);
    return r == CUDA_SUCCESS ? 0 : drv_fail(err, "cuMemcpyDtoD", dst->device_index, r);
  }
  /* between devices: through host memory, a staging buffer at a time */
  void *tmp = malloc(n < STAGE ? n : STAGE);
  if (!tmp) { snprintf(err, LT_MSG, "out of memory"); return -1; }
  int rc = 0;
  for (size_t at = 0; at < n && rc == 0;) {
    size_t c = n - at < STAGE ? n - at : STAGE;
    lt_cuda_xfer x;
    if (lt_cuda_xfer_begin(&x, src->device_index, err)) { rc = -1; break; }
    lt_cuda_xfer_d2h(&x, tmp, src, soff + at, c);
    if (lt_cuda_xfer_end(&x)) { rc = -1; break; }
    if (lt_cuda_xfer_begin(&x, dst->device_index, err)) { rc = -1; break; }
    lt_cuda_xfer_h2d(&x, dst, doff + at, tmp, c);
    if (lt_cuda_xfer_end(&x)) rc = -1;
    at += c;
  }
  free(tmp);
  return rc;
}

/* seconds for n bytes (rounded up to whole staging buffers) copied from a
   pinned staging buffer to the device with synchronous copies: the
   host-to-device bandwidth a load through the buffers can reach (make bench) */
double lt_cuda_pinned_h2d_seconds(int dev, size_t n, char *err) {
  lt_cuda_xfer x;
  if (lt_cuda_xfer_begin(&x, dev, err)) return -1;
  lt_cuda_xfer_end(&x);   /* the staging buffers exist now */
  CUdeviceptr d = 0;
  CUresult r = drv.cuMemAlloc_v2(&d, STAGE);
  if (r != CUDA_SUCCESS) return drv_fail(err, "cuMemAlloc", dev, r);
  pthread_mutex_lock(&xfer_mu);
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (size_t done = 0; done < n && r == CUDA_SUCCESS; done += STAGE)
    r = drv.cuMemcpyHtoD_v2(d, stage[0], STAGE);
  clock_gettime(CLOCK_MONOTONIC, &b);
  pthread_mutex_unlock(&xfer_mu);
  drv.cuMemFree_v2(d);
  if (r != CUDA_SUCCESS) return drv_fail(err, "cuMemcpyHtoD", dev, r);
  return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
}
