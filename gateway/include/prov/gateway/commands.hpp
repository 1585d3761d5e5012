#pragma once
/// The command bodies of the HTTP API, validated the same way for every transport: the HTTP
/// gateway and the Kafka command topic take identical bodies and give identical errors (a
/// clear `invalid_argument` naming the field). Forwards to the gateway's own parsers.

#include <string>

#include <nlohmann/json.hpp>

#include "prov/actors/engine.hpp"
#include "prov/core/error.hpp"

namespace prov::gateway {

/// The `POST /v1/requests` body. `tenant` is the caller's tenant ("" = the caller may name
/// any, and must); a body naming another tenant is `errc::forbidden`.
result<actors::submit_command> parse_submit_command(const nlohmann::json& body, const std::string& tenant);

/// The `POST /v1/requests/{id}/manual-input` body: {"endpoints":{...}, "credentials":{...}}.
result<actors::manual_input> parse_manual_input_command(const nlohmann::json& body);

/// The optional `{"reason":"..."}` body of lifecycle commands ("" = no body); `required` for reject.
result<std::string> parse_command_reason(const std::string& body, bool required);

}  // namespace prov::gateway
