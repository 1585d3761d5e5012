#pragma once
/// Builds a `/metrics` body in Prometheus' text exposition format (version 0.0.4): each
/// family's `# HELP` and `# TYPE` lines once, then its samples.

#include <cstdint>
#include <string>
#include <string_view>

namespace prov::gateway {

class metrics_text {
 public:
  /// Starts a family (`type`: "counter" or "gauge"); its samples follow.
  metrics_text& family(std::string_view name, std::string_view type, std::string_view help);
  /// One sample; `labels` is empty or a label set such as `cluster="a"` (without braces).
  metrics_text& sample(std::string_view name, std::string_view labels, std::uint64_t value);
  /// A family with a single unlabelled sample.
  metrics_text& single(std::string_view name, std::string_view type, std::string_view help, std::uint64_t value) {
    return family(name, type, help).sample(name, {}, value);
  }
  /// Appends text built elsewhere (already in the format).
  metrics_text& raw(std::string_view text) {
    _out.append(text);
    return *this;
  }

  std::string take() { return std::move(_out); }

 private:
  std::string _out;
};

}  // namespace prov::gateway
