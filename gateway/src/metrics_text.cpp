#include "prov/gateway/metrics_text.hpp"

namespace prov::gateway {

metrics_text& metrics_text::family(std::string_view name, std::string_view type, std::string_view help) {
  _out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  _out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
  return *this;
}

metrics_text& metrics_text::sample(std::string_view name, std::string_view labels, std::uint64_t value) {
  _out.append(name);
  if (!labels.empty()) {
    _out.append("{").append(labels).append("}");
  }
  _out.append(" ").append(std::to_string(value)).append("\n");
  return *this;
}

}  // namespace prov::gateway
