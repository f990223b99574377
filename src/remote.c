/*
** remote.c: checkpoints behind a URL (http://, https://; s3:// is turned
** into one by lua/ltorch/remote.lua), read with libcurl by byte ranges.
**
** A remote object is mirrored by a sparse local file (unnamed, the
** object's size): the loaders read it as they read any file, and only
** the ranges something needs are fetched into it. Who needs what:
**   - remote.lua fetches a format's header and directory before the load
**     (a suffix for a zip's central directory);
**   - a load with mmap = true maps nothing of a remote file (lt_remote_find
**     tells the loaders): its records become deferred storages, and a
**     deferred storage's first use fetches its range (deferred.c calls
**     lt_remote_ensure);
**   - an eager load fetches the whole object first: into anonymous memory
**     for the ranged layouts (lt_remote_fetch_memory: the loaders' reads
**     and mapping of the mirror are then that memory, and its tensors point
**     into it; what the mirror holds already, the first block read to tell
**     the layout, is copied from it), into the mirror for the others.
** The mirror is memory (memfd_create; a file in $TMPDIR where that is
** missing). Once it holds the whole object the loaders map it like any
** file.
** Fetched ranges are kept as a sorted list of intervals; ranges are widened
** to BLOCK boundaries (fewer, bigger requests), split into CHUNK pieces and
** fetched by up to `connections` transfers at once (curl's multi
** interface), adjacent missing ranges coalesced.
**
** An open is one ranged GET of the object's first FIRST bytes (64 KiB):
** its size (Content-Range), its version and the bytes that tell its layout
** and hold most formats' headers, in one round trip (a HEAD then a range
** were two). A server answering 200 serves an object of up to FIRST bytes
** whole; a bigger one means it ignores Range, an error.
** Consistency: the object's ETag (or Last-Modified) is pinned when it is
** opened and every range request carries If-Match (If-Unmodified-Since), so
** an object replaced under a load gives 412 and an error naming it, never a
** mix of two versions. Each response is validated: 206 with the
** Content-Range asked for and exactly its bytes; a 200 to a ranged request
** means the server ignores Range (an error, unless the range was the whole
** object). 5xx answers, dropped connections and timeouts are retried with
** backoff (retries, default 3); 404 and 403 are errors at once.
** Layer: beside rawio (plain I/O and libcurl), below deferred and the
** formats; nothing of ltorch above it.
*/
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "lt.h"
#include "rawio.h"

#define BLOCK ((uint64_t)4 << 10)     /* ranges are widened to pages */
#define CHUNK ((uint64_t)4 << 20)     /* one request fetches at most this */
#define MAX_CONNS 64
#define FIRST ((uint64_t)64 << 10)    /* an open fetches the object's first bytes, up to this */
#define FIRST_LAST "65535"            /* FIRST - 1, for the Range header */

typedef struct ival { uint64_t lo, hi; } ival;

struct lt_remote {
  atomic_long refs;
  char *url;
  int fd;
  dev_t dev;
  ino_t ino;
  uint64_t size;
  char etag[256], lastmod[128];
  lt_remote_opts o;          /* with the defaults filled in; its strings owned (opts_copy) */
  pthread_mutex_t mu;        /* have, stats */
  pthread_mutex_t fetch_mu;  /* one fetch at a time; the handles */
  ival *have;
  size_t nhave, caphave;
  atomic_int complete;       /* have is [0, size): the loaders may map the mirror */
  uint64_t bytes;            /* fetched from the server */
  unsigned long requests;
  CURL *easy[MAX_CONNS];
  lt_mapping *mem;           /* the whole object in memory (lt_remote_fetch_memory), or NULL */
  atomic_int in_memory;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

/* an error message, cut to LT_MSG (URLs and ETags may be long) */
static void rerr(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rerr(char *err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (vsnprintf(err, LT_MSG, fmt, ap) >= LT_MSG) memcpy(err + LT_MSG - 4, "...", 4);
  va_end(ap);
}
/* dst := src with copies of its strings, which opts_free frees; -1 when
   out of memory (dst then holds what was copied) */
static int opts_copy(lt_remote_opts *dst, const lt_remote_opts *src) {
  *dst = *src;
  dst->aws_sigv4 = src->aws_sigv4 ? strdup(src->aws_sigv4) : NULL;
  dst->userpwd = src->userpwd ? strdup(src->userpwd) : NULL;
  dst->headers = src->headers ? strdup(src->headers) : NULL;
  dst->ca_file = src->ca_file ? strdup(src->ca_file) : NULL;
  return (src->aws_sigv4 && !dst->aws_sigv4) || (src->userpwd && !dst->userpwd) ||
         (src->headers && !dst->headers) || (src->ca_file && !dst->ca_file) ? -1 : 0;
}

static void opts_free(lt_remote_opts *o) {
  free((char *)o->aws_sigv4);
  free((char *)o->userpwd);
  free((char *)o->headers);
  free((char *)o->ca_file);
}

static void curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* ---- the registry: which local files mirror remote objects ---------------- */

static lt_fileset remotes = LT_FILESET_INIT;

/* the set holds no reference: an object is in it until its last release
   takes it out, so one found at 0 references is going (not retained) */
static int remote_retain(void *o) {
  lt_remote *r = o;
  long n = atomic_load(&r->refs);
  while (n > 0)
    if (atomic_compare_exchange_weak(&r->refs, &n, n + 1)) return 1;
  return 0;
}

lt_remote *lt_remote_find(int fd) {
  return lt_fileset_find(&remotes, fd, remote_retain);
}

void lt_remote_release(lt_remote *r) {
  if (!r || atomic_fetch_sub(&r->refs, 1) != 1) return;
  lt_fileset_remove(&remotes, r);
  if (r->mem) {
    lt_memfile_remove(r->mem);
    lt_mapping_release(r->mem);   /* the tensors that point into it keep it */
  }
  for (int i = 0; i < MAX_CONNS; i++) if (r->easy[i]) curl_easy_cleanup(r->easy[i]);
  if (r->fd >= 0) close(r->fd);
  pthread_mutex_destroy(&r->mu);
  pthread_mutex_destroy(&r->fetch_mu);
  free(r->have);
  opts_free(&r->o);
  free(r->url);
  free(r);
}

const char *lt_remote_url(const lt_remote *r) { return r->url; }
uint64_t lt_remote_size(const lt_remote *r) { return r->size; }
int lt_remote_fd(const lt_remote *r) { return r->fd; }

void lt_remote_stats(lt_remote *r, uint64_t *bytes, unsigned long *requests) {
  pthread_mutex_lock(&r->mu);
  *bytes = r->bytes;
  *requests = r->requests;
  pthread_mutex_unlock(&r->mu);
}

/* ---- requests ----------------------------------------------------------------- */

typedef struct xfer {
  lt_remote *r;
  CURL *h;
  struct curl_slist *hdrs;
  uint64_t lo, hi, got;      /* the range asked for, bytes written */
  char *dst;                 /* the object in memory, or NULL: the local file */
  int attempt;
  double not_before;
  int overflow, werr;
  char crange[128], etag[256];
  char ebuf[CURL_ERROR_SIZE];  /* curl's detail of a failure */
  /* the open's answer */
  uint64_t length;
  int has_length;
  char lastmod[128];
} xfer;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void copy_value(char *dst, size_t cap, const char *v, size_t n) {
  while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ')) n--;
  while (n && *v == ' ') { v++; n--; }
  if (n >= cap) n = cap - 1;
  memcpy(dst, v, n);
  dst[n] = 0;
}

/* curl's words for c, with the transfer's own detail when it has one
   ("SSL peer certificate ... was not OK (SSL certificate problem:
   self-signed certificate)"), in buf */
static const char *curl_words(CURLcode c, const char *detail, char *buf, size_t n) {
  const char *w = curl_easy_strerror(c);
  size_t dl = strlen(detail);
  while (dl && (detail[dl - 1] == '\n' || detail[dl - 1] == '\r')) dl--;
  if (!dl || (strlen(w) == dl && !strncmp(w, detail, dl))) return w;
  snprintf(buf, n, "%s (%.*s)", w, (int)dl, detail);
  return buf;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  xfer *x = ud;
  size_t len = size * n;
  const char *colon = memchr(p, ':', len);
  if (!colon) return len;
  size_t klen = (size_t)(colon - p);
  const char *v = colon + 1;
  size_t vlen = len - klen - 1;
  if (klen == 4 && !strncasecmp(p, "ETag", 4)) copy_value(x->etag, sizeof x->etag, v, vlen);
  else if (klen == 13 && !strncasecmp(p, "Content-Range", 13)) copy_value(x->crange, sizeof x->crange, v, vlen);
  else if (klen == 13 && !strncasecmp(p, "Last-Modified", 13)) copy_value(x->lastmod, sizeof x->lastmod, v, vlen);
  else if (klen == 14 && !strncasecmp(p, "Content-Length", 14)) {
    char b[32];
    copy_value(b, sizeof b, v, vlen);
    char *end;
    unsigned long long L = strtoull(b, &end, 10);
    if (end != b && *end == 0) { x->length = L; x->has_length = 1; }
  }
  return len;
}

/* n bytes at off of the mirror: 0, or the errno */
static int mirror_write(lt_remote *r, const char *p, size_t n, uint64_t off) {
  for (size_t done = 0; done < n;) {
    ssize_t w = pwrite(r->fd, p + done, n - done, (off_t)(off + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return w < 0 && errno ? errno : EIO;
    done += (size_t)w;
  }
  return 0;
}

/* bytes of a range response go to their place in the local file; no more
   than were asked for */
static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  xfer *x = ud;
  size_t len = size * n;
  if (x->got + len > x->hi - x->lo) { x->overflow = 1; return 0; }
  if (x->dst) {
    memcpy(x->dst + x->lo + x->got, p, len);
    x->got += len;
    return len;
  }
  if ((x->werr = mirror_write(x->r, p, len, x->lo + x->got))) return 0;
  x->got += len;
  return len;
}

static CURL *handle_for(lt_remote *r, int i) {
  if (!r->easy[i]) r->easy[i] = curl_easy_init();
  return r->easy[i];
}

/* what every request sets: the URL, no signals (threads), the connect
   timeout, a transfer slower than 1 KiB/s for the timeout dropped (and
   retried), the agent, the certificates to verify HTTPS servers against
   when not the system's and, for S3, the signature */
static void base_opts(CURL *h, const char *url, const lt_remote_opts *o) {
  long timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000L;
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (timeout_ms + 999) / 1000);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "ltorch");
  if (o->ca_file) curl_easy_setopt(h, CURLOPT_CAINFO, o->ca_file);
  if (o->aws_sigv4) {
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, o->aws_sigv4);
    curl_easy_setopt(h, CURLOPT_USERPWD, o->userpwd ? o->userpwd : "");
  }
}

/* the pause before retry number attempt, in seconds: 50 ms, doubling */
static double backoff_s(int attempt) { return 0.05 * (double)(1 << (attempt - 1)); }

static void backoff(int attempt) {
  double t = backoff_s(attempt);
  struct timespec ts = {(time_t)t, (long)((t - (double)(time_t)t) * 1e9)};
  nanosleep(&ts, NULL);
}

static void setup(lt_remote *r, xfer *x, CURL *h) {
  curl_easy_reset(h);
  base_opts(h, r->url, &r->o);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(h, CURLOPT_PRIVATE, x);
  curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L << 10);   /* fewer, bigger writes into the mirror */
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->ebuf);
  x->ebuf[0] = 0;
  x->h = h;
  memset(x->crange, 0, sizeof x->crange);
  memset(x->etag, 0, sizeof x->etag);
  x->got = 0;
  x->overflow = x->werr = 0;
}

/* the lines of hs ("Name: value\n..."), appended to l */
static struct curl_slist *add_headers(struct curl_slist *l, const char *hs) {
  while (hs && *hs) {
    const char *e = strchr(hs, '\n');
    size_t n = e ? (size_t)(e - hs) : strlen(hs);
    char b[1024];
    if (n && n < sizeof b) {
      memcpy(b, hs, n);
      b[n] = 0;
      l = curl_slist_append(l, b);
    }
    hs += n + (e ? 1 : 0);
  }
  return l;
}

static struct curl_slist *request_headers(lt_remote *r) {
  struct curl_slist *l = NULL;
  char b[400];
  if (r->etag[0]) {
    snprintf(b, sizeof b, "If-Match: %s", r->etag);
    l = curl_slist_append(l, b);
  } else if (r->lastmod[0]) {
    snprintf(b, sizeof b, "If-Unmodified-Since: %s", r->lastmod);
    l = curl_slist_append(l, b);
  }
  return add_headers(l, r->o.headers);
}

static void start_range(lt_remote *r, xfer *x, CURL *h) {
  setup(r, x, h);
  char range[64];
  snprintf(range, sizeof range, "%llu-%llu", (unsigned long long)x->lo, (unsigned long long)(x->hi - 1));
  curl_easy_setopt(h, CURLOPT_RANGE, range);
  curl_slist_free_all(x->hdrs);
  x->hdrs = request_headers(r);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->hdrs);
}

enum { DONE, RETRY, FAIL };

static int transient(CURLcode c) {
  return c == CURLE_COULDNT_CONNECT || c == CURLE_RECV_ERROR || c == CURLE_SEND_ERROR ||
         c == CURLE_PARTIAL_FILE || c == CURLE_GOT_NOTHING || c == CURLE_OPERATION_TIMEDOUT ||
         c == CURLE_HTTP2 || c == CURLE_HTTP2_STREAM || c == CURLE_SSL_CONNECT_ERROR;
}

static int status_error(lt_remote *r, long code, char *err) {
  if (code == 404) rerr(err, "%s: not found (HTTP 404)", r->url);
  else if (code == 403 || code == 401) rerr(err, "%s: access denied (HTTP %ld)", r->url, code);
  else if (code == 412 || code == 416)
    rerr(err, "%s: the object changed on the server since it was opened (HTTP %ld to a "
             "request pinned to %s)", r->url, code, r->etag[0] ? r->etag : r->lastmod);
  else rerr(err, "%s: HTTP %ld", r->url, code);
  return FAIL;
}

/* what one finished range request means */
static int judge(lt_remote *r, xfer *x, CURLcode c, char *err) {
  char wb[LT_MSG];
  long code = 0;
  curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
  if (x->werr) {
    rerr(err, "%s: cannot write the local copy: %s", r->url, strerror(x->werr));
    return FAIL;
  }
  if (code == 200 && !(x->lo == 0 && x->hi == r->size)) {
    rerr(err, "%s: the server ignores Range requests (HTTP 200 with the whole object to a "
             "request for bytes %llu-%llu)", r->url, (unsigned long long)x->lo, (unsigned long long)(x->hi - 1));
    return FAIL;
  }
  if (x->overflow) {
    rerr(err, "%s: the server sent more than the %llu bytes asked for", r->url,
             (unsigned long long)(x->hi - x->lo));
    return FAIL;
  }
  if (c != CURLE_OK) {
    if (transient(c) || (code >= 500 && code <= 599)) {
      rerr(err, "%s: %s", r->url, curl_words(c, x->ebuf, wb, sizeof wb));
      return RETRY;
    }
    if (code >= 400) return status_error(r, code, err);
    rerr(err, "%s: %s", r->url, curl_words(c, x->ebuf, wb, sizeof wb));
    return FAIL;
  }
  if (code >= 500 && code <= 599) { rerr(err, "%s: HTTP %ld", r->url, code); return RETRY; }
  if (code != 206 && code != 200) return status_error(r, code, err);
  if (code == 206) {
    unsigned long long a, b, total;
    if (sscanf(x->crange, "bytes %llu-%llu/%llu", &a, &b, &total) != 3 || a != x->lo || b + 1 != x->hi ||
        total != r->size) {
      rerr(err, "%s: the answer's Content-Range '%s' is not the bytes %llu-%llu/%llu asked for",
               r->url, x->crange, (unsigned long long)x->lo, (unsigned long long)(x->hi - 1),
               (unsigned long long)r->size);
      return FAIL;
    }
  }
  if (r->etag[0] && x->etag[0] && strcmp(x->etag, r->etag)) {
    rerr(err, "%s: the object changed on the server since it was opened (ETag %s, then %s)",
             r->url, r->etag, x->etag);
    return FAIL;
  }
  if (x->got != x->hi - x->lo) {
    rerr(err, "%s: the answer for bytes %llu-%llu ended after %llu bytes", r->url,
             (unsigned long long)x->lo, (unsigned long long)(x->hi - 1), (unsigned long long)x->got);
    return RETRY;
  }
  return DONE;
}

/* fetch the ranges (sorted, disjoint, within the object), several at a
   time, into the local file (dst NULL) or the object's memory at dst */
static int fetch_ranges(lt_remote *r, const ival *rs, size_t n, char *dst, lt_progress_fn progress, void *ud,
                        char *err) {
  /* requests of CHUNK bytes, or bigger ones for a big fetch: a few per
     connection (a request costs a round trip) */
  int conns = r->o.connections > MAX_CONNS ? MAX_CONNS : r->o.connections;
  uint64_t total = 0, chunk = CHUNK;
  for (size_t i = 0; i < n; i++) total += rs[i].hi - rs[i].lo;
  if (total / (4 * (uint64_t)conns) > chunk) chunk = (total / (4 * (uint64_t)conns) + BLOCK - 1) / BLOCK * BLOCK;
  size_t njobs = 0;
  for (size_t i = 0; i < n; i++) njobs += (size_t)((rs[i].hi - rs[i].lo + chunk - 1) / chunk);
  if (njobs == 0) return 0;
  xfer *jobs = calloc(njobs, sizeof *jobs);
  CURLM *m = curl_multi_init();
  if (!jobs || !m) {
    free(jobs);
    if (m) curl_multi_cleanup(m);
    rerr(err, "%s: out of memory", r->url);
    return -1;
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    for (uint64_t lo = rs[i].lo; lo < rs[i].hi; lo += chunk) {
      jobs[k].r = r;
      jobs[k].dst = dst;
      jobs[k].lo = lo;
      jobs[k].hi = lo + chunk < rs[i].hi ? lo + chunk : rs[i].hi;
      k++;
    }
  int busy[MAX_CONNS] = {0};
  size_t next = 0, done = 0;
  int rc = 0;
  /* queue of retries: jobs with not_before set, found by scanning */
  size_t *pending = malloc(njobs * sizeof *pending);
  size_t npending = 0;
  if (!pending) { rc = -1; rerr(err, "%s: out of memory", r->url); }
  while (rc == 0 && done < njobs) {
    /* start what may start */
    for (int slot = 0; slot < conns; slot++) {
      if (busy[slot]) continue;
      xfer *x = NULL;
      double t = now_s();
      for (size_t q = 0; q < npending; q++)
        if (jobs[pending[q]].not_before <= t) { x = &jobs[pending[q]]; pending[q] = pending[--npending]; break; }
      if (!x && next < njobs) x = &jobs[next++];
      if (!x) break;
      CURL *h = handle_for(r, slot);
      if (!h) { rc = -1; rerr(err, "%s: cannot start a transfer", r->url); break; }
      start_range(r, x, h);
      curl_easy_setopt(h, CURLOPT_PRIVATE, x);
      busy[slot] = 1;
      x->attempt++;
      curl_multi_add_handle(m, h);
      pthread_mutex_lock(&r->mu);
      r->requests++;
      pthread_mutex_unlock(&r->mu);
    }
    if (rc) break;
    int running = 0;
    curl_multi_perform(m, &running);
    CURLMsg *msg;
    int left, freed = 0;
    while ((msg = curl_multi_info_read(m, &left))) {
      if (msg->msg != CURLMSG_DONE) continue;
      xfer *x;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
      CURLcode c = msg->data.result;
      curl_multi_remove_handle(m, msg->easy_handle);
      for (int slot = 0; slot < conns; slot++) if (r->easy[slot] == msg->easy_handle) busy[slot] = 0;
      freed = 1;
      pthread_mutex_lock(&r->mu);
      r->bytes += x->got;
      pthread_mutex_unlock(&r->mu);
      int verdict = judge(r, x, c, err);
      if (verdict == DONE) {
        done++;
        /* the caller's thread: a Lua callback may run here (it is protected) */
        if (progress && progress(ud, x->hi - x->lo)) { rerr(err, "%s: stopped by the progress callback", r->url); rc = -1; }
      }
      else if (verdict == RETRY && x->attempt <= r->o.retries) {
        x->not_before = now_s() + backoff_s(x->attempt);
        pending[npending++] = (size_t)(x - jobs);
      } else {
        if (verdict == RETRY) {
          size_t l = strlen(err);
          if (l + 32 < LT_MSG) snprintf(err + l, LT_MSG - l, " (after %d attempts)", x->attempt);
        }
        rc = -1;
      }
    }
    /* a free slot starts its next range at once; otherwise wait for the sockets */
    if (rc == 0 && done < njobs && !(freed && (next < njobs || npending))) curl_multi_poll(m, NULL, 0, 20, NULL);
  }
  for (int slot = 0; slot < conns; slot++) {
    if (busy[slot]) curl_multi_remove_handle(m, r->easy[slot]);
    if (r->easy[slot]) curl_easy_setopt(r->easy[slot], CURLOPT_ERRORBUFFER, NULL);   /* the jobs' go */
  }
  for (size_t i = 0; i < njobs; i++) curl_slist_free_all(jobs[i].hdrs);
  curl_multi_cleanup(m);
  free(pending);
  free(jobs);
  return rc;
}

/* ---- opening --------------------------------------------------------------------- */

static int add_have(lt_remote *r, const ival *add, size_t n);

lt_remote *lt_remote_open(const char *url, const lt_remote_opts *o, char *err) {
  pthread_once(&curl_once, curl_init);
  char wb[LT_MSG];
  uint64_t nfirst = 0;
  lt_remote *r = calloc(1, sizeof *r);
  if (!r) { rerr(err, "%s: out of memory", url); return NULL; }
  atomic_init(&r->refs, 1);
  r->url = strdup(url);
  r->fd = -1;
  pthread_mutex_init(&r->mu, NULL);
  pthread_mutex_init(&r->fetch_mu, NULL);
  lt_remote_opts none = {0};
  int copied = opts_copy(&r->o, o ? o : &none);
  if (r->o.connections < 1) r->o.connections = 8;
  if (r->o.retries < 0 || !o) r->o.retries = 3;
  if (r->o.timeout_ms <= 0) r->o.timeout_ms = 30000;
  if (!r->url || copied) goto oom;
  /* the mirror: memory (memfd); where memfd is missing, a file. Once
     complete it is mapped like any file (an eager load of a ranged layout
     skips it: lt_remote_fetch_memory). The open's answer goes straight
     into it, and it is sized when the object's size is known. */
  r->fd = memfd_create("ltorch-remote", MFD_CLOEXEC);
  if (r->fd < 0) {
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    r->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (r->fd < 0) { rerr(err, "%s: cannot make a local file in %s: %s", url, dir, strerror(errno)); goto fail; }
  }
  /* the size, the version and the first FIRST bytes: one ranged GET (not a
     HEAD and then a range: a round trip less on every open), retried as
     the ranges are */
  for (int attempt = 1;; attempt++) {
    xfer x;
    memset(&x, 0, sizeof x);
    x.r = r;
    x.lo = 0;
    x.hi = FIRST;
    CURL *h = handle_for(r, 0);
    if (!h) goto oom;
    setup(r, &x, h);
    curl_easy_setopt(h, CURLOPT_RANGE, "0-" FIRST_LAST);
    struct curl_slist *hl = add_headers(NULL, r->o.headers);
    if (hl) curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    memset(x.lastmod, 0, sizeof x.lastmod);
    CURLcode c = curl_easy_perform(h);
    curl_slist_free_all(hl);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);   /* x's goes with this pass */
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    r->requests++;
    r->bytes += x.got;
    /* a 200 is the whole object: a server that ignores Range, which serves
       an object of up to FIRST bytes whole and nothing bigger */
    if (code == 200 && x.overflow) {
      rerr(err, "%s: the server ignores Range requests (HTTP 200 with the whole object to a "
               "request for bytes 0-" FIRST_LAST ")", url);
      goto fail;
    }
    if (x.overflow) {
      rerr(err, "%s: the server sent more than the %llu bytes asked for", url, (unsigned long long)FIRST);
      goto fail;
    }
    if (x.werr) { rerr(err, "%s: cannot write the local copy: %s", url, strerror(x.werr)); goto fail; }
    if ((c != CURLE_OK && transient(c)) || (code >= 500 && code <= 599) ||
        (c == CURLE_OK && code == 200 && x.has_length && x.got != x.length)) {
      if (attempt <= r->o.retries) {
        backoff(attempt);
        continue;
      }
      if (c != CURLE_OK) rerr(err, "%s: %s (after %d attempts)", url, curl_words(c, x.ebuf, wb, sizeof wb), attempt);
      else if (code == 200) rerr(err, "%s: the answer ended after %llu of %llu bytes (after %d attempts)", url,
                                (unsigned long long)x.got, (unsigned long long)x.length, attempt);
      else rerr(err, "%s: HTTP %ld (after %d attempts)", url, code, attempt);
      goto fail;
    }
    if (c != CURLE_OK) { rerr(err, "%s: %s", url, curl_words(c, x.ebuf, wb, sizeof wb)); goto fail; }
    unsigned long long a, b, total;
    if (code == 206) {
      /* bytes 0-(min(FIRST, size) - 1)/size, and exactly those */
      if (sscanf(x.crange, "bytes %llu-%llu/%llu", &a, &b, &total) != 3 || a != 0 || b >= total ||
          b + 1 != (total < FIRST ? total : FIRST)) {
        rerr(err, "%s: the answer's Content-Range '%s' is not the bytes 0-" FIRST_LAST " (or the whole "
                 "object) asked for", url, x.crange);
        goto fail;
      }
      if (x.got != b + 1) {
        rerr(err, "%s: the answer for bytes 0-%llu ended after %llu bytes", url, b, (unsigned long long)x.got);
        goto fail;
      }
      r->size = total;
    } else if (code == 200) {
      r->size = x.got;    /* all of it, its length checked above when given (chunked: curl saw its end) */
    } else if (code == 416 && sscanf(x.crange, "bytes */%llu", &total) == 1 && total == 0) {
      r->size = 0;      /* an empty object: no byte to ask for */
    } else {
      status_error(r, code, err);
      goto fail;
    }
    snprintf(r->etag, sizeof r->etag, "%s", x.etag);
    snprintf(r->lastmod, sizeof r->lastmod, "%s", x.lastmod);
    /* weak validators cannot be matched with If-Match: fall back to the date */
    if (!strncmp(r->etag, "W/", 2)) r->etag[0] = 0;
    nfirst = x.got;
    break;
  }
  /* what an answer before wrote past the object's end (an error page) goes */
  if (ftruncate(r->fd, (off_t)r->size)) {
    rerr(err, "%s: cannot size a local file of %llu bytes: %s", url, (unsigned long long)r->size, strerror(errno));
    goto fail;
  }
  struct stat sb;
  if (fstat(r->fd, &sb)) { rerr(err, "%s: %s", url, strerror(errno)); goto fail; }
  r->dev = sb.st_dev;
  r->ino = sb.st_ino;
  if (nfirst) {
    ival got = {0, nfirst};
    if (add_have(r, &got, 1)) goto oom;
  }
  if (lt_fileset_add(&remotes, r->dev, r->ino, r)) goto oom;
  return r;
oom:
  rerr(err, "%s: out of memory", url);
fail:
  lt_remote_release(r);
  return NULL;
}

/* ---- what is there ------------------------------------------------------------------ */

static int cmp_ival(const void *a, const void *b) {
  const ival *x = a, *y = b;
  return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* sort and merge overlapping or touching intervals in place; the count */
static size_t normalize(ival *v, size_t n) {
  if (n == 0) return 0;
  qsort(v, n, sizeof *v, cmp_ival);
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    if (w && v[i].lo <= v[w - 1].hi) { if (v[i].hi > v[w - 1].hi) v[w - 1].hi = v[i].hi; }
    else v[w++] = v[i];
  }
  return w;
}

/* have := have + add (both sorted and disjoint): one merge pass */
static int add_have(lt_remote *r, const ival *add, size_t n) {
  size_t cap = r->nhave + n;
  ival *m = malloc((cap ? cap : 1) * sizeof *m);
  if (!m) return -1;
  if (r->nhave) memcpy(m, r->have, r->nhave * sizeof *m);
  if (n) memcpy(m + r->nhave, add, n * sizeof *m);
  free(r->have);
  r->have = m;
  r->caphave = cap;
  r->nhave = normalize(m, cap);
  if (r->nhave == 1 && r->have[0].lo == 0 && r->have[0].hi >= r->size) atomic_store(&r->complete, 1);
  return 0;
}

/* the first interval of have whose end is after at (binary search) */
static size_t first_after(const lt_remote *r, uint64_t at) {
  size_t lo = 0, hi = r->nhave;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (r->have[mid].hi <= at) lo = mid + 1; else hi = mid;
  }
  return lo;
}

/* append to miss (nm of capm used) the parts of w the mirror lacks; r->mu
   held. 0, or -1 when out of memory */
static int add_gaps(lt_remote *r, ival w, ival **miss, size_t *nm, size_t *capm) {
  uint64_t at = w.lo;
  for (size_t i = first_after(r, at); at < w.hi; i++) {
    uint64_t end = i < r->nhave && r->have[i].lo < w.hi ? r->have[i].lo : w.hi;
    if (end > at) {
      if (*nm == *capm) {
        ival *g = realloc(*miss, (*capm *= 2) * sizeof **miss);
        if (!g) return -1;
        *miss = g;
      }
      (*miss)[(*nm)++] = (ival){at, end};
    }
    if (end == w.hi) break;
    if (r->have[i].hi > at) at = r->have[i].hi;
  }
  return 0;
}

int lt_remote_ensure_many(lt_remote *r, const uint64_t *ranges, size_t n, lt_progress_fn progress, void *ud,
                          char *err) {
  if (atomic_load(&r->in_memory)) return 0;   /* all there, read through lt_remote_pread */
  pthread_mutex_lock(&r->fetch_mu);
  /* the wanted ranges widened to blocks, sorted and merged; then the parts
     of them that are missing */
  ival *want = malloc((n ? n : 1) * sizeof *want);
  size_t nw = 0, nm = 0, capm = 16;
  ival *miss = malloc(capm * sizeof *miss);
  int rc = want && miss ? 0 : -1;
  for (size_t k = 0; rc == 0 && k < n; k++) {
    uint64_t lo = ranges[2 * k], len = ranges[2 * k + 1];
    uint64_t hi = len > r->size - (lo < r->size ? lo : r->size) ? r->size : lo + len;
    if (lo >= hi) continue;
    lo = lo / BLOCK * BLOCK;
    hi = hi > r->size - BLOCK ? r->size : (hi + BLOCK - 1) / BLOCK * BLOCK;
    if (hi > r->size) hi = r->size;
    want[nw++] = (ival){lo, hi};
  }
  if (rc == 0) nw = normalize(want, nw);
  pthread_mutex_lock(&r->mu);
  for (size_t k = 0; rc == 0 && k < nw; k++) rc = add_gaps(r, want[k], &miss, &nm, &capm);
  pthread_mutex_unlock(&r->mu);
  if (rc) rerr(err, "%s: out of memory", r->url);
  if (rc == 0 && nm) rc = fetch_ranges(r, miss, nm, NULL, progress, ud, err);
  if (rc == 0 && nm) {
    pthread_mutex_lock(&r->mu);
    rc = add_have(r, miss, nm);
    pthread_mutex_unlock(&r->mu);
    if (rc) rerr(err, "%s: out of memory", r->url);
  }
  free(want);
  free(miss);
  pthread_mutex_unlock(&r->fetch_mu);
  return rc;
}

int lt_fd_is_remote(int fd) {
  lt_remote *r = lt_remote_find(fd);
  int partial = r && !atomic_load(&r->complete) && !atomic_load(&r->in_memory);
  lt_remote_release(r);
  return partial;
}

/* ---- the whole object in memory ------------------------------------------------------ */

/* An eager load's object: fetched into anonymous memory (huge pages) and
   not into the mirror, whose shared-memory pages cost about as much again
   as the transfer (allocated a 4 KiB page at a time, each charged and put
   on a list). The mirror is registered as a file whose bytes are that
   memory (lt_memfile_add), so the loaders see it through their two ways
   into a file: lt_map_file gives it as the file's mapping, and
   lt_pread_all copies from it. Its storages are plain memory (not
   "mapped"). */
int lt_remote_fetch_memory(lt_remote *r, lt_progress_fn progress, void *ud, char *err) {
  pthread_mutex_lock(&r->fetch_mu);
  int rc = 0;
  if (!atomic_load(&r->in_memory)) {
    char e[LT_MSG];
    lt_mapping *m = r->size > SIZE_MAX ? NULL : lt_map_memory((size_t)r->size, e);
    if (!m) {
      rerr(err, "%s: %s", r->url, r->size > SIZE_MAX ? "too big for this machine's memory" : e);
      rc = -1;
    } else {
      /* what the mirror holds already (the first block a load read to
         tell the object's layout) is copied from it, not fetched again */
      size_t nm = 0, capm = 16;
      ival *miss = malloc(capm * sizeof *miss);
      char *dst = m->base;
      pthread_mutex_lock(&r->mu);
      rc = miss ? add_gaps(r, (ival){0, r->size}, &miss, &nm, &capm) : -1;
      if (rc) rerr(err, "%s: out of memory", r->url);
      uint64_t copied = 0;
      for (size_t i = 0; rc == 0 && i < r->nhave; i++) {
        uint64_t lo = r->have[i].lo, hi = r->have[i].hi < r->size ? r->have[i].hi : r->size;
        if (hi <= lo) continue;
        if (lt_pread_full(r->fd, dst + lo, (size_t)(hi - lo), lo, e)) { rerr(err, "%s: %s", r->url, e); rc = -1; }
        copied += hi - lo;
      }
      pthread_mutex_unlock(&r->mu);
      if (rc == 0 && copied && progress && progress(ud, copied)) rc = -1;
      if (rc == 0 && nm) rc = fetch_ranges(r, miss, nm, dst, progress, ud, err);
      free(miss);
      if (rc == 0 && lt_memfile_add(r->fd, m)) { rerr(err, "%s: out of memory", r->url); rc = -1; }
      if (rc) {
        lt_mapping_release(m);
      } else {
        r->mem = m;
        atomic_store(&r->in_memory, 1);
      }
    }
  }
  pthread_mutex_unlock(&r->fetch_mu);
  return rc;
}

int lt_remote_ensure(lt_remote *r, uint64_t off, uint64_t len, char *err) {
  uint64_t rg[2] = {off, len};
  return lt_remote_ensure_many(r, rg, 1, NULL, NULL, err);
}

/* ---- S3 multipart uploads ------------------------------------------------------------ */

typedef struct upctx {
  int fd;
  uint64_t off, left;        /* the part's bytes in the local file */
  char *resp;                /* the answer's body */
  size_t nresp, capresp;
  const char *body;          /* or a body in memory */
  size_t nbody;
  char etag[256];
  char ebuf[CURL_ERROR_SIZE];  /* curl's detail of a failure */
} upctx;

static size_t up_read(char *p, size_t size, size_t n, void *ud) {
  upctx *u = ud;
  size_t want = size * n;
  if (u->body) {
    if (want > u->nbody) want = u->nbody;
    memcpy(p, u->body, want);
    u->body += want;
    u->nbody -= want;
    return want;
  }
  if (want > u->left) want = (size_t)u->left;
  if (want == 0) return 0;
  ssize_t r = pread(u->fd, p, want, (off_t)u->off);
  if (r <= 0) return CURL_READFUNC_ABORT;
  u->off += (uint64_t)r;
  u->left -= (uint64_t)r;
  return (size_t)r;
}

static size_t up_write(char *p, size_t size, size_t n, void *ud) {
  upctx *u = ud;
  size_t len = size * n;
  if (u->nresp + len + 1 > u->capresp) {
    size_t c = (u->nresp + len + 1) * 2;
    if (c > ((size_t)1 << 20)) return 0;   /* S3's answers here are small */
    char *g = realloc(u->resp, c);
    if (!g) return 0;
    u->resp = g;
    u->capresp = c;
  }
  memcpy(u->resp + u->nresp, p, len);
  u->nresp += len;
  u->resp[u->nresp] = 0;
  return len;
}

static size_t up_header(char *p, size_t size, size_t n, void *ud) {
  upctx *u = ud;
  size_t len = size * n;
  if (len > 5 && !strncasecmp(p, "ETag:", 5)) copy_value(u->etag, sizeof u->etag, p + 5, len - 5);
  return len;
}

/* what every upload request sets; the header list to free after it */
static struct curl_slist *up_setup(CURL *h, const lt_remote_opts *o, const char *url, const char *method, upctx *u,
                                   uint64_t body_len) {
  u->nresp = 0;
  u->etag[0] = 0;
  u->ebuf[0] = 0;
  base_opts(h, url, o);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, u->ebuf);
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, up_write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, u);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, up_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, u);
  if (!strcmp(method, "PUT") || !strcmp(method, "POST")) {
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, up_read);
    curl_easy_setopt(h, CURLOPT_READDATA, u);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)body_len);
  }
  struct curl_slist *hl = add_headers(NULL, o->headers);
  hl = curl_slist_append(hl, "Expect:");   /* no 100-continue round trip */
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
  return hl;
}

/* one request of an upload: method on url (with query), the body from the
   file or memory; returns the HTTP status (0 on a transport error, err set) */
static long up_request(const lt_remote_opts *o, const char *url, const char *method, upctx *u,
                       uint64_t body_len, char *err) {
  CURL *h = curl_easy_init();
  if (!h) { rerr(err, "%s: cannot start a transfer", url); return 0; }
  struct curl_slist *hl = up_setup(h, o, url, method, u, body_len);
  CURLcode c = curl_easy_perform(h);
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  curl_slist_free_all(hl);
  curl_easy_cleanup(h);
  if (c != CURLE_OK) {
    char wb[LT_MSG];
    rerr(err, "%s: %s", url, curl_words(c, u->ebuf, wb, sizeof wb));
    return 0;
  }
  return code;
}

/* the text of <tag>...</tag> in xml, or "" */
static void xml_field(const char *xml, const char *tag, char *out, size_t cap) {
  char open[64], close[64];
  snprintf(open, sizeof open, "<%s>", tag);
  snprintf(close, sizeof close, "</%s>", tag);
  const char *a = xml ? strstr(xml, open) : NULL;
  const char *b = a ? strstr(a, close) : NULL;
  out[0] = 0;
  if (!a || !b) return;
  a += strlen(open);
  size_t n = (size_t)(b - a);
  if (n >= cap) n = cap - 1;
  memcpy(out, a, n);
  out[n] = 0;
}

static int s3_fail(char *err, const char *url, const char *step, long code, const upctx *u) {
  char c[128], m[256];
  xml_field(u->resp, "Code", c, sizeof c);
  xml_field(u->resp, "Message", m, sizeof m);
  if (code) rerr(err, "%s: %s: HTTP %ld%s%s%s%s", url, step, code, c[0] ? " " : "", c, m[0] ? ": " : "", m);
  return -1;
}

/* An upload: CreateMultipartUpload when it begins; then a thread sends
   the parts of a local file as it grows (the writers that write their
   file front to back, never going back), or all of them once the file is
   done, up to `connections` (default 4) at once, each retried as the
   range requests are; then CompleteMultipartUpload. The object exists only once the
   upload is completed, and a failure aborts the upload, so nothing of it
   is left on the server. */
struct lt_s3_up {
  char *url;
  lt_remote_opts o;          /* its strings owned (opts_copy) */
  uint64_t part;
  char id[512];
  pthread_t th;
  int started;
  pthread_mutex_t mu;        /* fd, path, finishing, stop, final */
  CURLM *m;                  /* the parts in flight (woken by follow and finish) */
  char *path;                /* the finished file (finish), when nothing was followed */
  int fd;
  int finishing, stop;       /* finishing: final holds the size; stop: give up */
  uint64_t final;
  uint64_t made;             /* bytes of the file given to parts so far */
  struct upjob **parts;      /* part k + 1 is parts[k] */
  size_t nparts, capparts;
  int failed;
  char err[LT_MSG];
};

/* one part's request: n bytes of the file at lo */
typedef struct upjob {
  upctx u;
  CURL *h;
  struct curl_slist *hl;
  uint64_t lo, n;
  size_t num;                /* its part number */
  int attempt, running, done;
  double not_before;
  char q[];                  /* its URL */
} upjob;

/* a new part of n bytes at lo (waiting to start); -1 out of memory */
static int add_part(lt_s3_up *up, uint64_t lo, uint64_t n) {
  if (up->nparts == up->capparts) {
    size_t c = up->capparts ? up->capparts * 2 : 16;
    upjob **g = realloc(up->parts, c * sizeof *g);
    if (!g) return -1;
    up->parts = g;
    up->capparts = c;
  }
  size_t qlen = strlen(up->url) + strlen(up->id) + 64;
  upjob *j = calloc(1, sizeof *j + qlen);
  if (!j) return -1;
  snprintf(j->q, qlen, "%s?partNumber=%zu&uploadId=%s", up->url, up->nparts + 1, up->id);
  j->lo = lo;
  j->n = n;
  j->num = up->nparts + 1;
  up->parts[up->nparts++] = j;
  return 0;
}

static void start_part(lt_s3_up *up, upjob *j) {
  if (!j->h) j->h = curl_easy_init();
  else curl_easy_reset(j->h);
  curl_slist_free_all(j->hl);
  j->hl = NULL;
  if (!j->h) return;
  memset(&j->u, 0, sizeof j->u);
  j->u.fd = up->fd;
  j->u.off = j->lo;
  j->u.left = j->n;
  j->hl = up_setup(j->h, &up->o, j->q, "PUT", &j->u, j->n);
  curl_easy_setopt(j->h, CURLOPT_PRIVATE, j);
  j->attempt++;
  j->running = 1;
  curl_multi_add_handle(up->m, j->h);
}

/* a finished part request: 0 done or to be retried, -1 failed (err set) */
static int part_done(lt_s3_up *up, upjob *j, CURLcode c) {
  long code = 0;
  curl_easy_getinfo(j->h, CURLINFO_RESPONSE_CODE, &code);
  curl_multi_remove_handle(up->m, j->h);
  j->running = 0;
  int retries = up->o.retries >= 0 ? up->o.retries : 3, rc = 0;
  if (c == CURLE_OK && code == 200 && j->u.etag[0]) {
    j->done = 1;
  } else if ((c != CURLE_OK || code >= 500) && j->attempt <= retries) {
    j->not_before = now_s() + backoff_s(j->attempt);
  } else {
    char wb[LT_MSG];
    if (c != CURLE_OK) rerr(up->err, "%s: %s", up->url, curl_words(c, j->u.ebuf, wb, sizeof wb));
    else if (code != 200) s3_fail(up->err, up->url, "uploading a part", code, &j->u);
    else rerr(up->err, "%s: uploading part %zu: no ETag in the answer", up->url, j->num);
    rc = -1;
  }
  free(j->u.resp);
  j->u.resp = NULL;
  return rc;
}

/* the upload failed (its message in up->err): nothing more starts; 1 */
static int set_failed(lt_s3_up *up) {
  pthread_mutex_lock(&up->mu);
  up->failed = 1;
  pthread_mutex_unlock(&up->mu);
  return 1;
}

/* The upload's thread: parts are made as the writer passes them (or from
   the whole file once it is done) and sent connections at a time. Once it
   fails or is stopped, it starts nothing more but lets the parts in flight
   end: S3 may keep a part whose upload was still running when the upload
   was aborted, so nothing is in flight when the abort goes. */
static void *up_run(void *ud) {
  lt_s3_up *up = ud;
  int conns = up->o.connections > 0 ? (up->o.connections > MAX_CONNS ? MAX_CONNS : up->o.connections) : 4;
  for (;;) {
    pthread_mutex_lock(&up->mu);
    int stop = up->stop, fin = up->finishing;
    uint64_t have = 0;
    struct stat sb;
    if (fin) have = up->final;
    else if (up->fd >= 0 && fstat(up->fd, &sb) == 0) have = (uint64_t)sb.st_size;
    if (fin && up->fd < 0 && !up->failed) {
      rerr(up->err, "%s: %s: %s", up->url, up->path ? up->path : "the local file", strerror(ENOENT));
      up->failed = 1;
    }
    /* whole parts the writer is past; at the end, the rest (at least one
       part: an empty object is one empty part), no part under S3's least
       but the last */
    while (!stop && !up->failed) {
      uint64_t left = have > up->made ? have - up->made : 0;
      if (!(left >= up->part || (fin && (left > 0 || up->nparts == 0)))) break;
      uint64_t n = left < up->part ? left : up->part;
      if (fin && left - n < ((uint64_t)5 << 20) && left - n > 0) n = left;
      if (add_part(up, up->made, n)) { rerr(up->err, "%s: out of memory", up->url); up->failed = 1; break; }
      up->made += n;
    }
    int failed = up->failed;
    pthread_mutex_unlock(&up->mu);
    int running = 0, pending = 0;
    double t = now_s();
    for (size_t k = 0; k < up->nparts; k++) {
      upjob *j = up->parts[k];
      if (j->running) running++;
      else if (!j->done) pending++;
    }
    for (size_t k = 0; k < up->nparts && running < conns && !stop && !failed; k++) {
      upjob *j = up->parts[k];
      if (j->running || j->done || j->not_before > t) continue;
      start_part(up, j);
      if (!j->running) {
        rerr(up->err, "%s: cannot start a transfer", up->url);
        failed = set_failed(up);
        break;
      }
      running++;
    }
    if (running == 0 && (stop || failed || (fin && pending == 0))) break;   /* every part ended */
    int still = 0;
    curl_multi_perform(up->m, &still);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(up->m, &left))) {
      if (msg->msg != CURLMSG_DONE) continue;
      upjob *j;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
      /* the first failure's message is kept */
      char keep[LT_MSG];
      memcpy(keep, up->err, LT_MSG);
      if (part_done(up, j, msg->data.result) && !failed) {
        failed = set_failed(up);
      } else if (failed) {
        memcpy(up->err, keep, LT_MSG);
      }
    }
    curl_multi_poll(up->m, NULL, 0, 10, NULL);   /* or woken by follow and finish */
  }
  for (size_t k = 0; k < up->nparts; k++)
    if (up->parts[k]->running) { curl_multi_remove_handle(up->m, up->parts[k]->h); up->parts[k]->running = 0; }
  pthread_mutex_lock(&up->mu);
  if (!up->stop && !up->failed) {
    for (size_t k = 0; k < up->nparts; k++) if (!up->parts[k]->done) up->failed = 1;
    if (up->failed && !up->err[0]) rerr(up->err, "%s: a part was not sent", up->url);
  }
  pthread_mutex_unlock(&up->mu);
  return NULL;
}

static void up_free(lt_s3_up *up) {
  if (up->fd >= 0) close(up->fd);
  pthread_mutex_destroy(&up->mu);
  for (size_t k = 0; k < up->nparts; k++) {
    upjob *j = up->parts[k];
    if (j->h) curl_easy_cleanup(j->h);
    curl_slist_free_all(j->hl);
    free(j->u.resp);
    free(j);
  }
  free(up->parts);
  if (up->m) curl_multi_cleanup(up->m);
  free(up->path);
  free(up->url);
  opts_free(&up->o);
  free(up);
}

lt_s3_up *lt_s3_begin(const char *url, const lt_remote_opts *o, uint64_t part_size, char *err) {
  pthread_once(&curl_once, curl_init);
  lt_s3_up *up = calloc(1, sizeof *up);
  if (!up) { rerr(err, "%s: out of memory", url); return NULL; }
  up->fd = -1;
  pthread_mutex_init(&up->mu, NULL);
  up->m = curl_multi_init();
  up->part = part_size < ((uint64_t)5 << 20) ? (uint64_t)5 << 20 : part_size;   /* S3's least, but for the last */
  up->url = strdup(url);
  if (opts_copy(&up->o, o) || !up->m || !up->url) {
    rerr(err, "%s: out of memory", url);
    up_free(up);
    return NULL;
  }
  size_t ulen = strlen(url) + 16;
  char *q = malloc(ulen);
  upctx u;
  memset(&u, 0, sizeof u);
  long code = 0;
  if (q) {
    snprintf(q, ulen, "%s?uploads", url);
    u.body = "";
    code = up_request(&up->o, q, "POST", &u, 0, err);
    free(q);
  } else {
    rerr(err, "%s: out of memory", url);
  }
  if (code == 200) xml_field(u.resp, "UploadId", up->id, sizeof up->id);
  if (code && code != 200) s3_fail(err, url, "starting the upload", code, &u);
  else if (code == 200 && !up->id[0]) rerr(err, "%s: starting the upload: no UploadId in the answer", url);
  free(u.resp);
  if (!up->id[0]) { up_free(up); return NULL; }
  if (pthread_create(&up->th, NULL, up_run, up) == 0) up->started = 1;
  return up;
}

void lt_s3_follow_fd(lt_s3_up *up, int fd) {
  pthread_mutex_lock(&up->mu);
  if (up->fd < 0 && !up->finishing) { up->fd = fd; fd = -1; }
  curl_multi_wakeup(up->m);
  pthread_mutex_unlock(&up->mu);
  if (fd >= 0) close(fd);
}

int lt_s3_failed(lt_s3_up *up, char *err) {
  pthread_mutex_lock(&up->mu);
  int f = up->failed;
  if (f && err) memcpy(err, up->err, LT_MSG);
  pthread_mutex_unlock(&up->mu);
  return f;
}

/* stop the thread; with path, once it has sent the rest of the file (its
   final name when follow never opened it) */
static void up_join(lt_s3_up *up, const char *path, uint64_t size) {
  pthread_mutex_lock(&up->mu);
  if (path) {
    if (up->fd < 0) {
      free(up->path);
      up->path = strdup(path);
      if (up->path) up->fd = open(up->path, O_RDONLY | O_CLOEXEC);
    }
    up->finishing = 1;
    up->final = size;
  } else {
    up->stop = 1;
  }
  curl_multi_wakeup(up->m);
  pthread_mutex_unlock(&up->mu);
  if (up->started) pthread_join(up->th, NULL);
  else if (path) up_run(up);   /* no thread could start: the parts are sent here */
  up->started = 0;
}

static void up_abort(lt_s3_up *up) {
  size_t ulen = strlen(up->url) + strlen(up->id) + 16;
  char *q = malloc(ulen);
  if (!q) return;
  snprintf(q, ulen, "%s?uploadId=%s", up->url, up->id);
  upctx u;
  memset(&u, 0, sizeof u);
  char aerr[LT_MSG];
  up_request(&up->o, q, "DELETE", &u, 0, aerr);   /* the parts are dropped */
  free(u.resp);
  free(q);
}

int lt_s3_finish(lt_s3_up *up, const char *path, char *err) {
  struct stat sb;
  int rc = -1;
  if (stat(path, &sb)) {
    rerr(err, "%s: %s: %s", up->url, path, strerror(errno));
    up_join(up, NULL, 0);
    goto done;
  }
  up_join(up, path, (uint64_t)sb.st_size);
  if (up->failed) { memcpy(err, up->err, LT_MSG); goto done; }
  size_t cap = 128 + up->nparts * 320, at = 0;
  char *xml = malloc(cap);
  if (!xml) { rerr(err, "%s: out of memory", up->url); goto done; }
  at += (size_t)snprintf(xml + at, cap - at, "<CompleteMultipartUpload>");
  for (size_t k = 0; k < up->nparts; k++)
    at += (size_t)snprintf(xml + at, cap - at, "<Part><PartNumber>%zu</PartNumber><ETag>%s</ETag></Part>", k + 1,
                           up->parts[k]->u.etag);
  at += (size_t)snprintf(xml + at, cap - at, "</CompleteMultipartUpload>");
  size_t ulen = strlen(up->url) + strlen(up->id) + 16;
  char *q = malloc(ulen);
  upctx u;
  memset(&u, 0, sizeof u);
  long code = 0;
  if (q) {
    snprintf(q, ulen, "%s?uploadId=%s", up->url, up->id);
    u.body = xml;
    u.nbody = at;
    code = up_request(&up->o, q, "POST", &u, at, err);
  } else {
    rerr(err, "%s: out of memory", up->url);
  }
  /* S3 may answer 200 with an error in the body */
  if (code == 200 && !(u.resp && strstr(u.resp, "<Error>"))) rc = 0;
  else if (code) s3_fail(err, up->url, "completing the upload", code, &u);
  free(u.resp);
  free(q);
  free(xml);
done:
  if (rc) up_abort(up);
  up_free(up);
  return rc;
}

void lt_s3_abort(lt_s3_up *up) {
  up_join(up, NULL, 0);
  up_abort(up);
  up_free(up);
}
