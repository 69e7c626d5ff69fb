// The strata command line: one executable, one subcommand per use.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <new>

#include "tools/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"strata: run Mixture-of-Experts models larger than the GPU on one workstation"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "strata 0.1.0");
  strata::tools::register_inspect(app);
  strata::tools::register_mkmodel(app);
  strata::tools::register_chat_template(app);
  strata::tools::register_tokenize(app);
  strata::tools::register_run(app);
  strata::tools::register_chat(app);
  strata::tools::register_perplexity(app);
  strata::tools::register_bench(app);
  strata::tools::register_plan(app);
  strata::tools::register_serve(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "strata: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    // Commands report errors as Status; reaching here is a bug, still one line.
    std::fprintf(stderr, "strata: error: internal: %s\n", e.what());
    return 1;
  }
  return strata::tools::exit_code();
}
