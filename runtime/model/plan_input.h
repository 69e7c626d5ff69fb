// The planner's description (offload/model_desc.h) of a GGUF model: its
// metadata and tensor table only, no weights read. `strata plan -m FILE`
// reports on it; `strata serve` places the model it serves by the same plan.
#pragma once

#include <string>

#include "offload/model_desc.h"
#include "runtime/base/status.h"
#include "runtime/gguf/gguf_reader.h"

namespace strata {

Result<ModelDesc> model_desc_from_gguf(const gguf::GgufModel& file, const std::string& path);
Result<ModelDesc> model_desc_from_gguf(const std::string& path);

}  // namespace strata
