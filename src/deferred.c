/*
** deferred.c: storages whose bytes stay in their file until first used.
** A load with mmap = true makes one for each record that cannot be mapped
** as it is: a deflated zip entry (.npz, or a rare compressed .pt record), a
** record whose offset does not suit its dtype (legacy .pt, TorchSharp,
** numpy's .npz), or big-endian data. The Lua binding fills a storage when a
** tensor over it is first used for its data (lt_check), and writers that
** stream (convert) evict it once written, so a conversion holds about one
** tensor. Reads use the storage's own descriptor with pread: no pages of the
** file are mapped, and a truncated file is an error, not SIGBUS.
** Layer: above rawio (its range reader reads the bytes, its streamed writer
** writes them: lt_write_tensor_as), below the containers and formats.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "lt.h"
#include "rawio.h"

struct lt_deferred {
  lt_file *f;           /* NULL for a shadow of a device storage */
  lt_storage *dev;      /* that device storage (lt_storage_from_device) */
  lt_source src;
  char *what;
};

lt_file *lt_file_new(int fd, const char *path) {
  lt_file *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  f->remote = lt_remote_find(fd);
  f->path = strdup(f->remote ? lt_remote_url(f->remote) : path);   /* errors name the URL */
  f->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (!f->path || f->fd < 0) {
    if (f->fd >= 0) close(f->fd);
    lt_remote_release(f->remote);
    free(f->path);
    free(f);
    return NULL;
  }
  atomic_init(&f->refs, 1);
  return f;
}

void lt_file_release(lt_file *f) {
  if (!f) return;
  if (atomic_fetch_sub(&f->refs, 1) == 1) {
    close(f->fd);
    lt_remote_release(f->remote);
    free(f->path);
    free(f);
  }
}

static void deferred_release(lt_storage *s) {
  struct lt_deferred *d = s->deferred;
  lt_storage_evict(s);
  lt_file_release(d->f);
  lt_storage_release(d->dev);
  free(d->what);
  free(d);
}

lt_storage *lt_storage_deferred(lt_file *f, size_t nbytes, const lt_source *src) {
  struct lt_deferred *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  d->what = strdup(src->what ? src->what : "data");
  lt_storage *s = d->what ? lt_storage_wrap(NULL, nbytes, deferred_release, NULL) : NULL;
  if (!s) { free(d->what); free(d); return NULL; }
  d->src = *src;
  d->src.what = d->what;
  d->f = f;
  atomic_fetch_add(&f->refs, 1);
  s->deferred = d;
  return s;
}

lt_storage *lt_storage_from_device(lt_storage *dev) {
  struct lt_deferred *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  d->what = strdup("a tensor on the GPU");
  lt_storage *s = d->what ? lt_storage_wrap(NULL, dev->nbytes, deferred_release, NULL) : NULL;
  if (!s) { free(d->what); free(d); return NULL; }
  lt_storage_retain(dev);
  d->dev = dev;
  s->deferred = d;
  return s;
}

/* a shadow's bytes: copied back from its device storage */
static int fill_from_device(lt_storage *s, struct lt_deferred *d, char *err) {
  void *p = lt_alloc_bytes(s->nbytes, 0);
  if (!p) {
    snprintf(err, LT_MSG, "%s: not enough memory for %zu bytes", d->what, s->nbytes);
    return -1;
  }
  lt_cuda_xfer x;
  if (lt_cuda_xfer_begin(&x, d->dev->device_index, err)) { lt_free_bytes(p, s->nbytes); return -1; }
  lt_cuda_xfer_d2h(&x, p, d->dev, 0, s->nbytes);
  if (lt_cuda_xfer_end(&x)) { lt_free_bytes(p, s->nbytes); return -1; }
  s->data = p;
  lt_storage_count(s->nbytes, 0);
  return 0;
}

int lt_storage_fill(lt_storage *s, char *err) {
  struct lt_deferred *d = s->deferred;
  if (!d || s->data) return 0;
  if (d->dev) return s->nbytes ? fill_from_device(s, d, err) : 0;
  const lt_source *src = &d->src;
  void *p = lt_alloc_bytes(s->nbytes, 0);
  if (!p) {
    snprintf(err, LT_MSG, "%s: %s: not enough memory for %zu bytes", d->f->path, d->what, s->nbytes);
    return -1;
  }
  lt_range r = {d->what, src->off, src->csize, src->usize, src->crc, src->method};
  char msg[LT_MSG];
  if (d->f->remote && lt_remote_ensure(d->f->remote, src->off, src->csize, err)) {
    lt_free_bytes(p, s->nbytes);
    return -1;
  }
  if (lt_read_range(d->f->fd, &r, src->skip, p, s->nbytes, src->check_crc, NULL, NULL, msg)) {
    lt_free_bytes(p, s->nbytes);
    if (snprintf(err, LT_MSG, "%s: %s", d->f->path, msg) >= LT_MSG) err[LT_MSG - 4] = 0;   /* cut */
    return -1;
  }
  if (src->swap > 1) lt_byteswap(p, s->nbytes / (size_t)src->swap, (size_t)src->swap);
  s->data = p;
  lt_storage_count(s->nbytes, 0);
  return 0;
}

void lt_storage_evict(lt_storage *s) {
  if (!s->deferred || !s->data) return;
  lt_free_bytes_now(s->data, s->nbytes);
  s->data = NULL;
  lt_storage_count(0, s->nbytes);
}

/* a deferred storage is read for the write, and with ws->release freed after it */
int lt_write_tensor_as(int fd, const lt_tensor *t, lt_dtype to, const lt_wstream *ws, char *err) {
  if (lt_numel(t) == 0) return 0;
  if (lt_storage_fill(t->storage, err)) return -1;
  int rc = lt_write_elems(fd, t, to, ws, err);
  if (ws && ws->release) lt_storage_evict(t->storage);
  return rc;
}
