/*
** buf.c: the core's one growable byte buffer (lt_buf), and the text
** helpers around it: the UTF-8 check every writer and reader uses (strict:
** shortest forms only, no surrogates, nothing above U+10FFFF, as Python's
** and Rust's decoders), and the JSON string escaper of the safetensors
** header writer and the JSON encoder (serde_json's escapes). Lowest layer:
** uses nothing of ltorch. Contracts in lt.h.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lt.h"

#define FIRST_CAP 256

void lt_buf_put(lt_buf *b, const void *s, size_t n) {
  if (b->oom) return;
  if (b->cap - b->n < n) {
    size_t cap = b->cap ? b->cap : FIRST_CAP;
    while (cap - b->n < n) {
      if (cap > SIZE_MAX / 2) { b->oom = 1; return; }
      cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) { b->oom = 1; return; }
    b->p = p;
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->n, s, n);
  b->n += n;
}

void lt_buf_puts(lt_buf *b, const char *s) { lt_buf_put(b, s, strlen(s)); }

void lt_buf_free(lt_buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

int lt_utf8_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s, *e = p + n;
  while (p < e) {
    unsigned c = *p;
    if (c < 0x80) { p++; continue; }
    size_t k;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) { k = 1; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { k = 2; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { k = 3; cp = c & 0x07; }
    else return 0;
    if ((size_t)(e - p) <= k) return 0;
    for (size_t i = 1; i <= k; i++) {
      if ((p[i] & 0xC0) != 0x80) return 0;
      cp = cp << 6 | (p[i] & 0x3F);
    }
    if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    p += k + 1;
  }
  return 1;
}

void lt_buf_json_string(lt_buf *b, const char *s, size_t n) {
  lt_buf_put(b, "\"", 1);
  size_t run = 0;   /* bytes copied as they are, put in one go */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc;
    char u[8];
    switch (c) {
      case '"': esc = "\\\""; break;
      case '\\': esc = "\\\\"; break;
      case '\n': esc = "\\n"; break;
      case '\r': esc = "\\r"; break;
      case '\t': esc = "\\t"; break;
      case '\b': esc = "\\b"; break;
      case '\f': esc = "\\f"; break;
      default:
        if (c >= 0x20) { run++; continue; }
        snprintf(u, sizeof u, "\\u%04x", c);
        esc = u;
    }
    lt_buf_put(b, s + i - run, run);
    run = 0;
    lt_buf_puts(b, esc);
  }
  lt_buf_put(b, s + n - run, run);
  lt_buf_put(b, "\"", 1);
}
