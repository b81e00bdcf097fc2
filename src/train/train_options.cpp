#include "train/train_options.h"

#include <cmath>
#include <cstdio>
#include <type_traits>

#include "core/error.h"

namespace kiln {
namespace {

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

template <typename T>
constexpr bool is_enum_option = std::is_enum_v<T>;

template <typename T>
nlohmann::json to_json_value(const T& field) {
  if constexpr (is_enum_option<T>) {
    return enum_name(field);
  } else {
    return field;
  }
}

}  // namespace

std::string Range::text() const {
  const bool low = std::isfinite(min), high = std::isfinite(max);
  if (low && !high) return (min_open ? "> " : ">= ") + number_text(min);
  if (!low && high) return (max_open ? "< " : "<= ") + number_text(max);
  if (!min_open && !max_open) return number_text(min) + ".." + number_text(max);
  return number_text(min) + (min_open ? " < x " : " <= x ") + (max_open ? "< " : "<= ") +
         number_text(max);
}

std::string OptionInfo::key() const {
  std::string k = name;
  for (char& c : k)
    if (c == '-') c = '_';
  return k;
}

void validate_options(const TrainOptions& options) {
  options.for_each([](const OptionInfo& info, const auto& field) {
    using T = std::decay_t<decltype(field)>;
    const std::string flag = std::string("--") + info.name;
    if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
      const double v = static_cast<double>(field);
      if (!info.range.contains(v))
        fail_input(flag, "out of range", info.range.text(), number_text(v));
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      if (info.required && field.empty())
        fail_input(flag, "no value given", "one or more files or directories", "none");
    }
  });
}

nlohmann::json options_to_json(const TrainOptions& options) {
  nlohmann::json j = nlohmann::json::object();
  options.for_each(
      [&](const OptionInfo& info, const auto& field) { j[info.key()] = to_json_value(field); });
  return j;
}

std::vector<std::string> resume_mismatches(const TrainOptions& options,
                                           const nlohmann::json& state) {
  const nlohmann::json* recorded =
      state.contains("options") && state["options"].is_object() ? &state["options"] : &state;
  std::vector<std::string> mismatches;
  options.for_each([&](const OptionInfo& info, const auto& field) {
    if (info.resume != OnResume::must_match || !recorded->contains(info.key())) return;
    const nlohmann::json now = to_json_value(field), then = (*recorded)[info.key()];
    if (now != then)
      mismatches.push_back(std::string("--") + info.name + " " + now.dump() +
                           " (checkpoint: " + then.dump() + ")");
  });
  return mismatches;
}

}  // namespace kiln
