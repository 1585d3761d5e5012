#pragma once
/// The command topic's message format and the answers on the result topic. Pure: bytes
/// in, a typed command or a rejection out; no Kafka, no engine. Bodies are validated exactly as
/// the HTTP API validates them (the same parsers, through `prov/gateway/commands.hpp`).
///
/// Commands (JSON objects; the message key is the tenant id):
///   {"type":"create","correlationId":"c1","idempotencyKey":"k1","tenant":"acme",
///    "request":{...the POST /v1/requests body...}}
///   {"type":"approve"|"reject"|"suspend"|"reactivate"|"deprovision"|"cancel",
///    "correlationId":"c2","requestId":"...","reason":"..."}     (reason required for reject)
///   {"type":"manual-input","correlationId":"c3","requestId":"...","input":{"endpoints":{...},
///    "credentials":{...}}}
/// Answers (key = the command's key):
///   {"correlationId":"c1","type":"create","status":"accepted","requestId":"...","state":"queued"}
///   {"correlationId":"c2","type":"approve","status":"rejected","requestId":"...",
///    "error":{"code":"conflict","message":"..."}}
/// A command whose correlationId cannot be read is answered with "correlationId":"unknown".

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "prov/actors/engine.hpp"
#include "prov/core/error.hpp"

namespace prov::kafka {

enum class command_type { create, approve, reject, suspend, reactivate, deprovision, cancel, manual_input };

/// The wire name of a command type ("manual-input" for manual_input).
std::string_view command_type_name(command_type t) noexcept;

/// A valid command, ready for the engine.
struct command {
  command_type type = command_type::create;
  std::string correlation_id;
  std::string tenant;      ///< create: the tenant it is for; others: the message key ("" if none)
  std::string request_id;  ///< every type but create
  actors::submit_command submit;  ///< create (its idempotency key is always set)
  std::string reason;             ///< reject, suspend, cancel... (may be empty)
  actors::manual_input input;     ///< manual-input
};

/// A command refused before it reached the engine.
struct rejected_command {
  std::string correlation_id = "unknown";
  std::string type;         ///< as given, "" if unreadable
  std::string request_id;   ///< as given, "" if unreadable
  error err;
  bool poison = false;      ///< not a JSON object at all, or too large: counted separately
};

using parsed_command = std::variant<command, rejected_command>;

struct command_limits {
  std::size_t max_bytes = 64 * 1024;  ///< larger messages are poison (payload_too_large)
};

/// Parses one message of the command topic. `key` is the message key ("" if none): when
/// given, it must name the same tenant as the command (else `forbidden`).
parsed_command parse_command(std::string_view payload, std::string_view key, const command_limits& limits = {});

/// One answer on the result topic.
struct command_result {
  std::string correlation_id = "unknown";
  std::string type;        ///< the command's type as given ("" if unreadable)
  std::string request_id;  ///< "" if none: omitted
  std::optional<events::lifecycle_state> state;  ///< accepted: the request's state then
  bool replayed = false;   ///< create: the idempotency key had been used: this is that request
  std::optional<error> err;  ///< set = rejected

  bool accepted() const noexcept { return !err.has_value(); }
};

/// `{"correlationId","type","status","requestId"?,"state"?,"replayed"?,"error"?:{"code","message"}}`.
nlohmann::json to_json(const command_result& r);

/// The answer to a command refused before the engine.
command_result result_of(const rejected_command& r);

}  // namespace prov::kafka
