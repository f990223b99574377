/*
** nnops.c: the C core of torch.nn.functional's own ops (nnops.h): index-map
** copies for the padding modes and nearest interpolation, PyTorch 1.13's
** linear interpolation, transposed convolution as gemm (lt_gemm, OpenBLAS)
** plus col2im, group norm, and the class-index loss of cross_entropy.
** Buffers come checked and contiguous from the binding (lnn.c).
*/
#include <string.h>
#include <math.h>
#include "nnops.h"

/* ---- index maps ---------------------------------------------------------- */

void lt_pad_map(int mode, int64_t in, int64_t pl, int64_t pr, int64_t *map) {
  int64_t out = in + pl + pr;
  /* circular: the cropped part starts at lo and has m elements */
  int64_t lo = pl < 0 ? -pl : 0, m = in + (pl < 0 ? pl : 0) + (pr < 0 ? pr : 0);
  int64_t start = pl > 0 ? pl : 0;
  for (int64_t o = 0; o < out; o++) {
    int64_t i = o - pl;
    switch (mode) {
      case LT_PAD_CONSTANT:
        map[o] = i >= 0 && i < in ? i : -1;
        break;
      case LT_PAD_REFLECT:
        if (i < 0) i = -i;
        if (i >= in) i = 2 * (in - 1) - i;
        map[o] = i;
        break;
      case LT_PAD_REPLICATE:
        map[o] = i < 0 ? 0 : i >= in ? in - 1 : i;
        break;
      default: {          /* circular */
        int64_t j = (o - start) % m;
        map[o] = lo + (j < 0 ? j + m : j);
      }
    }
  }
}

void lt_nearest_map(int64_t in, int64_t out, double scale, int exact, int shortcut, int64_t *map) {
  /* compute_scales_value<float>: 1/scale in double, or in/out in float */
  float s = scale > 0 ? (float)(1.0 / scale) : (float)in / (float)out;
  for (int64_t o = 0; o < out; o++) {
    int64_t v;
    if (shortcut && !exact && out == in) v = o;
    else if (shortcut && !exact && out == 2 * in) v = o >> 1;
    else if (exact) v = (int64_t)floorf((float)(((double)o + 0.5) * s));
    else v = (int64_t)floorf((float)o * s);
    map[o] = v < in - 1 ? v : in - 1;
  }
}

void lt_map_copy(const lt_tensor *x, lt_tensor *out, const int64_t *const *maps, const void *fill) {
  int nd = out->ndim;
  size_t isz = lt_dtypes[out->dtype].size;
  int64_t n = lt_numel(out);
  char *o = lt_data(out);
  const char *xb = lt_data(x);
  if (n == 0) return;
  if (nd == 0) { lt_copy_elem(o, xb, isz); return; }
  int64_t last = out->shape[nd - 1], rows = n / last, xs = x->stride[nd - 1];
  const int64_t *lm = maps[nd - 1];
  int64_t idx[LT_MAX_DIMS] = {0};
  for (int64_t r = 0; r < rows; r++) {
    int64_t off = 0;
    int fillrow = 0;
    for (int d = 0; d < nd - 1; d++) {
      int64_t s = maps[d] ? maps[d][idx[d]] : idx[d];
      if (s < 0) { fillrow = 1; break; }
      off += s * x->stride[d];
    }
    for (int64_t j = 0; j < last; j++, o += isz) {
      int64_t s = lm ? lm[j] : j;
      if (fillrow || s < 0) lt_copy_elem(o, fill, isz);
      else lt_copy_elem(o, xb + (off + s * xs) * (int64_t)isz, isz);
    }
    for (int d = nd - 2; d >= 0; d--) {
      if (++idx[d] < out->shape[d]) break;
      idx[d] = 0;
    }
  }
}

/* ---- interpolation ------------------------------------------------------- */

/* PyTorch 1.13's UpSample.h in arithmetic T (its opmath): the ratio of a
   dim (area_pixel_compute_scale), then each output index's two source
   indices and weights (compute_source_index_and_lambda) */
#define DEF_LINEAR(T, NAME)                                                          \
  static T NAME##_ratio(int64_t in, int64_t out, int align, double scale) {          \
    if (align) return out > 1 ? (T)(in - 1) / (T)(out - 1) : (T)0;                   \
    return scale > 0 ? (T)(1.0 / scale) : (T)in / (T)out;                           \
  }                                                                                  \
  static void NAME##_index(T ratio, int64_t o, int64_t in, int64_t out, int align,   \
                           int64_t *i0, int64_t *i1, T *l0, T *l1) {                 \
    if (out == in) { *i0 = *i1 = o; *l0 = 1; *l1 = 0; return; }                      \
    T real;                                                                          \
    if (align) real = ratio * (T)o;                                                  \
    else {                                                                           \
      real = (T)(ratio * ((double)o + 0.5) - 0.5);                                   \
      if (real < 0) real = 0;                                                        \
    }                                                                                \
    int64_t a = (int64_t)real;                                                       \
    if (a > in - 1) a = in - 1;                                                      \
    *i0 = a;                                                                         \
    *i1 = a + (a < in - 1 ? 1 : 0);                                                  \
    T l = real - (T)a;                                                               \
    *l1 = l < 0 ? 0 : l > 1 ? 1 : l;                                                 \
    *l0 = (T)1 - *l1;                                                                \
  }                                                                                  \
  static void NAME(int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW,     \
                   int align, double sh, double sw, const T *x, T *y, void *scratch) { \
    int64_t *wi0 = scratch, *wi1 = wi0 + OW;                                         \
    T *wl0 = (T *)(wi1 + OW), *wl1 = wl0 + OW;                                       \
    T rh = NAME##_ratio(H, OH, align, sh), rw = NAME##_ratio(W, OW, align, sw);      \
    for (int64_t j = 0; j < OW; j++)                                                 \
      NAME##_index(rw, j, W, OW, align, &wi0[j], &wi1[j], &wl0[j], &wl1[j]);         \
    for (int64_t p = 0; p < planes; p++) {                                           \
      const T *xp = x + p * H * W;                                                   \
      T *yp = y + p * OH * OW;                                                       \
      for (int64_t i = 0; i < OH; i++) {                                             \
        int64_t h0, h1;                                                              \
        T hl0, hl1;                                                                  \
        NAME##_index(rh, i, H, OH, align, &h0, &h1, &hl0, &hl1);                     \
        const T *r0 = xp + h0 * W, *r1 = xp + h1 * W;                                \
        for (int64_t j = 0; j < OW; j++)                                             \
          yp[i * OW + j] = hl0 * (wl0[j] * r0[wi0[j]] + wl1[j] * r0[wi1[j]]) +       \
                           hl1 * (wl0[j] * r1[wi0[j]] + wl1[j] * r1[wi1[j]]);        \
      }                                                                              \
    }                                                                                \
  }
DEF_LINEAR(float, linear_f32)
DEF_LINEAR(double, linear_f64)

void lt_upsample_bilinear(lt_dtype dt, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW,
                          int align_corners, double scale_h, double scale_w, const void *x, void *y,
                          void *scratch) {
  LT_BY_FLOAT(dt, linear_f32, linear_f64, planes, H, W, OH, OW, align_corners, scale_h, scale_w, x, y,
              scratch);
}

/* PyTorch 1.13's bicubic convolution coefficients (A = -0.75) of the
   fraction t, then the four clamped source indices and weights of each
   output index (HelperInterpCubic), in arithmetic T */
#define DEF_CUBIC(T, NAME, RATIO)                                                    \
  static void NAME##_index(T ratio, int64_t o, int64_t in, int align, int64_t *ix, T *w) { \
    T real = align ? ratio * (T)o : (T)(ratio * ((double)o + 0.5) - 0.5);            \
    int64_t a = (int64_t)floor((double)real);                                       \
    if (a > in - 1) a = in - 1;                                                      \
    T t = real - (T)a;                                                               \
    t = t < 0 ? 0 : t > 1 ? 1 : t;                                                   \
    const T A = (T)-0.75;                                                            \
    T x1 = t + 1, x2 = 1 - t, x3 = 2 - t;                                            \
    w[0] = ((A * x1 - 5 * A) * x1 + 8 * A) * x1 - 4 * A;                             \
    w[1] = ((A + 2) * t - (A + 3)) * t * t + 1;                                      \
    w[2] = ((A + 2) * x2 - (A + 3)) * x2 * x2 + 1;                                   \
    w[3] = ((A * x3 - 5 * A) * x3 + 8 * A) * x3 - 4 * A;                             \
    for (int j = 0; j < 4; j++) {                                                    \
      int64_t v = a - 1 + j;                                                         \
      ix[j] = v < 0 ? 0 : v > in - 1 ? in - 1 : v;                                   \
    }                                                                                \
  }                                                                                  \
  static void NAME(int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW,     \
                   int align, double sh, double sw, const T *x, T *y, void *scratch) { \
    int64_t *wi = scratch;                                                           \
    T *ww = (T *)(wi + 4 * OW);                                                      \
    T rh = RATIO(H, OH, align, sh), rw = RATIO(W, OW, align, sw);                    \
    for (int64_t j = 0; j < OW; j++) NAME##_index(rw, j, W, align, wi + 4 * j, ww + 4 * j); \
    for (int64_t p = 0; p < planes; p++) {                                           \
      const T *xp = x + p * H * W;                                                   \
      T *yp = y + p * OH * OW;                                                       \
      for (int64_t i = 0; i < OH; i++) {                                             \
        int64_t hi[4];                                                               \
        T hw[4];                                                                     \
        NAME##_index(rh, i, H, align, hi, hw);                                       \
        for (int64_t j = 0; j < OW; j++) {                                           \
          const int64_t *c = wi + 4 * j;                                             \
          const T *cw = ww + 4 * j;                                                  \
          T acc = 0;                                                                 \
          for (int r = 0; r < 4; r++) {                                              \
            const T *row = xp + hi[r] * W;                                           \
            acc += hw[r] * (cw[0] * row[c[0]] + cw[1] * row[c[1]] +                  \
                            cw[2] * row[c[2]] + cw[3] * row[c[3]]);                  \
          }                                                                          \
          yp[i * OW + j] = acc;                                                      \
        }                                                                            \
      }                                                                              \
    }                                                                                \
  }
DEF_CUBIC(float, cubic_f32, linear_f32_ratio)
DEF_CUBIC(double, cubic_f64, linear_f64_ratio)

void lt_upsample_bicubic(lt_dtype dt, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW,
                         int align_corners, double scale_h, double scale_w, const void *x, void *y,
                         void *scratch) {
  LT_BY_FLOAT(dt, cubic_f32, cubic_f64, planes, H, W, OH, OW, align_corners, scale_h, scale_w, x, y,
              scratch);
}

/* ---- max pooling with indices -------------------------------------------- */

#define DEF_MAXPOOL(T, NAME)                                                       \
  static void NAME(const lt_pool *p, const T *x, T *y, int64_t *idx) {             \
    for (int64_t pl = 0; pl < p->planes; pl++) {                                   \
      const T *xp = x + pl * p->H * p->W;                                          \
      for (int64_t oh = 0; oh < p->OH; oh++)                                       \
        for (int64_t ow = 0; ow < p->OW; ow++) {                                   \
          int64_t h0 = oh * p->sh - p->ph, w0 = ow * p->sw - p->pw;                \
          int64_t h1 = h0 + (p->kh - 1) * p->dh + 1, w1 = w0 + (p->kw - 1) * p->dw + 1; \
          if (h1 > p->H) h1 = p->H;                                                \
          if (w1 > p->W) w1 = p->W;                                                \
          while (h0 < 0) h0 += p->dh;                                              \
          while (w0 < 0) w0 += p->dw;                                              \
          int64_t best = h0 * p->W + w0;                                           \
          T mx = (T)-INFINITY;                                                     \
          for (int64_t h = h0; h < h1; h += p->dh)                                 \
            for (int64_t w = w0; w < w1; w += p->dw) {                             \
              T v = xp[h * p->W + w];                                              \
              if (v > mx || isnan(v)) { mx = v; best = h * p->W + w; }             \
            }                                                                      \
          int64_t o = (pl * p->OH + oh) * p->OW + ow;                              \
          y[o] = mx;                                                               \
          idx[o] = best;                                                           \
        }                                                                          \
    }                                                                              \
  }
DEF_MAXPOOL(float, maxpool_f32)
DEF_MAXPOOL(double, maxpool_f64)

void lt_max_pool2d_indices(lt_dtype dt, const lt_pool *p, const void *x, void *y, int64_t *idx) {
  if (dt == LT_FLOAT32) maxpool_f32(p, x, y, idx);
  else maxpool_f64(p, x, y, idx);
}

/* ---- transposed convolution ---------------------------------------------- */

/* col2im of one group of one image: adds the rows (oc, ki, kj) of col,
   columns (ih, iw), into y (Og, OH, OW), which starts zeroed */
#define DEF_COL2IM(T, NAME)                                                        \
  static void NAME(const lt_conv *p, int64_t Og, const T *col, T *y) {             \
    int64_t P = p->H * p->W;                                                       \
    for (int64_t oc = 0; oc < Og; oc++)                                            \
      for (int64_t ki = 0; ki < p->kh; ki++)                                       \
        for (int64_t kj = 0; kj < p->kw; kj++) {                                   \
          const T *src = col + ((oc * p->kh + ki) * p->kw + kj) * P;               \
          T *yo = y + oc * p->OH * p->OW;                                          \
          for (int64_t ih = 0; ih < p->H; ih++) {                                  \
            int64_t oh = ih * p->sh - p->ph + ki * p->dh;                          \
            if (oh < 0 || oh >= p->OH) continue;                                   \
            const T *s = src + ih * p->W;                                          \
            T *row = yo + oh * p->OW;                                              \
            for (int64_t iw = 0; iw < p->W; iw++) {                                \
              int64_t ow = iw * p->sw - p->pw + kj * p->dw;                        \
              if (ow >= 0 && ow < p->OW) row[ow] += s[iw];                         \
            }                                                                      \
          }                                                                        \
        }                                                                          \
  }
DEF_COL2IM(float, col2im_f32)
DEF_COL2IM(double, col2im_f64)

void lt_conv_transpose2d(lt_dtype dt, const lt_conv *p, const void *x, const void *w,
                         const void *bias, void *col, void *y) {
  int64_t Cg = p->C / p->groups, Og = p->O / p->groups, M = Og * p->kh * p->kw;
  int64_t P = p->H * p->W, OP = p->OH * p->OW;
  size_t isz = lt_dtypes[dt].size;
  memset(y, 0, (size_t)(p->N * p->O * OP) * isz);
  for (int64_t n = 0; n < p->N; n++) {
    for (int64_t g = 0; g < p->groups; g++) {
      const char *xg = (const char *)x + (size_t)((n * p->C + g * Cg) * P) * isz;
      const char *wg = (const char *)w + (size_t)(g * Cg * M) * isz;
      char *yg = (char *)y + (size_t)((n * p->O + g * Og) * OP) * isz;
      /* col (M x P) = w_g^T (w_g stored Cg x M) @ x_g (Cg x P) */
      lt_gemm(dt, 1, 0, M, P, Cg, wg, M, xg, P, col, P);
      if (dt == LT_FLOAT32) col2im_f32(p, Og, col, (float *)yg);
      else col2im_f64(p, Og, col, (double *)yg);
      if (bias) lt_add_bias(dt, (const char *)bias + (size_t)(g * Og) * isz, Og, OP, yg);
    }
  }
}

/* ---- normalisation and losses -------------------------------------------- */

#define DEF_GROUP_NORM(T, NAME)                                                    \
  static void NAME(const T *x, T *y, int64_t N, int64_t C, int64_t S, int64_t G,   \
                   const double *w, const double *b, double eps) {                 \
    int64_t Cg = C / G, n1 = Cg * S;                                               \
    for (int64_t ng = 0; ng < N * G; ng++) {                                       \
      const T *xb = x + ng * n1;                                                   \
      T *yb = y + ng * n1;                                                         \
      double mean = 0, var = 0;                                                    \
      for (int64_t i = 0; i < n1; i++) mean += (double)xb[i];                      \
      mean = n1 ? mean / (double)n1 : 0;                                           \
      for (int64_t i = 0; i < n1; i++) {                                           \
        double d = (double)xb[i] - mean;                                           \
        var += d * d;                                                              \
      }                                                                            \
      var = n1 ? var / (double)n1 : 0;                                             \
      double inv = 1.0 / sqrt(var + eps);                                          \
      for (int64_t c = 0; c < Cg; c++) {                                           \
        int64_t ch = (ng % G) * Cg + c;                                            \
        double sc = (w ? w[ch] : 1.0) * inv, sh = (b ? b[ch] : 0.0) - mean * sc;   \
        for (int64_t s = 0; s < S; s++)                                            \
          yb[c * S + s] = (T)((double)xb[c * S + s] * sc + sh);                    \
      }                                                                            \
    }                                                                              \
  }
DEF_GROUP_NORM(float, group_norm_f32)
DEF_GROUP_NORM(double, group_norm_f64)

void lt_group_norm(lt_dtype dt, const void *x, void *y, int64_t N, int64_t C, int64_t S, int64_t G,
                   const double *w, const double *b, double eps) {
  if (dt == LT_FLOAT32) group_norm_f32(x, y, N, C, S, G, w, b, eps);
  else group_norm_f64(x, y, N, C, S, G, w, b, eps);
}

double lt_nll_f64(const double *logp, int64_t N, int64_t C, int64_t S, const int64_t *target,
                  const double *w, double ls, double *loss) {
  double wsum = 0;
  for (int64_t n = 0; n < N; n++) {
    const double *lp = logp + n * C * S;
    for (int64_t s = 0; s < S; s++) {
      int64_t t = target[n * S + s];
      double *l = loss + n * S + s;
      if (t < 0) { *l = 0; continue; }
      double wt = w ? w[t] : 1.0;
      wsum += wt;
      double v = -(1 - ls) * wt * lp[t * S + s];
      if (ls > 0) {
        double sm = 0;
        for (int64_t c = 0; c < C; c++) sm += (w ? w[c] : 1.0) * lp[c * S + s];
        v -= ls / (double)C * sm;
      }
      *l = v;
    }
  }
  return wsum;
}

/* ---- recurrent cells ------------------------------------------------------ */

static float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }
static double sigmoid_(double x) { return 1.0 / (1.0 + exp(-x)); }

/* tanh of a float through exp in double: 1 - 2 / (e^2|x| + 1) carries the
   float's precision (its cancellation is far below a float ulp), and exp is
   several times faster than tanhf's expm1f. Below 2^-12 tanh x rounds to x;
   above 10 to +-1; nan stays nan. */
static float tanhf_(float x) {
  double a = fabs((double)x);
  if (a < 0x1p-12) return x;
  double r = a > 10.0 ? 1.0 : 1.0 - 2.0 / (exp(2.0 * a) + 1.0);
  return (float)copysign(r, (double)x);
}

/* the gate pre-activations are g + x when x is given (the input projection
   of this time step), each sum rounded once as PyTorch's add */
#define DEF_LSTM_CELL(T, NAME, SIGMOID, TANH)                                                  \
  static void NAME(const T *g, const T *x, const T *c, T *h, T *cn, int64_t N, int64_t H) {   \
    for (int64_t n = 0; n < N; n++) {                                                          \
      const T *gr = g + n * 4 * H, *xr = x ? x + n * 4 * H : NULL, *cr = c + n * H;           \
      T *hr = h + n * H, *nr = cn + n * H;                                                     \
      for (int64_t j = 0; j < H; j++) {                                                        \
        T gi = gr[j], gf = gr[H + j], gg = gr[2 * H + j], go = gr[3 * H + j];                 \
        if (xr) { gi += xr[j]; gf += xr[H + j]; gg += xr[2 * H + j]; go += xr[3 * H + j]; }    \
        T cv = SIGMOID(gf) * cr[j] + SIGMOID(gi) * TANH(gg);                                   \
        nr[j] = cv;                                                                            \
        hr[j] = SIGMOID(go) * TANH(cv);                                                        \
      }                                                                                        \
    }                                                                                          \
  }
DEF_LSTM_CELL(float, lstm_cell_f32, sigmoidf_, tanhf_)
DEF_LSTM_CELL(double, lstm_cell_f64, sigmoid_, tanh)

void lt_lstm_cell(lt_dtype dt, const void *g, const void *x, const void *c, void *h, void *cn,
                  int64_t N, int64_t H) {
  LT_BY_FLOAT(dt, lstm_cell_f32, lstm_cell_f64, g, x, c, h, cn, N, H);
}
