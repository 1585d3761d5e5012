#include "prov/gateway/commands.hpp"

#include "detail/parse.hpp"

namespace prov::gateway {

result<actors::submit_command> parse_submit_command(const nlohmann::json& body, const std::string& tenant) {
  return detail::parse_submit(body, tenant);
}

result<actors::manual_input> parse_manual_input_command(const nlohmann::json& body) {
  return detail::parse_manual_input(body);
}

result<std::string> parse_command_reason(const std::string& body, bool required) {
  return detail::parse_reason(body, required);
}

}  // namespace prov::gateway
