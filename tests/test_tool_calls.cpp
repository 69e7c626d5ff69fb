// Tool-call parsing: the assistant turns that the real chat templates in
// ../shared/data/templates render for a message with tool_calls are parsed
// back to the same calls; hand-written outputs of every family with content,
// several calls and malformed calls; every result the same whole, split at
// every byte position, and fed byte by byte.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "runtime/chat/chat_template.h"
#include "runtime/serve/json_schema.h"
#include "runtime/serve/reasoning.h"
#include "runtime/serve/tool_calls.h"

namespace strata::serve {
namespace {

using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

const fs::path kTemplates = fs::path(STRATA_SHARED_DIR) / "data" / "templates";

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Checks the delta protocol and folds the chunks of one stream.
struct Folder {
  ParsedToolCalls result;
  std::set<size_t> started;
  void add(const ToolCallChunk& c) {
    for (const ToolCallDelta& d : c.calls) {
      if (!started.count(d.index)) {
        EXPECT_EQ(d.index, started.size()) << "indices start in order";
        EXPECT_FALSE(d.id.empty());
        EXPECT_FALSE(d.name.empty());
        EXPECT_TRUE(d.arguments.empty());
        started.insert(d.index);
      } else {
        EXPECT_TRUE(d.id.empty() && d.name.empty()) << "id and name only in the first delta";
      }
    }
    append_chunk(result, c);
  }
};

void expect_same(const ParsedToolCalls& a, const ParsedToolCalls& b, const std::string& where) {
  EXPECT_EQ(a.content, b.content) << where;
  ASSERT_EQ(a.calls.size(), b.calls.size()) << where;
  for (size_t i = 0; i < a.calls.size(); ++i) {
    EXPECT_EQ(a.calls[i].id, b.calls[i].id) << where;
    EXPECT_EQ(a.calls[i].name, b.calls[i].name) << where;
    EXPECT_EQ(a.calls[i].arguments, b.calls[i].arguments) << where;
  }
}

// The whole parse, checked against every two-piece split and a byte-by-byte feed.
ParsedToolCalls parse_everywhere(ToolCallFormat f, const std::string& text) {
  const ParsedToolCalls whole = parse_tool_calls(f, text, 42);
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    ToolCallParser p(f, 42);
    Folder fold;
    fold.add(p.push(std::string_view(text).substr(0, cut)));
    fold.add(p.push(std::string_view(text).substr(cut)));
    fold.add(p.finish());
    expect_same(fold.result, whole, std::string(tool_call_format_name(f)) + " split at " + std::to_string(cut));
    if (::testing::Test::HasFailure()) return whole;
  }
  ToolCallParser p(f, 42);
  Folder fold;
  for (char c : text) fold.add(p.push(std::string_view(&c, 1)));
  fold.add(p.finish());
  expect_same(fold.result, whole, "byte by byte");
  EXPECT_EQ(p.n_calls(), whole.calls.size());
  return whole;
}

void expect_call(const ToolCall& c, const std::string& name, const std::string& args_json) {
  EXPECT_EQ(c.name, name);
  const ojson got = ojson::parse(c.arguments, nullptr, false);
  ASSERT_FALSE(got.is_discarded()) << c.arguments;
  EXPECT_EQ(nlohmann::json::parse(c.arguments), nlohmann::json::parse(args_json)) << c.arguments;
}

struct TemplateCase {
  std::string file;
  ToolCallFormat format;
  std::string open;  // the assistant turn starts after the last occurrence of this
  std::string end;   // and ends before this
  size_t n_calls;
  bool null_content = false;  // the template shows "" content as an empty turn of its own
};

TEST(ToolCalls, TemplatesRoundTrip) {
  const std::vector<TemplateCase> cases = {
      {"Qwen-Qwen3-0.6B.jinja", ToolCallFormat::kHermes, "<|im_start|>assistant\n", "<|im_end|>", 2},
      {"Qwen-Qwen2.5-7B-Instruct.jinja", ToolCallFormat::kHermes, "<|im_start|>assistant", "<|im_end|>", 2},
      {"deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", ToolCallFormat::kDeepSeek, "<｜Assistant｜>",
       "<｜end▁of▁sentence｜>", 2, true},
      {"llama-cpp-deepseek-r1.jinja", ToolCallFormat::kDeepSeek, "<｜Assistant｜>", "<｜end▁of▁sentence｜>", 2},
      {"deepseek-ai-DeepSeek-V3.1.jinja", ToolCallFormat::kDeepSeek, "<｜Assistant｜>", "<｜end▁of▁sentence｜>", 2},
      {"moonshotai-Kimi-K2.jinja", ToolCallFormat::kKimiK2, "<|im_assistant|>assistant<|im_middle|>", "<|im_end|>", 2},
      {"meta-llama-Llama-3.1-8B-Instruct.jinja", ToolCallFormat::kLlama3,
       "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>", 1},
      {"mistralai-Mistral-Nemo-Instruct-2407.jinja", ToolCallFormat::kMistral, "[/INST]", "</s>", 2},
  };
  const ojson tools = ojson::parse(R"([{"type":"function","function":{"name":"get_weather","description":"Weather",
      "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}])");
  const ojson calls = ojson::parse(R"([
      {"id":"abcDEF123","type":"function","function":{"name":"get_weather","arguments":{"city":"Paris \"<&>\"","days":2}}},
      {"id":"xyzXYZ789","type":"function","function":{"name":"get_time","arguments":{"zone":"Europe/Paris","fmt":[1,{"a":null}]}}}])");
  for (const TemplateCase& tc : cases) {
    SCOPED_TRACE(tc.file);
    const std::string source = read_file(kTemplates / tc.file);
    ASSERT_FALSE(source.empty());
    EXPECT_EQ(detect_tool_call_format(source), tc.format);
    auto tmpl = chat::ChatTemplate::parse(source);
    ASSERT_TRUE(tmpl.is_ok()) << tmpl.status().to_string();
    chat::ChatTemplateInputs in;
    ojson tc_calls = ojson::array();
    for (size_t i = 0; i < tc.n_calls; ++i) tc_calls.push_back(calls[i]);
    in.messages = ojson::array({{{"role", "user"}, {"content", "What is the weather in Paris?"}},
                                {{"role", "assistant"}, {"content", tc.null_content ? ojson() : ojson("")}, {"tool_calls", tc_calls}}});
    // Tools only change the system part (and llama.cpp's R1 template maps them
    // in a way jinja2 itself cannot serialize); the assistant turn is what counts.
    in.tools = tc.file == "llama-cpp-deepseek-r1.jinja" ? ojson() : tools;
    in.add_generation_prompt = false;
    in.bos_token = "<s>";
    in.eos_token = "</s>";
    auto rendered = tmpl->render(in);
    ASSERT_TRUE(rendered.is_ok()) << rendered.status().to_string();
    const size_t open = rendered->rfind(tc.open);
    ASSERT_NE(open, std::string::npos) << *rendered;
    std::string turn = rendered->substr(open + tc.open.size());
    const size_t end = turn.rfind(tc.end);
    ASSERT_NE(end, std::string::npos) << turn;
    turn.resize(end);
    // Templates of reasoning models put an (empty) think block first.
    const ReasoningDelta split = split_reasoning(turn);
    EXPECT_EQ(split.reasoning, "");
    const ParsedToolCalls got = parse_everywhere(tc.format, split.content);
    EXPECT_EQ(got.content, "") << turn;
    ASSERT_EQ(got.calls.size(), tc.n_calls) << turn;
    expect_call(got.calls[0], "get_weather", R"({"city":"Paris \"<&>\"","days":2})");
    if (tc.n_calls > 1) expect_call(got.calls[1], "get_time", R"({"zone":"Europe/Paris","fmt":[1,{"a":null}]})");
  }
}

TEST(ToolCalls, DetectByArchitecture) {
  EXPECT_EQ(detect_tool_call_format("", "qwen3moe"), ToolCallFormat::kHermes);
  EXPECT_EQ(detect_tool_call_format("", "deepseek2"), ToolCallFormat::kDeepSeek);
  EXPECT_EQ(detect_tool_call_format("", "llama"), ToolCallFormat::kNone);
  EXPECT_EQ(detect_tool_call_format(read_file(kTemplates / "google-gemma-2-2b-it.jinja"), "gemma2"),
            ToolCallFormat::kNone);
}

TEST(ToolCalls, HermesWithContentAndIds) {
  const std::string text =
      "Let me look that up.\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n"
      "</tool_call>\n<tool_call>\n{\"name\": \"noargs\"}\n</tool_call>\n";
  const ParsedToolCalls r = parse_everywhere(ToolCallFormat::kHermes, text);
  EXPECT_EQ(r.content, "Let me look that up.");
  ASSERT_EQ(r.calls.size(), 2u);
  expect_call(r.calls[0], "get_weather", R"({"city":"Oslo"})");
  expect_call(r.calls[1], "noargs", "{}");
  EXPECT_EQ(r.calls[0].id.substr(0, 5), "call_");
  EXPECT_EQ(r.calls[0].id.size(), 29u);
  EXPECT_NE(r.calls[0].id, r.calls[1].id);
  EXPECT_NE(parse_tool_calls(ToolCallFormat::kHermes, text, 7).calls[0].id, r.calls[0].id);  // seeded
  // A model that stops before </tool_call>: a body that parses is a call.
  const ParsedToolCalls open = parse_everywhere(ToolCallFormat::kHermes, "<tool_call>{\"name\":\"f\",\"arguments\":{}}");
  ASSERT_EQ(open.calls.size(), 1u);
  // Text around and between calls that is not whitespace stays.
  const ParsedToolCalls mid = parse_everywhere(
      ToolCallFormat::kHermes, "a <tool_call>{\"name\":\"f\"}</tool_call> b <tool_call>{\"name\":\"g\"}</tool_call>");
  EXPECT_EQ(mid.content, "ab");
  EXPECT_EQ(mid.calls.size(), 2u);
}

TEST(ToolCalls, MalformedCallsAreContent) {
  struct Case {
    ToolCallFormat f;
    std::string text;
  };
  const std::vector<Case> cases = {
      {ToolCallFormat::kHermes, "<tool_call>\n{\"name\": \"f\", \"arguments\": {oops}}\n</tool_call>"},
      {ToolCallFormat::kHermes, "<tool_call>{\"arguments\": {}}</tool_call>"},              // no name
      {ToolCallFormat::kHermes, "<tool_call>{\"name\": \"f\", \"arguments\": [1]}</tool_call>"},  // not an object
      {ToolCallFormat::kHermes, "<tool_call>{\"name\": \"f\", \"argu"},                          // cut off
      {ToolCallFormat::kDeepSeek, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{\"a\": }\n```"
                                  "<｜tool▁call▁end｜><｜tool▁calls▁end｜>"},
      {ToolCallFormat::kDeepSeek, "<｜tool▁call▁begin｜>no separator<｜tool▁call▁end｜>"},
      {ToolCallFormat::kDeepSeek, "<｜tool▁call▁begin｜>f<｜tool▁sep｜>{\"a\":1}"},  // never ended
      {ToolCallFormat::kKimiK2, "<|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{x}<|tool_call_end|>"},
      {ToolCallFormat::kLlama3, "{\"name\": \"f\", \"parameters\": {\"a\": 1}"},  // unbalanced
      {ToolCallFormat::kLlama3, "{\"title\": \"not a call\"}"},
      {ToolCallFormat::kLlama3, "<|python_tag|>brave_search.call(query=\"x\")"},
      {ToolCallFormat::kMistral, "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"a\": 1}}, {\"arguments\": {}}]"},
      {ToolCallFormat::kMistral, "[TOOL_CALLS]bad name[ARGS]{}"},
      {ToolCallFormat::kMistral, "[TOOL_CALLS]f[ARGS]{\"a\": tru}"},
  };
  for (const Case& c : cases) {
    const ParsedToolCalls r = parse_everywhere(c.f, c.text);
    EXPECT_TRUE(r.calls.empty()) << c.text;
    EXPECT_EQ(r.content, c.text);
  }
  // A malformed call does not stop a good one after it.
  const ParsedToolCalls r = parse_everywhere(
      ToolCallFormat::kHermes, "<tool_call>{bad}</tool_call>\n<tool_call>{\"name\":\"g\",\"arguments\":{}}</tool_call>");
  EXPECT_EQ(r.content, "<tool_call>{bad}</tool_call>");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].name, "g");
}

TEST(ToolCalls, OtherFamilies) {
  // DeepSeek-V3.1 form, with text before.
  ParsedToolCalls r = parse_everywhere(ToolCallFormat::kDeepSeek,
                                       "Sure.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>"
                                       "{\"city\": \"Rome\"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>");
  EXPECT_EQ(r.content, "Sure.");
  ASSERT_EQ(r.calls.size(), 1u);
  expect_call(r.calls[0], "get_weather", R"({"city":"Rome"})");
  // Llama: after <|python_tag|>, and two calls separated by ';'.
  r = parse_everywhere(ToolCallFormat::kLlama3,
                       "<|python_tag|>{\"name\": \"a\", \"parameters\": {\"x\": \"}{\"}}; {\"name\": \"b\", \"parameters\": {}}");
  ASSERT_EQ(r.calls.size(), 2u);
  expect_call(r.calls[0], "a", R"({"x":"}{"})");
  EXPECT_EQ(r.content, "");
  // Llama: plain text stays plain, even with JSON later on.
  r = parse_everywhere(ToolCallFormat::kLlama3, "  The answer is {\"name\": \"a\"}.");
  EXPECT_EQ(r.content, "  The answer is {\"name\": \"a\"}.");
  EXPECT_TRUE(r.calls.empty());
  // Mistral: the newer NAME[ARGS] form, and ids of 9 alphanumerics.
  r = parse_everywhere(ToolCallFormat::kMistral,
                       "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Nice\"}[TOOL_CALLS]get_time[CALL_ID]a1[ARGS]{}");
  ASSERT_EQ(r.calls.size(), 2u);
  expect_call(r.calls[1], "get_time", "{}");
  EXPECT_EQ(r.calls[0].id.size(), 9u);
  // No format: everything is content.
  r = parse_everywhere(ToolCallFormat::kNone, "<tool_call>{\"name\":\"f\"}</tool_call>");
  EXPECT_TRUE(r.calls.empty());
  // Marker prefixes that never complete are released as content.
  r = parse_everywhere(ToolCallFormat::kHermes, "a <tool_cal");
  EXPECT_EQ(r.content, "a <tool_cal");
}

TEST(ToolCalls, ForcedNamedStreamsArgumentsUnderOneId) {
  ToolCallParser p = ToolCallParser::forced(ToolCallFormat::kHermes, 7, "get_weather");
  ToolCallChunk a = p.push("{\"city\": ");
  ASSERT_EQ(a.calls.size(), 2u);
  EXPECT_EQ(a.calls[0].name, "get_weather");
  EXPECT_EQ(a.calls[0].id.rfind("call_", 0), 0u);
  EXPECT_EQ(a.calls[0].arguments, "");
  EXPECT_EQ(a.calls[1].arguments, "{\"city\": ");
  EXPECT_TRUE(a.calls[1].id.empty() && a.calls[1].name.empty());
  ToolCallChunk b = p.push("\"Oslo\"}");
  ASSERT_EQ(b.calls.size(), 1u);
  EXPECT_TRUE(b.calls[0].id.empty());
  EXPECT_EQ(b.calls[0].arguments, "\"Oslo\"}");
  EXPECT_TRUE(p.finish().calls.empty());
  EXPECT_EQ(p.n_calls(), 1u);
  EXPECT_TRUE(a.content.empty() && b.content.empty());
  // An answer that produced nothing still is the named call (id and name).
  ToolCallParser q = ToolCallParser::forced(ToolCallFormat::kHermes, 7, "get_weather");
  ToolCallChunk e = q.finish();
  ASSERT_EQ(e.calls.size(), 1u);
  EXPECT_EQ(e.calls[0].name, "get_weather");
}

TEST(ToolCalls, ForcedRequiredDecidesAtFinish) {
  ToolCallParser p = ToolCallParser::forced(ToolCallFormat::kMistral, 3, "");
  EXPECT_TRUE(p.push("{\"name\": \"get_time\", ").calls.empty());
  EXPECT_TRUE(p.push("\"arguments\": {\"zone\": \"UTC\"}}").calls.empty());
  ParsedToolCalls got;
  append_chunk(got, p.finish());
  ASSERT_EQ(got.calls.size(), 1u);
  EXPECT_EQ(got.calls[0].name, "get_time");
  EXPECT_EQ(got.calls[0].arguments, "{\"zone\":\"UTC\"}");
  EXPECT_EQ(got.calls[0].id.size(), 9u);  // Mistral's ids
  EXPECT_TRUE(got.content.empty());
  // Cut short: what was written is content, not a call.
  ToolCallParser cut = ToolCallParser::forced(ToolCallFormat::kHermes, 3, "");
  cut.push("{\"name\": \"get_t");
  ToolCallChunk c = cut.finish();
  EXPECT_TRUE(c.calls.empty());
  EXPECT_EQ(c.content, "{\"name\": \"get_t");
}

TEST(ToolCalls, ForcedToolCallSchemas) {
  const nlohmann::json tools = nlohmann::json::parse(R"([
    {"type": "function", "function": {"name": "a", "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}},
    {"type": "function", "function": {"name": "b"}}])");
  for (const char* c : {"null", "\"auto\"", "\"none\""}) {
    auto r = forced_tool_call(tools, nlohmann::json::parse(c));
    ASSERT_TRUE(r.is_ok()) << c;
    EXPECT_FALSE(r.value().has_value()) << c;
  }
  auto named = forced_tool_call(tools, nlohmann::json::parse(R"({"type": "function", "function": {"name": "a"}})"));
  ASSERT_TRUE(named.is_ok() && named.value());
  EXPECT_EQ(named.value()->name, "a");
  EXPECT_EQ(named.value()->schema, tools[0]["function"]["parameters"]);
  auto no_params = forced_tool_call(tools, nlohmann::json::parse(R"({"type": "function", "function": {"name": "b"}})"));
  ASSERT_TRUE(no_params.is_ok() && no_params.value());
  EXPECT_EQ(no_params.value()->schema, nlohmann::json({{"type", "object"}}));
  auto req = forced_tool_call(tools, "required");
  ASSERT_TRUE(req.is_ok() && req.value());
  EXPECT_TRUE(req.value()->name.empty());
  const nlohmann::json& any = req.value()->schema.at("anyOf");
  ASSERT_EQ(any.size(), 2u);
  EXPECT_EQ(any[0]["properties"]["name"]["const"], "a");
  EXPECT_EQ(any[1]["properties"]["arguments"], nlohmann::json({{"type", "object"}}));
  EXPECT_EQ(any[0]["additionalProperties"], false);
  // The schemas compile to constraints (the server refuses those that do not).
  EXPECT_TRUE(compile_json_schema(req.value()->schema).is_ok());
  auto missing = forced_tool_call(tools, nlohmann::json::parse(R"({"type": "function", "function": {"name": "c"}})"));
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("'c' is not among the tools"), std::string::npos);
  auto none = forced_tool_call(nlohmann::json(), "required");
  ASSERT_FALSE(none.is_ok());
  EXPECT_NE(none.status().message().find("needs tools"), std::string::npos);
}

}  // namespace
}  // namespace strata::serve
