// `strata chat-template`: render a conversation through a model's (or a
// file's) chat template and print the prompt exactly, with no newline added.
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/chat/chat_template.h"
#include "runtime/gguf/gguf_reader.h"
#include "tools/commands.h"

namespace strata::tools {
namespace {

using json = nlohmann::ordered_json;

struct ChatTemplateOptions {
  std::string model_path;
  std::string template_path;
  std::string messages_path;
  std::string tools_path;
  std::string variant;
  std::string bos;
  std::string eos;
  bool bos_set = false;
  bool eos_set = false;
  bool no_generation_prompt = false;
  std::vector<std::string> vars;
};

Result<std::string> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return io_error("cannot open " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return io_error("cannot read " + path);
  return ss.str();
}

Result<json> read_json(const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(std::string text, read_file(path));
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return invalid_argument("expected JSON in " + path + ", got text that does not parse");
  return j;
}

Status run(const ChatTemplateOptions& opt) {
  if (opt.model_path.empty() == opt.template_path.empty()) {
    return invalid_argument("expected exactly one of -m FILE.gguf or --template FILE.jinja");
  }
  std::string source;
  chat::ChatTemplateInputs in;
  if (!opt.model_path.empty()) {
    STRATA_ASSIGN_OR_RETURN(auto model, gguf::GgufModel::open(opt.model_path));
    STRATA_ASSIGN_OR_RETURN(auto mt, chat::model_chat_template(model, opt.variant));
    if (!mt.warning.empty()) std::fprintf(stderr, "strata: warning: %s\n", mt.warning.c_str());
    source = std::move(mt.source);
    in.bos_token = std::move(mt.bos_token);
    in.eos_token = std::move(mt.eos_token);
  } else {
    if (!opt.variant.empty()) return invalid_argument("--variant applies to -m models only");
    STRATA_ASSIGN_OR_RETURN(source, read_file(opt.template_path));
  }
  if (opt.bos_set) in.bos_token = opt.bos;
  if (opt.eos_set) in.eos_token = opt.eos;

  STRATA_ASSIGN_OR_RETURN(json conv, read_json(opt.messages_path));
  // A bare array of messages, or {"messages": [...], "tools": [...], ...more variables}.
  if (conv.is_object()) {
    for (auto& [k, v] : conv.items()) {
      if (k == "messages") {
        in.messages = v;
      } else if (k == "tools") {
        in.tools = v;
      } else if (k == "add_generation_prompt") {
        if (!v.is_boolean()) return invalid_argument("expected add_generation_prompt as true or false");
        in.add_generation_prompt = v.get<bool>();
      } else {
        in.extra[k] = v;
      }
    }
  } else {
    in.messages = std::move(conv);
  }
  if (!opt.tools_path.empty()) {
    STRATA_ASSIGN_OR_RETURN(in.tools, read_json(opt.tools_path));
  }
  if (opt.no_generation_prompt) in.add_generation_prompt = false;
  for (const auto& kv : opt.vars) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) return invalid_argument("expected --var NAME=JSON, got '" + kv + "'");
    json v = json::parse(kv.substr(eq + 1), nullptr, false);
    if (v.is_discarded()) v = kv.substr(eq + 1);  // a bare word is a string
    in.extra[kv.substr(0, eq)] = std::move(v);
  }

  STRATA_ASSIGN_OR_RETURN(auto tmpl, chat::ChatTemplate::parse(source));
  STRATA_ASSIGN_OR_RETURN(std::string prompt, tmpl.render(in));
  std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  std::fflush(stdout);
  return Status::ok();
}

}  // namespace

void register_chat_template(CLI::App& app) {
  auto opt = std::make_shared<ChatTemplateOptions>();
  CLI::App* cmd = app.add_subcommand("chat-template", "Render a conversation through a chat template and print the prompt");
  cmd->add_option("-m,--model", opt->model_path, "GGUF model whose tokenizer.chat_template to use");
  cmd->add_option("--template", opt->template_path, "Jinja2 template file instead of a model");
  cmd->add_option("--messages", opt->messages_path,
                  "JSON file: an array of messages, or an object with messages, tools and other variables")
      ->required();
  cmd->add_option("--tools", opt->tools_path, "JSON file with the tools array");
  cmd->add_flag("--no-generation-prompt", opt->no_generation_prompt, "Do not open an assistant turn at the end");
  cmd->add_option("--variant", opt->variant, "Use tokenizer.chat_template.NAME (e.g. tool_use)");
  cmd->add_option("--bos", opt->bos, "BOS token text (default: the model's)")->each([opt](const std::string&) {
    opt->bos_set = true;
  });
  cmd->add_option("--eos", opt->eos, "EOS token text (default: the model's)")->each([opt](const std::string&) {
    opt->eos_set = true;
  });
  cmd->add_option("--var", opt->vars, "Extra template variable NAME=JSON (e.g. enable_thinking=false); repeatable");
  cmd->callback([opt] {
    Status st = run(*opt);
    if (!st.is_ok()) fail(st);
  });
}

}  // namespace strata::tools
