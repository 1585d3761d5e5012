#pragma once
/// The HTTP API over an engine: routing, authentication, tenant isolation, and
/// JSON in and out. Reads come from the projections; commands go to the engine and are
/// answered once durable and visible.
///
/// Authentication: `Authorization: Bearer <token>`. The admin token (constant-time compare)
/// may do everything; a tenant token acts on its own tenant's requests only (another tenant's
/// request is reported as not found, so ids do not leak).

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "prov/actors/engine.hpp"
#include "prov/gateway/http_types.hpp"

namespace prov::gateway {

struct api_options {
  std::string admin_token;  ///< required, non-empty
  /// More Prometheus text for /metrics (e.g. the Kafka outbox and command consumer's
  /// counters); called on an HTTP thread, must not block.
  std::function<std::string()> extra_metrics = {};
};

class api {
 public:
  api(actors::engine& engine, api_options options);
  ~api();
  api(const api&) = delete;
  api& operator=(const api&) = delete;

  /// The `http_handler` for the server.
  void handle(http_request&& request, responder respond);

 private:
  struct impl;
  /// Shared with the engine's callbacks still on their way (a batch's items, the cluster
  /// views, /metrics), so one that answers after the api is gone finds its state alive.
  std::shared_ptr<impl> _impl;
};

}  // namespace prov::gateway
