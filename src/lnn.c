/*
** lnn.c: the Lua binding of the functional ops of torch.nn.functional that
** need C (their core is nnops.c): padding modes, interpolation, 1-D and
** transposed convolution, group norm, one_hot and the class-index loss of
** cross_entropy and nll_loss. torch.conv1d, torch.conv_transpose1d,
** torch.conv_transpose2d and torch.group_norm are public as in PyTorch; the
** others are core._pad, core._interpolate, core._one_hot and
** core._class_loss, which lua/ltorch/nn/functional.lua wraps with PyTorch's
** F signatures, in F's argument order. Usage errors go through luaL_argerror
** (lt_argerror), which names the function as called: functional.lua calls
** _pad, _interpolate and _one_hot as C.pad, C.interpolate, C.one_hot; the
** ones that serve two F functions, _class_loss (cross_entropy, nll_loss)
** and _max_pool_indices (max_pool1d, max_pool2d), take the F name and raise
** under it (lt_argerror_in).
** Temporaries are tensors pushed on the Lua stack (GC-owned), so an error
** anywhere leaks nothing. Outputs are new contiguous tensors.
*/
#include <string.h>
#include <stdio.h>
#include <limits.h>
#include <math.h>
#include "lmath.h"
#include "nnops.h"
#include "smallmm.h"

/* ---- argument helpers ---------------------------------------------------- */

/* n integers (n = 1 or 2) at arg: a number for all, or a table of n (a
   table of 1 counts for all); nil gives def. Each must be at least lo.
   Errors raise under name (NULL: the function's name as called) */
static void ints(lua_State *L, int arg, int n, lua_Integer def, lua_Integer lo, const char *name,
                 const char *what, int64_t *out) {
  int ok = 1;
  if (lua_isnoneornil(L, arg)) {
    for (int i = 0; i < n; i++) out[i] = def;
  } else if (lua_istable(L, arg)) {
    lua_Integer len = luaL_len(L, arg);
    if (len != 1 && len != n) ok = 0;
    for (int i = 0; ok && i < n; i++) {
      lua_geti(L, arg, len == 1 ? 1 : i + 1);
      out[i] = lua_tointegerx(L, -1, &ok);
      lua_pop(L, 1);
    }
  } else {
    out[0] = lua_tointegerx(L, arg, &ok);
    for (int i = 1; ok && i < n; i++) out[i] = out[0];
  }
  if (!ok) {
    if (n == 1) lt_argerror_in(L, arg, name, "%s must be an integer or {n}", what);
    lt_argerror_in(L, arg, name, "%s must be an integer or {h, w} of integers", what);
  }
  for (int i = 0; i < n; i++) {
    if (out[i] < lo || out[i] > INT_MAX)
      lt_argerror_in(L, arg, name, "%s must be between %d and %d, got %lld", what,
                     (int)lo, INT_MAX, (lua_Integer)out[i]);
  }
}

/* pushes a view of y (batch size 1) without its batch dim: the result of
   the unbatched forms of the convolutions */
static void push_unbatched(lua_State *L, const lt_tensor *y) {
  lt_tensor v = *y;
  v.ndim = y->ndim - 1;
  for (int i = 0; i < v.ndim; i++) { v.shape[i] = y->shape[i + 1]; v.stride[i] = y->stride[i + 1]; }
  lt_push_view(L, &v);
}

/* a contiguous double copy of a per-channel tensor of n elements at arg, or
   NULL when it is nil; errors raise under name as ints' do */
static double *per_channel(lua_State *L, int arg, int64_t n, const char *name, const char *what) {
  lt_tensor *t = lm_optt(L, arg);
  if (!t) return NULL;
  if (lt_numel(t) != n)
    lt_argerror_in(L, arg, name, "%s has %lld elements, expected %lld", what,
                   (lua_Integer)lt_numel(t), (lua_Integer)n);
  return (double *)lt_data(lm_push_copy(L, t, LT_FLOAT64));
}

/* float32, or float64 for float64: the dtype the float kernels run in */
static lt_dtype work_dtype(lt_dtype dt) { return dt == LT_FLOAT64 ? LT_FLOAT64 : LT_FLOAT32; }

/* ---- pad ----------------------------------------------------------------- */

/* _pad(x, pad, mode = "constant", value = 0): F.pad. pad lists {left,
   right} pairs from the last dim backwards; negative pads crop. Constant
   pads any number of dims of any dtype; reflect and replicate 1, 2 or 3
   dims of a 2-D/3-D, 3-D/4-D or 4-D/5-D input; circular the last n-2 dims
   of a 3-D to 5-D input (PyTorch 1.13's rules) */
static int l_pad(lua_State *L) {
  static const char *const modes[] = {"constant", "reflect", "replicate", "circular", NULL};
  char s1[256];
  lt_tensor *x = lm_checkt(L, 1);
  int nd = x->ndim;
  if (!lua_istable(L, 2))
    lt_argerror(L, 2, "table of paddings expected, got %s", luaL_typename(L, 2));
  lua_Integer np = luaL_len(L, 2);
  if (np % 2) lt_argerror(L, 2, "padding length must be even, got %lld", np);
  if (np / 2 > nd)
    lt_argerror(L, 2, "padding of %lld dims is too long for a %d-D input", np / 2, nd);
  int k = (int)(np / 2);
  int64_t pads[2 * LT_MAX_DIMS];
  for (int i = 0; i < 2 * k; i++) {
    int ok;
    lua_geti(L, 2, i + 1);
    pads[i] = lua_tointegerx(L, -1, &ok);
    lua_pop(L, 1);
    if (!ok || pads[i] > INT_MAX || pads[i] < -(lua_Integer)INT_MAX)
      lt_argerror(L, 2, "padding %d is not an integer", i + 1);
  }
  const char *ms = lua_isnoneornil(L, 3) ? "constant" : lua_tostring(L, 3);
  int mode = -1;
  for (int i = 0; ms && modes[i]; i++) if (strcmp(ms, modes[i]) == 0) mode = i;
  if (mode < 0) {
    if (lua_type(L, 3) != LUA_TSTRING)
      lt_argerror(L, 3, "padding mode expected, got %s", luaL_typename(L, 3));
    lt_argerror(L, 3, "padding mode must be 'constant', 'reflect', 'replicate' "
                "or 'circular', got '%s'", ms);
  }
  int vt = lua_type(L, 4);
  if (vt != LUA_TNONE && vt != LUA_TNIL && vt != LUA_TNUMBER && vt != LUA_TBOOLEAN)
    lt_argerror(L, 4, "number expected, got %s", luaL_typename(L, 4));
  if (mode != LT_PAD_CONSTANT && vt == LUA_TNUMBER && lua_tonumber(L, 4) != 0)
    lt_argerror(L, 4, "padding mode '%s' takes no value", ms);
  if (mode == LT_PAD_REFLECT || mode == LT_PAD_REPLICATE) {
    if (k < 1 || k > 3)
      lt_argerror(L, 2, "'%s' padding pads 1, 2 or 3 dims, got %d", ms, k);
    if (nd != k + 1 && nd != k + 2)
      lt_argerror(L, 2, "'%s' padding of %d dim%s needs a %d-D or %d-D input, got %d-D",
                  ms, k, k == 1 ? "" : "s", k + 1, k + 2, nd);
  } else if (mode == LT_PAD_CIRCULAR) {
    if (nd < 3 || nd > 5)
      lt_argerror(L, 1, "'circular' padding needs a 3-D, 4-D or 5-D input, got %d-D", nd);
    if (k != nd - 2)
      lt_argerror(L, 2, "'circular' padding of a %d-D input pads its last %d dims, got %d",
                  nd, nd - 2, k);
  }
  int64_t shape[LT_MAX_DIMS], total = 0;
  memcpy(shape, x->shape, sizeof(int64_t) * (size_t)nd);
  int grows = 0;             /* a positive pad: PyTorch's constant pad then wants every padded dim non-empty */
  for (int i = 0; i < 2 * k; i++) if (pads[i] > 0) grows = 1;
  for (int i = 0; i < k; i++) {
    int d = nd - 1 - i;
    int64_t in = x->shape[d], pl = pads[2 * i], pr = pads[2 * i + 1], out = in + pl + pr;
    /* the part of the input left after the negative pads crop: constant
       and circular padding crop first (reflect and replicate index the
       whole input) */
    int64_t m = in + (pl < 0 ? pl : 0) + (pr < 0 ? pr : 0);
    if (m < 0 && (mode == LT_PAD_CONSTANT || mode == LT_PAD_CIRCULAR))
      lt_argerror(L, 2, "padding {%lld, %lld} crops more than the size %lld of dim %d",
                  (lua_Integer)pl, (lua_Integer)pr, (lua_Integer)in, d + 1);
    if (out < 0 || (out == 0 && mode == LT_PAD_CONSTANT && grows))
      lt_argerror(L, 2, "padding {%lld, %lld} leaves dim %d of input %s empty",
                  (lua_Integer)pl, (lua_Integer)pr, d + 1, lm_shape_str(s1, sizeof s1, nd, x->shape));
    if (mode == LT_PAD_REFLECT && (pl >= in || pr >= in))
      lt_argerror(L, 2, "reflect padding {%lld, %lld} of dim %d must be less than its size %lld",
                  (lua_Integer)pl, (lua_Integer)pr, d + 1, (lua_Integer)in);
    if (mode == LT_PAD_REPLICATE && in == 0 && out > 0)
      lt_argerror(L, 1, "replicate padding of the empty dim %d", d + 1);
    if (mode == LT_PAD_CIRCULAR) {
      /* PyTorch 1.13 checks pl, pr <= in; past m it copies memory it never wrote */
      if (pl > m || pr > m)
        lt_argerror(L, 2, "circular padding {%lld, %lld} of dim %d wraps around more than "
                    "once: at most %lld", (lua_Integer)pl, (lua_Integer)pr, d + 1, (lua_Integer)m);
    }
    shape[d] = out;
    total += out;
  }
  unsigned char fill[16] = {0};
  if (vt == LUA_TNUMBER || vt == LUA_TBOOLEAN) lt_to_elem(L, 4, x->dtype, fill);
  int64_t *maps[LT_MAX_DIMS] = {0};
  int64_t tot1 = total > 0 ? total : 1;
  int64_t *m = (int64_t *)lt_data(lt_push_new(L, LT_INT64, 1, &tot1, 0));
  for (int i = 0; i < k; i++) {
    int d = nd - 1 - i;
    maps[d] = m;
    lt_pad_map(mode, x->shape[d], pads[2 * i], pads[2 * i + 1], m);
    m += shape[d];
  }
  lt_tensor *out = lt_push_new(L, x->dtype, nd, shape, 0);
  lt_map_copy(x, out, (const int64_t *const *)maps, fill);
  return 1;
}

/* ---- interpolate --------------------------------------------------------- */

/* 1 when the 4-D or 5-D x is contiguous in PyTorch's channels-last order
   (c10's compute_channels_last_contiguous: dims C, W, H(, D), N innermost
   first, size-1 dims skipped), which picks its channels-last kernels */
static int channels_last(const lt_tensor *x) {
  static const int order4[] = {1, 3, 2, 0}, order5[] = {1, 4, 3, 2, 0};
  const int *order = x->ndim == 4 ? order4 : order5;
  int64_t expected = 1;
  for (int i = 0; i < x->ndim; i++) {
    int d = order[i];
    if (x->shape[d] == 1) continue;
    if (x->stride[d] != expected) return 0;
    expected *= x->shape[d];
  }
  return 1;
}

/* _interpolate(x, size, scales, mode, align_corners): F.interpolate once
   functional.lua has settled PyTorch's size/scale_factor rules. size: the
   output's spatial sizes (a table of n-2 integers); scales: nil, or the
   scale factors the indices use (a table; 0 for none); mode "nearest",
   "nearest-exact", "linear" (3-D), "bilinear" or "bicubic" (4-D) */
static int l_interpolate(lua_State *L) {
  char s1[256], s2[256];
  lt_tensor *x = lm_checkt(L, 1);
  int nd = x->ndim, k = nd - 2;
  const char *mode = luaL_checkstring(L, 4);
  int align = lua_toboolean(L, 5);
  int nearest = strcmp(mode, "nearest") == 0, exact = strcmp(mode, "nearest-exact") == 0;
  int linear = strcmp(mode, "linear") == 0, bilinear = strcmp(mode, "bilinear") == 0;
  int bicubic = strcmp(mode, "bicubic") == 0;
  if (!nearest && !exact && !linear && !bilinear && !bicubic)
    lt_argerror(L, 1, "mode must be 'nearest', 'nearest-exact', 'linear', "
                "'bilinear' or 'bicubic', got '%s'", mode);
  if ((nearest || exact) && (nd < 3 || nd > 5))
    lt_argerror(L, 1, "mode '%s' needs a 3-D, 4-D or 5-D input, got %d-D", mode, nd);
  if ((linear && nd != 3) || ((bilinear || bicubic) && nd != 4))
    lt_argerror(L, 1, "mode '%s' needs a %d-D input, got %d-D", mode,
                linear ? 3 : 4, nd);
  luaL_checktype(L, 2, LUA_TTABLE);
  if (luaL_len(L, 2) != k)
    lt_argerror(L, 2, "expected %d output sizes, got %d", k, (int)luaL_len(L, 2));
  int64_t shape[LT_MAX_DIMS];
  double scales[3] = {0, 0, 0};
  memcpy(shape, x->shape, sizeof(int64_t) * (size_t)nd);
  int bad = 0;
  for (int i = 0; i < k; i++) {
    int ok;
    lua_geti(L, 2, i + 1);
    shape[2 + i] = lua_tointegerx(L, -1, &ok);
    lua_pop(L, 1);
    if (!ok) lt_argerror(L, 2, "output sizes must be integers");
    if (shape[2 + i] <= 0 || x->shape[2 + i] <= 0) bad = 1;
    if (lua_istable(L, 3)) {
      lua_geti(L, 3, i + 1);
      scales[i] = lua_tonumber(L, -1);
      lua_pop(L, 1);
    }
  }
  if (bad)
    lt_argerror(L, 1, "input and output sizes must be greater than 0, got "
                "input %s and output size %s", lm_shape_str(s1, sizeof s1, k, x->shape + 2),
                lm_shape_str(s2, sizeof s2, k, shape + 2));
  if (nearest || exact) {
    int64_t *maps[LT_MAX_DIMS] = {0}, total = 0;
    for (int i = 0; i < k; i++) total += shape[2 + i];
    int64_t *m = (int64_t *)lt_data(lt_push_new(L, LT_INT64, 1, &total, 0));
    int shortcut = k > 1 && channels_last(x);
    for (int i = 0; i < k; i++) {
      maps[2 + i] = m;
      lt_nearest_map(x->shape[2 + i], shape[2 + i], scales[i], exact, shortcut, m);
      m += shape[2 + i];
    }
    unsigned char fill[16] = {0};
    lt_tensor *out = lt_push_new(L, x->dtype, nd, shape, 0);
    lt_map_copy(x, out, (const int64_t *const *)maps, fill);
    return 1;
  }
  lm_need_floating(L, x->dtype, 1, NULL);
  lt_dtype gd = work_dtype(x->dtype);
  int64_t planes = x->shape[0] * x->shape[1];
  int64_t H = linear ? 1 : x->shape[2], W = x->shape[nd - 1];
  int64_t OH = linear ? 1 : shape[2], OW = shape[nd - 1];
  double sh = linear ? 0 : scales[0], sw = scales[k - 1];
  lt_tensor *xc = lm_contig(L, x, gd);
  int64_t nscr = (bicubic ? 8 : 4) * OW;
  void *scratch = lt_data(lt_push_new(L, LT_INT64, 1, &nscr, 0));
  lt_tensor *y = lt_push_new(L, gd, nd, shape, 0);
  if (bicubic) lt_upsample_bicubic(gd, planes, H, W, OH, OW, align, sh, sw, lt_data(xc), lt_data(y), scratch);
  else lt_upsample_bilinear(gd, planes, H, W, OH, OW, align, sh, sw, lt_data(xc), lt_data(y), scratch);
  if (x->dtype != gd) lm_push_convert(L, y, x->dtype);
  return 1;
}

/* ---- max pooling with indices -------------------------------------------- */

/* _max_pool_indices(x, kernel, stride, padding, dilation, ceil_mode, name):
   max_pool2d over a 3-D or 4-D x returning the maxima and their 1-based
   flat indices h * W + w + 1 in each plane (F.max_pool1d and F.max_pool2d
   with return_indices; the 1-d form has H = 1). Sizes are {h, w} (the Lua
   side has checked them); stride {} or nil is the kernel */
static int l_max_pool_indices(lua_State *L) {
  char s1[256];
  const char *name = luaL_checkstring(L, 7);
  lt_tensor *x = lm_checkt(L, 1);
  int64_t k[2], st[2], pd[2], dl[2];
  if (x->ndim != 3 && x->ndim != 4)
    lt_argerror_in(L, 1, name, "expected a 3-D or 4-D input, got %d-D", x->ndim);
  lm_need_floating(L, x->dtype, 1, name);
  ints(L, 2, 2, 1, 1, name, "kernel_size", k);
  if (lua_isnoneornil(L, 3) || (lua_istable(L, 3) && luaL_len(L, 3) == 0)) { st[0] = k[0]; st[1] = k[1]; }
  else ints(L, 3, 2, 1, 1, name, "stride", st);
  ints(L, 4, 2, 0, 0, name, "padding", pd);
  ints(L, 5, 2, 1, 1, name, "dilation", dl);
  int ceil_mode = lua_toboolean(L, 6);
  if (pd[0] * 2 > k[0] || pd[1] * 2 > k[1])
    lt_argerror_in(L, 4, name, "padding must be at most half of the kernel size");
  lt_pool p;
  memset(&p, 0, sizeof p);
  p.H = x->shape[x->ndim - 2]; p.W = x->shape[x->ndim - 1];
  p.planes = lm_prod(x->shape, 0, x->ndim - 2);
  p.kh = k[0]; p.kw = k[1]; p.sh = st[0]; p.sw = st[1]; p.ph = pd[0]; p.pw = pd[1]; p.dh = dl[0]; p.dw = dl[1];
  p.OH = lt_pool_out(p.H, p.kh, p.ph, p.sh, p.dh, ceil_mode);
  p.OW = lt_pool_out(p.W, p.kw, p.pw, p.sw, p.dw, ceil_mode);
  if (p.OH < 1 || p.OW < 1)
    lt_argerror_in(L, 1, name, "input %s is too small for the kernel",
                   lm_shape_str(s1, sizeof s1, x->ndim, x->shape));
  int64_t shape[4];
  memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
  shape[x->ndim - 2] = p.OH;
  shape[x->ndim - 1] = p.OW;
  lt_dtype gd = work_dtype(x->dtype);
  lt_tensor *xc = lm_contig(L, x, gd);
  lt_tensor *y = lt_push_new(L, gd, x->ndim, shape, 0);
  int yi = lua_gettop(L);
  lt_tensor *ix = lt_push_new(L, LT_INT64, x->ndim, shape, 0);
  int ii = lua_gettop(L);
  int64_t *iv = (int64_t *)lt_data(ix);
  lt_max_pool2d_indices(gd, &p, lt_data(xc), lt_data(y), iv);
  for (int64_t i = 0, n = lt_numel(ix); i < n; i++) iv[i] += 1;
  if (x->dtype != gd) { lm_push_convert(L, y, x->dtype); yi = lua_gettop(L); }
  lua_pushvalue(L, yi);
  lua_pushvalue(L, ii);
  return 2;
}

/* ---- conv1d -------------------------------------------------------------- */

/* conv1d(x, weight, bias, stride, padding, dilation, groups): PyTorch's,
   over lt_conv2d (im2col + gemm) on a unit height. x (N, C, L) or (C, L);
   weight (O, C/groups, k); padding an integer, {p}, "valid" or "same" (an
   odd total puts the extra element on the right, as PyTorch) */
static int l_conv1d(lua_State *L) {
  char s1[256];
  lt_tensor *x = lm_checkt(L, 1), *w = lm_checkt(L, 2), *bias = lm_optt(L, 3);
  int64_t st, pd = 0, dl, extra = 0;
  ints(L, 4, 1, 1, 1, NULL, "stride", &st);
  ints(L, 6, 1, 1, 1, NULL, "dilation", &dl);
  lua_Integer groups = luaL_optinteger(L, 7, 1);
  if (groups < 1 || groups > INT_MAX) lt_argerror(L, 7, "groups must be positive");
  if (x->ndim != 2 && x->ndim != 3)
    lt_argerror(L, 1, "expected a 2-D or 3-D input, got %d-D", x->ndim);
  if (w->ndim != 3) lt_argerror(L, 2, "expected a 3-D weight, got %d-D", w->ndim);
  if (lua_type(L, 5) == LUA_TSTRING) {
    const char *mode = lua_tostring(L, 5);
    if (strcmp(mode, "same") == 0) {
      if (st != 1) lt_argerror(L, 5, "padding 'same' is not supported for strided convolutions");
      int64_t tot = dl * (w->shape[2] - 1);
      pd = tot / 2;
      extra = tot % 2;
    } else if (strcmp(mode, "valid") != 0) {
      lt_argerror(L, 5, "padding must be an integer, {p}, 'valid' or 'same', got '%s'", mode);
    }
  } else {
    ints(L, 5, 1, 0, 0, NULL, "padding", &pd);
  }
  int batched = x->ndim == 3;
  lt_conv p;
  p.N = batched ? x->shape[0] : 1;
  p.C = x->shape[batched]; p.H = 1; p.W = x->shape[batched + 1] + extra;
  p.O = w->shape[0]; p.kh = 1; p.kw = w->shape[2];
  p.sh = 1; p.sw = st; p.ph = 0; p.pw = pd; p.dh = 1; p.dw = dl;
  p.groups = groups;
  lm_conv_check_groups(L, x, w, &p);
  int64_t ew = p.dw * (p.kw - 1) + 1;
  if (p.W + 2 * p.pw < ew)
    lt_argerror(L, 1, "input %s (with padding) is smaller than the kernel %d",
                lm_shape_str(s1, sizeof s1, x->ndim, x->shape), (int)ew);
  p.OH = 1;
  p.OW = (p.W + 2 * p.pw - ew) / p.sw + 1;
  lt_dtype gd, od = lm_conv_dtypes(L, x, w, bias, &p, &gd);
  int64_t Kc = (p.C / groups) * p.kw;
  if (Kc >= INT_MAX || p.OW >= INT_MAX || p.O >= INT_MAX || lt_shape_numel(2, (int64_t[]){Kc, p.OW}) < 0)
    lt_argerror(L, 1, "sizes exceed the BLAS limit of 2^31-1");
  lt_tensor *xc;
  if (extra) {          /* 'same' with an odd total: one zero on the right */
    int64_t xs[3] = {p.N, p.C, p.W};
    xc = lt_push_new(L, gd, 3, xs, 1);
    lt_tensor v = *xc;
    v.shape[2] = p.W - 1;
    lt_tensor src = *x;
    if (!batched) {     /* x as (1, C, L) */
      src.ndim = 3;
      for (int i = 2; i > 0; i--) { src.shape[i] = x->shape[i - 1]; src.stride[i] = x->stride[i - 1]; }
      src.shape[0] = 1; src.stride[0] = 0;
    }
    lt_copy(&v, &src);
  } else {
    xc = lm_contig(L, x, gd);
  }
  lt_tensor *wc = lm_contig(L, w, gd), *bc = bias ? lm_contig(L, bias, gd) : NULL;
  int64_t ncol = Kc * p.OW;
  lt_tensor *col = lt_push_new(L, gd, 1, &ncol, 0);
  int64_t oshape[3] = {p.N, p.O, p.OW};
  lt_tensor *y = lt_push_new(L, gd, 3, oshape, 0);
  lt_conv2d(gd, &p, lt_data(xc), lt_data(wc), bc ? lt_data(bc) : NULL, lt_data(col), lt_data(y));
  if (od != gd) y = lm_push_convert(L, y, od);
  if (!batched) push_unbatched(L, y);
  return 1;
}

/* ---- transposed convolutions --------------------------------------------- */

/* conv_transpose{1,2}d(x, weight, bias, stride, padding, output_padding,
   groups, dilation): PyTorch's, as gemm + col2im (nnops.c). x (N, C, ...)
   or unbatched; weight (C, O/groups, k...); nsp spatial dims */
static int conv_transpose(lua_State *L, int nsp) {
  char s1[256], s2[256];
  lt_tensor *x = lm_checkt(L, 1), *w = lm_checkt(L, 2), *bias = lm_optt(L, 3);
  int64_t st[2], pd[2], op[2], dl[2];
  ints(L, 4, nsp, 1, 1, NULL, "stride", st);
  ints(L, 5, nsp, 0, 0, NULL, "padding", pd);
  ints(L, 6, nsp, 0, 0, NULL, "output_padding", op);
  ints(L, 8, nsp, 1, 1, NULL, "dilation", dl);
  lua_Integer groups = luaL_optinteger(L, 7, 1);
  if (groups < 1 || groups > INT_MAX) lt_argerror(L, 7, "groups must be positive");
  if (x->ndim != nsp + 1 && x->ndim != nsp + 2)
    lt_argerror(L, 1, "expected a %d-D or %d-D input, got %d-D", nsp + 1, nsp + 2, x->ndim);
  if (w->ndim != nsp + 2)
    lt_argerror(L, 2, "expected a %d-D weight, got %d-D", nsp + 2, w->ndim);
  int batched = x->ndim == nsp + 2;
  lt_conv p;
  p.N = batched ? x->shape[0] : 1;
  p.C = x->shape[batched];
  p.H = nsp == 2 ? x->shape[batched + 1] : 1;
  p.W = x->shape[x->ndim - 1];
  p.groups = groups;
  p.O = w->shape[1] * groups;
  p.kh = nsp == 2 ? w->shape[2] : 1;
  p.kw = w->shape[w->ndim - 1];
  int two = nsp == 2;          /* the 1-d form has a unit height */
  p.sh = two ? st[0] : 1; p.sw = st[nsp - 1];
  p.ph = two ? pd[0] : 0; p.pw = pd[nsp - 1];
  p.dh = two ? dl[0] : 1; p.dw = dl[nsp - 1];
  if (w->shape[0] != p.C)
    lt_argerror(L, 1, "input %s has %d channels, weight %s expects %d",
                lm_shape_str(s1, sizeof s1, x->ndim, x->shape), (int)p.C,
                lm_shape_str(s2, sizeof s2, w->ndim, w->shape), (int)w->shape[0]);
  if (p.C % groups)
    lt_argerror(L, 7, "%d input channels are not divisible by groups %d", (int)p.C, (int)groups);
  for (int i = 0; i < nsp; i++) {
    if (op[i] >= st[i] && op[i] >= dl[i])
      lt_argerror(L, 6, "output_padding %lld must be smaller than either stride %lld or "
                  "dilation %lld", (lua_Integer)op[i], (lua_Integer)st[i], (lua_Integer)dl[i]);
  }
  /* (in - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1
     (1 for the unit height of the 1-d form) */
  p.OH = (p.H - 1) * p.sh - 2 * p.ph + p.dh * (p.kh - 1) + (two ? op[0] : 0) + 1;
  p.OW = (p.W - 1) * p.sw - 2 * p.pw + p.dw * (p.kw - 1) + op[nsp - 1] + 1;
  if (p.OH < 1 || p.OW < 1)
    lt_argerror(L, 1, "input %s gives an empty output of size %lld",
                lm_shape_str(s1, sizeof s1, x->ndim, x->shape), (lua_Integer)(p.OH < 1 ? p.OH : p.OW));
  lt_dtype gd, od = lm_conv_dtypes(L, x, w, bias, &p, &gd);
  int64_t M = (p.O / groups) * p.kh * p.kw;
  int64_t P = lt_shape_numel(2, (int64_t[]){p.H, p.W});
  if (M >= INT_MAX || P < 0 || P >= INT_MAX || p.C >= INT_MAX || lt_shape_numel(2, (int64_t[]){M, P}) < 0 ||
      lt_shape_numel(4, (int64_t[]){p.N, p.O, p.OH, p.OW}) < 0)
    lt_argerror(L, 1, "sizes exceed the BLAS limit of 2^31-1");
  lt_tensor *xc = lm_contig(L, x, gd), *wc = lm_contig(L, w, gd), *bc = bias ? lm_contig(L, bias, gd) : NULL;
  int64_t ncol = M * P;
  lt_tensor *col = lt_push_new(L, gd, 1, &ncol, 0);
  int64_t oshape[4] = {p.N, p.O, p.OH, p.OW};
  if (nsp == 1) oshape[2] = p.OW;
  lt_tensor *y = lt_push_new(L, gd, nsp + 2, oshape, 0);
  lt_conv_transpose2d(gd, &p, lt_data(xc), lt_data(wc), bc ? lt_data(bc) : NULL, lt_data(col), lt_data(y));
  if (od != gd) y = lm_push_convert(L, y, od);
  if (!batched) push_unbatched(L, y);
  return 1;
}

static int l_conv_transpose1d(lua_State *L) { return conv_transpose(L, 1); }
static int l_conv_transpose2d(lua_State *L) { return conv_transpose(L, 2); }

/* ---- group_norm ---------------------------------------------------------- */

/* group_norm(x, num_groups, weight, bias, eps = 1e-5): x (N, C, *) */
static int l_group_norm(lua_State *L) {
  char s1[256];
  lt_tensor *x = lm_checkt(L, 1);
  lua_Integer G = luaL_checkinteger(L, 2);
  double eps = luaL_optnumber(L, 5, 1e-5);
  if (x->ndim < 2)
    lt_argerror(L, 1, "expected at least a 2-D input, got %d-D", x->ndim);
  lm_need_floating(L, x->dtype, 1, NULL);
  int64_t N = x->shape[0], C = x->shape[1], S = lm_prod(x->shape, 2, x->ndim);
  if (G < 1 || C % G)
    lt_argerror(L, 2, "the %lld channels of input %s are not divisible into %lld groups",
                (lua_Integer)C, lm_shape_str(s1, sizeof s1, x->ndim, x->shape), G);
  double *w = per_channel(L, 3, C, NULL, "weight");
  double *b = per_channel(L, 4, C, NULL, "bias");
  lt_dtype gd = work_dtype(x->dtype);
  lt_tensor *xc = lm_contig(L, x, gd);
  lt_tensor *y = lt_push_new(L, gd, x->ndim, x->shape, 0);
  lt_group_norm(gd, lt_data(xc), lt_data(y), N, C, S, G, w, b, eps);
  if (x->dtype != gd) lm_push_convert(L, y, x->dtype);
  return 1;
}

/* ---- one_hot ------------------------------------------------------------- */

/* _one_hot(t, num_classes = -1): int64 t.shape + {C}; class i (1-based)
   sets column i; -1 takes C from the largest index */
static int l_one_hot(lua_State *L) {
  lt_tensor *t = lm_checkt(L, 1);
  lua_Integer C = luaL_optinteger(L, 2, -1);
  if (lm_kindof(t->dtype) != LT_KIND_INT)
    lt_argerror(L, 1, "expected an integer tensor of class indices, got %s",
                lt_dtypes[t->dtype].name);
  if (t->ndim >= LT_MAX_DIMS)
    lt_argerror(L, 1, "rank exceeds the limit of %d", LT_MAX_DIMS);
  if (C < -1 || C == 0) lt_argerror(L, 2, "num_classes must be positive or -1, got %lld", C);
  lt_tensor *ix = lm_contig(L, t, LT_INT64);
  const int64_t *iv = (const int64_t *)lt_data(ix);
  int64_t n = lt_numel(ix), mx = 0;
  for (int64_t i = 0; i < n; i++) {
    if (iv[i] < 1)
      lt_argerror(L, 1, "class index %lld is out of range: classes are 1-based",
                  (lua_Integer)iv[i]);
    if (iv[i] > mx) mx = iv[i];
  }
  if (C == -1) {
    if (n == 0) lt_argerror(L, 1, "cannot infer the number of classes from an empty tensor");
    C = mx;
  } else if (mx > C) {
    lt_argerror(L, 1, "class index %lld is out of range for %lld classes", (lua_Integer)mx, C);
  }
  int64_t shape[LT_MAX_DIMS];
  memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
  shape[t->ndim] = C;
  if (lt_shape_numel(t->ndim + 1, shape) < 0)
    lt_argerror(L, 2, "the output's size overflows");
  lt_tensor *out = lt_push_new(L, LT_INT64, t->ndim + 1, shape, 1);
  int64_t *o = (int64_t *)lt_data(out);
  for (int64_t i = 0; i < n; i++) o[i * C + iv[i] - 1] = 1;
  return 1;
}

/* ---- class-index loss ---------------------------------------------------- */

/* _class_loss(logp, target, weight, ignore_index, reduction, label_smoothing,
   name): the loss of F.nll_loss over log-probabilities (N, C, d...) or (C),
   with cross_entropy's label smoothing. Targets are 1-based classes; one
   equal to ignore_index counts nothing. Messages name F's arguments of
   name: input #1, target #2, weight #3 */
static int l_class_loss(lua_State *L) {
  char s1[256], s2[256], s3[256];
  const char *name = luaL_checkstring(L, 7);
  lt_tensor *x = lm_checkt(L, 1), *t = lm_checkt(L, 2);
  lua_Integer ignore = luaL_optinteger(L, 4, -100);
  const char *red = luaL_optstring(L, 5, "mean");
  double ls = luaL_optnumber(L, 6, 0);
  int rnone = strcmp(red, "none") == 0, rsum = strcmp(red, "sum") == 0;
  if (!rnone && !rsum && strcmp(red, "mean") != 0)
    lt_argerror_in(L, 1, name, "reduction must be 'mean', 'sum' or 'none', got '%s'", red);
  lm_need_floating(L, x->dtype, 1, name);
  if (x->ndim < 1) lt_argerror_in(L, 1, name, "expected a 1-D or higher input, got 0-D");
  if (lm_kindof(t->dtype) != LT_KIND_INT)
    lt_argerror_in(L, 2, name, "expected an integer tensor of class indices, got %s",
                   lt_dtypes[t->dtype].name);
  int64_t N, C, S, want[LT_MAX_DIMS];
  int wnd;
  if (x->ndim == 1) { N = 1; C = x->shape[0]; S = 1; wnd = 0; }
  else {
    N = x->shape[0]; C = x->shape[1]; S = lm_prod(x->shape, 2, x->ndim);
    wnd = x->ndim - 1;
    want[0] = N;
    for (int i = 2; i < x->ndim; i++) want[i - 1] = x->shape[i];
  }
  if (t->ndim != wnd || memcmp(t->shape, want, sizeof(int64_t) * (size_t)wnd) != 0)
    lt_argerror_in(L, 2, name, "target %s does not match input %s: expected %s",
                   lm_shape_str(s1, sizeof s1, t->ndim, t->shape), lm_shape_str(s2, sizeof s2, x->ndim, x->shape),
                   lm_shape_str(s3, sizeof s3, wnd, want));
  double *w = per_channel(L, 3, C, name, "weight");
  lt_tensor *tc = lm_push_copy(L, t, LT_INT64);
  int64_t *tv = (int64_t *)lt_data(tc), n = N * S;
  for (int64_t i = 0; i < n; i++) {
    if (tv[i] == ignore) { tv[i] = -1; continue; }
    if (tv[i] < 1 || tv[i] > C)
      lt_argerror_in(L, 2, name, "target %lld is out of range for %lld classes",
                     (lua_Integer)tv[i], (lua_Integer)C);
    tv[i] -= 1;
  }
  lt_tensor *lp = lm_push_copy(L, x, LT_FLOAT64);
  lt_tensor *loss = lt_push_new(L, LT_FLOAT64, t->ndim, t->shape, 0);
  double wsum = lt_nll_f64((const double *)lt_data(lp), N, C, S, tv, w, ls, (double *)lt_data(loss));
  if (rnone) {
    if (x->dtype != LT_FLOAT64) lm_push_convert(L, loss, x->dtype);
    return 1;
  }
  double total = 0;
  const double *lv = (const double *)lt_data(loss);
  for (int64_t i = 0; i < n; i++) total += lv[i];
  lt_tensor *r = lt_push_new(L, x->dtype, 0, NULL, 0);
  lt_set_f64(x->dtype, lt_data(r), rsum ? total : total / wsum);
  return 1;
}

/* ---- recurrent cells --------------------------------------------------------- */

/* core._lstm_cell(gates, c [, x]) -> h, c': one LSTM step (nnops.c) for
   float32 or float64 gates {N, 4H} (plus x {N, 4H}, the step's input
   projection, when given) and state {N, H}; nil for anything else (the
   caller then takes the composite path) */
static int l_lstm_cell(lua_State *L) {
  lt_tensor *g = lm_checkt(L, 1), *c = lm_checkt(L, 2), *x = lm_optt(L, 3);
  if ((g->dtype != LT_FLOAT32 && g->dtype != LT_FLOAT64) || c->dtype != g->dtype ||
      g->ndim != 2 || c->ndim != 2 || c->shape[0] != g->shape[0] || g->shape[1] != 4 * c->shape[1] ||
      (x && (x->dtype != g->dtype || x->ndim != 2 || x->shape[0] != g->shape[0] || x->shape[1] != g->shape[1]))) {
    lua_pushnil(L);
    return 1;
  }
  int64_t N = c->shape[0], H = c->shape[1];
  g = lm_contig(L, g, g->dtype);
  c = lm_contig(L, c, c->dtype);
  if (x) x = lm_contig(L, x, x->dtype);
  int64_t shape[2] = {N, H};
  lt_tensor *h = lt_push_new(L, g->dtype, 2, shape, 0);
  lt_tensor *cn = lt_push_new(L, g->dtype, 2, shape, 0);
  lt_lstm_cell(g->dtype, lt_data(g), x ? lt_data(x) : NULL, lt_data(c), lt_data(h), lt_data(cn), N, H);
  return 2;
}

/* core._step_pack(w) -> wp: a float32 weight {N, K} packed for
   core._step_mm (smallmm.c), as a float32 tensor {ceil(N/16), K, 16}; nil
   for anything else, or on a CPU without the kernel */
static int l_step_pack(lua_State *L) {
  lt_tensor *w = lm_checkt(L, 1);
  if (!lt_smallmm_ok() || w->dtype != LT_FLOAT32 || w->ndim != 2) {
    lua_pushnil(L);
    return 1;
  }
  w = lm_contig(L, w, LT_FLOAT32);
  int64_t N = w->shape[0], K = w->shape[1];
  int64_t shape[3] = {(N + 15) / 16, K, 16};
  lt_tensor *wp = lt_push_new(L, LT_FLOAT32, 3, shape, 0);
  lt_smallmm_pack_f32(N, K, (const float *)lt_data(w), (float *)lt_data(wp));
  return 1;
}

/* core._step_mm(a, wp, n [, bias]) -> a @ w^T + bias: a recurrent step's
   hidden-to-hidden product (smallmm.c) for float32 a {M, K} and w {n, K}
   packed by core._step_pack, bias {n}; nil for anything else (the caller
   then takes linear) */
static int l_step_mm(lua_State *L) {
  lt_tensor *a = lm_checkt(L, 1), *wp = lm_checkt(L, 2), *bias = lm_optt(L, 4);
  lua_Integer n = luaL_checkinteger(L, 3);
  if (!lt_smallmm_ok() || a->dtype != LT_FLOAT32 || wp->dtype != LT_FLOAT32 || a->ndim != 2 ||
      wp->ndim != 3 || n < 0 || wp->shape[0] != (n + 15) / 16 || wp->shape[1] != a->shape[1] ||
      wp->shape[2] != 16 || !lt_is_contiguous(wp) ||
      (bias && (bias->dtype != LT_FLOAT32 || bias->ndim != 1 || bias->shape[0] != n))) {
    lua_pushnil(L);
    return 1;
  }
  a = lm_contig(L, a, LT_FLOAT32);
  if (bias) bias = lm_contig(L, bias, LT_FLOAT32);
  int64_t M = a->shape[0], K = a->shape[1], N = n;
  int64_t shape[2] = {M, N};
  lt_tensor *c = lt_push_new(L, LT_FLOAT32, 2, shape, 0);
  lt_smallmm_f32(M, N, K, (const float *)lt_data(a), K, (const float *)lt_data(wp),
                 bias ? (const float *)lt_data(bias) : NULL, (float *)lt_data(c), N);
  return 1;
}

/* ---- registration -------------------------------------------------------- */

static const luaL_Reg funcs[] = {
  {"conv1d", l_conv1d}, {"conv_transpose1d", l_conv_transpose1d},
  {"conv_transpose2d", l_conv_transpose2d}, {"group_norm", l_group_norm},
  {"_pad", l_pad}, {"_interpolate", l_interpolate}, {"_one_hot", l_one_hot},
  {"_class_loss", l_class_loss}, {"_max_pool_indices", l_max_pool_indices},
  {"_lstm_cell", l_lstm_cell}, {"_step_pack", l_step_pack},
  {"_step_mm", l_step_mm},
  {NULL, NULL}
};

static const luaL_Reg both[] = {
  {NULL, NULL}
};

const lt_binding lt_nn_binding = {funcs, NULL, both, NULL, NULL};
