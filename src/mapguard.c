/*
** mapguard.c: SIGBUS from a file mapping turned into an error. A tensor
** loaded with mmap = true reads the file's pages on use; when another
** program truncates the file after the load, a read of a page past the new
** end raises SIGBUS, which kills the process by default. ltorch registers
** every file mapping it makes (lt_map_file) here, and a SIGBUS handler,
** installed once with the first mapping, looks the faulting address up:
**
**   - inside a registered mapping: the pages from the faulting one to the
**     mapping's end are replaced with zero pages (mmap MAP_FIXED, which is
**     one system call and safe in a handler), the mapping is marked
**     changed, and the faulting thread's fault count goes up. The
**     instruction then runs again and reads zeros. Every binding (linit.c)
**     compares its thread's count before and after it runs and raises
**     "PATH: the file changed under its mapping ..." when it moved, and
**     every later use of a tensor of that mapping raises the same
**     (lt_check_meta), so no zero that stands in for file data is returned
**     or saved unnoticed.
**   - anywhere else: the handler that was installed before ltorch's runs
**     (or the default action: the process dies with SIGBUS, as without
**     ltorch).
**
** The registry is a list of nodes that are never freed: a released
** mapping's node is marked free and reused by a later mapping, so the
** handler can walk the list at any moment without a lock. A write(2) from
** a truncated mapping fails with EFAULT instead of raising SIGBUS;
** lt_mapguard_copy gives the writers the same outcome (rawio.c).
*/
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>
#include "lt.h"

enum { G_FREE, G_CLAIMED, G_LIVE };

#define GUARD_PATH 512

struct lt_guard {
  struct lt_guard *next;              /* set before the node is published */
  atomic_int state;
  atomic_uintptr_t lo, hi;            /* [lo, hi): the mapping, whole pages */
  atomic_int changed;
  char path[GUARD_PATH];              /* the file, for messages */
};

static _Atomic(struct lt_guard *) head;
static struct sigaction previous;
static uintptr_t page_mask;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;

/* the calling thread's faults and the file of its last one */
static _Thread_local unsigned faults;
static atomic_ulong all_faults;           /* every thread's, OpenBLAS's included */
static _Thread_local char fault_path[GUARD_PATH];

static void copy_path(char *dst, const char *src) {
  size_t i = 0;
  for (; src[i] && i + 1 < GUARD_PATH; i++) dst[i] = src[i];
  dst[i] = 0;
}

static void on_sigbus(int sig, siginfo_t *si, void *uc) {
  uintptr_t a = (uintptr_t)si->si_addr;
  for (struct lt_guard *g = atomic_load(&head); g; g = g->next) {
    if (atomic_load(&g->state) != G_LIVE) continue;
    uintptr_t lo = atomic_load(&g->lo), hi = atomic_load(&g->hi);
    if (a < lo || a >= hi) continue;
    uintptr_t from = a & ~page_mask;
    void *r = mmap((void *)from, hi - from, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (r == MAP_FAILED) break;
    atomic_store(&g->changed, 1);
    atomic_fetch_add(&all_faults, 1);
    faults++;
    copy_path(fault_path, g->path);
    return;
  }
  /* not ours: what was there before */
  if (previous.sa_flags & SA_SIGINFO) {
    if (previous.sa_sigaction) { previous.sa_sigaction(sig, si, uc); return; }
  } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
    previous.sa_handler(sig);
    return;
  }
  /* the default action: fault again with it in place */
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(SIGBUS, &dfl, NULL);
}

static void install(void) {
  long p = sysconf(_SC_PAGESIZE);
  page_mask = (uintptr_t)(p > 0 ? p : 4096) - 1;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, &previous) != 0) memset(&previous, 0, sizeof previous);
}

lt_guard *lt_guard_add(const void *base, size_t len, const char *path) {
  pthread_once(&install_once, install);
  struct lt_guard *g = NULL;
  for (struct lt_guard *n = atomic_load(&head); n && !g; n = n->next) {
    int f = G_FREE;
    if (atomic_compare_exchange_strong(&n->state, &f, G_CLAIMED)) g = n;
  }
  if (!g) {
    g = calloc(1, sizeof *g);
    if (!g) return NULL;
    atomic_init(&g->state, G_CLAIMED);
    struct lt_guard *h = atomic_load(&head);
    do g->next = h; while (!atomic_compare_exchange_weak(&head, &h, g));
  }
  copy_path(g->path, path ? path : "?");
  atomic_store(&g->changed, 0);
  atomic_store(&g->lo, (uintptr_t)base);
  atomic_store(&g->hi, ((uintptr_t)base + len + page_mask) & ~page_mask);
  atomic_store(&g->state, G_LIVE);
  return g;
}

void lt_guard_remove(lt_guard *g) {
  if (!g) return;
  atomic_store(&g->state, G_FREE);
}

const char *lt_guard_changed(const lt_guard *g) {
  return g && atomic_load(&g->changed) ? g->path : NULL;
}

unsigned lt_mapguard_faults(void) { return faults; }

unsigned long lt_mapguard_all_faults(void) { return atomic_load(&all_faults); }

const char *lt_mapguard_last(void) { return fault_path; }

/* the registered mapping holding [p, p+n), or NULL */
static struct lt_guard *find(const void *p, size_t n) {
  uintptr_t a = (uintptr_t)p;
  for (struct lt_guard *g = atomic_load(&head); g; g = g->next)
    if (atomic_load(&g->state) == G_LIVE && a >= atomic_load(&g->lo) && a + n <= atomic_load(&g->hi)) return g;
  return NULL;
}

int lt_mapguard_copy(void *dst, const void *src, size_t n) {
  if (!find(src, n)) return -1;
  memcpy(dst, src, n);   /* faults here go through on_sigbus */
  return 0;
}
