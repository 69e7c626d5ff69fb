// Shape presets of real models (from their published configs) and tiny ones
// for tests, as hyper-parameters that `strata mkmodel` writes.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "runtime/model/arch.h"

namespace strata::synth {

struct Preset {
  std::string_view name;
  std::string_view description;
  HParams hp;
};

const std::vector<Preset>& presets();
const Preset* find_preset(std::string_view name);
std::string preset_list();  // names, comma-separated, for help and errors

}  // namespace strata::synth
