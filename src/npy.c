/*
** npy.c: NumPy .npy headers (parse and write). The I/O is the binding's
** (lnpy.c): .npy files through rawio.c; .npz archives, zips of .npy
** members, read with ltorch's zip reader (ptzip.c) and written through
** libzip.
**
** Layout, as numpy.lib.format reads and writes it:
**   1. magic "\x93NUMPY" (6 bytes)
**   2. u8 major, u8 minor: 1.0, 2.0 or 3.0 (minor 0 only)
**   3. header length HLEN: u16 LE (1.0) or u32 LE (2.0, 3.0); at most
**      LT_NPY_MAX_HEADER here
**   4. HLEN bytes: a Python dict literal {'descr': '<f4', 'fortran_order':
**      False, 'shape': (2, 3), } (each key once, in any order) padded with
**      spaces and ending in '\n' (latin-1 for 1.0/2.0, UTF-8 for 3.0);
**      descr is a byte order ('<' little, '>' big, '|' not applicable, '='
**      native) and a kind and size: b1 u1 i1 i2 i4 i8 f2 f4 f8 c8 c16
**      (numeric), U<n> (n UTF-32 code units per element, '<' or '>'),
**      S<n> or a<n> (n bytes, NUL-padded, '|'), O (O4, O8: Python
**      objects)
**   5. the data: prod(shape) elements, C order or (fortran_order) Fortran
**      order; numpy writes magic..newline to a multiple of 64 bytes. For
**      O the data is instead one pickle (protocol 2 or 3) of the whole
**      ndarray: numpy.core.multiarray._reconstruct (numpy._core in NumPy
**      2), then BUILD with (1, shape, dtype, is_fortran, [items in C
**      order]); the binding leaves it to the pickle reader (lpt.c)
*/
#include <stdlib.h>
#include <string.h>
#include "fmt.h"

static const unsigned char MAGIC[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

int lt_npy_preamble(const unsigned char *buf, size_t n, size_t *need, char *err) {
  if (n < 10 || memcmp(buf, MAGIC, 6) != 0) {
    snprintf(err, LT_MSG, "not a .npy file (bad magic)");
    return -1;
  }
  int major = buf[6];
  size_t hl;
  if (major == 1) hl = (size_t)buf[8] | (size_t)buf[9] << 8, *need = 10 + hl;
  else if (major == 2 || major == 3) {
    if (n < 12) { snprintf(err, LT_MSG, "truncated header"); return -1; }
    hl = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
    *need = 12 + hl;
  } else {
    snprintf(err, LT_MSG, "unsupported format version %d.%d", major, buf[7]);
    return -1;
  }
  if (buf[7] != 0) {
    snprintf(err, LT_MSG, "unsupported format version %d.%d", major, buf[7]);
    return -1;
  }
  if (hl > LT_NPY_MAX_HEADER) {
    snprintf(err, LT_MSG, "header length %zu exceeds the limit of %u", hl, LT_NPY_MAX_HEADER);
    return -1;
  }
  return 0;
}

typedef struct np_type { const char *code; lt_dtype dt; } np_type;
static const np_type NP_TYPES[] = {
  {"b1", LT_BOOL}, {"u1", LT_UINT8}, {"i1", LT_INT8}, {"i2", LT_INT16}, {"i4", LT_INT32},
  {"i8", LT_INT64}, {"f2", LT_FLOAT16}, {"f4", LT_FLOAT32}, {"f8", LT_FLOAT64},
  {"c8", LT_COMPLEX64}, {"c16", LT_COMPLEX128},
  {"u2", LT_UINT16}, {"u4", LT_UINT32}, {"u8", LT_UINT64},
};
#define NP_NTYPES (sizeof NP_TYPES / sizeof NP_TYPES[0])

const char *lt_npy_descr(lt_dtype dt) {
  switch (dt) {
    case LT_BOOL: return "|b1";
    case LT_UINT8: return "|u1";
    case LT_INT8: return "|i1";
    case LT_INT16: return "<i2";
    case LT_INT32: return "<i4";
    case LT_INT64: return "<i8";
    case LT_UINT16: return "<u2";
    case LT_UINT32: return "<u4";
    case LT_UINT64: return "<u8";
    case LT_FLOAT16: return "<f2";
    case LT_FLOAT32: return "<f4";
    case LT_FLOAT64: return "<f8";
    case LT_COMPLEX64: return "<c8";
    case LT_COMPLEX128: return "<c16";
    default: return NULL;
  }
}

/* a tiny scanner over the dict literal */
typedef struct scan { const char *p, *end; } scan;

static void skipws(scan *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}
static int accept(scan *s, char c) {
  skipws(s);
  if (s->p < s->end && *s->p == c) { s->p++; return 1; }
  return 0;
}
/* a quoted string into out (cap bytes); 0 ok */
static int qstring(scan *s, char *out, size_t cap) {
  skipws(s);
  if (s->p >= s->end || (*s->p != '\'' && *s->p != '"')) return -1;
  char q = *s->p++;
  size_t n = 0;
  while (s->p < s->end && *s->p != q) {
    if (*s->p == '\\' || n + 1 >= cap) return -1;
    out[n++] = *s->p++;
  }
  if (s->p >= s->end) return -1;
  s->p++;
  out[n] = 0;
  return 0;
}
static int word(scan *s, const char *w) {
  skipws(s);
  size_t n = strlen(w);
  if ((size_t)(s->end - s->p) >= n && memcmp(s->p, w, n) == 0) { s->p += n; return 1; }
  return 0;
}

int lt_npy_parse(const unsigned char *buf, size_t n, lt_npy_header *h, char *err) {
  size_t need;
  memset(h, 0, sizeof *h);
  if (lt_npy_preamble(buf, n, &need, err)) return -1;
  if (n < need) {
    snprintf(err, LT_MSG, "truncated header: expected %zu bytes, found %zu", need, n);
    return -1;
  }
  h->major = buf[6];
  h->minor = buf[7];
  size_t start = h->major == 1 ? 10 : 12;
  h->header_len = need - start;
  h->data_offset = need;
  scan s = {(const char *)buf + start, (const char *)buf + need};
  int seen_descr = 0, seen_fortran = 0, seen_shape = 0;
  if (!accept(&s, '{')) { snprintf(err, LT_MSG, "header is not a dict literal"); return -1; }
  for (;;) {
    char key[32];
    if (accept(&s, '}')) break;
    if (qstring(&s, key, sizeof key) || !accept(&s, ':')) {
      snprintf(err, LT_MSG, "header dict is malformed at byte %zu", (size_t)(s.p - (const char *)buf));
      return -1;
    }
    if (strcmp(key, "descr") == 0 && !seen_descr) {
      seen_descr = 1;
      if (qstring(&s, h->descr, sizeof h->descr)) {
        snprintf(err, LT_MSG, "'descr' is not a simple type string (structured dtypes are not supported)");
        return -1;
      }
    } else if (strcmp(key, "fortran_order") == 0 && !seen_fortran) {
      seen_fortran = 1;
      if (word(&s, "True")) h->fortran = 1;
      else if (word(&s, "False")) h->fortran = 0;
      else { snprintf(err, LT_MSG, "'fortran_order' is not True or False"); return -1; }
    } else if (strcmp(key, "shape") == 0 && !seen_shape) {
      seen_shape = 1;
      if (!accept(&s, '(')) { snprintf(err, LT_MSG, "'shape' is not a tuple"); return -1; }
      while (!accept(&s, ')')) {
        skipws(&s);
        if (h->ndim >= LT_MAX_DIMS) {
          snprintf(err, LT_MSG, "'shape' rank exceeds the limit of %d", LT_MAX_DIMS);
          return -1;
        }
        int64_t v = 0;
        int digits = 0;
        while (s.p < s.end && *s.p >= '0' && *s.p <= '9') {
          if (v > (INT64_MAX - 9) / 10) { snprintf(err, LT_MSG, "'shape' dimension overflows"); return -1; }
          v = v * 10 + (*s.p++ - '0');
          digits++;
        }
        if (!digits) { snprintf(err, LT_MSG, "'shape' holds a non-integer (or negative) dimension"); return -1; }
        if (s.p < s.end && *s.p == 'L') s.p++;
        h->shape[h->ndim++] = v;
        if (!accept(&s, ',')) {
          if (!accept(&s, ')')) { snprintf(err, LT_MSG, "'shape' is not a tuple of integers"); return -1; }
          break;
        }
      }
    } else {
      snprintf(err, LT_MSG, "header has an unexpected or repeated key '%s'", key);
      return -1;
    }
    if (!accept(&s, ',')) {
      if (!accept(&s, '}')) { snprintf(err, LT_MSG, "header dict is malformed at byte %zu", (size_t)(s.p - (const char *)buf)); return -1; }
      break;
    }
  }
  skipws(&s);
  if (s.p != s.end) { snprintf(err, LT_MSG, "header has text after the dict"); return -1; }
  if (!seen_descr || !seen_fortran || !seen_shape) {
    snprintf(err, LT_MSG, "header lacks '%s'", !seen_descr ? "descr" : !seen_fortran ? "fortran_order" : "shape");
    return -1;
  }
  if (lt_shape_numel(h->ndim, h->shape) < 0) { snprintf(err, LT_MSG, "'shape' overflows"); return -1; }
  /* descr: byte order + kind/size */
  char bo = h->descr[0];
  const char *code = h->descr + 1;
  if (bo != '<' && bo != '>' && bo != '|' && bo != '=') bo = '=', code = h->descr;
  int64_t numel = lt_shape_numel(h->ndim, h->shape);
  if (code[0] == 'U' || code[0] == 'S' || code[0] == 'a') {
    /* strings: U<n> is n UTF-32 code units, S<n> n bytes */
    const char *d = code + 1;
    uint64_t cnt = 0;
    if (!*d) { snprintf(err, LT_MSG, "unsupported dtype '%s' (a string dtype needs a length)", h->descr); return -1; }
    for (; *d; d++) {
      if (*d < '0' || *d > '9' || cnt > (UINT64_MAX - 9) / 10) {
        snprintf(err, LT_MSG, "unsupported dtype '%s'", h->descr);
        return -1;
      }
      cnt = cnt * 10 + (uint64_t)(*d - '0');
    }
    h->kind = code[0] == 'U' ? 'U' : 'S';
    if (h->kind == 'U' && cnt > LT_NPY_MAX_ITEM / 4) cnt = LT_NPY_MAX_ITEM + 1;
    else if (h->kind == 'U') cnt *= 4;
    if (cnt > LT_NPY_MAX_ITEM) {
      snprintf(err, LT_MSG, "dtype '%s': element size exceeds the limit of %u bytes", h->descr, LT_NPY_MAX_ITEM);
      return -1;
    }
    h->itemsize = (size_t)cnt;
    h->big_endian = h->kind == 'U' && bo == '>';
    h->dtype = LT_UINT8;
    if (h->itemsize && numel > INT64_MAX / (int64_t)h->itemsize) { snprintf(err, LT_MSG, "'shape' overflows"); return -1; }
    return 0;
  }
  if (strcmp(code, "O") == 0 || strcmp(code, "O8") == 0 || strcmp(code, "O4") == 0) {
    h->kind = 'O';
    h->itemsize = 0;
    h->dtype = LT_UINT8;
    return 0;
  }
  size_t i;
  for (i = 0; i < NP_NTYPES; i++) if (strcmp(NP_TYPES[i].code, code) == 0) break;
  if (i == NP_NTYPES) {
    snprintf(err, LT_MSG, "unsupported dtype '%s'", h->descr);
    return -1;
  }
  h->dtype = NP_TYPES[i].dt;
  h->itemsize = lt_dtypes[h->dtype].size;
  h->big_endian = bo == '>' && lt_dtypes[h->dtype].size > 1;
  if (numel > INT64_MAX / (int64_t)lt_dtypes[h->dtype].size) {
    snprintf(err, LT_MSG, "'shape' overflows");
    return -1;
  }
  return 0;
}

size_t lt_npy_format_header(char *out, size_t cap, lt_dtype dt, int ndim, const int64_t *shape) {
  return lt_npy_format_header_descr(out, cap, lt_npy_descr(dt), ndim, shape);
}

size_t lt_npy_format_header_descr(char *out, size_t cap, const char *descr, int ndim, const int64_t *shape) {
  char dict[96 + LT_MAX_DIMS * 24];
  if (strlen(descr) > 24) return 0;
  size_t n = (size_t)snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
  for (int i = 0; i < ndim; i++)
    n += (size_t)snprintf(dict + n, sizeof dict - n, i ? ", %lld" : "%lld", (long long)shape[i]);
  n += (size_t)snprintf(dict + n, sizeof dict - n, "%s), }", ndim == 1 ? "," : "");
  size_t total = 10 + n + 1;
  total = (total + 63) / 64 * 64;
  if (total > cap) return 0;
  memcpy(out, MAGIC, 6);
  out[6] = 1;
  out[7] = 0;
  size_t hl = total - 10;
  out[8] = (char)(hl & 0xff);
  out[9] = (char)(hl >> 8);
  memcpy(out + 10, dict, n);
  memset(out + 10 + n, ' ', total - 10 - n - 1);
  out[total - 1] = '\n';
  return total;
}

/* ---- strings ---------------------------------------------------------------- */

size_t lt_npy_utf32_to_utf8(const unsigned char *in, size_t nchars, int big, char *out, char *err) {
  size_t len = nchars, n = 0;
  /* NumPy shows U strings without their trailing NULs */
  while (len > 0) {
    const unsigned char *q = in + 4 * (len - 1);
    if (q[0] | q[1] | q[2] | q[3]) break;
    len--;
  }
  for (size_t i = 0; i < len; i++) {
    const unsigned char *q = in + 4 * i;
    uint32_t c = big ? (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3]
                     : (uint32_t)q[3] << 24 | (uint32_t)q[2] << 16 | (uint32_t)q[1] << 8 | q[0];
    if (c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
      snprintf(err, LT_MSG, "character %zu is not a Unicode code point (0x%lX)", i + 1, (unsigned long)c);
      return (size_t)-1;
    }
    if (c < 0x80) out[n++] = (char)c;
    else if (c < 0x800) {
      out[n++] = (char)(0xC0 | c >> 6);
      out[n++] = (char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out[n++] = (char)(0xE0 | c >> 12);
      out[n++] = (char)(0x80 | (c >> 6 & 0x3F));
      out[n++] = (char)(0x80 | (c & 0x3F));
    } else {
      out[n++] = (char)(0xF0 | c >> 18);
      out[n++] = (char)(0x80 | (c >> 12 & 0x3F));
      out[n++] = (char)(0x80 | (c >> 6 & 0x3F));
      out[n++] = (char)(0x80 | (c & 0x3F));
    }
  }
  return n;
}

/* decode one UTF-8 sequence at s (n bytes left): its length, or 0 when it
   is not valid (overlong, surrogate, beyond U+10FFFF, truncated) */
static size_t utf8_step(const unsigned char *s, size_t n, uint32_t *cp) {
  unsigned char b = s[0];
  size_t len;
  uint32_t c, min;
  if (b < 0x80) { *cp = b; return 1; }
  if (b >= 0xC2 && b <= 0xDF) len = 2, c = b & 0x1F, min = 0x80;
  else if (b >= 0xE0 && b <= 0xEF) len = 3, c = b & 0x0F, min = 0x800;
  else if (b >= 0xF0 && b <= 0xF4) len = 4, c = b & 0x07, min = 0x10000;
  else return 0;
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    c = c << 6 | (s[i] & 0x3F);
  }
  if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
  *cp = c;
  return len;
}

int64_t lt_npy_utf8_chars(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  int64_t count = 0;
  uint32_t c;
  for (size_t i = 0; i < n; count++) {
    size_t k = utf8_step(p + i, n - i, &c);
    if (!k) return -1;
    i += k;
  }
  return count;
}

void lt_npy_utf8_to_utf32(const char *s, size_t n, unsigned char *out, size_t nchars) {
  const unsigned char *p = (const unsigned char *)s;
  size_t o = 0;
  uint32_t c;
  for (size_t i = 0; i < n && o < nchars; o++) {
    size_t k = utf8_step(p + i, n - i, &c);
    if (!k) break;
    i += k;
    out[4 * o] = (unsigned char)c;
    out[4 * o + 1] = (unsigned char)(c >> 8);
    out[4 * o + 2] = (unsigned char)(c >> 16);
    out[4 * o + 3] = (unsigned char)(c >> 24);
  }
  memset(out + 4 * o, 0, 4 * (nchars - o));
}
