#pragma once
// The OpenAPI 3.0 document served at /openapi.json.

#include <nlohmann/json.hpp>

namespace prov::gateway::detail {

const nlohmann::json& openapi_document();

}  // namespace prov::gateway::detail
