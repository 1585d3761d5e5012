#pragma once
/// The engine in one process (embedded mode): it opens the data directory, the journal and
/// the projections, runs the actors, and offers the commands the gateway (and later the
/// Kafka command consumer) turn requests into. Commands append to the journal and answer
/// once the projections reflect what they wrote, so a client can read its own writes.
///
/// Callbacks run on any thread (the journal's writer or the projector's): they must not block.

#include <chrono>
#include <map>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "prov/actors/context.hpp"
#include "prov/actors/webhooks.hpp"
#include "prov/core/clock.hpp"
#include "prov/core/error.hpp"
#include "prov/events/cluster.hpp"
#include "prov/events/journal.hpp"
#include "prov/events/request.hpp"
#include "prov/events/tenant.hpp"
#include "prov/projections/projector.hpp"
#include "prov/projections/views.hpp"
#include "prov/providers/provider.hpp"

namespace rocksdb {
class Env;
}  // namespace rocksdb

namespace prov::events {
class rocks_store;
}  // namespace prov::events

namespace prov::actors {

/// How the actor scheduler hands work to its threads.
enum class scheduler_policy {
  /// One queue, and idle threads sleep on a condition variable until work arrives. The
  /// default: on a few cores it spends less CPU per request than stealing, whose idle threads
  /// poll (about 8 % fewer CPU-µs per request and as much more throughput on 2 cores,
  /// docs/PERFORMANCE.md).
  sharing,
  /// A queue per thread, idle threads poll and steal: scales better on many cores.
  stealing,
};

/// "sharing" or "stealing" (as on the command line).
constexpr std::string_view to_string(scheduler_policy p) noexcept {
  return p == scheduler_policy::sharing ? "sharing" : "stealing";
}
constexpr std::optional<scheduler_policy> parse_scheduler_policy(std::string_view name) noexcept {
  if (name == "sharing") {
    return scheduler_policy::sharing;
  }
  if (name == "stealing") {
    return scheduler_policy::stealing;
  }
  return std::nullopt;
}

struct engine_options {
  std::string data_dir = "./data";
  /// Where `engine::backup` writes (default: `<data_dir>/backups`; on the data directory's
  /// filesystem a backup is hard links, made at once).
  std::string backup_dir;
  bool journal_sync = true;          ///< fsync every group commit (the only durable mode)
  std::size_t scheduler_threads = 0; ///< CAF worker threads; 0 = number of cores
  scheduler_policy scheduler = scheduler_policy::sharing;
  bool rebuild_projections = false;  ///< replay the whole journal into fresh projections at start
  bool default_cluster = true;       ///< register the default simulation cluster on an empty journal
  /// The environment the store's RocksDB reads and writes through; null for the default.
  /// Tests put a fault-injecting file system here. It must outlive the engine.
  rocksdb::Env* store_env = nullptr;
  /// Called once, on the journal's writer or syncer thread, when a WAL write or sync fails:
  /// from then on every write is refused until the engine is reopened (`/healthz` says so).
  /// provisiond stops on it. Must not block nor call back into the engine's writes.
  std::function<void(const error&)> on_journal_failure;
  pipeline_options pipeline;
  region_distances distances;  ///< for cluster selection by proximity
  /// Backpressure: submissions are refused with `errc::overloaded` while this many requests
  /// are unfinished (not completed, suspended or rolled back).
  std::size_t max_pending = 50'000;
  /// On shutdown, how long in-flight provider calls may take to finish and be recorded.
  std::chrono::milliseconds shutdown_grace{30'000};
  /// Called on the projector's thread whenever a request's projected state changes (where it
  /// stood before, its state after). For benchmarks and embedding; must not block.
  projections::request_listener on_request_change;
  /// Webhook deliveries: retries, deactivation, the SSRF guard, timeouts.
  webhook_options webhooks;
};

template <class T>
using callback = std::function<void(result<T>)>;

struct submit_command {
  std::string tenant;
  events::service_type type = events::service_type::vps;
  events::provider_type provider = events::provider_type::simulation;
  std::string region;
  events::resource_spec spec;
  std::vector<std::string> depends_on;
  std::string idempotency_key;
  std::string requested_cluster;
};

struct submit_reply {
  std::string id;
  events::lifecycle_state state = events::lifecycle_state::queued;
  bool replayed = false;  ///< the idempotency key was seen before: this is that request
};

struct tenant_command {
  std::string id;
  std::string name;
  events::tenant_quota quota;
};

struct tenant_reply {
  std::string id;
  std::string token;  ///< shown once; only its SHA-256 is stored
};

/// Lifecycle commands on one request.
enum class lifecycle_command { approve, reject, cancel, suspend, reactivate, deprovision };

struct command_input {
  std::string reason;
  std::string by;  ///< "admin" or the tenant id: recorded in the event
};

/// Access details an admin enters for the manual provider.
struct manual_input {
  std::map<std::string, std::string> endpoints;    ///< at least one
  std::map<std::string, std::string> credentials;  ///< sealed before anything is written
  std::string by;
};

/// A tenant's quota and what its requests hold.
struct usage_report {
  events::tenant_quota quota;
  projections::tenant_usage usage;
};

/// Registers a webhook. An empty `secret` is generated.
struct webhook_command {
  std::string tenant;
  std::string url;
  std::vector<std::string> events;  ///< lifecycle types or "*"
  std::string secret;
  std::string by;
};

struct webhook_created {
  events::webhook_state state;
  std::string secret;  ///< in clear, shown once; only its sealed form is stored
};

struct inventory_listing {
  std::string cluster;
  std::vector<providers::inventory_item> items;
};

/// A backup the engine wrote (`engine::backup`).
struct backup_report {
  std::string name;
  std::string path;                ///< a data directory: `db/` and `secret.key`
  std::uint64_t journal_head = 0;  ///< the backup holds the journal up to here (read back from it)
  std::uint64_t took_ms = 0;
};

/// A snapshot of the engine's actors (`engine::runtime`).
struct engine_runtime {
  std::optional<std::size_t> live_requests;       ///< requests whose actors run
  std::optional<admission_status> admission;
  std::optional<std::uint64_t> stuck_reports;     ///< by the watchdog, since start
  std::optional<reconcile_status> reconciler;
  std::optional<webhook_dispatcher_status> webhooks;  ///< empty when no dispatcher runs
  std::map<std::string, cluster_runtime> clusters;    ///< the running clusters', by id
};

/// How long `engine::runtime` waits for any one actor.
inline constexpr std::chrono::seconds runtime_timeout{5};

class engine {
 public:
  /// Opens everything under `options.data_dir`, replays what is needed and resumes every
  /// request that is not at rest. `clk` must outlive the engine.
  static result<std::unique_ptr<engine>> open(const engine_options& options, const clock& clk);

  ~engine();  ///< calls `shutdown`
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  void submit(submit_command cmd, callback<submit_reply> done);
  void create_tenant(tenant_command cmd, callback<tenant_reply> done);
  /// Registers a cluster. `credentials_json` (provider credentials, clear text, may be empty)
  /// is sealed with the engine's secret key before anything is written.
  void register_cluster(events::cluster_registered cmd, std::string credentials_json,
                        callback<events::cluster_state> done);
  /// Changes a cluster; a non-empty `credentials_json` replaces its sealed credentials.
  void update_cluster(std::string id, events::cluster_updated cmd, std::string credentials_json,
                      callback<events::cluster_state> done);
  void inventory(std::string cluster_id, callback<inventory_listing> done);
  /// A pass of the orphan reconciler over one cluster now (after a running pass, if any):
  /// what it found and did. `errc::not_found` for an unknown cluster; `errc::unavailable` if
  /// the pass takes longer than 30 s (it goes on; `/metrics` counts what it does).
  void reconcile(std::string cluster_id, callback<reconcile_status> done);

  /// Approve, reject, cancel, suspend, reactivate or deprovision a request. A command that the
  /// request's state does not allow (approving twice, suspending a failed request) is
  /// `errc::conflict` naming the state. Answers with the request's state once recorded.
  void command(std::string request_id, lifecycle_command cmd, command_input input, callback<events::request_state> done);

  /// Completes a manual provider's waiting step; `errc::conflict` if the request does not wait.
  void provide_input(std::string request_id, manual_input input, callback<events::request_state> done);

  /// The delivered credentials in clear (callers check who may see them).
  result<std::map<std::string, std::string>> credentials(const std::string& request_id);

  /// Live metrics of a provisioned service, from its provider.
  void metrics(std::string request_id, callback<providers::metrics_sample> done);

  /// Tests a cluster's connectivity through its provider and records the outcome.
  void test_cluster(std::string cluster_id, callback<events::cluster_state> done);

  void create_rule(events::rule_created rule, callback<events::rule_state> done);
  void delete_rule(std::string rule_id, std::string by, callback<events::rule_state> done);
  void set_quota(std::string tenant_id, events::tenant_quota quota, callback<events::tenant_state> done);
  /// Gives the tenant a new token (answered once, like the first) and retires its current one:
  /// the answer comes when the projections no longer know the old token.
  /// `by`: "admin" or the tenant id, recorded in the event.
  void rotate_token(std::string tenant_id, std::string by, callback<tenant_reply> done);
  /// Grows whenever the projections apply a change to a tenant or an approval rule: what was
  /// read about them under an older generation may be stale (e.g. a cached token).
  std::uint64_t catalog_generation() const noexcept;
  result<usage_report> usage(const std::string& tenant_id);

  /// Webhooks (R-6.3; `engine_webhooks.cpp`). The URL must pass the address guard
  /// (`errc::invalid_argument` naming the rule); deleting or reactivating an unknown or
  /// deleted webhook is `errc::not_found`, reactivating an active one `errc::conflict`.
  void register_webhook(webhook_command cmd, callback<webhook_created> done);
  void delete_webhook(std::string id, std::string by, callback<events::webhook_state> done);
  void reactivate_webhook(std::string id, std::string by, callback<events::webhook_state> done);

  const projections::views& views() const;
  const events::journal& journal() const;
  /// The last journal position the read models reflect (applied, whether or not written to
  /// the store yet), and how many request states are applied and not yet written.
  std::uint64_t projection_position() const noexcept;
  std::size_t unwritten_request_states() const;

  /// The journal and the RocksDB store beneath it, for in-process log tailers that keep their
  /// own position in the store's `meta` column family and wake on commits (the Kafka outbox).
  struct storage_access {
    events::journal& journal;
    events::rocks_store& store;
  };
  storage_access storage();

  /// Requests submitted and not yet at rest (what backpressure counts).
  std::size_t unfinished_requests() const noexcept;

  /// Writes a backup named `name` (letters, digits, '.', '_', '-'; at most 64; not starting
  /// with '.'; empty: "backup-<UTC time to the second>") under the backup directory while the
  /// engine runs: a consistent copy of the
  /// store (journal, projections, positions) and the secret key, laid out as a data directory.
  /// Started with `--data-dir` on it, provisiond resumes as after a crash at that moment.
  /// `errc::invalid_argument` for a bad name, `errc::conflict` if the name is taken. Runs on
  /// an actor thread (it flushes the memtables), not the caller's.
  void backup(std::string name, callback<backup_report> done);

  /// What the engine's actors report about themselves, for `/metrics` and the cluster views.
  /// Every actor is asked at once and `done` runs (on an actor thread) once each answered or
  /// `runtime_timeout` passed; a part whose actor did not answer is left empty. The caller's
  /// thread never waits. Empty while the engine stops.
  void runtime(std::function<void(engine_runtime)> done);
  /// The `clusters` part only (breaker, bulkhead of each running cluster).
  void cluster_runtimes(std::function<void(std::map<std::string, cluster_runtime>)> done);

  /// Graceful stop: admits no new work, lets in-flight provider calls finish and be
  /// recorded for up to `shutdown_grace`, then stops the actors (anything still in flight
  /// resumes on the next start), drains the journal, stops the projector and flushes RocksDB.
  /// Idempotent.
  void shutdown();

 private:
  struct impl;
  explicit engine(std::unique_ptr<impl> impl);
  std::unique_ptr<impl> _impl;
};

}  // namespace prov::actors
