// `strata tokenize -m FILE -p TEXT`: the token ids a model's tokenizer gives
// for a text, one `id -> 'piece'` per line (like llama.cpp's llama-tokenize),
// or only the ids / only the pieces.
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "runtime/gguf/gguf_reader.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/tokenizer/unicode.h"
#include "tools/commands.h"

namespace strata::tools {
namespace {

struct TokenizeOptions {
  std::string model_path;
  std::string prompt;
  std::string prompt_file;
  bool ids = false;
  bool pieces = false;
  bool no_bos = false;
  bool parse_special = false;
};

// A piece quoted for one terminal line: UTF-8 characters are kept, quotes
// and backslashes escaped, control characters and bytes that are not UTF-8
// (a token may hold part of a character) written as \n, \t, \r or \xNN.
std::string escape_piece(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    const size_t n = unicode::decode_utf8(s, i, &cp);
    const bool invalid = cp == unicode::kReplacement && n == 1;
    if (!invalid && n > 1 && unicode::category(cp) != unicode::kCc) {
      out.append(s.substr(i, n));
    } else if (!invalid && cp >= 0x20 && cp < 0x7F) {
      if (cp == '\'' || cp == '\\') out.push_back('\\');
      out.push_back(static_cast<char>(cp));
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp == '\r') {
      out += "\\r";
    } else {
      for (size_t k = 0; k < n; ++k) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(s[i + k]));
        out += buf;
      }
    }
    i += n;
  }
  return out;
}

void run_tokenize(const TokenizeOptions& opt) {
  std::string text = opt.prompt;
  if (!opt.prompt_file.empty()) {
    std::ifstream in(opt.prompt_file, std::ios::binary);
    if (!in) return fail(not_found(opt.prompt_file + ": cannot open the prompt file"));
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  auto model = gguf::GgufModel::open(opt.model_path);
  if (!model.is_ok()) return fail(model.status());
  auto tok = Tokenizer::from_gguf(*model);
  if (!tok.is_ok()) return fail(Status(tok.status().code(), opt.model_path + ": " + tok.status().message()));

  const auto ids = tok->tokenize(text, {.add_special = !opt.no_bos, .parse_special = opt.parse_special});
  std::string out;
  if (opt.ids || opt.pieces) {
    out += "[";
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) out += ", ";
      if (opt.ids) {
        out += std::to_string(ids[i]);
      } else {
        out += "'" + escape_piece(tok->piece(ids[i], true)) + "'";
      }
    }
    out += "]\n";
  } else {
    char num[16];
    for (TokenId id : ids) {
      std::snprintf(num, sizeof num, "%6d", id);
      out += std::string(num) + " -> '" + escape_piece(tok->piece(id, true)) + "'\n";
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto opt = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Show the tokens a model's tokenizer makes of a text");
  cmd->add_option("-m,--model", opt->model_path, "GGUF model or vocabulary file (for a split model, any part)")
      ->required();
  auto* p = cmd->add_option("-p,--prompt", opt->prompt, "Text to tokenize (taken as is: no escape processing)");
  auto* f = cmd->add_option("-f,--file", opt->prompt_file, "Read the text from a file");
  p->excludes(f);
  f->excludes(p);
  auto* ids = cmd->add_flag("--ids", opt->ids, "Print only the ids, as [1, 2, 3]");
  auto* pieces = cmd->add_flag("--pieces", opt->pieces, "Print only the pieces, as ['a', 'b']");
  ids->excludes(pieces);
  pieces->excludes(ids);
  cmd->add_flag("--no-bos", opt->no_bos, "Do not add BOS/EOS even where the vocabulary asks for them");
  cmd->add_flag("--parse-special", opt->parse_special,
                "Turn control-token text such as <|im_end|> into those tokens");
  cmd->callback([opt, p, f] {
    if (p->count() == 0 && f->count() == 0) return fail(invalid_argument("tokenize: give the text with -p TEXT or -f FILE"));
    run_tokenize(*opt);
  });
}

}  // namespace strata::tools
