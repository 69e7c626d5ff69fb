// Reference forward: see ref_forward.h. Everything here is deliberately
// direct: a matrix-vector product is a double loop, attention is a full
// causal recompute, RoPE angles are computed in double from the formula.
#include "tests/reference/ref_forward.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "cpu_kernels/quant_ref.h"

namespace strata::ref {
namespace {

std::string blk(int il, const std::string& what) { return "blk." + std::to_string(il) + "." + what; }

void softmax(std::vector<double>& s) {
  double mx = -INFINITY;
  for (double v : s) mx = std::max(mx, v);
  double sum = 0;
  for (double& v : s) sum += v = std::exp(v - mx);
  for (double& v : s) v /= sum;
}

double silu(double x) { return x / (1.0 + std::exp(-x)); }
double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

}  // namespace

Result<RefModel> RefModel::load(const gguf::GgufModel& file) {
  RefModel m;
  STRATA_ASSIGN_OR_RETURN(m.hp_, read_hparams(file));
  for (const auto& t : file.tensors()) {
    Tensor x;
    for (int d = 0; d < 4; ++d) x.ne[d] = int64_t(t.ne[d]);
    x.v.resize(size_t(t.n_elems));
    const uint64_t row_bytes = dtype_row_bytes(t.dtype, t.ne[0]).value_or(0);
    for (uint64_t r = 0; r < t.n_rows(); ++r) {
      STRATA_RETURN_IF_ERROR(dequantize_row_ref(t.dtype, t.data + r * row_bytes, x.v.data() + r * t.ne[0], int64_t(t.ne[0])));
    }
    m.t_.emplace(t.name, std::move(x));
  }
  return m;
}

const RefModel::Tensor* RefModel::find(const std::string& name) const {
  auto it = t_.find(name);
  return it == t_.end() ? nullptr : &it->second;
}

const RefModel::Tensor& RefModel::w(const std::string& name) const {
  const Tensor* t = find(name);
  if (!t) {
    std::fprintf(stderr, "ref_forward: missing tensor %s\n", name.c_str());
    std::abort();
  }
  return *t;
}

RefModel::Vec RefModel::matvec(const Tensor& m, const Vec& x, int64_t mat) const {
  const int64_t n_in = m.ne[0], n_out = m.ne[1];
  const float* base = m.v.data() + mat * n_in * n_out;
  Vec y(size_t(n_out), 0.0);
  for (int64_t o = 0; o < n_out; ++o) {
    double s = 0;
    for (int64_t i = 0; i < n_in; ++i) s += double(base[o * n_in + i]) * x[size_t(i)];
    y[size_t(o)] = s;
  }
  return y;
}

RefModel::Vec RefModel::rmsnorm(const Vec& x, const Tensor* weight) const {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double scale = 1.0 / std::sqrt(ss / double(x.size()) + double(hp_.rms_eps));
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * scale * (weight ? double(weight->v[i]) : 1.0);
  return y;
}

RefModel::Vec RefModel::ffn(const std::string& prefix, const char* suffix, const Vec& x) const {
  Vec g = matvec(w(prefix + "ffn_gate" + suffix), x);
  Vec u = matvec(w(prefix + "ffn_up" + suffix), x);
  for (size_t i = 0; i < g.size(); ++i) g[i] = silu(g[i]) * u[i];
  return matvec(w(prefix + "ffn_down" + suffix), g);
}

// RoPE on one head. Pair i of the n_rot rotated dims turns by
// theta_i = pos * base^(-2i/n_rot); llama and deepseek2 pair adjacent dims,
// the qwen family pairs dim i with dim i + n_rot/2. Linear scaling divides
// the angle by the factor; YaRN blends the divided and undivided angle over
// the correction range and scales the magnitude by 1 + 0.1 ln(factor)
// (deepseek2 cancels that magnitude and moves it into the softmax scale).
void RefModel::rope(double* x, int pos) const {
  const int n = int(hp_.n_rot), half = n / 2;
  const bool neox = hp_.arch != Arch::kLlama && hp_.arch != Arch::kDeepseek2;
  const double base = hp_.rope_freq_base;
  const double factor = hp_.rope_scaling_factor > 0 ? hp_.rope_scaling_factor : 1.0;
  const bool linear = hp_.rope_scaling_type == "linear", yarn = hp_.rope_scaling_type == "yarn";
  const Tensor* ff = find("rope_freqs.weight");
  double low = 0, high = 0, mag = 1.0;
  if (yarn) {
    const double n_orig = hp_.rope_scaling_orig_ctx ? hp_.rope_scaling_orig_ctx : hp_.n_ctx_train;
    auto corr = [&](double rot) { return n * std::log(n_orig / (rot * 2 * M_PI)) / (2 * std::log(base)); };
    low = std::max(0.0, std::floor(corr(32.0)));
    high = std::min(double(n - 1), std::ceil(corr(1.0)));
    mag = hp_.arch == Arch::kDeepseek2 ? 1.0 : 1.0 + 0.1 * std::log(factor);
  }
  for (int i = 0; i < half; ++i) {
    double theta = pos * std::pow(base, -2.0 * i / n);
    if (ff) theta /= ff->v[size_t(i)];
    if (linear) theta /= factor;
    if (yarn) {
      const double ramp = 1.0 - std::clamp((i - low) / std::max(0.001, high - low), 0.0, 1.0);
      theta = (theta / factor) * (1 - ramp) + theta * ramp;
    }
    const int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
    const double c = std::cos(theta) * mag, s = std::sin(theta) * mag;
    const double x0 = x[a], x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
  }
}

std::vector<RefModel::Vec> RefModel::attention_gqa(int il, const std::vector<Vec>& x) const {
  const int T = int(x.size()), H = int(hp_.n_head), Hkv = int(hp_.n_head_kv);
  const int dk = int(hp_.n_embd_head_k), dv = int(hp_.n_embd_head_v);
  const bool qk_norm = hp_.arch == Arch::kQwen3 || hp_.arch == Arch::kQwen3Moe;
  std::vector<Vec> q(T), k(T), v(T);
  for (int t = 0; t < T; ++t) {
    q[t] = matvec(w(blk(il, "attn_q.weight")), x[t]);
    k[t] = matvec(w(blk(il, "attn_k.weight")), x[t]);
    v[t] = matvec(w(blk(il, "attn_v.weight")), x[t]);
    for (auto [vec, name] : {std::pair{&q[t], "attn_q.bias"}, {&k[t], "attn_k.bias"}, {&v[t], "attn_v.bias"}}) {
      if (const Tensor* b = find(blk(il, name))) {
        for (size_t i = 0; i < vec->size(); ++i) (*vec)[i] += b->v[i];
      }
    }
    for (int h = 0; h < H; ++h) {
      double* qh = q[t].data() + h * dk;
      if (qk_norm) {
        Vec n = rmsnorm(Vec(qh, qh + dk), &w(blk(il, "attn_q_norm.weight")));
        std::copy(n.begin(), n.end(), qh);
      }
      rope(qh, t);
    }
    for (int h = 0; h < Hkv; ++h) {
      double* kh = k[t].data() + h * dk;
      if (qk_norm) {
        Vec n = rmsnorm(Vec(kh, kh + dk), &w(blk(il, "attn_k_norm.weight")));
        std::copy(n.begin(), n.end(), kh);
      }
      rope(kh, t);
    }
  }
  const double scale = 1.0 / std::sqrt(double(dk));
  std::vector<Vec> out(T);
  for (int t = 0; t < T; ++t) {
    Vec o(size_t(H * dv), 0.0);
    for (int h = 0; h < H; ++h) {
      const int g = h / (H / Hkv);
      Vec s(size_t(t + 1));
      for (int j = 0; j <= t; ++j) {
        double d = 0;
        for (int i = 0; i < dk; ++i) d += q[t][h * dk + i] * k[j][g * dk + i];
        s[j] = d * scale;
      }
      softmax(s);
      for (int j = 0; j <= t; ++j) {
        for (int i = 0; i < dv; ++i) o[h * dv + i] += s[j] * v[j][g * dv + i];
      }
    }
    out[t] = matvec(w(blk(il, "attn_output.weight")), o);
  }
  return out;
}

// MLA as the paper writes it: per head, k = [W_kb latent ; k_pe] and
// v = W_vb latent, then ordinary multi-head attention.
std::vector<RefModel::Vec> RefModel::attention_mla(int il, const std::vector<Vec>& x) const {
  const int T = int(x.size()), H = int(hp_.n_head), L = int(hp_.kv_lora_rank), R = int(hp_.n_rot);
  const int N = int(hp_.n_embd_head_k_mla) - R, V = int(hp_.n_embd_head_v_mla), QK = N + R;
  const Tensor& kb = w(blk(il, "attn_k_b.weight"));  // [N, L, H]: element (n, c, h) at (h*L + c)*N + n
  const Tensor& vb = w(blk(il, "attn_v_b.weight"));  // [L, V, H]: element (c, j, h) at (h*V + j)*L + c
  std::vector<Vec> q(T), kn(T), kpe(T), vv(T);
  for (int t = 0; t < T; ++t) {
    if (hp_.q_lora_rank) {
      Vec qa = rmsnorm(matvec(w(blk(il, "attn_q_a.weight")), x[t]), &w(blk(il, "attn_q_a_norm.weight")));
      q[t] = matvec(w(blk(il, "attn_q_b.weight")), qa);
    } else {
      q[t] = matvec(w(blk(il, "attn_q.weight")), x[t]);
    }
    for (int h = 0; h < H; ++h) rope(q[t].data() + h * QK + N, t);
    Vec kv = matvec(w(blk(il, "attn_kv_a_mqa.weight")), x[t]);
    Vec latent = rmsnorm(Vec(kv.begin(), kv.begin() + L), &w(blk(il, "attn_kv_a_norm.weight")));
    kpe[t] = Vec(kv.begin() + L, kv.end());
    rope(kpe[t].data(), t);
    kn[t].assign(size_t(H * N), 0.0);
    vv[t].assign(size_t(H * V), 0.0);
    for (int h = 0; h < H; ++h) {
      for (int c = 0; c < L; ++c) {
        for (int n = 0; n < N; ++n) kn[t][h * N + n] += double(kb.v[size_t((h * L + c) * N + n)]) * latent[c];
        for (int j = 0; j < V; ++j) vv[t][h * V + j] += double(vb.v[size_t((h * V + j) * L + c)]) * latent[c];
      }
    }
  }
  double mscale = 1.0;
  if (hp_.rope_scaling_type == "yarn" && hp_.rope_scaling_factor > 0) {
    mscale = 1.0 + double(hp_.rope_yarn_log_mul) * std::log(double(hp_.rope_scaling_factor));
  }
  const double scale = mscale * mscale / std::sqrt(double(QK));
  std::vector<Vec> out(T);
  for (int t = 0; t < T; ++t) {
    Vec o(size_t(H * V), 0.0);
    for (int h = 0; h < H; ++h) {
      Vec s(size_t(t + 1));
      for (int j = 0; j <= t; ++j) {
        double d = 0;
        for (int n = 0; n < N; ++n) d += q[t][h * QK + n] * kn[j][h * N + n];
        for (int r = 0; r < R; ++r) d += q[t][h * QK + N + r] * kpe[j][r];
        s[j] = d * scale;
      }
      softmax(s);
      for (int j = 0; j <= t; ++j) {
        for (int i = 0; i < V; ++i) o[h * V + i] += s[j] * vv[j][h * V + i];
      }
    }
    out[t] = matvec(w(blk(il, "attn_output.weight")), o);
  }
  return out;
}

// Routed experts: scores (softmax, or sigmoid for DeepSeek-V3-style files),
// a selection-only bias, group-limited choice (V3 scores a group by its two
// best experts, V2 by its best), top-k, then the weights: renormalized for
// Mixtral, qwen3moe and deepseek2 files that say so, scaled for deepseek2.
RefModel::Vec RefModel::moe(int il, const Vec& x) const {
  const int n = int(hp_.n_expert), k = int(hp_.n_expert_used);
  const bool ds = hp_.arch == Arch::kDeepseek2;
  const bool sig = ds && hp_.expert_gating == ExpertGating::kSigmoid;
  Vec p = matvec(w(blk(il, "ffn_gate_inp.weight")), x);
  if (sig) {
    for (double& v : p) v = sigmoid(v);
  } else {
    softmax(p);
  }
  Vec sel = p;
  if (const Tensor* b = find(blk(il, "exp_probs_b.bias"))) {
    for (int e = 0; e < n; ++e) sel[e] += b->v[e];
  }
  const int G = int(hp_.n_expert_groups);
  if (ds && G > 1 && int(hp_.n_group_used) < G) {
    const int per = n / G;
    std::vector<std::pair<double, int>> gs;
    for (int g = 0; g < G; ++g) {
      Vec s(sel.begin() + g * per, sel.begin() + (g + 1) * per);
      std::sort(s.rbegin(), s.rend());
      gs.push_back({sig ? s[0] + s[1] : s[0], g});
    }
    std::stable_sort(gs.begin(), gs.end(), [](auto a, auto b) { return a.first > b.first; });
    for (size_t i = hp_.n_group_used; i < gs.size(); ++i) {
      for (int e = 0; e < per; ++e) sel[gs[i].second * per + e] = -INFINITY;
    }
  }
  std::vector<int> order(n);
  for (int e = 0; e < n; ++e) order[e] = e;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return sel[a] > sel[b]; });
  const bool norm = hp_.arch == Arch::kLlama || hp_.arch == Arch::kQwen3Moe || (ds && hp_.expert_weights_norm);
  double sum = 0;
  for (int i = 0; i < k; ++i) sum += p[order[i]];
  Vec out(x.size(), 0.0);
  for (int i = 0; i < k; ++i) {
    const int e = order[i];
    double wgt = p[e];
    if (norm) wgt /= sum;
    if (ds) wgt *= hp_.expert_weights_scale;
    Vec g = matvec(w(blk(il, "ffn_gate_exps.weight")), x, e);
    Vec u = matvec(w(blk(il, "ffn_up_exps.weight")), x, e);
    for (size_t j = 0; j < g.size(); ++j) g[j] = silu(g[j]) * u[j];
    Vec d = matvec(w(blk(il, "ffn_down_exps.weight")), g, e);
    for (size_t j = 0; j < out.size(); ++j) out[j] += wgt * d[j];
  }
  if (find(blk(il, "ffn_gate_shexp.weight"))) {
    Vec s = ffn("blk." + std::to_string(il) + ".", "_shexp.weight", x);
    double gate = 1.0;
    if (const Tensor* gi = find(blk(il, "ffn_gate_inp_shexp.weight"))) {
      double d = 0;
      for (size_t j = 0; j < x.size(); ++j) d += double(gi->v[j]) * x[j];
      gate = sigmoid(d);
    }
    for (size_t j = 0; j < out.size(); ++j) out[j] += gate * s[j];
  }
  return out;
}

std::vector<float> RefModel::forward(const std::vector<int32_t>& tokens) const {
  const int T = int(tokens.size()), E = int(hp_.n_embd);
  const Tensor& embd = w("token_embd.weight");
  std::vector<Vec> x(T);
  for (int t = 0; t < T; ++t) x[t] = Vec(embd.v.begin() + int64_t(tokens[t]) * E, embd.v.begin() + int64_t(tokens[t] + 1) * E);
  for (int il = 0; il < int(hp_.n_layer); ++il) {
    std::vector<Vec> h(T);
    for (int t = 0; t < T; ++t) h[t] = rmsnorm(x[t], &w(blk(il, "attn_norm.weight")));
    std::vector<Vec> a = hp_.arch == Arch::kDeepseek2 ? attention_mla(il, h) : attention_gqa(il, h);
    for (int t = 0; t < T; ++t) {
      for (int i = 0; i < E; ++i) x[t][i] += a[t][i];
      Vec hn = rmsnorm(x[t], &w(blk(il, "ffn_norm.weight")));
      Vec f = hp_.layer_is_moe(uint32_t(il)) ? moe(il, hn) : ffn("blk." + std::to_string(il) + ".", ".weight", hn);
      for (int i = 0; i < E; ++i) x[t][i] += f[i];
    }
  }
  const Tensor& out_w = find("output.weight") ? w("output.weight") : embd;
  std::vector<float> logits(size_t(T) * hp_.n_vocab);
  for (int t = 0; t < T; ++t) {
    Vec l = matvec(out_w, rmsnorm(x[t], &w("output_norm.weight")));
    for (uint32_t i = 0; i < hp_.n_vocab; ++i) logits[size_t(t) * hp_.n_vocab + i] = float(l[i]);
  }
  return logits;
}

}  // namespace strata::ref
