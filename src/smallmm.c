/*
** smallmm.c: C = A B + bias for a few rows of A against a weight that is
** reused many times, as a recurrent layer's hidden-to-hidden weight is at
** every time step. A BLAS gemm packs the whole weight again at each call (a
** step of an LSTM with H = 256 packs 1 MiB to multiply 8 rows by it); here
** the caller packs the weight once (lt_smallmm_pack_f32): W {N, K} becomes
** strips of 16 of its rows, each stored k-major ({ceil(N/16), K, 16}, the
** last strip padded with zeros), and each step streams the packed weight
** once, front to back, against blocks of 4 rows of A held in registers
** (AVX2 + FMA, chosen at run time; elsewhere the caller falls back to the
** gemm). Transposing alone is not enough: a strip of W^T read k by k steps
** 4 KiB at a time (for N = 1024) and every line lands in the same L1 set.
**
** Each C[i][j] is the dot product of A's row i and B's column j summed in
** k order, then bias[j] added once: the order of a gemm with one K block
** and beta = 1 (PyTorch's addmm), up to the lane split of the sum.
*/
#include "smallmm.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX2_KERNEL 1

/* one row of A times a 16-column strip of B, and the bias */
__attribute__((target("avx2,fma")))
static inline void store(float *c, int64_t n, const float *bias, __m256 c0, __m256 c1) {
  float t[16];
  _mm256_storeu_ps(t, c0);
  _mm256_storeu_ps(t + 8, c1);
  for (int64_t x = 0; x < n; x++) c[x] = bias ? t[x] + bias[x] : t[x];
}
#define STORE(row, c0, c1)                                                                    \
  do {                                                                                        \
    float *c_ = C + (row) * ldc + j;                                                          \
    if (n == 16) {                                                                            \
      _mm256_storeu_ps(c_, bias ? _mm256_add_ps(c0, _mm256_loadu_ps(bias + j)) : c0);         \
      _mm256_storeu_ps(c_ + 8, bias ? _mm256_add_ps(c1, _mm256_loadu_ps(bias + j + 8)) : c1); \
    } else {                                                                                  \
      store(c_, n, bias ? bias + j : NULL, c0, c1);                                           \
    }                                                                                         \
  } while (0)

/* rows i .. i+3 of C, columns j .. j+15: eight accumulators in registers */
__attribute__((target("avx2,fma")))
static inline void block4(int64_t i, int64_t j, int64_t n, int64_t K, const float *A, int64_t lda,
                          const float *b, const float *bias, float *C, int64_t ldc) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00;
  __m256 c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  const float *a0 = A + i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
  for (int64_t k = 0; k < K; k++, b += 16) {
    __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), a;
    a = _mm256_broadcast_ss(a0 + k); c00 = _mm256_fmadd_ps(a, b0, c00); c01 = _mm256_fmadd_ps(a, b1, c01);
    a = _mm256_broadcast_ss(a1 + k); c10 = _mm256_fmadd_ps(a, b0, c10); c11 = _mm256_fmadd_ps(a, b1, c11);
    a = _mm256_broadcast_ss(a2 + k); c20 = _mm256_fmadd_ps(a, b0, c20); c21 = _mm256_fmadd_ps(a, b1, c21);
    a = _mm256_broadcast_ss(a3 + k); c30 = _mm256_fmadd_ps(a, b0, c30); c31 = _mm256_fmadd_ps(a, b1, c31);
  }
  STORE(i, c00, c01); STORE(i + 1, c10, c11); STORE(i + 2, c20, c21); STORE(i + 3, c30, c31);
}

/* row i of C, columns j .. j+15; k runs in two interleaved halves (even and
   odd k) so that four accumulators, not two, hide the FMA latency */
__attribute__((target("avx2,fma")))
static inline void block1(int64_t i, int64_t j, int64_t n, int64_t K, const float *A, int64_t lda,
                          const float *b, const float *bias, float *C, int64_t ldc) {
  __m256 c0 = _mm256_setzero_ps(), c1 = c0, d0 = c0, d1 = c0;
  const float *a0 = A + i * lda;
  int64_t k = 0;
  for (; k + 2 <= K; k += 2, b += 32) {
    __m256 a = _mm256_broadcast_ss(a0 + k), e = _mm256_broadcast_ss(a0 + k + 1);
    c0 = _mm256_fmadd_ps(a, _mm256_loadu_ps(b), c0);
    c1 = _mm256_fmadd_ps(a, _mm256_loadu_ps(b + 8), c1);
    d0 = _mm256_fmadd_ps(e, _mm256_loadu_ps(b + 16), d0);
    d1 = _mm256_fmadd_ps(e, _mm256_loadu_ps(b + 24), d1);
  }
  if (k < K) {
    __m256 a = _mm256_broadcast_ss(a0 + k);
    c0 = _mm256_fmadd_ps(a, _mm256_loadu_ps(b), c0);
    c1 = _mm256_fmadd_ps(a, _mm256_loadu_ps(b + 8), c1);
  }
  c0 = _mm256_add_ps(c0, d0);
  c1 = _mm256_add_ps(c1, d1);
  STORE(i, c0, c1);
}

__attribute__((target("avx2,fma")))
static void mm_avx2(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                    const float *Wp, const float *bias, float *C, int64_t ldc) {
  for (int64_t j = 0; j < N; j += 16) {
    /* one strip of the packed weight (K * 64 bytes) stays in L1 across row blocks */
    const float *b = Wp + j * K;
    int64_t n = N - j < 16 ? N - j : 16, i = 0;
    for (; i + 4 <= M; i += 4) block4(i, j, n, K, A, lda, b, bias, C, ldc);
    for (; i < M; i++) block1(i, j, n, K, A, lda, b, bias, C, ldc);
  }
}
#endif

int64_t lt_smallmm_packed_numel(int64_t N, int64_t K) { return (N + 15) / 16 * 16 * K; }

void lt_smallmm_pack_f32(int64_t N, int64_t K, const float *W, float *Wp) {
  for (int64_t j = 0; j < N; j += 16)
    for (int64_t k = 0; k < K; k++)
      for (int64_t c = 0; c < 16; c++) *Wp++ = j + c < N ? W[(j + c) * K + k] : 0.0f;
}

int lt_smallmm_ok(void) {
#ifdef HAVE_AVX2_KERNEL
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return 0;
#endif
}

void lt_smallmm_f32(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                    const float *Wp, const float *bias, float *C, int64_t ldc) {
#ifdef HAVE_AVX2_KERNEL
  mm_avx2(M, N, K, A, lda, Wp, bias, C, ldc);
#else
  (void)M; (void)N; (void)K; (void)A; (void)lda; (void)Wp; (void)bias; (void)C; (void)ldc;
#endif
}
