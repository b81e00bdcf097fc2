// kiln train: flag names are a contract (docs, scripts and the dashboard use them).
// The flags, their help and their order come from TrainOptions::for_each.
#include <type_traits>

#include "cli/command.h"
#include "core/error.h"
#include "train/trainer.h"

namespace kiln::cli {
namespace {

// One CLI11 option per training option: flags for bools, a list for shard
// lists, a checked name for enums, a plain value otherwise. Range checks are
// validate_options' (so every message has Kiln's form).
void add_train_flags(CLI::App& sub, TrainOptions& o) {
  o.for_each([&](const OptionInfo& info, auto& field) {
    using T = std::decay_t<decltype(field)>;
    const std::string flag = std::string("--") + info.name;
    if constexpr (std::is_same_v<T, bool>) {
      sub.add_flag(flag, field, info.help);
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      sub.add_option(flag, field, info.help)->expected(1, -1);
    } else if constexpr (std::is_enum_v<T>) {
      sub.add_option_function<std::string>(
          flag,
          [&field, flag](const std::string& text) {
            if (!parse_enum(text, &field))
              throw CLI::ValidationError(
                  format_error(flag, "unknown value", enum_choices<T>(), text));
          },
          std::string(info.help) + ": " + enum_choices<T>() + " (default " + enum_name(field) +
              ")");
    } else {
      sub.add_option(flag, field, info.help)->capture_default_str();
    }
  });
}

RegisterCommand train_command({"train",
                               "Train a model (from scratch, a checkpoint or a llama2.c .bin)",
                               [](CLI::App& sub) -> std::function<int()> {
                                 auto o = std::make_shared<TrainOptions>();
                                 add_train_flags(sub, *o);
                                 return [o]() { return run_training(*o); };
                               }});

}  // namespace
}  // namespace kiln::cli
