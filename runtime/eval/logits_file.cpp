// Encoding, writing and reading of the `_logits_` base file (layout in the header).
#include "runtime/eval/logits_file.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <sys/stat.h>

namespace strata {

static_assert(std::endian::native == std::endian::little, "the _logits_ file is little-endian; add byte swapping");

namespace {

constexpr int64_t kHeaderBytes = 8 + 3 * 4;

std::string errno_text() { return std::strerror(errno); }

}  // namespace

void encode_log_probs(const float* logits, int32_t n_vocab, uint16_t* row) {
  float max_logit = logits[0], min_logit = logits[0];
  for (int32_t i = 1; i < n_vocab; ++i) {
    max_logit = std::max(max_logit, logits[i]);
    min_logit = std::min(min_logit, logits[i]);
  }
  // Only the top kLogProbRange nats get the 65536 levels; below that every
  // token reads as the floor, whose probability is negligible (< e^-16).
  min_logit = std::max(min_logit, max_logit - kLogProbRange);
  double sum = 0;
  for (int32_t i = 0; i < n_vocab; ++i) sum += std::exp(logits[i] - max_logit);
  const float log_sum = float(std::log(sum));
  const float scale = (max_logit - min_logit) / 65535.0f;
  const float min_log_prob = min_logit - max_logit - log_sum;
  std::memcpy(row, &scale, sizeof scale);
  std::memcpy(row + 2, &min_log_prob, sizeof min_log_prob);
  uint16_t* q = row + 4;
  const int64_t n_q = logits_row_u16(n_vocab) - 4;
  std::fill(q, q + n_q, uint16_t(0));
  if (scale > 0) {
    const float inv = 1.0f / scale;
    // nearbyint rounds half to even in the default rounding mode.
    for (int32_t i = 0; i < n_vocab; ++i) {
      if (logits[i] > min_logit) q[i] = uint16_t(std::min(65535.0f, std::nearbyint(inv * (logits[i] - min_logit))));
    }
  }
}

LogProbRow decode_log_probs(const uint16_t* row) {
  LogProbRow r;
  std::memcpy(&r.scale, row, sizeof r.scale);
  std::memcpy(&r.min_log_prob, row + 2, sizeof r.min_log_prob);
  r.q = row + 4;
  return r;
}

Result<LogitsFileWriter> LogitsFileWriter::create(const std::string& path, int32_t n_ctx, int32_t n_vocab,
                                                  int32_t n_chunk, std::span<const int32_t> tokens) {
  if (n_ctx < 4 || n_vocab < 1 || n_chunk < 1) {
    return invalid_argument("logits file: expected n_ctx >= 4, n_vocab >= 1, n_chunk >= 1, got " +
                            std::to_string(n_ctx) + ", " + std::to_string(n_vocab) + ", " + std::to_string(n_chunk));
  }
  if (int64_t(tokens.size()) != int64_t(n_ctx) * n_chunk) {
    return invalid_argument("logits file: expected n_chunk * n_ctx = " + std::to_string(int64_t(n_ctx) * n_chunk) +
                            " tokens, got " + std::to_string(tokens.size()));
  }
  LogitsFileWriter w;
  w.path_ = path;
  w.f_.reset(std::fopen(path.c_str(), "wb"));
  if (!w.f_) return io_error(path + ": cannot create: " + errno_text());
  const int32_t header[3] = {n_ctx, n_vocab, n_chunk};
  if (std::fwrite(kLogitsMagic, 1, 8, w.f_.get()) != 8 || std::fwrite(header, 4, 3, w.f_.get()) != 3 ||
      std::fwrite(tokens.data(), 4, tokens.size(), w.f_.get()) != tokens.size()) {
    return io_error(path + ": write failed: " + errno_text());
  }
  w.n_vocab_ = n_vocab;
  w.rows_left_ = int64_t(n_chunk) * scored_per_window(n_ctx);
  w.row_.resize(size_t(logits_row_u16(n_vocab)));
  return w;
}

Status LogitsFileWriter::add_row(const float* logits) {
  if (!f_) return internal_error(path_ + ": add_row after finish");
  if (rows_left_ <= 0) return internal_error(path_ + ": more rows than the header announced");
  encode_log_probs(logits, n_vocab_, row_.data());
  if (std::fwrite(row_.data(), 2, row_.size(), f_.get()) != row_.size()) {
    return io_error(path_ + ": write failed: " + errno_text());
  }
  --rows_left_;
  return Status::ok();
}

Status LogitsFileWriter::finish() {
  if (!f_) return Status::ok();
  if (rows_left_ != 0) return internal_error(path_ + ": " + std::to_string(rows_left_) + " rows missing at finish");
  std::FILE* f = f_.release();
  if (std::fflush(f) != 0 || std::fclose(f) != 0) return io_error(path_ + ": write failed: " + errno_text());
  return Status::ok();
}

Result<LogitsFileReader> LogitsFileReader::open(const std::string& path) {
  LogitsFileReader r;
  r.path_ = path;
  r.f_.reset(std::fopen(path.c_str(), "rb"));
  if (!r.f_) return not_found(path + ": cannot open: " + errno_text());
  struct stat st {};
  if (fstat(fileno(r.f_.get()), &st) != 0 || !S_ISREG(st.st_mode)) {
    return invalid_argument(path + ": expected a regular file");
  }
  const int64_t file_bytes = st.st_size;
  char magic[8] = {};
  int32_t header[3] = {};
  if (std::fread(magic, 1, 8, r.f_.get()) != 8 || std::memcmp(magic, kLogitsMagic, 8) != 0) {
    return invalid_format(path + ": expected a log-probability file starting with \"_logits_\", got another file");
  }
  if (std::fread(header, 4, 3, r.f_.get()) != 3) {
    return invalid_format(path + ": expected a " + std::to_string(kHeaderBytes) + "-byte header, got " +
                          std::to_string(file_bytes) + " bytes in all");
  }
  r.n_ctx_ = header[0], r.n_vocab_ = header[1], r.n_chunk_ = header[2];
  if (r.n_ctx_ < 4 || r.n_vocab_ < 1 || r.n_chunk_ < 1) {
    return invalid_format(path + ": expected n_ctx >= 4, n_vocab >= 1, n_chunk >= 1 in the header, got " +
                          std::to_string(r.n_ctx_) + ", " + std::to_string(r.n_vocab_) + ", " +
                          std::to_string(r.n_chunk_));
  }
  // int32 fields, so these products fit in int64 with room to spare.
  const int64_t n_tokens = int64_t(r.n_ctx_) * r.n_chunk_;
  const int64_t n_rows = int64_t(scored_per_window(r.n_ctx_)) * r.n_chunk_;
  const int64_t row_bytes = 2 * logits_row_u16(r.n_vocab_);
  const int64_t want = kHeaderBytes + 4 * n_tokens;
  if (file_bytes < want || (file_bytes - want) / row_bytes != n_rows || (file_bytes - want) % row_bytes != 0) {
    const double max_rows = double(INT64_MAX - want) / double(row_bytes);
    const std::string expect =
        double(n_rows) < max_rows ? std::to_string(want + n_rows * row_bytes) + " bytes" : std::string("more bytes");
    return invalid_format(path + ": expected " + expect + " for n_ctx " + std::to_string(r.n_ctx_) + ", n_vocab " +
                          std::to_string(r.n_vocab_) + ", n_chunk " + std::to_string(r.n_chunk_) + ", got " +
                          std::to_string(file_bytes));
  }
  r.tokens_.resize(size_t(n_tokens));
  if (std::fread(r.tokens_.data(), 4, r.tokens_.size(), r.f_.get()) != r.tokens_.size()) {
    return io_error(path + ": read failed in the token list");
  }
  for (size_t i = 0; i < r.tokens_.size(); ++i) {
    if (r.tokens_[i] < 0 || r.tokens_[i] >= r.n_vocab_) {
      return invalid_format(path + ": expected token ids 0.." + std::to_string(r.n_vocab_ - 1) + ", got " +
                            std::to_string(r.tokens_[i]) + " at token " + std::to_string(i));
    }
  }
  r.row_.resize(size_t(logits_row_u16(r.n_vocab_)));
  r.rows_left_ = n_rows;
  return r;
}

Result<LogProbRow> LogitsFileReader::next_row() {
  if (rows_left_ <= 0) return invalid_argument(path_ + ": no rows left");
  if (std::fread(row_.data(), 2, row_.size(), f_.get()) != row_.size()) {
    return io_error(path_ + ": read failed with " + std::to_string(rows_left_) + " rows left");
  }
  --rows_left_;
  const LogProbRow r = decode_log_probs(row_.data());
  if (!std::isfinite(r.scale) || !std::isfinite(r.min_log_prob) || r.scale < 0) {
    return invalid_format(path_ + ": expected a finite scale >= 0 and minimum, got " + std::to_string(r.scale) +
                          " and " + std::to_string(r.min_log_prob) + " in a row");
  }
  return r;
}

}  // namespace strata
