// The response_format constraint: schema compilation and its errors, the
// byte automaton on hand-picked documents, and the allowed-token mask
// against a brute-force check of every token on real vocabularies.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <mutex>

#include "runtime/gguf/gguf_reader.h"
#include "runtime/serve/json_schema.h"

namespace strata::serve {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

const fs::path kVocabDir = fs::path(STRATA_SHARED_DIR) / "data" / "vocab";

JsonConstraint schema(const std::string& text) {
  auto c = compile_json_schema(json::parse(text));
  EXPECT_TRUE(c.is_ok()) << text << ": " << c.status().to_string();
  if (!c.is_ok()) std::abort();
  return *c;
}

// 0: rejected, 1: a valid prefix, 2: a complete document.
int match(const JsonConstraint& c, std::string_view text) {
  JsonMatcher m(c);
  if (!m.accept_bytes(text)) return 0;
  return m.complete() ? 2 : 1;
}

const Tokenizer& vocab(const std::string& name) {
  static std::mutex mu;
  static std::map<std::string, Tokenizer> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(name);
  if (it == cache.end()) {
    auto model = gguf::GgufModel::open((kVocabDir / ("ggml-vocab-" + name + ".gguf")).string());
    EXPECT_TRUE(model.is_ok()) << model.status().to_string();
    if (!model.is_ok()) std::abort();
    auto tok = Tokenizer::from_gguf(*model);
    EXPECT_TRUE(tok.is_ok()) << tok.status().to_string();
    if (!tok.is_ok()) std::abort();
    it = cache.emplace(name, std::move(tok).value()).first;
  }
  return it->second;
}

TEST(JsonSchema, ObjectWithProperties) {
  const auto c = schema(R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},
                            "required":["name"],"additionalProperties":false})");
  EXPECT_EQ(match(c, R"({"name":"Ann","age":31})"), 2);
  EXPECT_EQ(match(c, R"({"age":31,"name":"Ann"})"), 2);  // any order
  EXPECT_EQ(match(c, R"({"name":"Ann"})"), 2);
  EXPECT_EQ(match(c, R"( { "name" : "Ann" , "age" : -0 })"), 2);
  EXPECT_EQ(match(c, R"( { "name" : "Ann" , "age" : -0 } )"), 0);  // nothing after the document
  EXPECT_EQ(match(c, R"({"age":31)"), 1);
  EXPECT_EQ(match(c, R"({"age":31})"), 0);  // "name" is required
  EXPECT_EQ(match(c, R"({"age":31,"name":"A"}x)"), 0);
  EXPECT_EQ(match(c, R"({"name":"Ann","name":"Bob"})"), 0);  // duplicate
  EXPECT_EQ(match(c, R"({"nam":"Ann"})"), 0);                 // not a property
  EXPECT_EQ(match(c, R"({"name":"Ann","age":3.5})"), 0);      // not an integer
  EXPECT_EQ(match(c, R"({"name":"Ann","age":01})"), 0);       // leading zero
  EXPECT_EQ(match(c, R"({"name":"Ann",})"), 0);
  EXPECT_EQ(match(c, R"([])"), 0);
  // After both properties, no comma: no key could follow.
  EXPECT_EQ(match(c, R"({"name":"A","age":1,)"), 0);
}

TEST(JsonSchema, AdditionalPropertiesDefaultAndSchema) {
  const auto open = schema(R"({"type":"object","properties":{"a":{"type":"boolean"}}})");
  EXPECT_EQ(match(open, R"({"a":true,"zz":[1,{"q":null}],"ab":"x"})"), 2);
  EXPECT_EQ(match(open, R"({"a":true,"a":false})"), 0);
  EXPECT_EQ(match(open, R"({"\u0061":true})"), 0);  // an escape spelling a declared key
  const auto typed = schema(R"({"type":"object","additionalProperties":{"type":"number"}})");
  EXPECT_EQ(match(typed, R"({"x":1,"y":2.5e-3})"), 2);
  EXPECT_EQ(match(typed, R"({"x":"1"})"), 0);
  EXPECT_EQ(match(typed, R"({"k\n\u00e9":1})"), 2);  // no declared keys: escapes are fine
  const auto req_extra = schema(R"({"type":"object","required":["id"],"additionalProperties":{"type":"integer"}})");
  EXPECT_EQ(match(req_extra, R"({"x":1)"), 1);
  EXPECT_EQ(match(req_extra, R"({"x":1})"), 0);
  EXPECT_EQ(match(req_extra, R"({"x":1,"id":2})"), 2);
  EXPECT_EQ(match(req_extra, R"({"id":"s"})"), 0);
}

TEST(JsonSchema, StringsAndUtf8) {
  const auto c = schema(R"({"type":"string","minLength":2,"maxLength":3})");
  EXPECT_EQ(match(c, R"("a")"), 0);
  EXPECT_EQ(match(c, R"("ab")"), 2);
  EXPECT_EQ(match(c, "\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\""), 2);  // 3 code points, 9 bytes
  EXPECT_EQ(match(c, R"("abcd")"), 0);
  EXPECT_EQ(match(c, R"("\n\u00e9")"), 2);
  EXPECT_EQ(match(c, R"("\ud83d")"), 0);  // no lone surrogates
  EXPECT_EQ(match(c, R"("\x")"), 0);
  EXPECT_EQ(match(c, "\"a\x01\""), 0);       // control character
  EXPECT_EQ(match(c, "\"\xC0\xAF\""), 0);    // overlong
  EXPECT_EQ(match(c, "\"\xED\xA0\x80\""), 0);  // surrogate in UTF-8
  EXPECT_EQ(match(c, "\"\xF4\x90\x80\x80\""), 0);  // above U+10FFFF
  EXPECT_EQ(match(c, "\"\xE2\x82"), 1);      // mid-character is a valid prefix
}

TEST(JsonSchema, NumbersAndLiterals) {
  const auto n = schema(R"({"type":"number"})");
  for (const char* ok : {"0", "-0", "12", "-1.5", "1e5", "2.5E-10", "0.0"}) EXPECT_EQ(match(n, ok), 2) << ok;
  for (const char* bad : {"01", "-", "1.", ".5", "1e", "+1", "1e100", "NaN"}) EXPECT_NE(match(n, bad), 2) << bad;
  const auto e = schema(R"({"enum":["red","green",1,12,null,{"a":[1]}]})");
  for (const char* ok : {R"("red")", R"("green")", "1", "12", "null", R"({"a":[1]})"}) EXPECT_EQ(match(e, ok), 2) << ok;
  for (const char* bad : {R"("blue")", "2", "123", "true", R"({"a":[2]})"}) EXPECT_NE(match(e, bad), 2) << bad;
  const auto k = schema(R"({"const":"x"})");
  EXPECT_EQ(match(k, R"("x")"), 2);
  EXPECT_EQ(match(k, R"("y")"), 0);
  const auto b = schema(R"({"type":["boolean","null"]})");
  EXPECT_EQ(match(b, "true"), 2);
  EXPECT_EQ(match(b, "null"), 2);
  EXPECT_EQ(match(b, "0"), 0);
  const auto typed_enum = schema(R"({"type":"string","enum":["a",1]})");  // 1 is not a string
  EXPECT_EQ(match(typed_enum, "1"), 0);
}

TEST(JsonSchema, ArraysAnyOfRefs) {
  const auto a = schema(R"({"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":2})");
  EXPECT_EQ(match(a, "[]"), 0);
  EXPECT_EQ(match(a, "[1]"), 2);
  EXPECT_EQ(match(a, "[1, 2]"), 2);
  EXPECT_EQ(match(a, "[1,2,"), 0);
  const auto any = schema(R"({"anyOf":[{"type":"object","properties":{"a":{"type":"string"}},"required":["a"],
                              "additionalProperties":false},
                             {"type":"object","properties":{"ab":{"type":"integer"}},"required":["ab"],
                              "additionalProperties":false},{"type":"null"}]})");
  EXPECT_EQ(match(any, R"({"a":"x"})"), 2);
  EXPECT_EQ(match(any, R"({"ab":3})"), 2);
  EXPECT_EQ(match(any, R"({"ab":"x"})"), 0);
  EXPECT_EQ(match(any, R"(null)"), 2);
  const auto tree = schema(R"({"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},
                              "kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},
                              "required":["v"],"additionalProperties":false}},"$ref":"#/$defs/node"})");
  EXPECT_EQ(match(tree, R"({"v":1,"kids":[{"v":2,"kids":[{"v":3}]},{"v":4}]})"), 2);
  EXPECT_EQ(match(tree, R"({"v":1,"kids":[{"kids":[])"), 1);
  EXPECT_EQ(match(tree, R"({"v":1,"kids":[{"kids":[]})"), 0);  // the inner node lacks "v"
  const auto nullable = schema(R"({"type":["string","null"]})");
  EXPECT_EQ(match(nullable, "null"), 2);
  EXPECT_EQ(match(nullable, R"("s")"), 2);
}

TEST(JsonSchema, BoundedWhitespaceAndDepth) {
  JsonConstraintOptions opt;
  opt.max_ws = 3;
  opt.max_depth = 3;
  auto c = compile_json_schema(json::parse(R"({"type":"array"})"), opt);
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(match(*c, "[   1]"), 2);
  EXPECT_EQ(match(*c, "[    1]"), 0);
  EXPECT_EQ(match(*c, "[[[1]]]"), 2);
  EXPECT_EQ(match(*c, "[[[["), 0);
}

TEST(JsonSchema, ResponseFormat) {
  auto none = compile_response_format(json::parse(R"({"type":"text"})"));
  ASSERT_TRUE(none.is_ok());
  EXPECT_FALSE(none->has_value());
  auto obj = compile_response_format(json::parse(R"({"type":"json_object"})"));
  ASSERT_TRUE(obj.is_ok() && obj->has_value());
  EXPECT_EQ(match(**obj, R"({"a":[1,"x",{"b":null}],"c":true})"), 2);
  EXPECT_EQ(match(**obj, R"([1])"), 0);
  EXPECT_EQ(match(**obj, R"("s")"), 0);
  auto named = compile_response_format(json::parse(
      R"({"type":"json_schema","json_schema":{"name":"w","strict":true,"schema":{"type":"object",
          "properties":{"t":{"type":"number"}},"required":["t"],"additionalProperties":false}}})"));
  ASSERT_TRUE(named.is_ok()) << named.status().to_string();
  EXPECT_EQ((*named)->description(), "json_schema 'w'");
  EXPECT_EQ(match(**named, R"({"t":1})"), 2);
  for (const char* bad : {R"({"type":"yaml"})", R"("json_object")", R"({"type":"json_schema"})",
                          R"({"type":"json_schema","json_schema":{"schema":{"type":"object"},"strict":"yes"}})"}) {
    auto r = compile_response_format(json::parse(bad));
    EXPECT_FALSE(r.is_ok()) << bad;
    EXPECT_NE(r.status().message().find("response_format"), std::string::npos) << r.status().message();
  }
}

TEST(JsonSchema, EveryUnsupportedKeywordIsAnError) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"type":"string","pattern":"^a"})", "'pattern' at schema/pattern"},
      {R"({"type":"string","format":"date"})", "'format' at schema/format"},
      {R"({"type":"number","minimum":0})", "'minimum' at schema/minimum"},
      {R"({"type":"number","maximum":0})", "'maximum' at schema/maximum"},
      {R"({"type":"integer","exclusiveMinimum":0})", "'exclusiveMinimum'"},
      {R"({"type":"integer","exclusiveMaximum":0})", "'exclusiveMaximum'"},
      {R"({"type":"integer","multipleOf":2})", "'multipleOf'"},
      {R"({"type":"object","properties":{"a":{"type":"object","patternProperties":{}}}})",
       "'patternProperties' at schema/properties/a/patternProperties"},
      {R"({"type":"object","minProperties":1})", "'minProperties'"},
      {R"({"type":"object","maxProperties":1})", "'maxProperties'"},
      {R"({"type":"object","propertyNames":{}})", "'propertyNames'"},
      {R"({"type":"object","dependentRequired":{}})", "'dependentRequired'"},
      {R"({"type":"object","unevaluatedProperties":false})", "'unevaluatedProperties'"},
      {R"({"type":"array","uniqueItems":true})", "'uniqueItems'"},
      {R"({"type":"array","contains":{}})", "'contains'"},
      {R"({"type":"array","prefixItems":[]})", "'prefixItems'"},
      {R"({"type":"array","items":{"type":"array","items":[{"type":"string"}]}})", "tuple form"},
      {R"({"oneOf":[{"type":"string"}]})", "'oneOf'"},
      {R"({"allOf":[{"type":"string"}]})", "'allOf'"},
      {R"({"not":{"type":"string"}})", "'not'"},
      {R"({"if":{},"then":{}})", "'if'"},
      {R"({"type":"strings"})", "type 'strings'"},
      {R"({"type":"string","nullable":true})", "'nullable' at schema/nullable"},
      {R"({"$ref":"http://example.com/s.json"})", "unsupported $ref"},
      {R"({"$ref":"#/$defs/a","minLength":1})", "'minLength' next to $ref"},
      {R"({"type":"object","properties":{"a~b/c":{"type":"string","contentEncoding":"base64"}}})",
       "'contentEncoding' at schema/properties/a~0b~1c/contentEncoding"},
  };
  for (const auto& [text, want] : cases) {
    auto c = compile_json_schema(json::parse(text));
    ASSERT_FALSE(c.is_ok()) << text;
    EXPECT_NE(c.status().message().find(want), std::string::npos) << text << " -> " << c.status().message();
  }
}

TEST(JsonSchema, MalformedSchemasAreErrors) {
  for (const char* text :
       {R"({"type":"string","minLength":-1})", R"({"type":"string","minLength":5,"maxLength":2})",
        R"({"type":"array","minItems":"1"})", R"({"enum":[]})", R"({"enum":"a"})", R"({"anyOf":[]})", R"(false)",
        R"({"type":"object","properties":{"a":false},"required":["a"]})", R"(3)", R"({"type":[]})",
        R"({"type":"object","required":["x"],"additionalProperties":false})", R"({"$ref":"#/$defs/missing"})",
        R"({"$defs":{"a":{"$ref":"#/$defs/b"},"b":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"})",
        R"({"$defs":{"a":{"anyOf":[{"$ref":"#/$defs/a"},{"type":"null"}]}},"$ref":"#/$defs/a"})"}) {
    auto c = compile_json_schema(json::parse(text));
    EXPECT_FALSE(c.is_ok()) << text;
    if (!c.is_ok()) {
      EXPECT_NE(c.status().message().find("schema"), std::string::npos) << c.status().message();
    }
  }
}

// Every token's verdict from the mask equals appending its bytes to the
// matcher; end-of-generation tokens are allowed exactly when complete;
// special tokens never.
void check_mask(const Tokenizer& tok, const TokenTrie& trie, const JsonConstraint& c, const std::string& doc,
                const std::vector<size_t>& cuts) {
  JsonMatcher m(c);
  std::vector<uint8_t> mask;
  for (size_t cut : cuts) {
    m.reset();
    ASSERT_TRUE(m.accept_bytes(doc.substr(0, cut))) << doc.substr(0, cut);
    m.allowed_tokens(trie, mask);
    ASSERT_EQ(mask.size(), tok.n_tokens());
    size_t n_allowed = 0;
    for (size_t i = 0; i < mask.size(); ++i) {
      const auto id = static_cast<TokenId>(i);
      bool want = false;
      if (tok.is_eog(id)) {
        want = m.complete();
      } else if (tok.token_type(id) == TokenType::kNormal || tok.token_type(id) == TokenType::kByte) {
        JsonMatcher copy = m;
        const std::string_view p = tok.piece(id);
        want = !p.empty() && copy.accept_bytes(p);
      }
      ASSERT_EQ(mask[i] != 0, want) << "token " << i << " '" << tok.piece(id, true) << "' after '"
                                    << doc.substr(0, cut) << "'";
      n_allowed += mask[i];
    }
    EXPECT_GT(n_allowed, 0u);
  }
}

TEST(JsonSchema, MaskEqualsBruteForce) {
  const auto c = schema(R"({"type":"object","properties":{"name":{"type":"string","maxLength":12},
      "n":{"type":"number"},"tags":{"type":"array","items":{"enum":["a b","c"]},"maxItems":3},
      "ok":{"type":["boolean","null"]}},"required":["name","n"],"additionalProperties":false})");
  const std::string doc = R"({"name": "x y\u00e9\"z", "n": -12.5e+3, "tags": ["a b", "c"], "ok": null})";
  ASSERT_EQ(match(c, doc), 2);
  // Cuts: start, inside a key, after a colon, inside a bounded string,
  // mid-escape, inside a number, inside an enum string, after a value, the end.
  const std::vector<size_t> cuts = {0, 4, 9, 13, 17, 31, 38, 53, 63, doc.size()};
  {
    const Tokenizer& tok = vocab("llama-spm");
    check_mask(tok, build_token_trie(tok), c, doc, cuts);
  }
  const std::string obj = R"({"k": [1, {"z": "\u00e9x"}], "t": true})";
  const Tokenizer& tok = vocab("gpt-2");
  check_mask(tok, build_token_trie(tok), json_object_constraint(), obj, {0, 3, 7, 17, 21, obj.size()});
}

TEST(JsonSchema, TokensEndOfGeneration) {
  const Tokenizer& tok = vocab("gpt-2");
  const TokenTrie trie = build_token_trie(tok);
  ASSERT_FALSE(trie.eog_tokens().empty());
  const TokenId eos = trie.eog_tokens()[0];
  JsonMatcher m(json_object_constraint());
  EXPECT_FALSE(m.accept_token(trie, eos));
  for (TokenId id : tok.tokenize(R"({"a": 1})")) ASSERT_TRUE(m.accept_token(trie, id));
  EXPECT_TRUE(m.complete());
  EXPECT_FALSE(m.can_continue());
  std::vector<uint8_t> mask;
  m.allowed_tokens(trie, mask);
  size_t n = 0;
  for (uint8_t x : mask) n += x;
  EXPECT_EQ(n, trie.eog_tokens().size());  // only the end is left
  EXPECT_TRUE(mask[static_cast<size_t>(eos)]);
  EXPECT_TRUE(m.accept_token(trie, eos));
  EXPECT_FALSE(m.accept_token(trie, -1));
  EXPECT_FALSE(m.accept_token(trie, static_cast<TokenId>(tok.n_tokens())));

  std::vector<float> logits(mask.size(), 1.0f);
  apply_token_mask(logits, mask);
  EXPECT_EQ(logits[static_cast<size_t>(eos)], 1.0f);
  EXPECT_EQ(logits[0], -std::numeric_limits<float>::infinity());
}

}  // namespace
}  // namespace strata::serve
