/*
** smallmm.h: C = A W^T + bias for a few rows of A against a weight packed
** once (smallmm.c); the hidden-to-hidden product of a recurrent
** step. No allocation, no failure.
*/
#ifndef LT_SMALLMM_H
#define LT_SMALLMM_H

#include <stdint.h>

/* whether this CPU runs lt_smallmm_f32 (x86-64 with AVX2 and FMA); when it
   does not, callers use lt_gemm */
int lt_smallmm_ok(void);

/* the number of floats of W {N, K} packed: ceil(N / 16) strips of K * 16 */
int64_t lt_smallmm_packed_numel(int64_t N, int64_t K);

/* Wp = W {N, K} (contiguous, row-major) packed for lt_smallmm_f32 */
void lt_smallmm_pack_f32(int64_t N, int64_t K, const float *W, float *Wp);

/* C {M, N} (row stride ldc) = A {M, K} (row stride lda) times W^T, W {N, K}
   given packed as Wp, plus bias {N} when bias is not NULL; only when
   lt_smallmm_ok() */
void lt_smallmm_f32(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                    const float *Wp, const float *bias, float *C, int64_t ldc);

#endif
