// The compiled form of a response_format (internal to runtime/serve): a graph
// of value nodes that the JSON matcher walks as a pushdown automaton, one
// frame per open value, and the frame layout it keeps per thread.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace strata::serve {

inline constexpr uint32_t kNoNode = std::numeric_limits<uint32_t>::max();
inline constexpr uint32_t kUnbounded = std::numeric_limits<uint32_t>::max();
// Properties per object schema: the seen set and the key candidates are
// 64-bit masks.
inline constexpr size_t kMaxProperties = 64;

enum class NodeKind : uint8_t {
  kObject,   // { "key": value, ... }
  kArray,    // [ value, ... ]
  kString,   // "..." with length bounds in code points
  kNumber,   // JSON number
  kInteger,  // JSON number without fraction or exponent
  kLiteral,  // one of a set of exact serializations (enum, const, true, false, null)
  kAnyOf,    // any of the alternatives; the matcher follows each as a thread
};

struct Property {
  std::string key;  // the name as it appears between the quotes (JSON-escaped)
  uint32_t node = kNoNode;
};

struct Node {
  NodeKind kind = NodeKind::kLiteral;
  // kObject
  std::vector<Property> props;
  uint64_t required = 0;         // bit i: props[i] must appear
  uint32_t additional = kNoNode;  // schema of other keys' values; kNoNode: no other keys
  // kArray
  uint32_t items = kNoNode;
  // kArray: item count bounds; kString: code point bounds
  uint32_t min = 0, max = kUnbounded;
  // kLiteral: root of this node's strings in JsonGrammar::lit
  uint32_t lit_root = 0;
  // kAnyOf
  std::vector<uint32_t> alts;
};

// A byte trie of literal serializations; node 0 of each literal set is its root.
struct LitNode {
  std::vector<std::pair<uint8_t, uint32_t>> kids;  // sorted by byte
  bool terminal = false;
};

struct JsonGrammar {
  std::vector<Node> nodes;
  std::vector<LitNode> lit;
  uint32_t root = kNoNode;
  // Bounds that keep a model from looping forever inside one value.
  uint32_t max_ws = 20;            // whitespace bytes in one gap between tokens
  uint32_t max_depth = 32;         // nested objects and arrays
  uint32_t max_number_digits = 20;  // digits in each of integer, fraction, exponent parts
  std::string description;         // "json_object", "json_schema 'name'"
};

// One open value on a thread's stack. 24 bytes, no padding, every field
// always written, so threads compare with memcmp.
enum class FrameType : uint8_t { kRoot, kObject, kKey, kArray, kString, kNumber, kLiteral };

struct Frame {
  uint32_t node = kNoNode;
  FrameType type = FrameType::kRoot;
  uint8_t phase = 0;  // container phase, number state, key flags
  uint8_t ws = 0;     // whitespace bytes in the current gap
  uint8_t sub = 0;    // string/key byte state (escapes, UTF-8 continuation)
  uint32_t count = 0;  // string: code points; array: items; key: bytes; literal: trie node; number: digits
  uint32_t aux = 0;    // object: index of the property being read
  uint64_t mask = 0;   // object: properties seen; key: candidate properties
};
static_assert(sizeof(Frame) == 24, "Frame must stay padding-free for memcmp");

// Frame::phase values.
// Object: after '{', after ',', after a key, after ':', after a value.
enum : uint8_t { kObjFirst, kObjAfterComma, kObjAfterKey, kObjAfterColon, kObjAfterValue };
// Array: after '[', after ',', after a value.
enum : uint8_t { kArrFirst, kArrAfterComma, kArrAfterValue };
// Root: before the value, after it.
enum : uint8_t { kRootBefore, kRootDone };
// Number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
enum : uint8_t { kNumStart, kNumMinus, kNumZero, kNumInt, kNumDot, kNumFrac, kNumE, kNumESign, kNumExp };
// Key: flags. kKeyExtraOk: the key may still be one not declared.
enum : uint8_t { kKeyExtraOk = 1 };

}  // namespace strata::serve
