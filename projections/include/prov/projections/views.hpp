#pragma once
/// Read models: folds of the whole journal kept in the `projections` column family,
/// maintained by the `projector`. Queries read these, never actors. Thread-safe readers.
///
/// Keys in the `projections` column family (layout 5; `inv` = 8-byte big-endian
/// UINT64_MAX - createdAt microseconds, so ascending iteration is newest first; `bucket` = the
/// state's byte, or 0x80 for any of the active states queued, allocating .. verifying):
///   "m/position"                          -> 8-byte BE: last journal position applied
///   "m/layout"                            -> "5" (another layout, or none with a position: rebuilt
///                                            from the journal on open)
///   "r/<id>"                              -> request_state (binary codec)
///   "x/s/<bucket><inv><id>"               -> "" by state (a list of all: every bucket, merged)
///   "x/u/<tenant>\0<bucket><inv><id>"     -> "" by tenant and state (a tenant's list: merged)
///   "c/<id>"                              -> cluster_state
///   "t/<id>"                              -> tenant_state
///   "k/<token sha256>"                    -> tenant id
///   "ar/<id>"                             -> rule_state (approval rules)
///   "u/<tenant>"                          -> tenant_usage (quota usage, R-4.1)
///   "cu/<cluster>"                        -> cluster_usage (capacity in use, R-4.3)
///   "wh/<id>"                             -> webhook_state
///   "wd/<id>\0<8-byte BE n>"              -> webhook_delivery_attempted (binary, schema 1): the
///                                            webhook's n-th delivery record; the newest 100 kept

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "prov/core/error.hpp"
#include "prov/core/string_hash.hpp"
#include "prov/events/cluster.hpp"
#include "prov/events/request.hpp"
#include "prov/events/rule.hpp"
#include "prov/events/rocks_store.hpp"
#include "prov/events/tenant.hpp"
#include "prov/events/webhook.hpp"

namespace prov::projections {

/// Amounts held by requests, in the spec's exact units.
struct usage_totals {
  std::int64_t cpu_millis = 0;
  std::int64_t memory_mb = 0;
  std::int64_t storage_gb = 0;
  std::int64_t instances = 0;
  std::map<std::string, std::int64_t> instances_by_type;  ///< by service type name

  /// Adds (sign +1) or removes (-1) one request's spec.
  void add(const events::request_state& r, int sign);
  bool empty() const noexcept { return instances == 0; }

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("cpuMillis", x.cpu_millis);
    f("memoryMb", x.memory_mb);
    f("storageGb", x.storage_gb);
    f("instances", x.instances);
    f("instancesByType", x.instances_by_type);
  }
  bool operator==(const usage_totals&) const = default;
};

/// What requests hold: `used` once their allocation succeeded, `reserved` before (submitted,
/// pending approval, queued, allocating, or failed before allocating), until they are rolled
/// back. Quotas count both.
template <int Kind>
struct usage_record {
  usage_totals used;
  usage_totals reserved;

  usage_totals total() const;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("used", x.used);
    f("reserved", x.reserved);
  }
  bool operator==(const usage_record&) const = default;
};
using tenant_usage = usage_record<0>;
using cluster_usage = usage_record<1>;

/// Whether a request counts, and in which bucket: none (never submitted or rolled back),
/// reserved, or used.
enum class usage_bucket { none, reserved, used };
usage_bucket bucket_of(const events::request_state& r);

/// Filter and paging for request lists. `cursor` is opaque (from a previous page's
/// `next_cursor`); an invalid cursor is `errc::invalid_argument`.
struct request_query {
  std::optional<std::string> tenant;
  std::optional<events::lifecycle_state> state;
  std::size_t limit = 50;  ///< 1..1000, clamped
  std::string cursor;
};

struct request_page {
  std::vector<events::request_state> items;  ///< newest first
  std::string next_cursor;                   ///< "" when there is no further page
};

/// What the store holds for a request whose newer state is unwritten: whether its view is
/// stored, at which version and in which state (so which index entries), and where the stored
/// usage records count it. The index entries and usage records always agree with the stored
/// views (they are written together), so the unwritten change moves the request's index
/// entries and usage from this image to the unwritten state.
struct stored_image {
  std::uint64_t version = 0;  ///< 0: nothing stored
  events::lifecycle_state state = events::lifecycle_state::queued;
  usage_bucket bucket = usage_bucket::none;
  std::string cluster;
};

/// Request states the projector has applied but not written to the store yet: any change of
/// a request that is not at rest (its view, index entries and usage moves wait). The
/// projector writes them with the request's change to rest, once they are
/// `projector_options::max_deferred_events` old, or when it stops; until then `views` reads
/// them here (lists merge them with the stored index). Thread-safe; only the projector
/// changes it.
class unwritten_requests {
 public:
  /// A copy of the unwritten state of `id`, if it has one.
  std::optional<events::request_state> find(std::string_view id) const;
  std::size_t size() const;

  /// An unwritten state with what the store holds of the request.
  struct entry {
    events::request_state state;
    stored_image stored;
  };
  /// Calls `visit` with each entry, under the lock (it must not call back).
  void visit(const std::function<void(std::string_view id, const entry&)>& visit) const;

  // The projector's side.

  /// Under one lock: each of `put` becomes (or stays) unwritten with the given state (a new
  /// one with the given image; one that stays keeps its own); each of `erase` is read from the
  /// store again.
  struct put_item {
    std::string_view id;
    const events::request_state* state;
    std::optional<stored_image> stored;  ///< none: the entry exists and keeps its image
  };
  void update(const std::vector<put_item>& put, const std::vector<std::string_view>& erase);
  void clear();
  /// The unwritten entry of `id` without taking the lock: only for the projector's thread,
  /// the only one that changes it.
  const entry* peek(std::string_view id) const;

 private:
  mutable std::mutex _mutex;
  std::unordered_map<std::string, entry, string_hash, std::equal_to<>> _states;
};

class views {
 public:
  /// `unwritten`: the projector's request states not yet in the store (read before it).
  explicit views(events::rocks_store& store, const unwritten_requests* unwritten = nullptr)
      : _store(store), _unwritten(unwritten) {}

  result<std::optional<events::request_state>> request(const std::string& id) const;
  result<request_page> requests(const request_query& query) const;
  /// Ids of requests not at rest (their actors must run), oldest first.
  result<std::vector<std::string>> live_requests() const;

  result<std::optional<events::cluster_state>> cluster(const std::string& id) const;
  result<std::vector<events::cluster_state>> clusters() const;  ///< ordered by id

  result<std::optional<events::rule_state>> rule(const std::string& id) const;
  /// Approval rules, deleted ones excluded, ordered by id.
  result<std::vector<events::rule_state>> rules() const;

  /// Zero usage for a tenant or cluster that holds nothing.
  result<tenant_usage> usage_of_tenant(const std::string& tenant) const;
  result<cluster_usage> usage_of_cluster(const std::string& cluster) const;
  /// Every tenant's and cluster's usage (start-up of the quota ledger and the registry).
  result<std::map<std::string, tenant_usage>> tenant_usages() const;
  result<std::map<std::string, cluster_usage>> cluster_usages() const;

  result<std::optional<events::tenant_state>> tenant(const std::string& id) const;
  result<std::vector<events::tenant_state>> tenants() const;  ///< ordered by id
  result<std::optional<std::string>> tenant_by_token_hash(const std::string& sha256_hex) const;

  result<std::optional<events::webhook_state>> webhook(const std::string& id) const;
  /// Webhooks (deleted ones excluded) ordered by id; only `tenant`'s if given.
  result<std::vector<events::webhook_state>> webhooks(const std::optional<std::string>& tenant = std::nullopt) const;
  /// A webhook's delivery records, newest first, at most `limit` (the last 100 are kept).
  result<std::vector<events::webhook_delivery_attempted>> webhook_deliveries(const std::string& id,
                                                                             std::size_t limit = 100) const;

  /// The journal position the projections reflect.
  result<std::uint64_t> position() const;

 private:
  events::rocks_store& _store;
  const unwritten_requests* _unwritten;
};

}  // namespace prov::projections
