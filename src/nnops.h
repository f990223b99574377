/*
** nnops.h: the core of the torch.nn.functional ops that need their own C
** (nnops.c, no Lua): copies through per-dim index maps (the padding modes,
** nearest interpolation), linear interpolation, transposed convolution
** (gemm + col2im), group norm and the class-index loss of cross_entropy and
** nll_loss. The binding (lnn.c) checks every argument and prepares
** contiguous buffers; nothing here allocates or fails.
*/
#ifndef LT_NNOPS_H
#define LT_NNOPS_H

#include "lt.h"
#include "ops.h"

/* ---- index maps ---------------------------------------------------------- */

enum { LT_PAD_CONSTANT, LT_PAD_REFLECT, LT_PAD_REPLICATE, LT_PAD_CIRCULAR };

/* map[o] for o in [0, in + pl + pr): the index in a dim of size in that
   output o of a padded dim reads, or -1 (the fill value; constant mode
   only). Negative pads crop. PyTorch 1.13's rules, which the caller has
   checked: reflect needs pl, pr < in; replicate in >= 1; circular wraps
   over the cropped part, m = in + min(pl, 0) + min(pr, 0), and needs
   pl, pr <= m */
void lt_pad_map(int mode, int64_t in, int64_t pl, int64_t pr, int64_t *map);

/* map[o] for o in [0, out): PyTorch 1.13's nearest source index in a dim of
   size in: floor(o * s) in float, or with exact its nearest-exact index
   floor((o + 0.5) * s); s is 1/scale when a scale factor > 0 is given,
   else in/out; the index is at most in - 1. With shortcut, nearest (not
   exact) copies when out == in and takes o/2 when out == 2 in, whatever the
   scale: nearest_idx, which PyTorch's 2-D and 3-D channels-last kernels use
   (and so every input that is channels-last contiguous, a contiguous one
   with one channel included); its other kernels do not */
void lt_nearest_map(int64_t in, int64_t out, double scale, int exact, int shortcut, int64_t *map);

/* out[i0, i1, ...] = x[maps[0][i0], maps[1][i1], ...] for a view x of any
   strides and a contiguous out of x's dtype and rank; maps[d] NULL is the
   identity (out and x of one size in d); an index -1 in any dim writes the
   element fill (out's dtype) */
void lt_map_copy(const lt_tensor *x, lt_tensor *out, const int64_t *const *maps, const void *fill);

/* ---- interpolation ------------------------------------------------------- */

/* PyTorch 1.13's upsample_bilinear2d of planes of H x W into OH x OW,
   float32 (float arithmetic, as its opmath) or float64 contiguous x and y;
   linear (1-D) is H = OH = 1. scale_h, scale_w: the scale factors given
   (> 0) or 0 (in/out). scratch holds 4 * OW 8-byte slots */
void lt_upsample_bilinear(lt_dtype dt, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW,
                          int align_corners, double scale_h, double scale_w, const void *x, void *y,
                          void *scratch);

/* PyTorch 1.13's upsample_bicubic2d (A = -0.75, source indices clamped to
   the edges): the same buffers as lt_upsample_bilinear; scratch holds
   8 * OW 8-byte slots */
void lt_upsample_bicubic(lt_dtype dt, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW,
                         int align_corners, double scale_h, double scale_w, const void *x, void *y,
                         void *scratch);

/* ---- max pooling with indices -------------------------------------------- */

/* PyTorch's max pooling with indices (cpu_max_pool: padding never wins, a
   nan does) over p->planes planes of H x W, float32 or float64 contiguous
   x and y; idx gets each maximum's 0-based index h * W + w in its plane */
void lt_max_pool2d_indices(lt_dtype dt, const lt_pool *p, const void *x, void *y, int64_t *idx);

/* ---- transposed convolution ---------------------------------------------- */

/* 2-D transposed convolution, NCHW, float32 or float64 contiguous buffers.
   p: N, C (input channels), H, W (input), O (output channels), kernel,
   stride, padding, dilation, groups, OH, OW (the output, output_padding
   included). w is (C, O/groups, kh, kw); bias (O) may be NULL; col has room
   for (O/groups*kh*kw) x (H*W) elements; y (N, O, OH, OW) is overwritten */
void lt_conv_transpose2d(lt_dtype dt, const lt_conv *p, const void *x, const void *w,
                         const void *bias, void *col, void *y);

/* ---- normalisation and losses -------------------------------------------- */

/* group norm of x (N, C, S) in G groups of C/G channels, float32 or float64
   contiguous; statistics in double (biased variance); w, b (C) may be NULL;
   y may be x */
void lt_group_norm(lt_dtype dt, const void *x, void *y, int64_t N, int64_t C, int64_t S, int64_t G,
                   const double *w, const double *b, double eps);

/* class-index loss over log-probabilities logp (N, C, S): for target
   t = target[n*S + s] (0-based, or -1: ignored, loss 0),
   loss[n*S + s] = -(1 - ls) w[t] logp[n, t, s] - ls/C sum_c w[c] logp[n, c, s]
   (PyTorch's nll_loss with cross_entropy's label smoothing). w may be NULL
   (ones). Returns the sum of w[t] over the targets not ignored (the
   divisor of the mean) */
double lt_nll_f64(const double *logp, int64_t N, int64_t C, int64_t S, const int64_t *target,
                  const double *w, double ls, double *loss);

/* one LSTM cell step from its gates g {N, 4H} (rows i, f, g, o as PyTorch
   orders them, contiguous), plus x {N, 4H} when not NULL (the step's input
   projection), and the cell state c {N, H}: c' = sigmoid(f) c + sigmoid(i)
   tanh(g), h' = sigmoid(o) tanh(c'); float32 (computed in float, as
   PyTorch's CPU kernels) or float64 */
void lt_lstm_cell(lt_dtype dt, const void *g, const void *x, const void *c, void *h, void *cn,
                  int64_t N, int64_t H);

#endif
