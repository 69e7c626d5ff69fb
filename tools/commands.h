// Subcommand registration. Each command sets the process exit code through
// set_exit_code; errors are printed as one line "strata: error: ...".
#pragma once

#include <CLI/CLI.hpp>

#include "runtime/base/status.h"

namespace strata::tools {

void register_inspect(CLI::App& app);
void register_mkmodel(CLI::App& app);
void register_chat_template(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_run(CLI::App& app);
void register_chat(CLI::App& app);
void register_perplexity(CLI::App& app);
void register_bench(CLI::App& app);
void register_plan(CLI::App& app);
void register_serve(CLI::App& app);

int exit_code();
void set_exit_code(int code);
// Print "strata: error: <message>" on stderr and set exit code 1.
void fail(const Status& s);

}  // namespace strata::tools
