// The base-model log-probability file of `strata perplexity
// --kl-divergence-base`, in the layout llama.cpp's perplexity tool reads and
// writes, so files made by either tool can be compared by the other.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/base/status.h"

namespace strata {

// Layout, little-endian, no padding between fields:
//   char[8]  "_logits_"
//   int32    n_ctx             tokens per window
//   int32    n_vocab
//   int32    n_chunk           windows
//   int32    tokens[n_chunk * n_ctx]   the text as evaluated, window after
//                                      window (without the BOS substitution)
//   then, window by window, one row for each scored position j in
//   [n_ctx/2, n_ctx - 1) (the log-probabilities of the token after j):
//     float32  scale
//     float32  min_log_prob
//     uint16   q[n_vocab], plus one zero when n_vocab is odd
//   so a row is logits_row_u16(n_vocab) uint16 long, and
//   log p[i] = min_log_prob + scale * q[i].
// A row spans the best 16 nats of its distribution in 65535 steps; tokens more
// than 16 nats below the best are stored as q = 0.
inline constexpr char kLogitsMagic[8] = {'_', 'l', 'o', 'g', 'i', 't', 's', '_'};
inline constexpr float kLogProbRange = 16.0f;

// uint16 per row: two floats, then n_vocab values rounded up to an even count.
inline int64_t logits_row_u16(int32_t n_vocab) { return 2 * ((int64_t(n_vocab) + 1) / 2) + 4; }
// Positions scored per window: the second half, less the last token (it has
// nothing after it to predict).
inline int32_t scored_per_window(int32_t n_ctx) { return n_ctx - 1 - n_ctx / 2; }

// Encodes the log-softmax of logits[0..n_vocab) into row[0..logits_row_u16).
void encode_log_probs(const float* logits, int32_t n_vocab, uint16_t* row);

// A decoded view of one stored row.
struct LogProbRow {
  float scale = 0;
  float min_log_prob = 0;
  const uint16_t* q = nullptr;
  float log_prob(int32_t i) const { return scale * float(q[i]) + min_log_prob; }
};
LogProbRow decode_log_probs(const uint16_t* row);

struct FileCloser {
  void operator()(std::FILE* f) const {
    if (f) std::fclose(f);
  }
};

// Streams a file out: the header with create(), then exactly
// n_chunk * scored_per_window(n_ctx) rows, then finish().
class LogitsFileWriter {
 public:
  // tokens: the n_chunk * n_ctx evaluated tokens.
  static Result<LogitsFileWriter> create(const std::string& path, int32_t n_ctx, int32_t n_vocab, int32_t n_chunk,
                                         std::span<const int32_t> tokens);
  Status add_row(const float* logits);
  // Errors unless every row was written; flushes and closes the file.
  Status finish();

 private:
  LogitsFileWriter() = default;
  std::string path_;
  std::unique_ptr<std::FILE, FileCloser> f_;
  int32_t n_vocab_ = 0;
  int64_t rows_left_ = 0;
  std::vector<uint16_t> row_;
};

// Reads a file back. open() checks the header against the file size, so a
// truncated or padded file is an error before any row is read.
class LogitsFileReader {
 public:
  static Result<LogitsFileReader> open(const std::string& path);

  int32_t n_ctx() const { return n_ctx_; }
  int32_t n_vocab() const { return n_vocab_; }
  int32_t n_chunk() const { return n_chunk_; }
  const std::vector<int32_t>& tokens() const { return tokens_; }

  // The next row, valid until the next call.
  Result<LogProbRow> next_row();

 private:
  LogitsFileReader() = default;
  std::string path_;
  std::unique_ptr<std::FILE, FileCloser> f_;
  int32_t n_ctx_ = 0, n_vocab_ = 0, n_chunk_ = 0;
  std::vector<int32_t> tokens_;
  std::vector<uint16_t> row_;
  int64_t rows_left_ = 0;
};

}  // namespace strata
