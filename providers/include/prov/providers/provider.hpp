#pragma once
/// One interface for every provider: the 4 steps, their rollback (release + sweep),
/// suspend, reactivate, deprovision (the rollback path), metrics, connectivity test. A provider acts on one cluster. Every call is
/// idempotent by a key recorded in the journal before the call is made: a call repeated with
/// the same key (after a crash) finds what the first try created and adopts it instead of
/// creating it twice. Resources are tagged with their request id, so `sweep` can find and
/// delete anything a request owns that the journal never heard of.
///
/// Calls are synchronous and may block (real providers do HTTP). The caller (the cluster's
/// actor) decides where they run. A simulated call reports how long it "takes" in `delay`;
/// the caller delivers the outcome after that delay, on its (virtual-time capable) clock.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "prov/core/clock.hpp"
#include "prov/core/error.hpp"
#include "prov/events/request.hpp"

namespace prov::providers {

/// A `delay` meaning "this call never answers" (the simulation of a hung cloud API).
inline constexpr std::chrono::milliseconds never_answers = std::chrono::milliseconds::max();

/// Why a provider call failed, and whether trying again may help (timeouts, 5xx, rate
/// limits) or not (bad spec, quota at the provider).
struct provider_error {
  std::string code;  ///< stable, e.g. "timeout", "capacity", "bad_spec", "unreachable"
  std::string message;
  bool retryable = true;
};

/// One attempt of one pipeline step for one request.
struct step_call {
  std::string request_id;
  std::string tenant;
  events::service_type type = events::service_type::vps;
  events::step_kind step = events::step_kind::allocate;
  std::uint32_t attempt = 1;
  std::string idempotency_key;
  std::string region;
  events::resource_spec spec;
  std::vector<events::resource> resources;  ///< what the request holds so far
  /// No call with this idempotency key was ever made before: the engine committed the step's
  /// start and issues its first call now (a call after a restart, a timeout or a re-read of
  /// the log is never a first try). A provider may skip looking for what an earlier try
  /// created; it must still be idempotent for any call without it.
  bool first_try = false;
};

struct step_outcome {
  bool ok = false;
  /// Resources that exist at the provider for this call, created now or adopted; also on
  /// failure (a partial allocation), so that rollback releases them.
  std::vector<events::resource> resources;
  std::map<std::string, std::string> endpoints;  ///< never secrets
  /// Access details generated or returned by the provider (passwords, keys, tokens). The
  /// engine seals them before they touch the journal; never log them.
  std::map<std::string, std::string> credentials;
  provider_error error;                           ///< set when !ok
  std::chrono::milliseconds delay{0};             ///< simulated duration of the call
  /// The step cannot finish without a person (the manual provider): the request waits in
  /// `awaiting_input` until an admin supplies the access details.
  bool awaiting_input = false;
};

/// A call about a provisioned service as a whole (suspend, reactivate, metrics).
struct service_call {
  std::string request_id;
  std::string tenant;
  events::service_type type = events::service_type::vps;
  std::string idempotency_key;
  events::resource_spec spec;
  std::vector<events::resource> resources;  ///< what the request holds (unreleased)
  std::map<std::string, std::string> endpoints;
};

struct action_outcome {
  bool ok = false;
  provider_error error;
  std::chrono::milliseconds delay{0};
};

/// Live usage of a provisioned service, where the provider has it.
struct metrics_sample {
  bool ok = false;
  provider_error error;
  timestamp at{};
  std::optional<double> cpu_percent;
  std::optional<double> memory_used_mb;
  std::optional<double> disk_used_gb;
  std::optional<double> network_rx_bytes;
  std::optional<double> network_tx_bytes;
  std::map<std::string, double> extra;  ///< provider-specific gauges
  std::chrono::milliseconds delay{0};
};

/// Delete one resource. Deleting what is already gone is success.
struct release_call {
  std::string request_id;
  events::resource resource;
  std::string idempotency_key;
};

struct release_outcome {
  bool ok = false;
  provider_error error;
  std::chrono::milliseconds delay{0};
};

/// Deletes everything still tagged with a request (the last step of every rollback).
struct sweep_outcome {
  bool ok = false;
  std::vector<events::resource> released;  ///< what was found and deleted
  provider_error error;
  std::chrono::milliseconds delay{0};
};

/// A resource that exists at the provider, with the request it belongs to (the orphan audit).
struct inventory_item {
  std::string cluster;
  std::string kind;
  std::string id;
  std::string name;
  std::string request_id;
  std::string idempotency_key;
  events::step_kind step = events::step_kind::allocate;
  timestamp created_at{};
  bool suspended = false;  ///< stopped by a suspend, still existing

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("cluster", x.cluster);
    f("kind", x.kind);
    f("id", x.id);
    f("name", x.name);
    f("requestId", x.request_id);
    f("idempotencyKey", x.idempotency_key);
    f("step", x.step);
    f("createdAt", x.created_at);
    f("suspended", x.suspended);
  }
  bool operator==(const inventory_item&) const = default;
};

struct connectivity_report {
  bool ok = false;
  std::chrono::milliseconds latency{0};
  std::string message;
};

class provider {
 public:
  virtual ~provider() = default;

  virtual step_outcome run_step(const step_call& call) = 0;
  virtual release_outcome release(const release_call& call) = 0;
  virtual sweep_outcome sweep(const std::string& request_id) = 0;

  /// Stops a provisioned service without deleting anything; idempotent.
  virtual action_outcome suspend(const service_call& call) = 0;
  /// Starts a suspended service again; idempotent.
  virtual action_outcome reactivate(const service_call& call) = 0;
  /// Current usage; `ok = false` with `unsupported` where the provider has no metrics.
  virtual metrics_sample metrics(const service_call& call) = 0;

  /// Whether calls block the calling thread (network I/O). Blocking providers are called on
  /// worker threads; non-blocking ones (the simulation) inline on the cluster's actor.
  virtual bool blocking() const noexcept { return true; }

  /// Every resource at the provider that this engine created (tagged by it).
  virtual result<std::vector<inventory_item>> inventory() = 0;

  virtual connectivity_report test_connectivity() = 0;
};

}  // namespace prov::providers
