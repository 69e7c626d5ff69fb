// GGUF reading and writing: writer -> reader round trips of every value type,
// tensor tables, alignment and data; split models joined from their parts;
// and every malformed fixture in tests/fixtures/malformed rejected with the
// status and message its manifest.tsv names (fixtures come from
// tests/python/make_gguf_fixtures.py, which packs bytes without strata).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>

#include "runtime/gguf/gguf_reader.h"
#include "runtime/gguf/gguf_writer.h"

namespace strata::gguf {
namespace {

namespace fs = std::filesystem;

const fs::path kFixtures = STRATA_TEST_FIXTURES;

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            ("strata_test_gguf_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& p, const std::vector<uint8_t>& b) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// Deterministic bytes, different for every tensor, so a reader that hands out
// the wrong tensor's data (or a shifted window) is caught.
std::vector<uint8_t> pattern(uint64_t n, uint32_t seed) {
  std::vector<uint8_t> b(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& v : b) {
    x = x * 1664525u + 1013904223u;
    v = static_cast<uint8_t>(x >> 24);
  }
  return b;
}

struct TensorSpec {
  std::string name;
  DType type;
  std::vector<uint64_t> ne;
};

uint64_t spec_bytes(const TensorSpec& t) {
  uint64_t rows = 1;
  for (size_t d = 1; d < t.ne.size(); ++d) rows *= t.ne[d];
  return *dtype_row_bytes(t.type, t.ne[0]) * rows;
}

// Writes `tensors` (with pattern data seeded by `seed0 + index`) and `kv` to `path`.
Status write_model(const std::string& path, const std::vector<std::pair<std::string, Value>>& kv,
                   const std::vector<TensorSpec>& tensors, uint32_t alignment = kDefaultAlignment,
                   uint32_t seed0 = 0) {
  GgufWriter w(alignment);
  for (const auto& [k, v] : kv) w.set(k, v);
  for (const auto& t : tensors) STRATA_RETURN_IF_ERROR(w.add_tensor(t.name, t.type, t.ne));
  STRATA_RETURN_IF_ERROR(w.begin(path));
  for (size_t i = 0; i < tensors.size(); ++i) {
    auto data = pattern(spec_bytes(tensors[i]), seed0 + static_cast<uint32_t>(i));
    STRATA_RETURN_IF_ERROR(w.write_data(data.data(), data.size()));
  }
  return w.finish();
}

Result<GgufFile> parse_file(const fs::path& p, std::vector<uint8_t>& storage) {
  storage = read_bytes(p);
  return parse_gguf(storage, p.filename().string());
}

// --- metadata round trips -------------------------------------------------

TEST(GgufRoundTrip, EveryScalarType) {
  TempDir dir;
  std::string path = dir.file("scalars.gguf");
  const std::string with_nul("a\0b", 3);
  std::vector<std::pair<std::string, Value>> kv = {
      {"u8", Value::u8(255)},
      {"i8", Value::i8(-128)},
      {"u16", Value::u16(65535)},
      {"i16", Value::i16(-32768)},
      {"u32", Value::u32(4294967295u)},
      {"i32", Value::i32(std::numeric_limits<int32_t>::min())},
      {"u64", Value::u64(std::numeric_limits<uint64_t>::max())},
      {"i64", Value::i64(std::numeric_limits<int64_t>::min())},
      {"f32", Value::f32(-3.25f)},
      {"f32.nan", Value::f32(std::numeric_limits<float>::quiet_NaN())},
      {"f64", Value::f64(1e300)},
      {"bool.true", Value::boolean(true)},
      {"bool.false", Value::boolean(false)},
      {"string", Value::string("h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c\n")},
      {"string.empty", Value::string("")},
      {"string.nul", Value::string(with_nul)},
  };
  ASSERT_TRUE(write_model(path, kv, {}).is_ok());
  auto m = GgufModel::open(path);
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  const GgufFile& f = m->first();
  EXPECT_EQ(f.version, 3u);
  EXPECT_EQ(f.alignment, kDefaultAlignment);
  EXPECT_TRUE(f.tensors.empty());
  ASSERT_EQ(f.kv.size(), kv.size());
  for (size_t i = 0; i < kv.size(); ++i) {
    EXPECT_EQ(f.kv[i].first, kv[i].first) << "keys keep file order";
    EXPECT_EQ(f.kv[i].second.type(), kv[i].second.type()) << kv[i].first;
  }
  EXPECT_EQ(m->get_u64("u8"), 255u);
  EXPECT_EQ(m->find("i8")->as_i64(), -128);
  EXPECT_EQ(m->get_u64("u16"), 65535u);
  EXPECT_EQ(m->find("i16")->as_i64(), -32768);
  EXPECT_EQ(m->get_u64("u32"), 4294967295u);
  EXPECT_EQ(m->find("i32")->as_i64(), std::numeric_limits<int32_t>::min());
  EXPECT_EQ(m->get_u64("u64"), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(m->find("u64")->as_i64(), std::nullopt) << "u64 above INT64_MAX has no i64 form";
  EXPECT_EQ(m->find("i64")->as_i64(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(m->find("i64")->as_u64(), std::nullopt) << "negative values have no u64 form";
  EXPECT_EQ(m->get_f64("f32"), -3.25);
  EXPECT_TRUE(std::isnan(*m->get_f64("f32.nan")));
  EXPECT_EQ(m->get_f64("f64"), 1e300);
  EXPECT_EQ(m->get_bool("bool.true"), true);
  EXPECT_EQ(m->get_bool("bool.false"), false);
  EXPECT_EQ(m->get_bool("u8"), std::nullopt);
  EXPECT_EQ(m->get_string("string"), "h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c\n");
  EXPECT_EQ(m->get_string("string.empty"), "");
  EXPECT_EQ(m->get_string("string.nul"), with_nul);
  EXPECT_EQ(m->get_string("u8"), std::nullopt);
  EXPECT_EQ(m->find("missing"), nullptr);
}

TEST(GgufRoundTrip, Arrays) {
  TempDir dir;
  std::string path = dir.file("arrays.gguf");
  auto packed = [](const auto& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(v[0]));
  };
  std::vector<uint8_t> au8 = {0, 1, 255};
  std::vector<int8_t> ai8 = {-128, 0, 127};
  std::vector<uint16_t> au16 = {0, 65535};
  std::vector<int16_t> ai16 = {-32768, 32767};
  std::vector<uint64_t> au64 = {std::numeric_limits<uint64_t>::max(), 7};
  std::vector<int64_t> ai64 = {std::numeric_limits<int64_t>::min(), -1};
  std::vector<double> af64 = {0.5, -1e-300};
  std::vector<std::string> tokens = {"<s>", "", "\xc4\xa0the", std::string(300, 'x')};
  // [[1, 2], [], [3]] and [[["a"]], [["b", "c"], []]]
  Value nested_i32 = Value::nested_array(
      ValueType::kArray, {Value::i32_array({1, 2}), Value::i32_array({}), Value::i32_array({3})});
  Value nested3 = Value::nested_array(
      ValueType::kArray,
      {Value::nested_array(ValueType::kArray, {Value::string_array({"a"})}),
       Value::nested_array(ValueType::kArray, {Value::string_array({"b", "c"}), Value::string_array({})})});
  std::vector<std::pair<std::string, Value>> kv = {
      {"a.u8", Value::numeric_array_raw(ValueType::kU8, packed(au8), au8.size())},
      {"a.i8", Value::numeric_array_raw(ValueType::kI8, packed(ai8), ai8.size())},
      {"a.u16", Value::numeric_array_raw(ValueType::kU16, packed(au16), au16.size())},
      {"a.i16", Value::numeric_array_raw(ValueType::kI16, packed(ai16), ai16.size())},
      {"a.u32", Value::u32_array({0, 4294967295u})},
      {"a.i32", Value::i32_array({-5, 6, -7})},
      {"a.u64", Value::numeric_array_raw(ValueType::kU64, packed(au64), au64.size())},
      {"a.i64", Value::numeric_array_raw(ValueType::kI64, packed(ai64), ai64.size())},
      {"a.f32", Value::f32_array({1.5f, -0.0f, 3e38f})},
      {"a.f64", Value::numeric_array_raw(ValueType::kF64, packed(af64), af64.size())},
      {"a.bool", Value::bool_array({true, false, true, true})},
      {"a.string", Value::string_array(tokens)},
      {"a.empty", Value::f32_array({})},
      {"a.empty_strings", Value::string_array({})},
      {"a.nested", nested_i32},
      {"a.nested3", nested3},
  };
  ASSERT_TRUE(write_model(path, kv, {}).is_ok());
  std::vector<uint8_t> storage;
  auto f = parse_file(path, storage);
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  for (const auto& [key, want] : kv) {
    const Value* got = f->find(key);
    ASSERT_NE(got, nullptr) << key;
    EXPECT_TRUE(got->is_array()) << key;
    EXPECT_EQ(got->array_type(), want.array_type()) << key;
    EXPECT_EQ(got->array_size(), want.array_size()) << key;
    EXPECT_EQ(got->packed(), want.packed()) << key << ": numeric elements are stored bit-exactly";
  }
  const Value& u8 = *f->find("a.u8");
  EXPECT_EQ(u8.int_at(2), 255);
  EXPECT_EQ(f->find("a.i8")->int_at(0), -128);
  EXPECT_EQ(f->find("a.u16")->int_at(1), 65535);
  EXPECT_EQ(f->find("a.i16")->int_at(0), -32768);
  EXPECT_EQ(f->find("a.u32")->int_at(1), 4294967295);
  EXPECT_EQ(f->find("a.i32")->int_at(2), -7);
  EXPECT_EQ(f->find("a.i64")->int_at(0), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f->find("a.f32")->number_at(0), 1.5);
  EXPECT_EQ(f->find("a.f32")->number_at(2), static_cast<double>(3e38f));
  EXPECT_EQ(f->find("a.f64")->number_at(1), -1e-300);
  EXPECT_EQ(f->find("a.bool")->int_at(1), 0);
  EXPECT_EQ(f->find("a.bool")->int_at(3), 1);
  EXPECT_EQ(f->find("a.f32")->number_at(99), 0.0) << "out-of-range index reads nothing";
  EXPECT_EQ(f->find("a.string")->strings(), tokens);
  EXPECT_TRUE(f->find("a.empty_strings")->strings().empty());

  const Value& n = *f->find("a.nested");
  ASSERT_EQ(n.items().size(), 3u);
  EXPECT_EQ(n.items()[0].array_type(), ValueType::kI32);
  EXPECT_EQ(n.items()[0].array_size(), 2u);
  EXPECT_EQ(n.items()[0].int_at(1), 2);
  EXPECT_EQ(n.items()[1].array_size(), 0u);
  EXPECT_EQ(n.items()[2].int_at(0), 3);
  const Value& n3 = *f->find("a.nested3");
  ASSERT_EQ(n3.items().size(), 2u);
  ASSERT_EQ(n3.items()[1].items().size(), 2u);
  EXPECT_EQ(n3.items()[0].items()[0].strings(), std::vector<std::string>{"a"});
  EXPECT_EQ(n3.items()[1].items()[0].strings(), (std::vector<std::string>{"b", "c"}));
  EXPECT_TRUE(n3.items()[1].items()[1].strings().empty());
  EXPECT_EQ(n3.summary(), "[array x 2]");
}

TEST(GgufRoundTrip, SetReplacesAndKeepsOrder) {
  TempDir dir;
  std::string path = dir.file("kv.gguf");
  GgufWriter w;
  w.set("a", Value::u32(1));
  w.set("b", Value::string("x"));
  w.set("a", Value::string("replaced"));
  ASSERT_TRUE(w.begin(path).is_ok());
  ASSERT_TRUE(w.finish().is_ok());
  std::vector<uint8_t> storage;
  auto f = parse_file(path, storage);
  ASSERT_TRUE(f.is_ok());
  ASSERT_EQ(f->kv.size(), 2u);
  EXPECT_EQ(f->kv[0].first, "a");
  EXPECT_EQ(*f->kv[0].second.as_string(), "replaced");
  EXPECT_EQ(f->kv[1].first, "b");
}

// --- tensors, alignment and data ------------------------------------------

std::vector<TensorSpec> mixed_tensors() {
  return {
      {"token_embd.weight", DType::kF32, {5, 3}},  // 60 bytes: the next tensor needs padding
      {"norm.weight", DType::kF16, {7}},
      {"blk.0.attn_q.weight", DType::kQ8_0, {64, 3}},
      {"blk.0.ffn_gate_exps.weight", DType::kQ4_K, {256, 2, 3}},
      {"blk.0.ffn_down_exps.weight", DType::kQ6_K, {256, 1, 1, 2}},
      {"blk.0.attn_k.weight", DType::kBF16, {3, 1}},
      {"blk.0.ffn_up.weight", DType::kIQ4_NL, {32, 2}},
      {"blk.0.x.weight", DType::kI8, {1}},
  };
}

void expect_tensors(const GgufModel& m, const std::vector<TensorSpec>& specs, uint32_t alignment) {
  ASSERT_EQ(m.tensors().size(), specs.size());
  const GgufFile& f = m.first();
  EXPECT_EQ(f.alignment, alignment);
  EXPECT_EQ(f.data_offset % alignment, 0u);
  auto whole = read_bytes(f.path);
  ASSERT_EQ(whole.size(), f.file_bytes);
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorInfo& t = m.tensors()[i];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.name, specs[i].name);
    EXPECT_EQ(t.dtype, specs[i].type);
    ASSERT_EQ(t.n_dims, static_cast<int>(specs[i].ne.size()));
    uint64_t n = 1;
    for (int d = 0; d < t.n_dims; ++d) {
      EXPECT_EQ(t.ne[d], specs[i].ne[d]);
      n *= specs[i].ne[d];
    }
    for (int d = t.n_dims; d < kMaxDims; ++d) EXPECT_EQ(t.ne[d], 1u);
    EXPECT_EQ(t.n_elems, n);
    EXPECT_EQ(t.n_bytes, spec_bytes(specs[i]));
    EXPECT_EQ(t.n_rows(), n / specs[i].ne[0]);
    EXPECT_EQ(t.offset % alignment, 0u);
    EXPECT_EQ(t.part, 0u);
    EXPECT_EQ(m.find_tensor(t.name), &t);
    // The data pointer is into the mapping, at data_offset + offset, and holds what was written.
    ASSERT_NE(t.data, nullptr);
    auto want = pattern(t.n_bytes, static_cast<uint32_t>(i));
    EXPECT_EQ(std::memcmp(t.data, want.data(), want.size()), 0);
    EXPECT_EQ(std::memcmp(whole.data() + f.data_offset + t.offset, want.data(), want.size()), 0);
  }
  EXPECT_EQ(m.find_tensor("nope"), nullptr);
}

TEST(GgufRoundTrip, TensorsDefaultAlignment) {
  TempDir dir;
  std::string path = dir.file("tensors.gguf");
  auto specs = mixed_tensors();
  ASSERT_TRUE(write_model(path, {{"general.architecture", Value::string("test")}}, specs).is_ok());
  auto m = GgufModel::open(path);
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_EQ(m->find("general.alignment"), nullptr) << "the default alignment is implied, not written";
  expect_tensors(*m, specs, 32);
  EXPECT_EQ(m->tensors()[0].shape_string(), "[5, 3]");
  EXPECT_EQ(m->tensors()[4].shape_string(), "[256, 1, 1, 2]");
  EXPECT_EQ(m->tensors()[1].offset, 64u) << "60 bytes padded to 64";
  uint64_t total = 0;
  for (const auto& s : specs) total += spec_bytes(s);
  EXPECT_EQ(m->total_tensor_bytes(), total);
  EXPECT_EQ(m->total_file_bytes(), fs::file_size(path));
  EXPECT_EQ(m->parts().size(), 1u);
}

TEST(GgufRoundTrip, Alignment64) {
  TempDir dir;
  std::string path = dir.file("aligned.gguf");
  auto specs = mixed_tensors();
  ASSERT_TRUE(write_model(path, {}, specs, 64).is_ok());
  auto m = GgufModel::open(path);
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  ASSERT_NE(m->find("general.alignment"), nullptr);
  EXPECT_EQ(m->find("general.alignment")->type(), ValueType::kU32);
  EXPECT_EQ(m->get_u64("general.alignment"), 64u);
  expect_tensors(*m, specs, 64);
  EXPECT_EQ(m->tensors()[1].offset, 64u);
  EXPECT_EQ(m->tensors()[2].offset, 128u) << "14 bytes of f16 padded to the next 64";
}

TEST(GgufRoundTrip, AlignmentSetAsMetadataMovesTheLayout) {
  // A writer given general.alignment through set() (as a converter copying
  // metadata would) must lay the data out by it, or the file lies about itself.
  TempDir dir;
  std::string path = dir.file("set_alignment.gguf");
  auto specs = mixed_tensors();
  GgufWriter w;
  for (const auto& t : specs) ASSERT_TRUE(w.add_tensor(t.name, t.type, t.ne).is_ok());
  w.set("general.alignment", Value::u32(128));
  ASSERT_TRUE(w.begin(path).is_ok());
  for (size_t i = 0; i < specs.size(); ++i) {
    auto data = pattern(spec_bytes(specs[i]), static_cast<uint32_t>(i));
    ASSERT_TRUE(w.write_data(data.data(), data.size()).is_ok());
  }
  ASSERT_TRUE(w.finish().is_ok());
  auto m = GgufModel::open(path);
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  expect_tensors(*m, specs, 128);
}

TEST(GgufRoundTrip, WriteDataInOddChunks) {
  // Chunks that span tensor boundaries and padding land where they belong.
  TempDir dir;
  std::string path = dir.file("chunks.gguf");
  auto specs = mixed_tensors();
  GgufWriter w;
  for (const auto& t : specs) ASSERT_TRUE(w.add_tensor(t.name, t.type, t.ne).is_ok());
  ASSERT_TRUE(w.begin(path).is_ok());
  std::vector<uint8_t> all;
  for (size_t i = 0; i < specs.size(); ++i) {
    auto d = pattern(spec_bytes(specs[i]), static_cast<uint32_t>(i));
    all.insert(all.end(), d.begin(), d.end());
  }
  for (size_t pos = 0; pos < all.size();) {
    size_t n = std::min<size_t>(all.size() - pos, 37);
    ASSERT_TRUE(w.write_data(all.data() + pos, n).is_ok());
    pos += n;
  }
  uint8_t extra = 0;
  EXPECT_FALSE(w.write_data(&extra, 1).is_ok()) << "bytes beyond the declared tensors are refused";
  ASSERT_TRUE(w.finish().is_ok());
  auto m = GgufModel::open(path);
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  expect_tensors(*m, specs, 32);
}

TEST(GgufWriter, RefusesBadTensorsAndIncompleteData) {
  TempDir dir;
  GgufWriter w;
  EXPECT_FALSE(w.add_tensor("", DType::kF32, {4}).is_ok());
  EXPECT_FALSE(w.add_tensor(std::string(64, 'n'), DType::kF32, {4}).is_ok());
  EXPECT_FALSE(w.add_tensor("t", DType::kF32, {}).is_ok());
  EXPECT_FALSE(w.add_tensor("t", DType::kF32, {1, 1, 1, 1, 1}).is_ok());
  EXPECT_FALSE(w.add_tensor("t", DType::kQ4_K, {255}).is_ok());
  ASSERT_TRUE(w.add_tensor("t", DType::kF32, {4}).is_ok());
  EXPECT_FALSE(w.add_tensor("t", DType::kF32, {4}).is_ok());
  std::string path = dir.file("short.gguf");
  ASSERT_TRUE(w.begin(path).is_ok());
  float half[2] = {1, 2};
  ASSERT_TRUE(w.write_data(half, sizeof half).is_ok());
  Status s = w.finish();
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("'t' got 8 of 16 bytes"), std::string::npos) << s.message();
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(GgufReader, Version2IsAccepted) {
  TempDir dir;
  std::string path = dir.file("v3.gguf");
  auto specs = mixed_tensors();
  ASSERT_TRUE(write_model(path, {{"general.name", Value::string("v2")}}, specs).is_ok());
  auto bytes = read_bytes(path);
  ASSERT_EQ(bytes[4], 3);
  bytes[4] = 2;  // v2 and v3 share the little-endian layout (v3 only added big-endian files)
  std::string v2 = dir.file("v2.gguf");
  write_bytes(v2, bytes);
  auto m = GgufModel::open(v2);
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_EQ(m->first().version, 2u);
  expect_tensors(*m, specs, 32);
}

// --- split models ---------------------------------------------------------

// Writes a model of `n_parts` parts the way llama.cpp's gguf-split does: every
// part carries split.no (u16), split.count (u16) and split.tensors.count (i32);
// the first part also has the model's metadata. Tensor i goes to part i % n_parts.
struct SplitModel {
  std::vector<std::string> paths;
  std::vector<TensorSpec> specs;
  std::vector<uint32_t> part_of;  // per spec
};

SplitModel write_split(const TempDir& dir, const std::string& prefix, uint32_t n_parts,
                       std::function<void(uint32_t part, std::vector<std::pair<std::string, Value>>& kv,
                                          std::vector<size_t>& tensor_ids)>
                           tweak = nullptr) {
  SplitModel sm;
  for (int l = 0; l < 4; ++l) {
    std::string b = "blk." + std::to_string(l) + ".";
    sm.specs.push_back({b + "attn_norm.weight", DType::kF32, {64}});
    sm.specs.push_back({b + "attn_q.weight", DType::kQ8_0, {64, 16}});
    sm.specs.push_back({b + "ffn_gate_exps.weight", DType::kQ4_K, {256, 4, 8}});
  }
  sm.specs.push_back({"output.weight", DType::kF16, {64, 10}});
  std::vector<std::vector<size_t>> ids(n_parts);
  for (size_t i = 0; i < sm.specs.size(); ++i) {
    sm.part_of.push_back(static_cast<uint32_t>(i % n_parts));
    ids[i % n_parts].push_back(i);
  }
  for (uint32_t p = 0; p < n_parts; ++p) {
    std::vector<std::pair<std::string, Value>> kv;
    if (p == 0) {
      kv.push_back({"general.architecture", Value::string("test")});
      kv.push_back({"general.name", Value::string("split model")});
      kv.push_back({"test.block_count", Value::u32(4)});
    }
    kv.push_back({"split.no", Value::u16(static_cast<uint16_t>(p))});
    kv.push_back({"split.count", Value::u16(static_cast<uint16_t>(n_parts))});
    kv.push_back({"split.tensors.count", Value::i32(static_cast<int32_t>(sm.specs.size()))});
    std::vector<size_t> mine = ids[p];
    if (tweak) tweak(p, kv, mine);
    GgufWriter w;
    for (const auto& [k, v] : kv) w.set(k, v);
    for (size_t i : mine) EXPECT_TRUE(w.add_tensor(sm.specs[i].name, sm.specs[i].type, sm.specs[i].ne).is_ok());
    std::string path = dir.file(split_path(prefix, p + 1, n_parts).c_str());
    EXPECT_TRUE(w.begin(path).is_ok());
    for (size_t i : mine) {
      auto d = pattern(spec_bytes(sm.specs[i]), 1000 + static_cast<uint32_t>(i));
      EXPECT_TRUE(w.write_data(d.data(), d.size()).is_ok());
    }
    EXPECT_TRUE(w.finish().is_ok());
    sm.paths.push_back(path);
  }
  return sm;
}

TEST(GgufSplit, SplitNames) {
  auto s = parse_split_name("/models/DeepSeek-V3-Q4_K_M-00002-of-00009.gguf");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->prefix, "/models/DeepSeek-V3-Q4_K_M");
  EXPECT_EQ(s->no, 2u);
  EXPECT_EQ(s->count, 9u);
  EXPECT_EQ(split_path(s->prefix, 3, 9), "/models/DeepSeek-V3-Q4_K_M-00003-of-00009.gguf");
  EXPECT_FALSE(parse_split_name("model.gguf").has_value());
  EXPECT_FALSE(parse_split_name("m-00000-of-00003.gguf").has_value());
  EXPECT_FALSE(parse_split_name("m-00004-of-00003.gguf").has_value());
  EXPECT_FALSE(parse_split_name("m-0001-of-0003.gguf").has_value());
  EXPECT_FALSE(parse_split_name("m-00001-of-00003.gguf.part").has_value());
}

TEST(GgufSplit, ThreePartsJoinFromAnyPart) {
  TempDir dir;
  SplitModel sm = write_split(dir, dir.file("model"), 3);
  for (const std::string& entry : sm.paths) {
    SCOPED_TRACE(entry);
    auto m = GgufModel::open(entry);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    ASSERT_EQ(m->parts().size(), 3u);
    for (uint32_t p = 0; p < 3; ++p) EXPECT_EQ(m->parts()[p].path, sm.paths[p]);
    EXPECT_EQ(m->get_string("general.name"), "split model") << "metadata comes from the first part";
    EXPECT_EQ(m->get_u64("test.block_count"), 4u);
    EXPECT_EQ(m->get_u64("split.count"), 3u);
    ASSERT_EQ(m->tensors().size(), sm.specs.size());
    uint64_t total = 0;
    for (size_t i = 0; i < sm.specs.size(); ++i) {
      const TensorInfo* t = m->find_tensor(sm.specs[i].name);
      ASSERT_NE(t, nullptr) << sm.specs[i].name;
      EXPECT_EQ(t->part, sm.part_of[i]) << t->name;
      EXPECT_EQ(t->n_bytes, spec_bytes(sm.specs[i]));
      auto want = pattern(t->n_bytes, 1000 + static_cast<uint32_t>(i));
      EXPECT_EQ(std::memcmp(t->data, want.data(), want.size()), 0) << t->name << " data";
      // The data lies inside its own part's mapping.
      const GgufFile& pf = m->parts()[t->part];
      auto part_bytes = read_bytes(pf.path);
      EXPECT_EQ(std::memcmp(part_bytes.data() + pf.data_offset + t->offset, want.data(), want.size()), 0);
      total += t->n_bytes;
    }
    // Tensors come in part order, and within a part in file order.
    for (size_t k = 1; k < m->tensors().size(); ++k) EXPECT_LE(m->tensors()[k - 1].part, m->tensors()[k].part);
    EXPECT_EQ(m->total_tensor_bytes(), total);
    uint64_t file_total = 0;
    for (const auto& p : sm.paths) file_total += fs::file_size(p);
    EXPECT_EQ(m->total_file_bytes(), file_total);
  }
}

TEST(GgufSplit, MissingPartIsNotFoundAndNamed) {
  TempDir dir;
  SplitModel sm = write_split(dir, dir.file("model"), 3);
  fs::remove(sm.paths[1]);
  for (const std::string& entry : {sm.paths[0], sm.paths[2]}) {
    auto m = GgufModel::open(entry);
    ASSERT_FALSE(m.is_ok());
    EXPECT_EQ(m.status().code(), StatusCode::kNotFound) << m.status().to_string();
    EXPECT_NE(m.status().message().find(sm.paths[1]), std::string::npos) << m.status().message();
    EXPECT_NE(m.status().message().find("part 2 of 3"), std::string::npos) << m.status().message();
  }
  auto direct = GgufModel::open(sm.paths[1]);
  ASSERT_FALSE(direct.is_ok());
  EXPECT_EQ(direct.status().code(), StatusCode::kNotFound);
}

TEST(GgufSplit, PartWithWrongSplitNoIsRejected) {
  TempDir dir;
  SplitModel sm = write_split(dir, dir.file("model"), 3, [](uint32_t p, auto& kv, auto&) {
    if (p != 1) return;
    for (auto& [k, v] : kv) {
      if (k == "split.no") v = Value::u16(2);
    }
  });
  auto m = GgufModel::open(sm.paths[0]);
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidFormat);
  const std::string& msg = m.status().message();
  EXPECT_NE(msg.find(sm.paths[1]), std::string::npos) << msg;
  EXPECT_NE(msg.find("split.no"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected 1/3, got 2/3"), std::string::npos) << msg;
  // Opened directly, the part's own name and split.no disagree.
  auto direct = GgufModel::open(sm.paths[1]);
  EXPECT_FALSE(direct.is_ok());
}

TEST(GgufSplit, PartWithWrongSplitCountIsRejected) {
  TempDir dir;
  SplitModel sm = write_split(dir, dir.file("model"), 3, [](uint32_t p, auto& kv, auto&) {
    if (p != 2) return;
    for (auto& [k, v] : kv) {
      if (k == "split.count") v = Value::u16(4);
    }
  });
  auto m = GgufModel::open(sm.paths[0]);
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidFormat);
  EXPECT_NE(m.status().message().find(sm.paths[2]), std::string::npos) << m.status().message();
}

TEST(GgufSplit, PartWithoutSplitKeysIsRejected) {
  TempDir dir;
  SplitModel sm = write_split(dir, dir.file("model"), 3, [](uint32_t p, auto& kv, auto&) {
    if (p == 1) kv.clear();
  });
  auto m = GgufModel::open(sm.paths[0]);
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find(sm.paths[1]), std::string::npos) << m.status().message();
}

TEST(GgufSplit, DuplicateTensorAcrossPartsIsRejected) {
  TempDir dir;
  SplitModel sm = write_split(dir, dir.file("model"), 3, [](uint32_t p, auto&, auto& ids) {
    if (p == 2) ids.push_back(0);  // tensor 0 lives in part 1 already
  });
  auto m = GgufModel::open(sm.paths[2]);
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidFormat);
  const std::string& msg = m.status().message();
  EXPECT_NE(msg.find(sm.specs[0].name), std::string::npos) << msg;
  EXPECT_NE(msg.find(sm.paths[2]), std::string::npos) << msg;
  EXPECT_NE(msg.find("duplicate"), std::string::npos) << msg;
}

TEST(GgufSplit, TensorCountMismatchIsRejected) {
  TempDir dir;
  SplitModel sm = write_split(dir, dir.file("model"), 3, [](uint32_t p, auto& kv, auto&) {
    for (auto& [k, v] : kv) {
      if (k == "split.tensors.count") v = Value::i32(99);
    }
  });
  auto m = GgufModel::open(sm.paths[1]);
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidFormat);
  EXPECT_NE(m.status().message().find("split.tensors.count: expected 13"), std::string::npos) << m.status().message();
}

TEST(GgufSplit, SplitKeysWithAnUnsplitNameAreRejected) {
  TempDir dir;
  SplitModel sm = write_split(dir, dir.file("model"), 2);
  std::string renamed = dir.file("renamed.gguf");
  fs::rename(sm.paths[0], renamed);
  auto m = GgufModel::open(renamed);
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find(renamed), std::string::npos) << m.status().message();
}

// --- files that are not GGUF models -----------------------------------------

TEST(GgufReader, NonexistentDirectoryAndEmptyFiles) {
  TempDir dir;
  auto missing = GgufModel::open(dir.file("missing.gguf"));
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("missing.gguf"), std::string::npos);

  auto directory = GgufModel::open(dir.file(""));
  ASSERT_FALSE(directory.is_ok());
  EXPECT_EQ(directory.status().code(), StatusCode::kInvalidArgument);

  std::string empty = dir.file("empty.gguf");
  write_bytes(empty, {});
  auto e = GgufModel::open(empty);
  ASSERT_FALSE(e.is_ok());
  EXPECT_EQ(e.status().code(), StatusCode::kInvalidFormat);
  EXPECT_NE(e.status().message().find("empty.gguf: magic"), std::string::npos) << e.status().message();
}

TEST(GgufReader, EveryTruncationIsAnError) {
  TempDir dir;
  std::string path = dir.file("full.gguf");
  auto specs = mixed_tensors();
  ASSERT_TRUE(write_model(path,
                          {{"general.name", Value::string("truncate me")},
                           {"tok", Value::string_array({"a", "bb", "ccc"})},
                           {"nested", Value::nested_array(ValueType::kArray, {Value::i32_array({1, 2})})}},
                          specs)
                  .is_ok());
  auto bytes = read_bytes(path);
  ASSERT_TRUE(parse_gguf(bytes, "full").is_ok());
  for (size_t n = 0; n < bytes.size(); ++n) {
    // A fresh exact-size buffer, so a read past the end is a read past the allocation.
    std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    auto r = parse_gguf(prefix, "cut");
    ASSERT_FALSE(r.is_ok()) << "prefix of " << n << " bytes parsed";
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidFormat) << n << ": " << r.status().message();
    EXPECT_EQ(r.status().message().rfind("cut: ", 0), 0u) << r.status().message();
  }
}

TEST(GgufReader, CorruptedHeaderBytesNeverCrash) {
  // Every byte of the header and tensor table set to a few hostile values:
  // the parser answers ok or an error, and an ok answer keeps every tensor
  // inside the buffer.
  TempDir dir;
  std::string path = dir.file("base.gguf");
  ASSERT_TRUE(write_model(path, {{"general.name", Value::string("x")}, {"a", Value::u32_array({1, 2, 3})}},
                          mixed_tensors())
                  .is_ok());
  auto bytes = read_bytes(path);
  auto base = parse_gguf(bytes, "base");
  ASSERT_TRUE(base.is_ok());
  size_t header = base->data_offset;
  for (size_t i = 0; i < header; ++i) {
    for (uint8_t v : {uint8_t{0x00}, uint8_t{0x01}, uint8_t{0x7f}, uint8_t{0x80}, uint8_t{0xff}}) {
      std::vector<uint8_t> b = bytes;
      b[i] = v;
      auto r = parse_gguf(b, "mut");
      if (!r.is_ok()) {
        EXPECT_NE(r.status().code(), StatusCode::kOk);
        EXPECT_EQ(r.status().message().find('\n'), std::string::npos);
        continue;
      }
      for (const auto& t : r->tensors) {
        ASSERT_GE(t.data, b.data());
        ASSERT_LE(t.data + t.n_bytes, b.data() + b.size()) << "byte " << i << " = " << int(v);
      }
    }
  }
}

// Little-endian GGUF bytes packed by hand, for headers the writer refuses to make.
class Bytes {
 public:
  Bytes& u32(uint32_t v) { return put(&v, 4); }
  Bytes& u64(uint64_t v) { return put(&v, 8); }
  Bytes& str(const std::string& s) {
    u64(s.size());
    return put(s.data(), s.size());
  }
  Bytes& header(uint64_t n_tensors, uint64_t n_kv) { return u32(kMagic).u32(3).u64(n_tensors).u64(n_kv); }
  const std::vector<uint8_t>& bytes() const { return b_; }

 private:
  Bytes& put(const void* p, size_t n) {
    b_.insert(b_.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
    return *this;
  }
  std::vector<uint8_t> b_;
};

TEST(GgufReader, HugeSparseFilesDoNotExhaustMemory) {
  // A sparse file is terabytes long and holds nothing on disk; its holes read
  // as zeros, which parse as empty strings and empty arrays. Counts bounded by
  // the file's size alone would let an 8 KiB download allocate terabytes
  // (std::bad_alloc, i.e. a crash); the parser's memory budget refuses them.
  TempDir dir;
  const uint64_t kSize = 1ull << 40;
  struct Case {
    std::string name;
    Bytes head;
    std::string needle;
  };
  std::vector<Case> cases;
  cases.push_back({"n_tensors", Bytes().header(30'000'000'000ull, 0), "n_tensors: expected <="});
  cases.push_back({"n_kv", Bytes().header(0, 70'000'000'000ull), "n_kv: expected <="});
  cases.push_back({"string", Bytes().header(0, 1).str("k").u32(8).u64(500'000'000'000ull), "'k' length"});
  cases.push_back({"strings", Bytes().header(0, 1).str("k").u32(9).u32(8).u64(60'000'000), "'k' array length"});
  cases.push_back({"nested", Bytes().header(0, 1).str("k").u32(9).u32(9).u64(60'000'000), "'k' array length"});
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::string path = dir.file(c.name + ".gguf");
    write_bytes(path, c.head.bytes());
    std::error_code ec;
    fs::resize_file(path, kSize, ec);
    if (ec) GTEST_SKIP() << "no sparse files here: " << ec.message();
    auto m = GgufModel::open(path);
    ASSERT_FALSE(m.is_ok());
    EXPECT_EQ(m.status().code(), StatusCode::kInvalidFormat);
    EXPECT_NE(m.status().message().find(c.needle), std::string::npos) << m.status().message();
    EXPECT_NE(m.status().message().find("MiB allowed for parsed metadata"), std::string::npos)
        << m.status().message();
  }
}

TEST(GgufValue, PrintableEscapesWhatATerminalWouldObey) {
  EXPECT_EQ(printable("blk.0.attn_q.weight"), "blk.0.attn_q.weight");
  EXPECT_EQ(printable(std::string("a\nb\x1b[2J\0c", 9)), "a\\x0ab\\x1b[2J\\x00c");
  EXPECT_EQ(printable("\xc3\xa9"), "\\xc3\\xa9");
  EXPECT_EQ(printable(std::string(200, 'k'), 10), std::string(10, 'k') + "...");
  EXPECT_EQ(Value::string("line\nnext\x1b").summary(), "\"line\\nnext\\x1b\"");
}

TEST(GgufValue, IntAtOfFloatsSaturates) {
  // Found by fuzz_gguf: int_at on a float array element that is NaN or out of
  // int64's range was an undefined float->int conversion.
  float inf = std::numeric_limits<float>::infinity();
  Value v = Value::f32_array({std::numeric_limits<float>::quiet_NaN(), 1e30f, -1e30f, inf, -inf, -2.75f});
  EXPECT_EQ(v.int_at(0), 0);
  EXPECT_EQ(v.int_at(1), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(v.int_at(2), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(v.int_at(3), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(v.int_at(4), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(v.int_at(5), -2);
}

int64_t walk_ints(const Value& v) {
  int64_t h = 0;
  for (const auto& item : v.items()) h += walk_ints(item);
  if (v.is_array() && value_type_size(v.array_type()) > 0) {
    for (uint64_t i = 0; i < v.array_size(); ++i) h += v.int_at(i) & 1;
  }
  return h;
}

TEST(GgufFuzzRegressions, InputsThatOnceCrashedTheFuzzerParseOrFail) {
  // tests/fuzz/regressions holds inputs fuzz_gguf found; run_fuzz.sh replays
  // them under the sanitizers, this replays them in every ordinary test run.
  size_t n = 0;
  for (const auto& entry : fs::directory_iterator(kFixtures.parent_path() / "fuzz" / "regressions")) {
    SCOPED_TRACE(entry.path().string());
    std::vector<uint8_t> storage;
    auto r = parse_file(entry.path(), storage);
    if (r.is_ok()) {
      for (const auto& [k, v] : r->kv) (void)walk_ints(v);
    }
    ++n;
  }
  EXPECT_GE(n, 1u);
}

// --- committed fixtures -----------------------------------------------------

struct ManifestEntry {
  std::string file, parse_status, open_status;
  std::vector<std::string> needles;
};

std::vector<ManifestEntry> read_manifest() {
  std::vector<ManifestEntry> out;
  std::ifstream in(kFixtures / "malformed" / "manifest.tsv");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> cols;
    std::stringstream ss(line);
    std::string col;
    while (std::getline(ss, col, '\t')) cols.push_back(col);
    if (cols.size() != 4) {
      ADD_FAILURE() << "bad manifest line: " << line;
      continue;
    }
    ManifestEntry e{cols[0], cols[1], cols[2], {}};
    std::stringstream ns(cols[3]);
    while (std::getline(ns, col, ';')) e.needles.push_back(col);
    out.push_back(std::move(e));
  }
  return out;
}

std::string code_name(const Status& s) { return s.is_ok() ? "ok" : status_code_name(s.code()); }

TEST(GgufFixtures, ManifestCoversEveryMalformedFile) {
  auto manifest = read_manifest();
  EXPECT_GE(manifest.size(), 40u);
  std::set<std::string> listed;
  for (const auto& e : manifest) listed.insert(e.file);
  size_t n_files = 0;
  for (const auto& entry : fs::directory_iterator(kFixtures / "malformed")) {
    if (entry.path().extension() != ".gguf") continue;
    ++n_files;
    EXPECT_TRUE(listed.count(entry.path().filename().string())) << entry.path() << " is not in manifest.tsv";
    EXPECT_LE(fs::file_size(entry.path()), 4096u) << entry.path();
  }
  EXPECT_EQ(n_files, manifest.size());
}

TEST(GgufFixtures, MalformedFilesFailAsTheManifestSays) {
  for (const auto& e : read_manifest()) {
    SCOPED_TRACE(e.file);
    fs::path p = kFixtures / "malformed" / e.file;
    // parse_gguf over an exact-size copy of the bytes.
    std::vector<uint8_t> storage;
    auto r = parse_file(p, storage);
    EXPECT_EQ(code_name(r.status()), e.parse_status) << r.status().to_string();
    // GgufModel::open through the mapping, as `strata inspect` does.
    auto m = GgufModel::open(p.string());
    ASSERT_FALSE(m.is_ok());
    EXPECT_EQ(code_name(m.status()), e.open_status) << m.status().to_string();
    const std::string& msg = m.status().message();
    EXPECT_EQ(msg.rfind(p.string(), 0), 0u) << "message starts with the file: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_NE(msg.find("expected"), std::string::npos) << msg;
    for (const auto& needle : e.needles) EXPECT_NE(msg.find(needle), std::string::npos) << "'" << needle << "' in " << msg;
  }
}

TEST(GgufFixtures, ValidAllTypes) {
  auto m = GgufModel::open((kFixtures / "valid" / "all_types_v3.gguf").string());
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  const GgufFile& f = m->first();
  EXPECT_EQ(f.version, 3u);
  EXPECT_EQ(f.kv.size(), 30u);
  EXPECT_EQ(m->get_string("general.architecture"), "fixture");
  EXPECT_EQ(m->get_u64("test.u8"), 200u);
  EXPECT_EQ(m->find("test.i8")->as_i64(), -100);
  EXPECT_EQ(m->get_u64("test.u16"), 60000u);
  EXPECT_EQ(m->find("test.i16")->as_i64(), -30000);
  EXPECT_EQ(m->get_u64("test.u32"), 4000000000u);
  EXPECT_EQ(m->find("test.i32")->as_i64(), -2000000000);
  EXPECT_EQ(m->get_f64("test.f32"), 0.5);
  EXPECT_EQ(m->get_bool("test.bool"), true);
  EXPECT_EQ(m->get_string("test.string"), "h\xc3\xa9llo, gguf");
  EXPECT_EQ(m->get_string("test.empty_string"), "");
  EXPECT_EQ(m->get_u64("test.u64"), (1ull << 63) + 5);
  EXPECT_EQ(m->find("test.i64")->as_i64(), -(1ll << 62));
  EXPECT_EQ(m->get_f64("test.f64"), -1.25);
  EXPECT_EQ(m->find("test.arr.u8")->int_at(2), 255);
  EXPECT_EQ(m->find("test.arr.i64")->int_at(0), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(m->find("test.arr.f32")->number_at(1), -2.25);
  EXPECT_EQ(m->find("test.arr.string")->strings(), (std::vector<std::string>{"a", "", "<|im_end|>", "\xc4\xa0the"}));
  EXPECT_EQ(m->find("test.arr.empty")->array_size(), 0u);
  const Value& nested = *m->find("test.arr.nested");
  ASSERT_EQ(nested.items().size(), 3u);
  EXPECT_EQ(nested.items()[2].int_at(2), 6);
  EXPECT_EQ(m->find("test.arr.nested_strings")->items()[0].strings(), (std::vector<std::string>{"x", "yz"}));

  ASSERT_EQ(m->tensors().size(), 5u);
  const TensorInfo* e = m->find_tensor("token_embd.weight");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->shape_string(), "[4, 3]");
  for (int i = 0; i < 12; ++i) {
    float v;
    std::memcpy(&v, e->data + 4 * i, 4);
    EXPECT_EQ(v, i * 0.5f - 2.0f) << i;
  }
  EXPECT_EQ(m->find_tensor("blk.0.ffn_gate_exps.weight")->dtype, DType::kQ4_K);
  EXPECT_EQ(m->find_tensor("blk.0.attn_q.weight")->n_dims, 4);
}

TEST(GgufFixtures, ValidVersion2Aligned64) {
  auto m = GgufModel::open((kFixtures / "valid" / "aligned64_v2.gguf").string());
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_EQ(m->first().version, 2u);
  EXPECT_EQ(m->first().alignment, 64u);
  EXPECT_EQ(m->first().data_offset % 64, 0u);
  ASSERT_EQ(m->tensors().size(), 3u);
  EXPECT_EQ(m->tensors()[0].shape_string(), "[32, 3, 4]");
  EXPECT_EQ(m->tensors()[1].offset, 448u) << "408 bytes padded to 64";
  EXPECT_EQ(m->tensors()[2].offset, 576u) << "448 + 80 padded to 64";
}

}  // namespace
}  // namespace strata::gguf
