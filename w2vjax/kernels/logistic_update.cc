// The CPU fast path of w2vjax's update for negative sampling, NCE, sampled softmax and hierarchical softmax: a whole
// jitted call's micro-batches (steps) of `losses.logistic_rows` updates in one fused loop,
// called from XLA through the FFI (w2vjax/kernel.py builds and registers it).
//
// On one thread it computes what the plain jitted step computes (tests/test_kernel.py checks it
// against that step, whose gradients are jax.grad of the pure losses): per micro-batch, every example's
// gradient from the tables as they were before that micro-batch (a batch update, not
// word2vec.c's one example at a time), then every row's updates added in example order.  With
// Rong's notation, for an example with input rows u_c (weights hw_c) and output rows v_j
// (sign s_j, weight w_j):
//
//   h = sum_c hw_c u_c,   x_j = v_j . h - o_j,   a_j = w_j s_j sigma(-s_j x_j)   (= -dL/dx_j)
//   loss = sum_j w_j softplus(-s_j x_j)                                    (= -w_j log sigma(s_j x_j))
//   v_j += out_coef_j a_j h / r(v_j),   u_c += in_coef_c sum_j a_j v_j / r(u_c)
//
// with o_j = 0 but for NCE (the offset entry: each slot's logit less log(k q(w_j))); sampled softmax
// (the softmax entry) has the same rows and offsets (slot 0 the true word, uncorrected) with
//   y = softmax over the kept slots of x,   a_j = w_j (t_j - y_j),   loss = w_0 (log sum_j e^x_j - x_0)
// (t_0 = 1, t_j = 0 for the samples; a removed accidental hit has w_j = 0), where in_coef /
// out_coef carry the learning rate and CBOW's gradient convention (computed by the caller in XLA), and r(row) = max(1, touches / cap) is the row-update cap, touches = the
// slots of the row with a nonzero coefficient in the micro-batch (counted here).  Several
// threads either run Hogwild (each its own range of micro-batches, as one thread would, without
// locks: word2vec.c's and gensim's threads do the same) or share each micro-batch by rows
// (Work).  Why a kernel: XLA:CPU materialises the gathered rows and reads them three times;
// here a row is read once to compute and once to update, a padded slot (weight 0) costs
// nothing, and the logistic function needs no libm call.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// All threads wait here until all have arrived.  A waiter spins briefly (the threads usually
// arrive close together), then sleeps on a futex (std::atomic::wait), so that a thread which is
// early does not take the core from the host's data pipeline.
class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void Wait() {
    const int gen = gen_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
      count_.store(0, std::memory_order_relaxed);
      gen_.store(gen + 1, std::memory_order_release);
      gen_.notify_all();
      return;
    }
    for (int spins = 0; spins < kSpins; ++spins) {
      if (gen_.load(std::memory_order_acquire) != gen) return;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    while (gen_.load(std::memory_order_acquire) == gen) gen_.wait(gen, std::memory_order_acquire);
  }

 private:
  static constexpr int kSpins = 4000;
  const int n_;
  std::atomic<int> count_{0};
  std::atomic<int> gen_{0};
};

// The row arithmetic.  With AVX-512 (the build is -march=native), written with its intrinsics:
// rows of any length, 16 floats a vector, the tail (d % 16) through masked loads and stores,
// and the sums kept in registers.  (The portable Dot below spills its partial sums to the stack
// and reads them back in pieces, a store-to-load forwarding stall that took a fifth of
// skip-gram/HS's kernel time; the sums over a slot's rows, one Axpy each, read and wrote `dh`
// back to memory once per row.)
#if defined(__AVX512F__)
// x . y: two accumulators, one horizontal sum at the end
inline float Dot(const float* __restrict x, const float* __restrict y, int64_t d) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= d; i += 32) {
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), a1);
  }
  if (i + 16 <= d) {
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
    i += 16;
  }
  if (i < d) {
    const __mmask16 m = static_cast<__mmask16>((1u << (d - i)) - 1u);
    a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i), a1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

inline void Axpy(float a, const float* __restrict x, float* __restrict y, int64_t d) {
  const __m512 va = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= d; i += 16)
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  if (i < d) {
    const __mmask16 m = static_cast<__mmask16>((1u << (d - i)) - 1u);
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
}
// Up to 128 floats (8 vectors) of a row at a time in registers: the masks of the vectors of
// columns [c, c + 128) of a row of d floats (0: past the row's end).
inline void ColumnMasks(int64_t c, int64_t d, __mmask16 m[8]) {
  for (int k = 0; k < 8; ++k) {
    const int64_t left = d - c - 16 * k;
    m[k] = left >= 16 ? static_cast<__mmask16>(0xffff) : left > 0 ? static_cast<__mmask16>((1u << left) - 1u) : 0;
  }
}

// out = sum_i coef_i rows_i, in order i, the sum kept in registers (not read and written back
// to memory once per row, as n Axpy calls would)
inline void WeightedSum(int n, const float* coef, const float* const* rows, float* out, int64_t d) {
  for (int64_t c = 0; c < d; c += 128) {
    __mmask16 m[8];
    ColumnMasks(c, d, m);
    __m512 acc[8];
    for (int k = 0; k < 8; ++k) acc[k] = _mm512_setzero_ps();
    for (int i = 0; i < n; ++i) {
      const __m512 a = _mm512_set1_ps(coef[i]);
      const float* r = rows[i] + c;
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k)
        if (m[k]) acc[k] = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(m[k], r + 16 * k), acc[k]);
    }
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k)
      if (m[k]) _mm512_mask_storeu_ps(out + c + 16 * k, m[k], acc[k]);
  }
}

// rows_i += coef_i x, in order i (a row listed twice gets both), x kept in registers
inline void ScaledAdds(const float* x, int n, const float* coef, float* const* rows, int64_t d) {
  for (int64_t c = 0; c < d; c += 128) {
    __mmask16 m[8];
    ColumnMasks(c, d, m);
    __m512 xv[8];
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) xv[k] = _mm512_maskz_loadu_ps(m[k], x + c + 16 * k);
    for (int i = 0; i < n; ++i) {
      const __m512 a = _mm512_set1_ps(coef[i]);
      float* r = rows[i] + c;
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k)
        if (m[k]) _mm512_mask_storeu_ps(r + 16 * k, m[k], _mm512_fmadd_ps(a, xv[k], _mm512_maskz_loadu_ps(m[k], r + 16 * k)));
    }
  }
}
#elif defined(__AVX2__) && defined(__FMA__)
// AVX2 with FMA (this project's 2-core AMD machines have no AVX-512): 8 floats a vector, a row's
// last d % 8 floats as 4 (SSE) and then one at a time (no masked stores: AMD's vmaskmovps store
// is microcoded), the sums in registers as above.  Without it the portable loops ran: their Dot
// reduced its partial sums through the stack, and the logistic function was scalar.
inline float Sum4(__m128 s) {
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

inline __m128 Fold(__m256 v) { return _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)); }

inline float Dot(const float* __restrict x, const float* __restrict y, int64_t d) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= d; i += 16) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
  }
  if (i + 8 <= d) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
    i += 8;
  }
  __m128 s = Fold(_mm256_add_ps(a0, a1));
  if (i + 4 <= d) {
    s = _mm_fmadd_ps(_mm_loadu_ps(x + i), _mm_loadu_ps(y + i), s);
    i += 4;
  }
  float r = Sum4(s);
  for (; i < d; ++i) r = std::fma(x[i], y[i], r);
  return r;
}

inline void Axpy(float a, const float* __restrict x, float* __restrict y, int64_t d) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= d; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  if (i + 4 <= d) {
    _mm_storeu_ps(y + i, _mm_fmadd_ps(_mm256_castps256_ps128(va), _mm_loadu_ps(x + i), _mm_loadu_ps(y + i)));
    i += 4;
  }
  for (; i < d; ++i) y[i] = std::fma(a, x[i], y[i]);
}

// out = sum_i coef_i rows_i, in order i: columns 64 at a time (8 vectors) in registers, then
// the row's tail
inline void WeightedSum(int n, const float* coef, const float* const* rows, float* out, int64_t d) {
  const int64_t d8 = d - d % 8;
  for (int64_t c = 0; c < d8; c += 64) {
    const int64_t nv = std::min<int64_t>(8, (d8 - c) / 8);
    __m256 acc[8];
    for (int k = 0; k < 8; ++k) acc[k] = _mm256_setzero_ps();
    for (int i = 0; i < n; ++i) {
      const __m256 a = _mm256_set1_ps(coef[i]);
      const float* r = rows[i] + c;
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k)
        if (k < nv) acc[k] = _mm256_fmadd_ps(a, _mm256_loadu_ps(r + 8 * k), acc[k]);
    }
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k)
      if (k < nv) _mm256_storeu_ps(out + c + 8 * k, acc[k]);
  }
  int64_t t = d8;
  if (t + 4 <= d) {
    __m128 acc = _mm_setzero_ps();
    for (int i = 0; i < n; ++i) acc = _mm_fmadd_ps(_mm_set1_ps(coef[i]), _mm_loadu_ps(rows[i] + t), acc);
    _mm_storeu_ps(out + t, acc);
    t += 4;
  }
  for (; t < d; ++t) {
    float acc = 0.0f;
    for (int i = 0; i < n; ++i) acc = std::fma(coef[i], rows[i][t], acc);
    out[t] = acc;
  }
}

// rows_i += coef_i x, in order i (a row listed twice gets both), x kept in registers
inline void ScaledAdds(const float* x, int n, const float* coef, float* const* rows, int64_t d) {
  const int64_t d8 = d - d % 8;
  for (int64_t c = 0; c < d8; c += 64) {
    const int64_t nv = std::min<int64_t>(8, (d8 - c) / 8);
    __m256 xv[8];
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) xv[k] = k < nv ? _mm256_loadu_ps(x + c + 8 * k) : _mm256_setzero_ps();
    for (int i = 0; i < n; ++i) {
      const __m256 a = _mm256_set1_ps(coef[i]);
      float* r = rows[i] + c;
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k)
        if (k < nv) _mm256_storeu_ps(r + 8 * k, _mm256_fmadd_ps(a, xv[k], _mm256_loadu_ps(r + 8 * k)));
    }
  }
  int64_t t = d8;
  if (t + 4 <= d) {
    const __m128 xt = _mm_loadu_ps(x + t);
    for (int i = 0; i < n; ++i) _mm_storeu_ps(rows[i] + t, _mm_fmadd_ps(_mm_set1_ps(coef[i]), xt, _mm_loadu_ps(rows[i] + t)));
    t += 4;
  }
  for (; t < d; ++t)
    for (int i = 0; i < n; ++i) rows[i][t] = std::fma(coef[i], x[t], rows[i][t]);
}
#else  // portable loops (tests/test_kernel.py builds them too and compares)
// 16 partial sums, added pairwise at the end: vectorised, in a fixed order (GCC had compiled an
// `omp simd` reduction into a chain of 16 scalar adds per product).
inline float Dot(const float* __restrict x, const float* __restrict y, int64_t d) {
  float acc[16] = {0.0f};
  int64_t i = 0;
  for (; i + 16 <= d; i += 16) {
#pragma omp simd
    for (int k = 0; k < 16; ++k) acc[k] += x[i + k] * y[i + k];
  }
  for (int k = 0; i + k < d; ++k) acc[k] += x[i + k] * y[i + k];
  for (int w = 8; w >= 1; w /= 2) {
#pragma omp simd
    for (int k = 0; k < w; ++k) acc[k] += acc[k + w];
  }
  return acc[0];
}

inline void Axpy(float a, const float* __restrict x, float* __restrict y, int64_t d) {
#pragma omp simd
  for (int64_t i = 0; i < d; ++i) y[i] += a * x[i];
}

inline void WeightedSum(int n, const float* coef, const float* const* rows, float* out, int64_t d) {
  std::fill(out, out + d, 0.0f);
  for (int i = 0; i < n; ++i) Axpy(coef[i], rows[i], out, d);
}

inline void ScaledAdds(const float* x, int n, const float* coef, float* const* rows, int64_t d) {
  for (int i = 0; i < n; ++i) Axpy(coef[i], x, rows[i], d);
}
#endif

// Ask for a row's cache lines ahead of use: the rows are scattered over tables of megabytes, and
// loads issued a few examples ahead overlap their latency with this example's arithmetic.
inline void Prefetch(const float* row, int64_t d) {
  for (int64_t i = 0; i < d; i += 16) __builtin_prefetch(row + i);
}

// e^x for x <= 0 (clamped at -87, under which it is ~0): Cephes' expf, within 2 ulp, inline
// (libm's expf and log1pf, called per slot, had cost more than the rest
// of the update together).  Its constants, and log(1 + e)'s below, serve the scalar function
// and its 16-wide AVX-512 twin alike.
constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = 2.12194440e-4f;
constexpr float kExpPoly[] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                              4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
// log(1 + e) = 2 atanh(s) = 2 s sum_k s^2k / (2k + 1), highest term first
constexpr float kAtanhSeries[] = {1.0f / 15.0f, 1.0f / 13.0f, 1.0f / 11.0f, 1.0f / 9.0f,
                                  1.0f / 7.0f,  1.0f / 5.0f,  1.0f / 3.0f,  1.0f};

inline float ExpNonPositive(float x) {
  x = std::max(x, -87.0f);
  const float n = std::floor(x * kLog2e + 0.5f);
  float r = x - n * kLn2Hi;
  r = r + n * kLn2Lo;
  float q = kExpPoly[0];
  for (int i = 1; i < 6; ++i) q = q * r + kExpPoly[i];
  q = q * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n, n >= -126 here
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return q * scale;
}

// log(1 + e) for e in [0, 1]: 2 atanh(s), s = e / (2 + e) <= 1/3, by its series to s^15
// (truncation under 1e-8, no cancellation for small e).  Checked against double precision over
// z in [-100, 100]: e^-|z| within 1e-7, softplus and the sigmoid within 3e-7 (relative).
inline float Log1pUnit(float e) {
  const float s = e / (2.0f + e), s2 = s * s;
  float q = kAtanhSeries[0];
  for (int i = 1; i < 8; ++i) q = q * s2 + kAtanhSeries[i];
  return 2.0f * s * q;
}

// sigma(-z) and -log sigma(z) = softplus(-z) of n slots from one exp each: x holds z = s (v . h)
// and gets a = w s sigma(-z); returns sum w softplus(-z), the slots' loss.
#if defined(__AVX512F__)
inline __m512 ExpNonPositive16(__m512 x) {  // ExpNonPositive, 16 at a time
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(kLog2e), _mm512_set1_ps(0.5f)),
                                        _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 q = _mm512_set1_ps(kExpPoly[0]);
  for (int i = 1; i < 6; ++i) q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(kExpPoly[i]));
  q = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(q, r), r, r), _mm512_set1_ps(1.0f));
  const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(q, _mm512_castsi512_ps(bits));
}

inline __m512 Log1pUnit16(__m512 e) {  // Log1pUnit, 16 at a time
  const __m512 s = _mm512_div_ps(e, _mm512_add_ps(_mm512_set1_ps(2.0f), e)), s2 = _mm512_mul_ps(s, s);
  __m512 q = _mm512_set1_ps(kAtanhSeries[0]);
  for (int i = 1; i < 8; ++i) q = _mm512_fmadd_ps(q, s2, _mm512_set1_ps(kAtanhSeries[i]));
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(2.0f), s), q);
}

inline float Logistic(float* x, const float* w, const float* sign, int n) {
  __m512 loss = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512 z = _mm512_maskz_loadu_ps(m, x + i), wv = _mm512_maskz_loadu_ps(m, w + i);
    const __m512 ez = ExpNonPositive16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(z)));
    const __mmask16 pos = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_GT_OQ);
    const __m512 num = _mm512_mask_blend_ps(pos, _mm512_set1_ps(1.0f), ez);
    const __m512 a = _mm512_div_ps(_mm512_mul_ps(_mm512_mul_ps(wv, _mm512_maskz_loadu_ps(m, sign + i)), num),
                                   _mm512_add_ps(_mm512_set1_ps(1.0f), ez));
    _mm512_mask_storeu_ps(x + i, m, a);
    const __m512 sp = _mm512_add_ps(_mm512_max_ps(_mm512_sub_ps(_mm512_setzero_ps(), z), _mm512_setzero_ps()), Log1pUnit16(ez));
    loss = _mm512_fmadd_ps(wv, sp, loss);  // (lanes past n: w = 0, z = 0)
  }
  return _mm512_reduce_add_ps(loss);
}
#elif defined(__AVX2__) && defined(__FMA__)
inline __m256 ExpNonPositive8(__m256 x) {  // ExpNonPositive, 8 at a time
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
  const __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(kLog2e), _mm256_set1_ps(0.5f)));
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 q = _mm256_set1_ps(kExpPoly[0]);
  for (int i = 1; i < 6; ++i) q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(kExpPoly[i]));
  q = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(q, r), r, r), _mm256_set1_ps(1.0f));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(q, _mm256_castsi256_ps(bits));
}

inline __m256 Log1pUnit8(__m256 e) {  // Log1pUnit, 8 at a time
  const __m256 s = _mm256_div_ps(e, _mm256_add_ps(_mm256_set1_ps(2.0f), e)), s2 = _mm256_mul_ps(s, s);
  __m256 q = _mm256_set1_ps(kAtanhSeries[0]);
  for (int i = 1; i < 8; ++i) q = _mm256_fmadd_ps(q, s2, _mm256_set1_ps(kAtanhSeries[i]));
  return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(2.0f), s), q);
}

// (the last n % 8 slots through zero-padded copies: w = 0, z = 0 adds nothing to the loss)
inline float Logistic(float* x, const float* w, const float* sign, int n) {
  __m256 loss = _mm256_setzero_ps();
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
  for (int i = 0; i < n; i += 8) {
    alignas(32) float zb[8] = {0.0f}, wb[8] = {0.0f}, sb[8] = {0.0f}, ab[8];
    const bool full = n - i >= 8;
    if (!full) {
      std::copy(x + i, x + n, zb), std::copy(w + i, w + n, wb), std::copy(sign + i, sign + n, sb);
    }
    const __m256 z = full ? _mm256_loadu_ps(x + i) : _mm256_load_ps(zb);
    const __m256 wv = full ? _mm256_loadu_ps(w + i) : _mm256_load_ps(wb);
    const __m256 sv = full ? _mm256_loadu_ps(sign + i) : _mm256_load_ps(sb);
    const __m256 ez = ExpNonPositive8(_mm256_sub_ps(zero, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), z)));
    const __m256 num = _mm256_blendv_ps(one, ez, _mm256_cmp_ps(z, zero, _CMP_GT_OQ));
    const __m256 a = _mm256_div_ps(_mm256_mul_ps(_mm256_mul_ps(wv, sv), num), _mm256_add_ps(one, ez));
    if (full) {
      _mm256_storeu_ps(x + i, a);
    } else {
      _mm256_store_ps(ab, a);
      std::copy(ab, ab + (n - i), x + i);
    }
    const __m256 sp = _mm256_add_ps(_mm256_max_ps(_mm256_sub_ps(zero, z), zero), Log1pUnit8(ez));
    loss = _mm256_fmadd_ps(wv, sp, loss);
  }
  return Sum4(Fold(loss));
}
#else
inline float Logistic(float* x, const float* w, const float* sign, int n) {
  float loss = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float z = x[i], ez = ExpNonPositive(-std::fabs(z));
    x[i] = w[i] * sign[i] * (z > 0.0f ? ez : 1.0f) / (1.0f + ez);
    loss += w[i] * (std::max(-z, 0.0f) + Log1pUnit(ez));
  }
  return loss;
}
#endif

// Sampled softmax's a_j = -dL/dx_j over an example's n kept slots (logits x, weights w: the
// example's weight, 0 for a removed hit), slot[i] == 0 the true word; x is overwritten with a_j
// and the loss returned (losses.sampled_softmax).  A few exp per slot beside its two row passes.
inline float Softmax(float* x, const float* w, const int32_t* slot, int n) {
  if (n == 0) return 0.0f;
  float top = x[0], x0 = 0.0f, w0 = 0.0f, z = 0.0f;
  for (int i = 0; i < n; ++i) {
    top = std::max(top, x[i]);
    if (slot[i] == 0) x0 = x[i], w0 = w[i];
  }
  for (int i = 0; i < n; ++i) z += (x[i] = std::exp(x[i] - top));
  const float inv = 1.0f / z;
  for (int i = 0; i < n; ++i) x[i] = w[i] * ((slot[i] == 0 ? 1.0f : 0.0f) - x[i] * inv);
  return w0 * (std::log(z) + top - x0);
}

// The thread that owns a row: a multiplicative hash mapped onto [0, threads) by a multiply and
// shift (no division per slot).
inline int Owner(int32_t id, int threads) {
  const uint32_t h = static_cast<uint32_t>(id) * 2654435761u;
  return static_cast<int>((static_cast<uint64_t>(h) * static_cast<uint64_t>(threads)) >> 32);
}

// An example's output slots k < Count(ex) <= j, as per-slot arrays [S, B, J] (negative sampling:
// the positive and the noise words, as the caller gathered them).
struct DenseOut {
  const int32_t* ids;
  const float* sign;
  const float* weight;
  const float* coef;
  int64_t j;
  const float* offset = nullptr;  // [S, B, J] or none: NCE's log(k q(w)), subtracted from the logit
  bool softmax = false;  // sampled softmax over the slots (one thread owns them all) instead of logistic
  int64_t Count(int64_t) const { return j; }
  int32_t Id(int64_t ex, int64_t k) const { return ids[ex * j + k]; }
  float Sign(int64_t ex, int64_t k) const { return sign[ex * j + k]; }
  float Weight(int64_t ex, int64_t k) const { return weight[ex * j + k]; }
  float Coef(int64_t ex, int64_t k) const { return coef[ex * j + k]; }
  float Offset(int64_t ex, int64_t k) const { return offset != nullptr ? offset[ex * j + k] : 0.0f; }
};

// Hierarchical softmax: example ex's output slots are the Huffman path of its word, looked up
// here in the [V, L] tables (the inner nodes, the signs 1 - 2 code, the path lengths), with the
// example's weight and coefficient on every node (the same slots as DenseOut of the gathered
// paths, without the caller writing and this reading four [S, B, L] arrays per call: that
// gather had cost 1.8 ms of a skip-gram/HS call, on one core, before the threads start).
struct PathOut {
  const int32_t* word;  // [S, B]
  const float* weight;  // [S, B]
  const float* coef;  // [S, B]
  const int32_t* points;  // [V, L]
  const float* signs;  // [V, L]
  const int32_t* lens;  // [V]
  int64_t words, j;  // V, L
  int64_t Count(int64_t ex) const {
    const int32_t w = word[ex];
    return w >= 0 && w < words ? std::min<int64_t>(std::max(lens[w], 0), j) : 0;
  }
  int32_t Id(int64_t ex, int64_t k) const { return points[word[ex] * j + k]; }
  float Sign(int64_t ex, int64_t k) const { return signs[word[ex] * j + k]; }
  float Weight(int64_t ex, int64_t) const { return weight[ex]; }
  float Coef(int64_t ex, int64_t) const { return coef[ex]; }
  float Offset(int64_t, int64_t) const { return 0.0f; }
  static constexpr bool softmax = false;
};

template <class Out>
struct Problem {
  float* emb_in;
  float* emb_out;
  int64_t v_in, v_out, d;
  const int32_t* in_ids;
  const float* in_hw;
  const float* in_coef;
  int64_t c;  // input rows per example
  Out out;  // output rows per example: out.j at most
  int64_t steps, batch;
  float cap;  // the row-update cap (0: off)
  float* loss;
  // scratch for one micro-batch: h [batch, d]; per thread, its part of sum_j a_j v_j
  // [threads, batch, d] and of the loss [threads, batch]
  float* h;
  float* dh;
  float* part_loss;
};

template <class Out>
inline bool LiveOut(const Problem<Out>& p, int64_t ex, int64_t k) {
  const int32_t id = p.out.Id(ex, k);
  return p.out.Weight(ex, k) != 0.0f && id >= 0 && id < p.v_out;
}

constexpr int64_t kAhead = 2;  // examples whose rows are prefetched ahead
constexpr int64_t kGrabExamples = 256;  // a Hogwild thread takes micro-batches in runs of this many examples
constexpr float kHot = 4.0f;  // touches in a micro-batch from which an output row's updates are summed first

// Prefetch the input rows of example `ex` (when computing h).
template <class Out>
void PrefetchIn(const Problem<Out>& p, int64_t ex) {
  if (ex >= p.steps * p.batch) return;
  for (int64_t k = 0; k < p.c; ++k) {
    const int32_t id = p.in_ids[ex * p.c + k];
    if (p.in_hw[ex * p.c + k] != 0.0f && id >= 0 && id < p.v_in) Prefetch(p.emb_in + id * p.d, p.d);
  }
}

// Prefetch the output rows of example `ex` that thread t owns (when computing and again when
// updating: skip-gram/HS's update ran 10 % faster with the second, 3 alternating pairs).
template <class Out>
void PrefetchOwned(const Problem<Out>& p, int64_t ex, int t, int threads) {
  if (ex >= p.steps * p.batch) return;
  for (int64_t k = 0, n = p.out.Count(ex); k < n; ++k) {
    if (LiveOut(p, ex, k) && Owner(p.out.Id(ex, k), threads) == t) Prefetch(p.emb_out + p.out.Id(ex, k) * p.d, p.d);
  }
}

// A row's touches in one micro-batch, for the row-update cap: `n` counts in micro-batch
// `step` (1-based within the call); an entry of an earlier one counts as zero, so the counts
// need no clearing between micro-batches.
struct Touches {
  int32_t step = 0;
  float n = 0.0f;
  int32_t sum = -1;  // a hot row's slot in the micro-batch's update sums, -1: none yet
};

inline void Touch(Touches& t, int32_t step) {  // without a branch: whether a row was seen is random
  const bool seen = t.step == step;
  t.n = (seen ? t.n : 0.0f) + 1.0f;
  t.sum = seen ? t.sum : -1;
  t.step = step;
}

// One thread's share of `steps` micro-batch updates.  Rows are owned: thread Owner(id) computes
// every logit of its output rows and adds all their updates, so an output row stays in one
// core's cache from its logit to its update, and each row's updates are added in example order
// by one thread.  Per micro-batch:
//   1. h of this thread's range of examples;
//   2. for every example, the logits of the slots whose rows this thread owns: a_j, the
//      loss and sum_j a_j v_j over them (this thread's part);
//   3. the updates of the rows this thread owns, in example order: v_j += out_coef a_j h, and
//      u_c += in_coef sum_t part_t (the parts summed in thread order), and the loss.
// The result is deterministic for a thread count (the parts' sum order depends on it).  With
// threads = 1 this is the whole micro-batch in one thread (and each Hogwild thread's loop).
template <class Out>
void Work(const Problem<Out>& p, int t, int threads, Barrier* barrier, std::atomic<int64_t>* next = nullptr) {
  const int64_t d = p.d, b = p.batch;
  const int64_t lo = b * t / threads, hi = b * (t + 1) / threads;
  float* my_dh = p.dh + t * b * d;
  float* my_loss = p.part_loss + t * b;
  // this thread's own scratch (not a shared array written by two threads a few bytes apart,
  // whose cache lines they would keep taking from each other)
  const int64_t j = p.out.j;
  std::vector<float> sx(j), wt(j), sg(j), g(d), my_a(b * j);
  std::vector<int32_t> mine(j);
  std::vector<float*> rows(j);
  // the row-update cap's touch counts of the rows this thread owns: each slot that updates its
  // row (a nonzero coefficient) counts one touch in its micro-batch (small integers, exact in
  // float32: the counts of step.cap_row_updates)
  const bool cap = p.cap > 0.0f;
  std::vector<Touches> touch_in(cap ? p.v_in : 0), touch_out(cap ? p.v_out : 0);
  auto divisor = [&p](const Touches& t) { return std::max(1.0f, t.n / p.cap); };
  // a hot output row (touched kHot or more times in the micro-batch: the Huffman tree's top
  // nodes, frequent noise words) gets its updates summed here and added to it once, at the end
  // of the micro-batch, instead of one read-modify-write of the shared row per touch
  std::vector<float> sums;
  std::vector<int32_t> hot;
  // the micro-batches in order, or (next) the next `grab` not yet taken: runs of at least
  // kGrabExamples examples, so that at a small batch the threads neither fight over `next`'s
  // cache line once per micro-batch nor write the loss of neighbouring examples
  const int64_t grab = std::max<int64_t>(1, kGrabExamples / std::max<int64_t>(b, 1));
  int64_t s = -1, end = 0;
  for (;;) {
    if (next == nullptr) {
      ++s;
    } else if (++s >= end) {
      s = next->fetch_add(grab, std::memory_order_relaxed);
      end = std::min(s + grab, p.steps);
    }
    if (s >= p.steps) break;
    const int64_t base = s * b;
    const int32_t stamp = static_cast<int32_t>(s + 1);
    for (int64_t e = lo; e < hi; ++e) {  // 1.
      const int64_t ex = base + e;
      PrefetchIn(p, ex + kAhead);
      float* h = p.h + e * d;
      std::fill(h, h + d, 0.0f);
      for (int64_t k = 0; k < p.c; ++k) {
        const int32_t id = p.in_ids[ex * p.c + k];
        const float hw = p.in_hw[ex * p.c + k];
        if (hw != 0.0f && id >= 0 && id < p.v_in) Axpy(hw, p.emb_in + id * d, h, d);
      }
    }
    barrier->Wait();
    for (int64_t e = 0; e < b; ++e) {  // 2.
      const int64_t ex = base + e;
      PrefetchOwned(p, ex + kAhead, t, threads);
      const float* h = p.h + e * d;
      float* dh = my_dh + e * d;
      if (cap) {
        for (int64_t k = 0; k < p.c; ++k) {
          const int32_t id = p.in_ids[ex * p.c + k];
          if (p.in_coef[ex * p.c + k] != 0.0f && id >= 0 && id < p.v_in && Owner(id, threads) == t)
            Touch(touch_in[id], stamp);
        }
      }
      int n = 0;
      const int64_t slots = p.out.Count(ex);
      for (int64_t k = 0; k < slots; ++k) {
        const int32_t id = p.out.Id(ex, k);
        if (id < 0 || id >= p.v_out || Owner(id, threads) != t) continue;
        if (cap && p.out.Coef(ex, k) != 0.0f) Touch(touch_out[id], stamp);
        if (p.out.Weight(ex, k) == 0.0f) continue;
        rows[n] = p.emb_out + id * d;
        wt[n] = p.out.Weight(ex, k);
        sg[n] = p.out.Sign(ex, k);
        sx[n] = sg[n] * (Dot(rows[n], h, d) - p.out.Offset(ex, k));
        mine[n++] = static_cast<int32_t>(k);
      }
      my_loss[e] = p.out.softmax ? Softmax(sx.data(), wt.data(), mine.data(), n)
                                 : Logistic(sx.data(), wt.data(), sg.data(), n);
      float* a = my_a.data() + e * j;
      for (int i = 0; i < n; ++i) a[mine[i]] = sx[i];
      WeightedSum(n, sx.data(), rows.data(), dh, d);
    }
    barrier->Wait();
    for (int64_t e = 0; e < b; ++e) {  // 3.
      const int64_t ex = base + e;
      if (e + kAhead < b) PrefetchOwned(p, ex + kAhead, t, threads);
      int n = 0;  // this example's output-row updates: coefficient, row (>= 0) or hot sum (-1 - i)
      for (int64_t k = 0, slots = p.out.Count(ex); k < slots; ++k) {
        if (!LiveOut(p, ex, k) || Owner(p.out.Id(ex, k), threads) != t) continue;
        const float a = my_a[e * j + k];
        if (a == 0.0f) continue;
        float coef = p.out.Coef(ex, k);
        int32_t id = p.out.Id(ex, k);
        if (cap) {
          Touches& tc = touch_out[id];
          coef /= divisor(tc);
          if (tc.n >= kHot) {
            if (tc.sum < 0) {
              tc.sum = static_cast<int32_t>(hot.size());
              hot.push_back(id);
              if (sums.size() < hot.size() * d) sums.resize(2 * hot.size() * d);
              std::fill(sums.begin() + tc.sum * d, sums.begin() + (tc.sum + 1) * d, 0.0f);
            }
            id = -1 - tc.sum;
          }
        }
        sx[n] = coef * a;
        mine[n++] = id;
      }
      for (int i = 0; i < n; ++i)  // (sums may have moved when it grew)
        rows[i] = mine[i] >= 0 ? p.emb_out + mine[i] * d : sums.data() + (-1 - mine[i]) * d;
      ScaledAdds(p.h + e * d, n, sx.data(), rows.data(), d);
      bool summed = false;
      for (int64_t k = 0; k < p.c; ++k) {
        const int32_t id = p.in_ids[ex * p.c + k];
        float coef = p.in_coef[ex * p.c + k];
        if (coef == 0.0f || id < 0 || id >= p.v_in || Owner(id, threads) != t) continue;
        if (cap) coef /= divisor(touch_in[id]);
        if (!summed && threads > 1) {
          std::copy(p.dh + e * d, p.dh + (e + 1) * d, g.begin());
          for (int u = 1; u < threads; ++u) Axpy(1.0f, p.dh + (u * b + e) * d, g.data(), d);
          summed = true;
        }
        Axpy(coef, threads > 1 ? g.data() : p.dh + e * d, p.emb_in + id * d, d);
      }
      if (e >= lo && e < hi) {
        float loss = 0.0f;
        for (int u = 0; u < threads; ++u) loss += p.part_loss[u * b + e];
        p.loss[ex] = loss;
      }
    }
    for (size_t i = 0; i < hot.size(); ++i) Axpy(1.0f, sums.data() + i * d, p.emb_out + hot[i] * d, d);
    hot.clear();
    barrier->Wait();
  }
}

// The tables, the input side and the results, common to both layouts of the output slots:
// checks the shapes, points `p` at them (the tables updated in place), or says what is wrong.
template <class Out>
bool Setup(Problem<Out>& p, ffi::Buffer<ffi::F32>& emb_in, ffi::Buffer<ffi::F32>& emb_out,
           ffi::Buffer<ffi::S32>& in_ids, ffi::Buffer<ffi::F32>& in_hw, ffi::Buffer<ffi::F32>& in_coef,
           ffi::ResultBuffer<ffi::F32>& new_in, ffi::ResultBuffer<ffi::F32>& new_out,
           ffi::ResultBuffer<ffi::F32>& loss, float cap) {
  auto ti = emb_in.dimensions(), to = emb_out.dimensions(), di = in_ids.dimensions();
  if (ti.size() != 2 || to.size() != 2 || ti[1] != to[1] || di.size() != 3 ||
      in_hw.element_count() != in_ids.element_count() || in_coef.element_count() != in_ids.element_count() ||
      loss->element_count() != di[0] * di[1])
    return false;
  // the tables are updated in place (the caller aliases them to the results); copy if XLA did not
  if (new_in->typed_data() != emb_in.typed_data())
    std::memcpy(new_in->typed_data(), emb_in.typed_data(), emb_in.size_bytes());
  if (new_out->typed_data() != emb_out.typed_data())
    std::memcpy(new_out->typed_data(), emb_out.typed_data(), emb_out.size_bytes());
  p.emb_in = new_in->typed_data();
  p.emb_out = new_out->typed_data();
  p.v_in = ti[0];
  p.v_out = to[0];
  p.d = ti[1];
  p.in_ids = in_ids.typed_data();
  p.in_hw = in_hw.typed_data();
  p.in_coef = in_coef.typed_data();
  p.c = di[2];
  p.steps = di[0];
  p.batch = di[1];
  p.cap = cap;
  p.loss = loss->typed_data();
  return true;
}

template <class Out>
void Run(Problem<Out>& p, int64_t threads, int64_t hogwild) {
  if (hogwild > 0 && threads > 1 && p.steps > 1) {
    // Hogwild: each thread takes the next micro-batch not yet taken and runs it on its own, as
    // one thread would, reading and writing the shared tables without locks (word2vec.c's and
    // gensim's threads do the same); the result then depends on the threads' timing.  Taking
    // them one at a time (not a fixed half each) keeps a thread that shares its core with the
    // host's data pipeline from leaving the other idle at the end of the call.
    const int n = static_cast<int>(std::min<int64_t>(threads, p.steps));
    std::atomic<int64_t> next{0};
    auto run = [&p, &next]() {
      Problem<Out> q = p;
      std::vector<float> h(p.batch * p.d), dh(p.batch * p.d), part_loss(p.batch);
      q.h = h.data(), q.dh = dh.data(), q.part_loss = part_loss.data();
      Barrier one(1);
      Work(q, 0, 1, &one, &next);
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < n; ++t) pool.emplace_back(run);
    run();
    for (auto& th : pool) th.join();
    return;
  }
  // (a softmax normalises over all of an example's slots, which owned rows would split)
  const int n = p.out.softmax ? 1 : static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, std::max<int64_t>(p.batch, 1))));
  std::vector<float> h(p.batch * p.d), dh(n * p.batch * p.d), part_loss(n * p.batch);
  p.h = h.data();
  p.dh = dh.data();
  p.part_loss = part_loss.data();
  Barrier barrier(n);
  std::vector<std::thread> pool;
  for (int t = 1; t < n; ++t)
    pool.emplace_back(Work<Out>, std::cref(p), t, n, &barrier, static_cast<std::atomic<int64_t>*>(nullptr));
  Work(p, 0, n, &barrier);
  for (auto& th : pool) th.join();
}

// Negative sampling's slots; with `offset`, NCE's (each logit less its slot's log(k q(w))).
ffi::Error DenseUpdate(const char* name, ffi::Buffer<ffi::F32>& emb_in, ffi::Buffer<ffi::F32>& emb_out,
                       ffi::Buffer<ffi::S32>& in_ids, ffi::Buffer<ffi::F32>& in_hw,
                       ffi::Buffer<ffi::F32>& in_coef, ffi::Buffer<ffi::S32>& out_ids,
                       ffi::Buffer<ffi::F32>& sign, ffi::Buffer<ffi::F32>& weight,
                       ffi::Buffer<ffi::F32>& out_coef, const ffi::Buffer<ffi::F32>* offset,
                       ffi::ResultBuffer<ffi::F32>& new_in, ffi::ResultBuffer<ffi::F32>& new_out,
                       ffi::ResultBuffer<ffi::F32>& loss, int64_t threads, int64_t hogwild, float cap,
                       bool softmax = false) {
  auto di = in_ids.dimensions(), dout = out_ids.dimensions();
  Problem<DenseOut> p;
  if (dout.size() != 3 || di.size() != 3 || di[0] != dout[0] || di[1] != dout[1] ||
      sign.element_count() != out_ids.element_count() || weight.element_count() != out_ids.element_count() ||
      out_coef.element_count() != out_ids.element_count() ||
      (offset != nullptr && offset->element_count() != out_ids.element_count()) ||
      !Setup(p, emb_in, emb_out, in_ids, in_hw, in_coef, new_in, new_out, loss, cap))
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, std::string("w2vjax ") + name + ": shapes do not match");
  p.out = DenseOut{out_ids.typed_data(), sign.typed_data(), weight.typed_data(), out_coef.typed_data(), dout[2],
                   offset != nullptr ? offset->typed_data() : nullptr, softmax};
  Run(p, threads, hogwild);
  return ffi::Error::Success();
}

ffi::Error LogisticUpdate(ffi::Buffer<ffi::F32> emb_in, ffi::Buffer<ffi::F32> emb_out,
                          ffi::Buffer<ffi::S32> in_ids, ffi::Buffer<ffi::F32> in_hw,
                          ffi::Buffer<ffi::F32> in_coef, ffi::Buffer<ffi::S32> out_ids,
                          ffi::Buffer<ffi::F32> sign, ffi::Buffer<ffi::F32> weight,
                          ffi::Buffer<ffi::F32> out_coef, ffi::ResultBuffer<ffi::F32> new_in,
                          ffi::ResultBuffer<ffi::F32> new_out, ffi::ResultBuffer<ffi::F32> loss,
                          int64_t threads, int64_t hogwild, float cap) {
  return DenseUpdate("logistic_update", emb_in, emb_out, in_ids, in_hw, in_coef, out_ids, sign, weight, out_coef,
                     nullptr, new_in, new_out, loss, threads, hogwild, cap);
}

ffi::Error OffsetUpdate(ffi::Buffer<ffi::F32> emb_in, ffi::Buffer<ffi::F32> emb_out,
                        ffi::Buffer<ffi::S32> in_ids, ffi::Buffer<ffi::F32> in_hw,
                        ffi::Buffer<ffi::F32> in_coef, ffi::Buffer<ffi::S32> out_ids,
                        ffi::Buffer<ffi::F32> sign, ffi::Buffer<ffi::F32> weight,
                        ffi::Buffer<ffi::F32> out_coef, ffi::Buffer<ffi::F32> offset,
                        ffi::ResultBuffer<ffi::F32> new_in, ffi::ResultBuffer<ffi::F32> new_out,
                        ffi::ResultBuffer<ffi::F32> loss, int64_t threads, int64_t hogwild, float cap) {
  return DenseUpdate("offset_update", emb_in, emb_out, in_ids, in_hw, in_coef, out_ids, sign, weight, out_coef,
                     &offset, new_in, new_out, loss, threads, hogwild, cap);
}

// Sampled softmax: the offset entry's arguments (signs +1), the slots normalised by a softmax.
ffi::Error SoftmaxUpdate(ffi::Buffer<ffi::F32> emb_in, ffi::Buffer<ffi::F32> emb_out,
                         ffi::Buffer<ffi::S32> in_ids, ffi::Buffer<ffi::F32> in_hw,
                         ffi::Buffer<ffi::F32> in_coef, ffi::Buffer<ffi::S32> out_ids,
                         ffi::Buffer<ffi::F32> sign, ffi::Buffer<ffi::F32> weight,
                         ffi::Buffer<ffi::F32> out_coef, ffi::Buffer<ffi::F32> offset,
                         ffi::ResultBuffer<ffi::F32> new_in, ffi::ResultBuffer<ffi::F32> new_out,
                         ffi::ResultBuffer<ffi::F32> loss, int64_t threads, int64_t hogwild, float cap) {
  return DenseUpdate("softmax_update", emb_in, emb_out, in_ids, in_hw, in_coef, out_ids, sign, weight, out_coef,
                     &offset, new_in, new_out, loss, threads, hogwild, cap, true);
}

ffi::Error PathUpdate(ffi::Buffer<ffi::F32> emb_in, ffi::Buffer<ffi::F32> emb_out,
                      ffi::Buffer<ffi::S32> in_ids, ffi::Buffer<ffi::F32> in_hw,
                      ffi::Buffer<ffi::F32> in_coef, ffi::Buffer<ffi::S32> word,
                      ffi::Buffer<ffi::F32> weight, ffi::Buffer<ffi::F32> out_coef,
                      ffi::Buffer<ffi::S32> points, ffi::Buffer<ffi::F32> signs,
                      ffi::Buffer<ffi::S32> lens, ffi::ResultBuffer<ffi::F32> new_in,
                      ffi::ResultBuffer<ffi::F32> new_out, ffi::ResultBuffer<ffi::F32> loss,
                      int64_t threads, int64_t hogwild, float cap) {
  auto di = in_ids.dimensions(), dw = word.dimensions(), dp = points.dimensions();
  Problem<PathOut> p;
  if (dw.size() != 2 || di.size() != 3 || di[0] != dw[0] || di[1] != dw[1] ||
      weight.element_count() != word.element_count() || out_coef.element_count() != word.element_count() ||
      dp.size() != 2 || signs.element_count() != points.element_count() || lens.element_count() != dp[0] ||
      !Setup(p, emb_in, emb_out, in_ids, in_hw, in_coef, new_in, new_out, loss, cap))
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, "w2vjax path_update: shapes do not match");
  p.out = PathOut{word.typed_data(), weight.typed_data(), out_coef.typed_data(), points.typed_data(),
                  signs.typed_data(), lens.typed_data(), dp[0], dp[1]};
  Run(p, threads, hogwild);
  return ffi::Error::Success();
}

}  // namespace

namespace {

// The arguments both entries start with, then their own output slots, then what both return.
auto BindTablesAndInputs() {
  return ffi::Ffi::Bind()
      .Arg<ffi::Buffer<ffi::F32>>()   // emb_in [V_in, D]
      .Arg<ffi::Buffer<ffi::F32>>()   // emb_out [V_out, D]
      .Arg<ffi::Buffer<ffi::S32>>()   // in_ids [S, B, C]
      .Arg<ffi::Buffer<ffi::F32>>()   // in_hw [S, B, C]
      .Arg<ffi::Buffer<ffi::F32>>();  // in_coef [S, B, C]
}

template <class Binding>
auto BindResults(Binding b) {
  return std::move(b).template Ret<ffi::Buffer<ffi::F32>>()  // emb_in (aliased)
      .template Ret<ffi::Buffer<ffi::F32>>()      // emb_out (aliased)
      .template Ret<ffi::Buffer<ffi::F32>>()      // loss [S, B]
      .template Attr<int64_t>("threads")
      .template Attr<int64_t>("hogwild")
      .template Attr<float>("cap");
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(W2vLogisticUpdate, LogisticUpdate,
                              BindResults(BindTablesAndInputs()
                                              .Arg<ffi::Buffer<ffi::S32>>()    // out_ids [S, B, J]
                                              .Arg<ffi::Buffer<ffi::F32>>()    // sign [S, B, J]
                                              .Arg<ffi::Buffer<ffi::F32>>()    // weight [S, B, J]
                                              .Arg<ffi::Buffer<ffi::F32>>()));  // out_coef [S, B, J]

XLA_FFI_DEFINE_HANDLER_SYMBOL(W2vOffsetUpdate, OffsetUpdate,
                              BindResults(BindTablesAndInputs()
                                              .Arg<ffi::Buffer<ffi::S32>>()    // out_ids [S, B, J]
                                              .Arg<ffi::Buffer<ffi::F32>>()    // sign [S, B, J]
                                              .Arg<ffi::Buffer<ffi::F32>>()    // weight [S, B, J]
                                              .Arg<ffi::Buffer<ffi::F32>>()    // out_coef [S, B, J]
                                              .Arg<ffi::Buffer<ffi::F32>>()));  // offset [S, B, J]

XLA_FFI_DEFINE_HANDLER_SYMBOL(W2vSoftmaxUpdate, SoftmaxUpdate,
                              BindResults(BindTablesAndInputs()
                                              .Arg<ffi::Buffer<ffi::S32>>()    // out_ids [S, B, J]
                                              .Arg<ffi::Buffer<ffi::F32>>()    // sign [S, B, J]
                                              .Arg<ffi::Buffer<ffi::F32>>()    // weight [S, B, J]
                                              .Arg<ffi::Buffer<ffi::F32>>()    // out_coef [S, B, J]
                                              .Arg<ffi::Buffer<ffi::F32>>()));  // offset [S, B, J]

XLA_FFI_DEFINE_HANDLER_SYMBOL(W2vPathUpdate, PathUpdate,
                              BindResults(BindTablesAndInputs()
                                              .Arg<ffi::Buffer<ffi::S32>>()    // word [S, B]
                                              .Arg<ffi::Buffer<ffi::F32>>()    // weight [S, B]
                                              .Arg<ffi::Buffer<ffi::F32>>()    // out_coef [S, B]
                                              .Arg<ffi::Buffer<ffi::S32>>()    // points [V, L]
                                              .Arg<ffi::Buffer<ffi::F32>>()    // signs [V, L]
                                              .Arg<ffi::Buffer<ffi::S32>>()));  // lens [V]
