// Reference forward pass for tests: plain loops in double-accumulated f32,
// every weight dequantized up front, each call recomputes the whole sequence
// from scratch (no cache), MLA in its plain non-absorbed form (per-head keys
// and values expanded from the latent). Written from the architectures'
// definitions, independently of runtime/layers, so the runtime can be
// checked against it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "runtime/base/status.h"
#include "runtime/gguf/gguf_reader.h"
#include "runtime/model/arch.h"

namespace strata::ref {

class RefModel {
 public:
  static Result<RefModel> load(const gguf::GgufModel& file);

  // Logits for every position of `tokens`: T rows of n_vocab.
  std::vector<float> forward(const std::vector<int32_t>& tokens) const;

  const HParams& hparams() const { return hp_; }

 private:
  struct Tensor {
    std::vector<float> v;
    int64_t ne[4] = {1, 1, 1, 1};
  };
  const Tensor& w(const std::string& name) const;
  const Tensor* find(const std::string& name) const;

  using Vec = std::vector<double>;
  Vec matvec(const Tensor& m, const Vec& x, int64_t mat = 0) const;
  Vec rmsnorm(const Vec& x, const Tensor* weight) const;
  Vec ffn(const std::string& prefix, const char* suffix, const Vec& x) const;
  void rope(double* x, int pos) const;  // one head's first n_rot dims
  std::vector<Vec> attention_gqa(int il, const std::vector<Vec>& x) const;
  std::vector<Vec> attention_mla(int il, const std::vector<Vec>& x) const;
  Vec moe(int il, const Vec& x) const;

  HParams hp_;
  std::map<std::string, Tensor> t_;
};

}  // namespace strata::ref
