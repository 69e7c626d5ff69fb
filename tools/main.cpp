// The strata command line: one executable, one subcommand per use.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "tools/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"strata: run Mixture-of-Experts models larger than the GPU on one workstation"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "strata 0.1.0");
  strata::tools::register_inspect(app);
  strata::tools::register_mkmodel(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return strata::tools::exit_code();
}
