// Scalar k-quant quantizers (Q2_K..Q6_K) and Q8_K, following ggml's
// quantize_row_*_ref without importance weights, step for step.
//
// Each super-block of 256 is cut into sub-blocks; a search picks each
// sub-block's scale (and min), the scales are themselves quantized to 4/6/8
// bits against one f16 super-scale, and the weights are finally re-rounded
// against the *stored* scales so dequantization sees exactly what was chosen.
// The searches (make_qkx2_quants for the asymmetric types, make_qx_quants /
// make_q3_quants for the symmetric ones) are ggml's, so the error is ggml's.
#include <cmath>
#include <cstring>

#include "cpu_kernels/nearest_int.h"
#include "cpu_kernels/quant_ref_internal.h"
#include "runtime/base/half.h"

namespace strata::quant_detail {
namespace {

// ggml treats a sub-block whose largest |x| is below this as all zero.
constexpr float kGroupMaxEps = 1e-15f;

// The element of v with the largest magnitude, sign kept (the first one on
// ties; 0 for all zeros): the k-quants scale sub-block scales against it.
float largest_magnitude(const float* v, int n) {
  float best = 0, best_abs = 0;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(v[i]) > best_abs) {
      best_abs = std::fabs(v[i]);
      best = v[i];
    }
  }
  return best;
}

inline int imin(int a, int b) { return a < b ? a : b; }
inline int imax(int a, int b) { return a > b ? a : b; }

// Symmetric codes L in [0, 2*nmax) for x ~ scale * (L - nmax), weights x^2
// (rmse_type 1, the only one the reference quantizers use), trying 18 scales
// around nmax / max|x| and keeping the one that maximizes sumlx^2 / suml2
// (least-squares fit). Returns the scale; negative when the extreme is positive.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
  const float max = largest_magnitude(x, n);
  const float amax = std::fabs(max);
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = imax(-nmax, imin(nmax - 1, l));
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = imax(-nmax, imin(nmax - 1, l));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * x[i]);
        L[i] = static_cast<int8_t>(nmax + imax(-nmax, imin(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Q3_K's search: start from nmax / max|x|, then up to 5 sweeps of coordinate
// descent moving single codes while the weighted (x^2) fit improves.
// L ends in [0, 2*nmax).
float make_q3_quants(int n, int nmax, const float* x, int8_t* L) {
  const float max = largest_magnitude(x, n);
  const float amax = std::fabs(max);
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  const float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = imax(-nmax, imin(nmax - 1, l));
    L[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * L[i];
      if (slx > 0) {
        float sl2 = suml2 - w * L[i] * L[i];
        int new_l = nearest_int(x[i] * sl2 / slx);
        new_l = imax(-nmax, imin(nmax - 1, new_l));
        if (new_l != L[i]) {
          slx += w * x[i] * new_l;
          sl2 += w * new_l * new_l;
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<int8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (!n_changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Asymmetric codes L in [0, nmax] for x ~ scale * L - the_min: starts from the
// [min(x, 0), max] range, then tries nstep+1 widened/narrowed scales, each
// refit by weighted least squares for (scale, min), and keeps the smallest
// weighted error (squared, or absolute with use_mad). *the_min is >= 0.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.0f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(imax(0, imin(nmax, l)));
    float diff = scale * L[i] + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = imax(0, imin(nmax, l));
      Laux[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// Packs 2-bit codes: element j + 32k of each 128 goes to bits 2k of qs[j/4 + l].
void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < kQK_K; j += 128) {
    for (int l = 0; l < 32; ++l) {
      qs[j / 4 + l] =
          static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
    }
  }
}

// Q4_K/Q5_K: 8 sub-blocks of 32 weighted by av|x| + |x|, scales and mins
// quantized to 6 bits against max_scale/63 and max_min/63.
// Fills d, dmin, the 12 packed scale bytes and the codes L (0..nmax) of one
// super-block; the search's range tweak (rmin) and step count are per type.
void quantize_k_asym(const float* x, int nmax, float rmin, int nstep, uint16_t* d_out, uint16_t* dmin_out,
                     uint8_t scales_out[kKScaleBytes], uint8_t L[kQK_K]) {
  uint8_t Laux[32];
  float weights[32];
  float mins[kQK_K / 32];
  float scales[kQK_K / 32];
  float max_scale = 0, max_min = 0;  // scales are positive because the min is subtracted
  for (int j = 0; j < kQK_K / 32; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t sc[kKScaleBytes] = {};
  for (int j = 0; j < kQK_K / 32; ++j) {
    uint8_t ls = static_cast<uint8_t>(nearest_int(inv_scale * scales[j]));
    uint8_t lm = static_cast<uint8_t>(nearest_int(inv_min * mins[j]));
    ls = ls < 63 ? ls : 63;
    lm = lm < 63 ? lm : 63;
    if (j < 4) {
      sc[j] = ls;
      sc[j + 4] = lm;
    } else {
      sc[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      sc[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      sc[j] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
  const uint16_t d = f32_to_f16(max_scale / 63.f);
  const uint16_t dmin = f32_to_f16(max_min / 63.f);
  *d_out = d;
  *dmin_out = dmin;
  std::memcpy(scales_out, sc, kKScaleBytes);

  // Re-round against the stored (quantized) scales; a zero scale keeps the
  // search's codes, as ggml does.
  for (int j = 0; j < kQK_K / 32; ++j) {
    uint8_t s, m;
    get_scale_min_k4(j, sc, &s, &m);
    const float dj = f16_to_f32(d) * s;
    if (dj == 0.0f) continue;
    const float dm = f16_to_f32(dmin) * m;
    for (int ii = 0; ii < 32; ++ii) {
      const int l = nearest_int((x[32 * j + ii] + dm) / dj);
      L[32 * j + ii] = static_cast<uint8_t>(imax(0, imin(nmax, l)));
    }
  }
}

}  // namespace

// Q2_K: 16 sub-blocks of 16, codes 0..3 with min, |x| weights, absolute error;
// scales and mins quantized to 4 bits against max/15.
void quantize_q2_k(const float* x, uint8_t* y, int64_t nb) {
  constexpr float q4scale = 15.f;
  for (int64_t i = 0; i < nb; ++i, x += kQK_K, y += sizeof(BlockQ2_K)) {
    BlockQ2_K b{};
    uint8_t L[kQK_K];
    uint8_t Laux[16];
    float weights[16];
    float mins[kQK_K / 16];
    float scales[kQK_K / 16];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < kQK_K / 16; ++j) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
      scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
      const float iscale = q4scale / max_scale;
      for (int j = 0; j < kQK_K / 16; ++j) b.scales[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
      b.d = f32_to_f16(max_scale / q4scale);
    } else {
      b.d = f32_to_f16(0.f);
    }
    if (max_min > 0) {
      const float iscale = q4scale / max_min;
      for (int j = 0; j < kQK_K / 16; ++j) b.scales[j] |= static_cast<uint8_t>(nearest_int(iscale * mins[j]) << 4);
      b.dmin = f32_to_f16(max_min / q4scale);
    } else {
      b.dmin = f32_to_f16(0.f);
    }
    for (int j = 0; j < kQK_K / 16; ++j) {
      const float d = f16_to_f32(b.d) * (b.scales[j] & 0xF);
      if (d == 0.0f) continue;
      const float dm = f16_to_f32(b.dmin) * (b.scales[j] >> 4);
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int((x[16 * j + ii] + dm) / d);
        L[16 * j + ii] = static_cast<uint8_t>(imax(0, imin(3, l)));
      }
    }
    pack_2bit(L, b.qs);
    std::memcpy(y, &b, sizeof(b));
  }
}

// Q3_K: 16 sub-blocks of 16, symmetric codes -4..3, 6-bit signed scales
// against max_scale/-32.
void quantize_q3_k(const float* x, uint8_t* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK_K, y += sizeof(BlockQ3_K)) {
    BlockQ3_K b{};
    int8_t L[kQK_K];
    float scales[kQK_K / 16];
    for (int j = 0; j < kQK_K / 16; ++j) scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
    const float max_scale = largest_magnitude(scales, kQK_K / 16);
    if (max_scale != 0.0f) {
      const float iscale = -32.f / max_scale;
      for (int j = 0; j < kQK_K / 16; ++j) {
        int8_t l = static_cast<int8_t>(nearest_int(iscale * scales[j]));
        l = static_cast<int8_t>(imax(-32, imin(31, l)) + 32);
        if (j < 8) {
          b.scales[j] = l & 0xF;
        } else {
          b.scales[j - 8] |= static_cast<uint8_t>((l & 0xF) << 4);
        }
        l >>= 4;
        b.scales[j % 4 + 8] |= static_cast<uint8_t>(l << (2 * (j / 4)));
      }
      b.d = f32_to_f16(1 / iscale);
    } else {
      b.d = f32_to_f16(0.f);
    }
    for (int j = 0; j < kQK_K / 16; ++j) {
      const int lo = j < 8 ? (b.scales[j] & 0xF) : (b.scales[j - 8] >> 4);
      const int sc = (lo | (((b.scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
      const float d = f16_to_f32(b.d) * sc;
      if (d == 0.0f) continue;
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int(x[16 * j + ii] / d);
        L[16 * j + ii] = static_cast<int8_t>(imax(-4, imin(3, l)) + 4);
      }
    }
    // Bit 2 of element j goes to hmask[j % 32], bit j / 32.
    for (int j = 0; j < kQK_K; ++j) {
      if (L[j] > 3) {
        b.hmask[j % 32] |= static_cast<uint8_t>(1u << (j / 32));
        L[j] = static_cast<int8_t>(L[j] - 4);
      }
    }
    uint8_t Lu[kQK_K];
    for (int j = 0; j < kQK_K; ++j) Lu[j] = static_cast<uint8_t>(L[j]);
    pack_2bit(Lu, b.qs);
    std::memcpy(y, &b, sizeof(b));
  }
}

void quantize_q4_k(const float* x, uint8_t* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK_K, y += sizeof(BlockQ4_K)) {
    BlockQ4_K b{};
    uint8_t L[kQK_K];
    quantize_k_asym(x, 15, -1.f, 20, &b.d, &b.dmin, b.scales, L);
    for (int j = 0; j < kQK_K; j += 64) {
      for (int l = 0; l < 32; ++l) b.qs[j / 2 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
    }
    std::memcpy(y, &b, sizeof(b));
  }
}

// Q5_K: as Q4_K with codes 0..31; bit 4 of sub-block s goes to bit s of qh[l].
void quantize_q5_k(const float* x, uint8_t* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK_K, y += sizeof(BlockQ5_K)) {
    BlockQ5_K b{};
    uint8_t L[kQK_K];
    quantize_k_asym(x, 31, -0.5f, 15, &b.d, &b.dmin, b.scales, L);
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < kQK_K; n += 64, m1 <<= 2, m2 <<= 2) {
      for (int j = 0; j < 32; ++j) {
        int l1 = L[n + j];
        if (l1 > 15) {
          l1 -= 16;
          b.qh[j] |= m1;
        }
        int l2 = L[n + j + 32];
        if (l2 > 15) {
          l2 -= 16;
          b.qh[j] |= m2;
        }
        b.qs[n / 2 + j] = static_cast<uint8_t>(l1 | (l2 << 4));
      }
    }
    std::memcpy(y, &b, sizeof(b));
  }
}

// Q6_K: 16 sub-blocks of 16, codes -32..31 from make_qx_quants, int8 scales
// against max_scale/-128.
void quantize_q6_k(const float* x, uint8_t* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK_K, y += sizeof(BlockQ6_K)) {
    BlockQ6_K b{};
    int8_t L[kQK_K];
    float scales[kQK_K / 16];
    for (int ib = 0; ib < kQK_K / 16; ++ib) scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
    const float max_scale = largest_magnitude(scales, kQK_K / 16);
    if (std::fabs(max_scale) < kGroupMaxEps) {
      b.d = f32_to_f16(0.f);  // all-zero block
      std::memcpy(y, &b, sizeof(b));
      continue;
    }
    const float iscale = -128.f / max_scale;
    b.d = f32_to_f16(1 / iscale);
    for (int ib = 0; ib < kQK_K / 16; ++ib) {
      b.scales[ib] = static_cast<int8_t>(imin(127, nearest_int(iscale * scales[ib])));
    }
    for (int j = 0; j < kQK_K / 16; ++j) {
      const float d = f16_to_f32(b.d) * b.scales[j];
      if (d == 0.0f) continue;
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int(x[16 * j + ii] / d);
        L[16 * j + ii] = static_cast<int8_t>(imax(-32, imin(31, l)) + 32);
      }
    }
    // Per 128: ql[l] = code l | code l+64 << 4, ql[l+32] = code l+32 | code
    // l+96 << 4, qh[l] = top 2 bits of codes l, l+32, l+64, l+96.
    uint8_t* ql = b.ql;
    uint8_t* qh = b.qh;
    for (int j = 0; j < kQK_K; j += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t q1 = L[j + l] & 0xF;
        const uint8_t q2 = L[j + l + 32] & 0xF;
        const uint8_t q3 = L[j + l + 64] & 0xF;
        const uint8_t q4 = L[j + l + 96] & 0xF;
        ql[l] = static_cast<uint8_t>(q1 | (q3 << 4));
        ql[l + 32] = static_cast<uint8_t>(q2 | (q4 << 4));
        qh[l] = static_cast<uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                     ((L[j + l + 96] >> 4) << 6));
      }
    }
    std::memcpy(y, &b, sizeof(b));
  }
}

// Q8_K: one float scale max/-127 per 256 (the extreme maps to -127, so no
// clamp at -128 is needed) and int16 sums of each 16 codes.
void quantize_q8_k(const float* x, uint8_t* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK_K, y += sizeof(BlockQ8_K)) {
    BlockQ8_K b{};
    const float max = largest_magnitude(x, kQK_K);
    if (max == 0.0f) {
      std::memcpy(y, &b, sizeof(b));  // d = 0, codes and sums 0
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < kQK_K; ++j) b.qs[j] = static_cast<int8_t>(imin(127, nearest_int(iscale * x[j])));
    for (int j = 0; j < kQK_K / 16; ++j) {
      int sum = 0;
      for (int ii = 0; ii < 16; ++ii) sum += b.qs[16 * j + ii];
      b.bsums[j] = static_cast<int16_t>(sum);
    }
    b.d = 1 / iscale;
    std::memcpy(y, &b, sizeof(b));
  }
}

}  // namespace strata::quant_detail
