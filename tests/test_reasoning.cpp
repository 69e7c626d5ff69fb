// Reasoning splitting: <think> blocks whole, split at every byte and fed
// byte by byte; outputs that start inside the block; template and prompt
// detection on the real templates.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/serve/reasoning.h"

namespace strata::serve {
namespace {

namespace fs = std::filesystem;

ReasoningDelta everywhere(const std::string& text, bool starts_in) {
  const ReasoningDelta whole = split_reasoning(text, starts_in);
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    ReasoningParser p(starts_in);
    ReasoningDelta a = p.push(std::string_view(text).substr(0, cut));
    const ReasoningDelta b = p.push(std::string_view(text).substr(cut));
    const ReasoningDelta c = p.finish();
    EXPECT_EQ(a.reasoning + b.reasoning + c.reasoning, whole.reasoning) << "split at " << cut << ": " << text;
    EXPECT_EQ(a.content + b.content + c.content, whole.content) << "split at " << cut << ": " << text;
  }
  ReasoningParser p(starts_in);
  std::string r, c;
  for (char ch : text) {
    const ReasoningDelta d = p.push(std::string_view(&ch, 1));
    r += d.reasoning;
    c += d.content;
  }
  const ReasoningDelta d = p.finish();
  EXPECT_EQ(r + d.reasoning, whole.reasoning);
  EXPECT_EQ(c + d.content, whole.content);
  return whole;
}

TEST(Reasoning, Qwen3Style) {
  const auto d = everywhere("<think>\nThe user asks 2+2.\nIt is 4.\n</think>\n\nThe answer is 4.", false);
  EXPECT_EQ(d.reasoning, "The user asks 2+2.\nIt is 4.");
  EXPECT_EQ(d.content, "The answer is 4.");
  const auto empty = everywhere("<think>\n\n</think>\n\nHi", false);
  EXPECT_EQ(empty.reasoning, "");
  EXPECT_EQ(empty.content, "Hi");
}

TEST(Reasoning, StartsInsideTheBlock) {
  const auto d = everywhere("Okay, so 1 < 2 and </thin is not a tag.\n</think>\n\n**Yes.** <think> stays", true);
  EXPECT_EQ(d.reasoning, "Okay, so 1 < 2 and </thin is not a tag.");
  EXPECT_EQ(d.content, "**Yes.** <think> stays");
  const auto cut = everywhere("\nstill thinking when max_tokens hit  \n", true);
  EXPECT_EQ(cut.reasoning, "still thinking when max_tokens hit");
  EXPECT_EQ(cut.content, "");
  const auto partial = everywhere("thinking </thi", true);
  EXPECT_EQ(partial.reasoning, "thinking </thi");
}

TEST(Reasoning, NoBlock) {
  const auto d = everywhere("  Plain answer with <think> later.", false);
  EXPECT_EQ(d.reasoning, "");
  EXPECT_EQ(d.content, "  Plain answer with <think> later.");
  const auto lt = everywhere("<thin", false);
  EXPECT_EQ(lt.content, "<thin");
  const auto ws = everywhere(" \n", false);
  EXPECT_EQ(ws.content, " \n");
  const auto never_closed = everywhere("<think>deep", false);
  EXPECT_EQ(never_closed.reasoning, "deep");
}

TEST(Reasoning, TemplatesAndPrompts) {
  const fs::path dir = fs::path(STRATA_SHARED_DIR) / "data" / "templates";
  auto read = [&](const char* name) {
    std::ifstream in(dir / name, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  EXPECT_TRUE(template_has_reasoning(read("Qwen-Qwen3-0.6B.jinja")));
  EXPECT_TRUE(template_has_reasoning(read("llama-cpp-deepseek-r1.jinja")));
  EXPECT_TRUE(template_has_reasoning(read("deepseek-ai-DeepSeek-V3.1.jinja")));
  EXPECT_FALSE(template_has_reasoning(read("Qwen-Qwen2.5-7B-Instruct.jinja")));
  EXPECT_FALSE(template_has_reasoning(read("meta-llama-Llama-3.1-8B-Instruct.jinja")));
  EXPECT_TRUE(prompt_opens_reasoning("<｜User｜>hi<｜Assistant｜><think>\n"));
  EXPECT_FALSE(prompt_opens_reasoning("<｜User｜>hi<｜Assistant｜><think>\n</think>"));
  EXPECT_FALSE(prompt_opens_reasoning("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
  EXPECT_FALSE(prompt_opens_reasoning("<|im_start|>assistant\n"));
}

}  // namespace
}  // namespace strata::serve
