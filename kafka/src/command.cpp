#include "prov/kafka/command.hpp"

#include <array>
#include <set>

#include "prov/core/ids.hpp"
#include "prov/events/codec.hpp"
#include "prov/events/request.hpp"
#include "prov/gateway/commands.hpp"

namespace prov::kafka {

using nlohmann::json;

namespace {

constexpr std::size_t max_correlation_id = 256;
constexpr std::size_t max_idempotency_key = 255;

constexpr std::array<std::pair<std::string_view, command_type>, 8> type_names{{
    {"create", command_type::create},
    {"approve", command_type::approve},
    {"reject", command_type::reject},
    {"suspend", command_type::suspend},
    {"reactivate", command_type::reactivate},
    {"deprovision", command_type::deprovision},
    {"cancel", command_type::cancel},
    {"manual-input", command_type::manual_input},
}};

std::optional<command_type> type_of(std::string_view name) {
  for (const auto& [n, t] : type_names) {
    if (n == name) {
      return t;
    }
  }
  return std::nullopt;
}

bool printable(const std::string& s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      return false;
    }
  }
  return true;
}

// A string member: nullopt if absent or null; an error if present and not a fitting string.
result<std::optional<std::string>> text(const json& obj, const char* name, std::size_t max_len) {
  const auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) {
    return std::optional<std::string>{};
  }
  if (!it->is_string()) {
    return make_error(errc::invalid_argument, std::string{name} + " must be a string");
  }
  const auto& s = it->get_ref<const std::string&>();
  if (s.empty() || s.size() > max_len || !printable(s)) {
    return make_error(errc::invalid_argument, std::string{name} + " must be 1 to " + std::to_string(max_len) +
                                                  " printable characters");
  }
  return std::optional<std::string>{s};
}

// Every member of `obj` must be one of `known` (typos must not pass silently).
status only_known(const json& obj, std::initializer_list<std::string_view> known) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    bool found = false;
    for (auto k : known) {
      found = found || k == it.key();
    }
    if (!found) {
      return make_error(errc::invalid_argument, it.key() + " is not a known field of this command");
    }
  }
  return {};
}

rejected_command reject(rejected_command base, error e) {
  base.err = std::move(e);
  return base;
}

parsed_command parse_create(const json& j, std::string_view key, command cmd, rejected_command rej) {
  if (auto st = only_known(j, {"type", "correlationId", "idempotencyKey", "tenant", "request"}); !st) {
    return reject(std::move(rej), st.err());
  }
  auto tenant = text(j, "tenant", 64);
  if (!tenant) {
    return reject(std::move(rej), tenant.err());
  }
  if (!*tenant || !is_valid_id(**tenant, 64)) {
    return reject(std::move(rej), make_error(errc::invalid_argument,
                                             "tenant is required: the id of an existing tenant (letters, digits, . _ : -)"));
  }
  if (!key.empty() && key != **tenant) {
    return reject(std::move(rej), make_error(errc::forbidden, "the message key names tenant '" + std::string{key} +
                                                                  "' but the command is for tenant '" + **tenant + "'"));
  }
  auto key_field = text(j, "idempotencyKey", max_idempotency_key);
  if (!key_field) {
    return reject(std::move(rej), key_field.err());
  }
  const auto request = j.find("request");
  if (request == j.end() || !request->is_object()) {
    return reject(std::move(rej), make_error(errc::invalid_argument, "request is required: the POST /v1/requests body"));
  }
  if (const auto t = request->find("tenant"); t != request->end() && t->is_string() && t->get_ref<const std::string&>() != **tenant) {
    return reject(std::move(rej), make_error(errc::forbidden, "request.tenant '" + t->get<std::string>() +
                                                                  "' differs from the command's tenant '" + **tenant + "'"));
  }
  auto submit = gateway::parse_submit_command(*request, **tenant);
  if (!submit) {
    auto e = submit.err();
    e.message = "request: " + e.message;
    return reject(std::move(rej), std::move(e));
  }
  if (!submit->idempotency_key.empty() && *key_field && submit->idempotency_key != **key_field) {
    return reject(std::move(rej), make_error(errc::invalid_argument,
                                             "idempotencyKey and request.idempotencyKey differ; give one, or the same"));
  }
  if (submit->idempotency_key.empty()) {
    if (!*key_field) {
      return reject(std::move(rej), make_error(errc::invalid_argument,
                                               "idempotencyKey is required for create (a replayed command must not "
                                               "create a second request)"));
    }
    submit->idempotency_key = **key_field;
  }
  cmd.tenant = **tenant;
  cmd.submit = std::move(*submit);
  return cmd;
}

parsed_command parse_on_request(const json& j, std::string_view key, command cmd, rejected_command rej) {
  const bool manual = cmd.type == command_type::manual_input;
  auto known = manual ? only_known(j, {"type", "correlationId", "requestId", "tenant", "input"})
                      : only_known(j, {"type", "correlationId", "requestId", "tenant", "reason"});
  if (!known) {
    return reject(std::move(rej), known.err());
  }
  if (rej.request_id.empty() || !is_valid_id(rej.request_id, 64)) {
    return reject(std::move(rej), make_error(errc::invalid_argument, "requestId is required: the id of a request"));
  }
  auto tenant = text(j, "tenant", 64);
  if (!tenant) {
    return reject(std::move(rej), tenant.err());
  }
  if (*tenant && !key.empty() && **tenant != key) {
    return reject(std::move(rej), make_error(errc::forbidden, "the message key names tenant '" + std::string{key} +
                                                                  "' but the command is for tenant '" + **tenant + "'"));
  }
  cmd.request_id = rej.request_id;
  cmd.tenant = key.empty() ? tenant->value_or("") : std::string{key};
  if (manual) {
    const auto input = j.find("input");
    if (input == j.end() || !input->is_object()) {
      return reject(std::move(rej), make_error(errc::invalid_argument,
                                               "input is required: {\"endpoints\":{...},\"credentials\":{...}}"));
    }
    auto parsed = gateway::parse_manual_input_command(*input);
    if (!parsed) {
      auto e = parsed.err();
      e.message = "input: " + e.message;
      return reject(std::move(rej), std::move(e));
    }
    cmd.input = std::move(*parsed);
    return cmd;
  }
  const bool required = cmd.type == command_type::reject;
  const auto reason = j.find("reason");
  const std::string body = reason == j.end() || reason->is_null() ? std::string{} : json{{"reason", *reason}}.dump();
  auto parsed = gateway::parse_command_reason(body, required);
  if (!parsed) {
    return reject(std::move(rej), parsed.err());
  }
  cmd.reason = std::move(*parsed);
  return cmd;
}

}  // namespace

std::string_view command_type_name(command_type t) noexcept {
  for (const auto& [n, type] : type_names) {
    if (type == t) {
      return n;
    }
  }
  return "unknown";
}

parsed_command parse_command(std::string_view payload, std::string_view key, const command_limits& limits) {
  rejected_command rej;
  if (payload.size() > limits.max_bytes) {
    rej.poison = true;
    return reject(std::move(rej), make_error(errc::payload_too_large, "the command is " + std::to_string(payload.size()) +
                                                                          " bytes; the limit is " +
                                                                          std::to_string(limits.max_bytes)));
  }
  json j;
  try {
    j = json::parse(payload);
  } catch (const json::parse_error& e) {
    // The parser's own words quote the input: name the byte only (no payload in answers or logs).
    rej.poison = true;
    return reject(std::move(rej), make_error(errc::invalid_argument,
                                             "malformed JSON near byte " + std::to_string(e.byte) + "; expected a command object"));
  } catch (const json::exception&) {
    rej.poison = true;
    return reject(std::move(rej), make_error(errc::invalid_argument, "the command's JSON cannot be represented (e.g. a number out of range)"));
  }
  if (!j.is_object()) {
    rej.poison = true;
    return reject(std::move(rej), make_error(errc::invalid_argument, "a command must be a JSON object"));
  }
  // What is needed to answer comes first, so even an invalid command gets a useful answer.
  auto correlation = text(j, "correlationId", max_correlation_id);
  if (correlation && *correlation) {
    rej.correlation_id = **correlation;
  }
  if (const auto t = j.find("type"); t != j.end() && t->is_string() && t->get_ref<const std::string&>().size() <= 32 &&
                                      printable(t->get_ref<const std::string&>())) {
    rej.type = t->get<std::string>();
  }
  if (const auto r = j.find("requestId"); r != j.end() && r->is_string() && is_valid_id(r->get_ref<const std::string&>(), 64)) {
    rej.request_id = r->get<std::string>();
  }
  if (!correlation) {
    return reject(std::move(rej), correlation.err());
  }
  if (!*correlation) {
    return reject(std::move(rej), make_error(errc::invalid_argument, "correlationId is required"));
  }
  const auto type = type_of(rej.type);
  if (!type) {
    return reject(std::move(rej),
                  make_error(errc::invalid_argument,
                             rej.type.empty() ? std::string{"type is required: create, approve, reject, suspend, reactivate, "
                                                            "deprovision, cancel or manual-input"}
                                              : "unknown command type '" + rej.type +
                                                    "': create, approve, reject, suspend, reactivate, deprovision, cancel "
                                                    "or manual-input"));
  }
  command cmd;
  cmd.type = *type;
  cmd.correlation_id = rej.correlation_id;
  if (*type == command_type::create) {
    return parse_create(j, key, std::move(cmd), std::move(rej));
  }
  return parse_on_request(j, key, std::move(cmd), std::move(rej));
}

json to_json(const command_result& r) {
  json j{{"correlationId", r.correlation_id}, {"status", r.accepted() ? "accepted" : "rejected"}};
  if (!r.type.empty()) {
    j["type"] = r.type;
  }
  if (!r.request_id.empty()) {
    j["requestId"] = r.request_id;
  }
  if (r.state) {
    j["state"] = std::string{events::enum_name(*r.state)};
  }
  if (r.replayed) {
    j["replayed"] = true;
  }
  if (r.err) {
    j["error"] = {{"code", std::string{to_string(r.err->code)}}, {"message", r.err->message}};
  }
  return j;
}

command_result result_of(const rejected_command& r) {
  command_result out;
  out.correlation_id = r.correlation_id;
  out.type = r.type;
  out.request_id = r.request_id;
  out.err = r.err;
  return out;
}

}  // namespace prov::kafka
