#pragma once
// Validation at the edge: HTTP JSON bodies become typed commands, or a clear 400 naming the
// field. Nothing past this point re-checks input.

#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "prov/actors/engine.hpp"
#include "prov/core/error.hpp"
#include "prov/events/cluster.hpp"

namespace prov::gateway::detail {

/// Parses a request body as a JSON object (`errc::invalid_argument` with the parser's words).
result<nlohmann::json> parse_object(const std::string& body);

/// Reads typed fields of one JSON object, remembering the first problem. Unknown members are
/// an error when `check_unknown` is called (typos must not pass silently).
class field_reader {
 public:
  field_reader(const nlohmann::json& obj, std::string path) : _obj(obj), _path(std::move(path)) {}

  std::optional<std::string> text(const char* name, bool required, std::size_t max_len = 256);
  std::optional<std::string> id(const char* name, bool required, std::size_t max_len = 64);
  std::optional<double> number(const char* name, bool required, double min, double max);
  std::optional<std::int64_t> integer(const char* name, bool required, std::int64_t min, std::int64_t max);
  std::optional<bool> boolean(const char* name);
  const nlohmann::json* object(const char* name, bool required);
  const nlohmann::json* array(const char* name, bool required);
  void check_unknown();

  bool ok() const { return !_error; }
  const error& err() const { return *_error; }
  void fail(const std::string& name, const std::string& what);
  std::string path_of(const std::string& name) const { return _path.empty() ? name : _path + "." + name; }

 private:
  const nlohmann::json* find(const char* name, bool required);

  const nlohmann::json& _obj;
  std::string _path;
  std::set<std::string> _known;
  std::optional<error> _error;
};

/// `POST /v1/requests`. `tenant` is the caller's tenant ("" for the admin, who must name one).
/// `path` prefixes the field names in errors (`requests[3]` inside a batch).
result<actors::submit_command> parse_submit(const nlohmann::json& body, const std::string& caller_tenant,
                                            const std::string& path = {});

/// `POST /v1/requests:batch`: `{"requests": [...]}`, 1 to `max_items` of them. Returns the
/// array; each item is a `POST /v1/requests` body, parsed on its own (`parse_submit`).
result<const nlohmann::json*> parse_submit_batch(const nlohmann::json& body, std::size_t max_items);

/// `POST /v1/tenants`.
result<actors::tenant_command> parse_tenant(const nlohmann::json& body);

/// A quota object (`PUT /v1/tenants/{id}/quota`, and inside `POST /v1/tenants`).
result<events::tenant_quota> parse_quota(const nlohmann::json& quota, const std::string& path);

/// `POST /v1/approval-rules` (id generated when absent).
result<events::rule_created> parse_rule(const nlohmann::json& body);

/// `POST /v1/requests/{id}/manual-input`: {"endpoints":{...strings}, "credentials":{...strings}}.
result<actors::manual_input> parse_manual_input(const nlohmann::json& body);

/// The optional `{"reason": "..."}` of lifecycle commands; `required` for reject.
result<std::string> parse_reason(const std::string& body, bool required);

/// `POST /v1/backups`: the optional `{"name": "..."}` ("" when absent: the engine's rules
/// apply to a given one).
result<std::string> parse_backup_name(const std::string& body);

/// A cluster command and the provider credentials that came with it (clear text JSON, or "";
/// the engine seals them).
template <class Command>
struct cluster_input {
  Command command;
  std::string credentials_json;
};

/// `POST /v1/clusters`.
result<cluster_input<events::cluster_registered>> parse_cluster(const nlohmann::json& body);

/// `PATCH /v1/clusters/{id}`, applied over the current simulation settings.
result<cluster_input<events::cluster_updated>> parse_cluster_patch(const nlohmann::json& body,
                                                                   const events::cluster_state& current);

}  // namespace prov::gateway::detail
