// Hardware files: a machine described in YAML or JSON (one schema, see
// docs/hardware-file.md) turned into a HardwareProfile with nominal figures
// from the parts catalog, so the planner can answer "what would this box do"
// before it exists. Also the profile's own JSON form (the calibration cache
// and `--json` reports).
#pragma once

#include <string>

#include "offload/hardware.h"
#include "runtime/base/status.h"

namespace strata {

// Reads a hardware file (YAML, or JSON through the same parser) and builds
// its profile: CPU, memory and NVMe from catalog names or explicit fields,
// NUMA layout from `sockets`/`numa_per_socket` or an hwloc XML `topology`
// (relative to the file), nominal rates with ranges and sources, then the
// file's `overrides`. Errors are one line:
//   "a.yaml: memory.channels: expected an integer 1..16, got \"twelve\" (line 7)"
// naming the file, the field path and what was expected; unknown fields are
// errors. profile.name is the file's `name`, else the file name.
Result<HardwareProfile> load_hardware(const std::string& path);

// Same from text; `file` names the source in errors and `base_dir` resolves
// a relative `topology:` path.
Result<HardwareProfile> parse_hardware(const std::string& text, const std::string& file,
                                       const std::string& base_dir);

// A profile as JSON (every field, figures as {value, lo, hi, source}) and back.
// profile_from_json rejects unknown or mistyped fields naming `what` and the
// field path, like hardware files.
std::string profile_to_json(const HardwareProfile& p, int indent = 2);
Result<HardwareProfile> profile_from_json(const std::string& text, const std::string& what);

}  // namespace strata
