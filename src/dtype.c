/*
** dtype.c: the dtype traits table, promotion, and element conversions.
** float16, bfloat16 and float8 conversions follow c10's CPU code bit for
** bit (c10/util/Half.h, BFloat16.h, Float8_e4m3fn.h, Float8_e5m2.h): round to
** nearest even, subnormals kept, float8_e4m3fn overflow becomes nan.
** Wider types reach these formats through float32, as c10 does.
*/
#include <math.h>
#include <string.h>
#include "lt.h"

const lt_dtype_traits lt_dtypes[LT_NDTYPES] = {
  [LT_FLOAT32] = {"float32", 4, LT_KIND_FLOAT, 1, 2},
  [LT_FLOAT64] = {"float64", 8, LT_KIND_FLOAT, 1, 3},
  [LT_FLOAT16] = {"float16", 2, LT_KIND_FLOAT, 1, 1},
  [LT_BFLOAT16] = {"bfloat16", 2, LT_KIND_FLOAT, 1, 1},
  [LT_INT8] = {"int8", 1, LT_KIND_INT, 1, 1},
  [LT_INT16] = {"int16", 2, LT_KIND_INT, 1, 2},
  [LT_INT32] = {"int32", 4, LT_KIND_INT, 1, 3},
  [LT_INT64] = {"int64", 8, LT_KIND_INT, 1, 4},
  [LT_UINT8] = {"uint8", 1, LT_KIND_INT, 0, 1},
  [LT_BOOL] = {"bool", 1, LT_KIND_BOOL, 0, 0},
  [LT_COMPLEX64] = {"complex64", 8, LT_KIND_COMPLEX, 1, 2},
  [LT_COMPLEX128] = {"complex128", 16, LT_KIND_COMPLEX, 1, 3},
  [LT_FLOAT8_E4M3FN] = {"float8_e4m3fn", 1, LT_KIND_FLOAT, 1, 0},
  [LT_FLOAT8_E5M2] = {"float8_e5m2", 1, LT_KIND_FLOAT, 1, 0},
  [LT_UINT16] = {"uint16", 2, LT_KIND_INT, 0, 2},
  [LT_UINT32] = {"uint32", 4, LT_KIND_INT, 0, 3},
  [LT_UINT64] = {"uint64", 8, LT_KIND_INT, 0, 4},
};

int lt_dtype_from_name(const char *name) {
  for (int i = 0; i < LT_NDTYPES; i++)
    if (strcmp(lt_dtypes[i].name, name) == 0) return i;
  return -1;
}

/*
** PyTorch's promotion for two tensor operands: the higher kind wins; within
** floats the wider wins (float16 with bfloat16 gives float32); within ints
** uint8 with a signed type gives the smallest signed type holding both.
** uint16/uint32/uint64 promote as PyTorch 2.3's promoteTypes: with a
** floating type to that type, with any other (bool, complex and the other
** integers included) not at all (LT_NDTYPES).
*/
lt_dtype lt_promote(lt_dtype a, lt_dtype b) {
  const lt_dtype_traits *ta = &lt_dtypes[a], *tb = &lt_dtypes[b];
  if (a == b) return a;
  if (lt_is_wide_unsigned(a) || lt_is_wide_unsigned(b)) {
    if (ta->kind == LT_KIND_FLOAT) return a;
    if (tb->kind == LT_KIND_FLOAT) return b;
    return LT_NDTYPES;
  }
  if (ta->kind != tb->kind) {
    const lt_dtype_traits *hi = ta->kind > tb->kind ? ta : tb;
    const lt_dtype_traits *lo = ta->kind > tb->kind ? tb : ta;
    lt_dtype h = ta->kind > tb->kind ? a : b;
    lt_dtype l = ta->kind > tb->kind ? b : a;
    (void)hi;
    if (lt_dtypes[h].kind == LT_KIND_COMPLEX && lo->kind == LT_KIND_FLOAT &&
        l == LT_FLOAT64)
      return LT_COMPLEX128;
    return h;
  }
  switch (ta->kind) {
    case LT_KIND_FLOAT:
      if (ta->rank == tb->rank) return LT_FLOAT32;  /* f16/bf16, e4m3/e5m2 */
      if (ta->rank == 0 || tb->rank == 0) {          /* float8 with others */
        lt_dtype o = ta->rank == 0 ? b : a;
        return o;
      }
      return ta->rank > tb->rank ? a : b;
    case LT_KIND_INT:
      if (a == LT_UINT8 || b == LT_UINT8) {
        lt_dtype o = a == LT_UINT8 ? b : a;
        return o == LT_INT8 ? LT_INT16 : o;
      }
      return ta->rank > tb->rank ? a : b;
    default:
      return ta->rank > tb->rank ? a : b;
  }
}

/* ---- bit-exact small floats -------------------------------------------- */

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* always inlined into the bulk loops (HOT_LOOP), which then vectorise */
static inline __attribute__((always_inline)) float half_to_float(uint16_t h) {
  const uint32_t w = (uint32_t)h << 16;
  const uint32_t sign = w & UINT32_C(0x80000000);
  const uint32_t two_w = w + w;
  const uint32_t exp_offset = UINT32_C(0xE0) << 23;
  const float normalized = u2f((two_w >> 4) + exp_offset) * 0x1.0p-112f;
  const float denormalized = u2f((two_w >> 17) | (UINT32_C(126) << 23)) - 0.5f;
  const uint32_t cutoff = UINT32_C(1) << 27;
  const uint32_t den = -(uint32_t)(two_w < cutoff);   /* a mask, not a branch: the loops vectorise */
  return u2f(sign | (f2u(denormalized) & den) | (f2u(normalized) & ~den));
}

float lt_half_to_float(uint16_t h) { return half_to_float(h); }

static inline __attribute__((always_inline)) uint16_t float_to_half(float f) {
  const uint32_t w = f2u(f);
  float base = (u2f(w & UINT32_C(0x7FFFFFFF)) * 0x1.0p+112f) * 0x1.0p-110f;
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & UINT32_C(0x80000000);
  uint32_t bias = shl1_w & UINT32_C(0xFF000000);
  const uint32_t small = -(uint32_t)(bias < UINT32_C(0x71000000));   /* masks, not branches */
  bias = (bias & ~small) | (UINT32_C(0x71000000) & small);
  base = u2f((bias >> 1) + UINT32_C(0x07800000)) + base;
  const uint32_t bits = f2u(base);
  const uint32_t exp_bits = (bits >> 13) & UINT32_C(0x00007C00);
  const uint32_t mantissa_bits = bits & UINT32_C(0x00000FFF);
  const uint32_t nonsign = exp_bits + mantissa_bits;
  const uint32_t nan = -(uint32_t)(shl1_w > UINT32_C(0xFF000000));
  return (uint16_t)((sign >> 16) | (UINT32_C(0x7E00) & nan) | (nonsign & ~nan));
}

uint16_t lt_float_to_half(float f) { return float_to_half(f); }

float lt_bf16_to_float(uint16_t b) { return u2f((uint32_t)b << 16); }

/* nan gives 0xFFFF, as ATen's vectorised CPU conversion (cvtfp32_bf16) does;
   the scalar c10 path would give 0x7FC0, but tensors convert through the
   vectorised one */
uint16_t lt_float_to_bf16(float f) {
  if (isnan(f)) return UINT16_C(0xFFFF);
  uint32_t u = f2u(f);
  uint32_t bias = ((u >> 16) & 1) + UINT32_C(0x7FFF);
  return (uint16_t)((u + bias) >> 16);
}

float lt_e4m3_to_float(uint8_t v) {
  const uint32_t w = (uint32_t)v << 24;
  const uint32_t sign = w & UINT32_C(0x80000000);
  const uint32_t nonsign = w & UINT32_C(0x7FFFFFFF);
  if (nonsign == 0) return u2f(sign);
  uint32_t shift = (uint32_t)__builtin_clz(nonsign);
  shift = shift > 4 ? shift - 4 : 0;
  const int32_t inf_nan_mask =
      (int32_t)(((int64_t)(int32_t)(nonsign + 0x01000000)) >> 8) & INT32_C(0x7F800000);
  uint32_t r = sign | ((((nonsign << shift) >> 4) + ((0x78 - shift) << 23)) |
                       (uint32_t)inf_nan_mask);
  return u2f(r);
}

/* The fp8 byte of bits, a float's bits with the sign cleared and below the
   format's overflow threshold, rounded as c10 does (to nearest, ties to
   even): m mantissa bits, exponent bias; magnitudes under min_normal (a
   float's bits) are denormals, rounded by a float add of denorm_mask. */
static uint8_t fp8_round(uint32_t bits, int m, int bias, uint32_t min_normal, uint32_t denorm_mask) {
  if (bits < min_normal) {
    bits = f2u(u2f(bits) + u2f(denorm_mask));
    return (uint8_t)(bits - denorm_mask);
  }
  int shift = 23 - m;
  uint32_t mant_odd = (bits >> shift) & 1;
  bits += ((uint32_t)(bias - 127) << 23) + ((UINT32_C(1) << (shift - 1)) - 1);
  bits += mant_odd;
  return (uint8_t)(bits >> shift);
}

/* e4m3fn has no infinity: overflow and nan give 0x7f (nan) */
uint8_t lt_float_to_e4m3(float f) {
  uint32_t bits = f2u(f);
  const uint32_t sign = bits & UINT32_C(0x80000000);
  bits ^= sign;
  uint8_t r = bits >= UINT32_C(1087) << 20 ? 0x7f
            : fp8_round(bits, 3, 7, UINT32_C(121) << 23, UINT32_C(141) << 23);
  return (uint8_t)(r | (sign >> 24));
}

float lt_e5m2_to_float(uint8_t v) { return lt_half_to_float((uint16_t)((uint16_t)v << 8)); }

/* e5m2: overflow gives infinity (0x7c), nan 0x7f */
uint8_t lt_float_to_e5m2(float f) {
  uint32_t bits = f2u(f);
  const uint32_t sign = bits & UINT32_C(0x80000000);
  bits ^= sign;
  uint8_t r = bits >= UINT32_C(143) << 23 ? (bits > UINT32_C(255) << 23 ? 0x7f : 0x7c)
            : fp8_round(bits, 2, 15, UINT32_C(113) << 23, UINT32_C(134) << 23);
  return (uint8_t)(r | (sign >> 24));
}

/* ---- one element --------------------------------------------------------- */

/* double to int64 without undefined behaviour: nan and out of range give
   INT64_MIN, as x86's cvttsd2si does */
static int64_t d2i(double v) {
  if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0)) return INT64_MIN;
  return (int64_t)v;
}

double lt_get_f64(lt_dtype dt, const void *p) {
  switch (dt) {
    case LT_FLOAT32: return *(const float *)p;
    case LT_FLOAT64: return *(const double *)p;
    case LT_FLOAT16: return lt_half_to_float(*(const uint16_t *)p);
    case LT_BFLOAT16: return lt_bf16_to_float(*(const uint16_t *)p);
    case LT_INT8: return *(const int8_t *)p;
    case LT_INT16: return *(const int16_t *)p;
    case LT_INT32: return *(const int32_t *)p;
    case LT_INT64: return (double)*(const int64_t *)p;
    case LT_UINT8: return *(const uint8_t *)p;
    case LT_UINT16: return *(const uint16_t *)p;
    case LT_UINT32: return *(const uint32_t *)p;
    case LT_UINT64: return (double)*(const uint64_t *)p;
    case LT_BOOL: return *(const uint8_t *)p != 0;
    case LT_COMPLEX64: return ((const float *)p)[0];
    case LT_COMPLEX128: return ((const double *)p)[0];
    case LT_FLOAT8_E4M3FN: return lt_e4m3_to_float(*(const uint8_t *)p);
    case LT_FLOAT8_E5M2: return lt_e5m2_to_float(*(const uint8_t *)p);
    default: return 0;
  }
}

int64_t lt_get_i64(lt_dtype dt, const void *p) {
  switch (dt) {
    case LT_INT8: return *(const int8_t *)p;
    case LT_INT16: return *(const int16_t *)p;
    case LT_INT32: return *(const int32_t *)p;
    case LT_INT64: return *(const int64_t *)p;
    case LT_UINT8: return *(const uint8_t *)p;
    case LT_UINT16: return *(const uint16_t *)p;
    case LT_UINT32: return *(const uint32_t *)p;
    case LT_UINT64: return (int64_t)*(const uint64_t *)p;   /* wraps past INT64_MAX */
    case LT_BOOL: return *(const uint8_t *)p != 0;
    default: return d2i(lt_get_f64(dt, p));
  }
}

void lt_get_c128(lt_dtype dt, const void *p, double out[2]) {
  if (dt == LT_COMPLEX64) {
    out[0] = ((const float *)p)[0];
    out[1] = ((const float *)p)[1];
  } else if (dt == LT_COMPLEX128) {
    out[0] = ((const double *)p)[0];
    out[1] = ((const double *)p)[1];
  } else {
    out[0] = lt_get_f64(dt, p);
    out[1] = 0;
  }
}

void lt_set_f64(lt_dtype dt, void *p, double v) {
  switch (dt) {
    case LT_FLOAT32: *(float *)p = (float)v; break;
    case LT_FLOAT64: *(double *)p = v; break;
    case LT_FLOAT16: *(uint16_t *)p = lt_float_to_half((float)v); break;
    case LT_BFLOAT16: *(uint16_t *)p = lt_float_to_bf16((float)v); break;
    case LT_BOOL: *(uint8_t *)p = v != 0; break;
    case LT_COMPLEX64: ((float *)p)[0] = (float)v; ((float *)p)[1] = 0; break;
    case LT_COMPLEX128: ((double *)p)[0] = v; ((double *)p)[1] = 0; break;
    case LT_FLOAT8_E4M3FN: *(uint8_t *)p = lt_float_to_e4m3((float)v); break;
    case LT_FLOAT8_E5M2: *(uint8_t *)p = lt_float_to_e5m2((float)v); break;
    /* [2^63, 2^64) exactly, the rest through int64 as the other integers
       (x86's conversion: -1.0 gives 2^64 - 1) */
    case LT_UINT64:
      *(uint64_t *)p = v >= 9223372036854775808.0 && v < 18446744073709551616.0 ? (uint64_t)v
                       : (uint64_t)d2i(v);
      break;
    default: lt_set_i64(dt, p, d2i(v)); break;
  }
}

void lt_set_i64(lt_dtype dt, void *p, int64_t v) {
  switch (dt) {
    case LT_INT8: *(int8_t *)p = (int8_t)(uint8_t)v; break;
    case LT_INT16: *(int16_t *)p = (int16_t)(uint16_t)v; break;
    case LT_INT32: *(int32_t *)p = (int32_t)(uint32_t)v; break;
    case LT_INT64: *(int64_t *)p = v; break;
    case LT_UINT8: *(uint8_t *)p = (uint8_t)v; break;
    case LT_UINT16: *(uint16_t *)p = (uint16_t)v; break;
    case LT_UINT32: *(uint32_t *)p = (uint32_t)v; break;
    case LT_UINT64: *(uint64_t *)p = (uint64_t)v; break;
    case LT_BOOL: *(uint8_t *)p = v != 0; break;
    case LT_FLOAT64: case LT_COMPLEX128: lt_set_f64(dt, p, (double)v); break;
    /* narrower floats round once from the integer, as static_cast<float> does */
    default: lt_set_f64(dt, p, (double)(float)v); break;
  }
}

void lt_set_c128(lt_dtype dt, void *p, const double v[2]) {
  if (dt == LT_COMPLEX64) {
    ((float *)p)[0] = (float)v[0];
    ((float *)p)[1] = (float)v[1];
  } else if (dt == LT_COMPLEX128) {
    ((double *)p)[0] = v[0];
    ((double *)p)[1] = v[1];
  } else if (dt == LT_BOOL) {
    *(uint8_t *)p = v[0] != 0 || v[1] != 0;
  } else {
    lt_set_f64(dt, p, v[0]);
  }
}

/* ---- bulk conversion ----------------------------------------------------- */

/* the hot pairs (loading, --dtype conversion, casts of big tensors): one
   loop each, dst[i] = CONV(src[i]), the branch-free conversions above
   inlined so the compiler vectorises it (LT_VECTORIZE's AVX2 copy) */
#define AS_FLOAT(v) (float)(v)
#define AS_DOUBLE(v) (double)(v)
#define HOT_LOOP(NAME, TF, TT, CONV)                                              \
  LT_VECTORIZE static void NAME(const TF *s, TT *d, size_t n) {                   \
    for (size_t i = 0; i < n; i++) d[i] = CONV(s[i]);                             \
  }
HOT_LOOP(f32_bf16, float, uint16_t, lt_float_to_bf16)
HOT_LOOP(bf16_f32, uint16_t, float, lt_bf16_to_float)
HOT_LOOP(f32_f16, float, uint16_t, float_to_half)
HOT_LOOP(f16_f32, uint16_t, float, half_to_float)
HOT_LOOP(f32_f64, float, double, AS_DOUBLE)
HOT_LOOP(f64_f32, double, float, AS_FLOAT)
#undef HOT_LOOP
#undef AS_FLOAT
#undef AS_DOUBLE

/* a big conversion cut into items for the pool (pool.c) */
typedef struct conv_job { lt_dtype to, from; void *dst; const void *src; size_t n; } conv_job;

static void conv_item(void *ctx, int64_t i) {
  conv_job *c = ctx;
  size_t at = (size_t)i * (size_t)LT_PAR_ITEM, m = c->n - at < (size_t)LT_PAR_ITEM ? c->n - at : (size_t)LT_PAR_ITEM;
  lt_convert(c->to, (char *)c->dst + at * lt_dtypes[c->to].size, c->from,
             (const char *)c->src + at * lt_dtypes[c->from].size, m);
}

void lt_convert(lt_dtype to, void *dst, lt_dtype from, const void *src, size_t n) {
  size_t is = lt_dtypes[from].size, os = lt_dtypes[to].size;
  const char *s = src;
  char *d = dst;
  if (to == from) { memcpy(dst, src, n * os); return; }
  if (n >= (size_t)LT_PAR_MIN) {
    conv_job c = {to, from, dst, src, n};
    lt_parallel((int64_t)((n + (size_t)LT_PAR_ITEM - 1) / (size_t)LT_PAR_ITEM), conv_item, &c);
    return;
  }
#define HOT_PATH(FROM, TF, TO, TT, LOOP)                                   \
  if (from == FROM && to == TO) { LOOP((const TF *)src, (TT *)dst, n); return; }
  HOT_PATH(LT_FLOAT32, float, LT_BFLOAT16, uint16_t, f32_bf16)
  HOT_PATH(LT_BFLOAT16, uint16_t, LT_FLOAT32, float, bf16_f32)
  HOT_PATH(LT_FLOAT32, float, LT_FLOAT16, uint16_t, f32_f16)
  HOT_PATH(LT_FLOAT16, uint16_t, LT_FLOAT32, float, f16_f32)
  HOT_PATH(LT_FLOAT32, float, LT_FLOAT64, double, f32_f64)
  HOT_PATH(LT_FLOAT64, double, LT_FLOAT32, float, f64_f32)
#undef HOT_PATH
  int fk = lt_dtypes[from].kind, tk = lt_dtypes[to].kind;
  if (from == LT_UINT64 && tk == LT_KIND_FLOAT && to != LT_FLOAT64) {
    /* past 2^63 the int64 path would go negative: round once to float, as
       static_cast<float>(uint64_t) does */
    for (size_t i = 0; i < n; i++) {
      uint64_t u;
      memcpy(&u, s + i * is, 8);
      lt_set_f64(to, d + i * os, (double)(float)u);
    }
  } else if (from == LT_UINT64 && tk != LT_KIND_INT && tk != LT_KIND_BOOL) {
    for (size_t i = 0; i < n; i++) {   /* float64, complex */
      double c[2] = {lt_get_f64(from, s + i * is), 0};
      lt_set_c128(to, d + i * os, c);
    }
  } else if (fk == LT_KIND_COMPLEX || tk == LT_KIND_COMPLEX) {
    double c[2];
    for (size_t i = 0; i < n; i++) { lt_get_c128(from, s + i * is, c); lt_set_c128(to, d + i * os, c); }
  } else if (fk == LT_KIND_INT || fk == LT_KIND_BOOL) {
    for (size_t i = 0; i < n; i++) lt_set_i64(to, d + i * os, lt_get_i64(from, s + i * is));
  } else if (tk == LT_KIND_INT && to != LT_UINT64) {
    /* float to int: truncate toward zero through int64, as c10 does */
    for (size_t i = 0; i < n; i++) lt_set_i64(to, d + i * os, d2i(lt_get_f64(from, s + i * is)));
  } else {
    for (size_t i = 0; i < n; i++) lt_set_f64(to, d + i * os, lt_get_f64(from, s + i * is));
  }
}
