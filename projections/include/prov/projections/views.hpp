#pragma once
/// Read models: folds of the whole journal kept in the `projections` column family,
/// maintained by the `projector`. Queries read these, never actors. Thread-safe readers.
///
/// Keys in the `projections` column family (format 1; `inv` = 8-byte big-endian
/// UINT64_MAX - createdAt microseconds, so ascending iteration is newest first):
///   "m/position"                          -> 8-byte BE: last journal position applied
///   "r/<id>"                              -> request_state (binary codec)
///   "x/a/<inv><id>"                       -> "" every request
///   "x/t/<tenant>\0<inv><id>"             -> "" by tenant
///   "x/s/<state byte><inv><id>"           -> "" by state
///   "x/u/<tenant>\0<state byte><inv><id>" -> "" by tenant and state
///   "x/live/<id>"                         -> "" requests not at rest (to resume on start)
///   "c/<id>"                              -> cluster_state
///   "t/<id>"                              -> tenant_state
///   "k/<token sha256>"                    -> tenant id

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "prov/core/error.hpp"
#include "prov/events/cluster.hpp"
#include "prov/events/request.hpp"
#include "prov/events/rocks_store.hpp"
#include "prov/events/tenant.hpp"

namespace prov::projections {

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

class views {
 public:
  explicit views(events::rocks_store& store) : _store(store) {}

  result<std::optional<events::request_state>> request(const std::string& id) const;
  result<request_page> requests(const request_query& query) const;
  /// Ids of requests not at rest (their actors must run), oldest first.
  result<std::vector<std::string>> live_requests() const;

  result<std::optional<events::cluster_state>> cluster(const std::string& id) const;
  result<std::vector<events::cluster_state>> clusters() const;  ///< ordered by id

  result<std::optional<events::tenant_state>> tenant(const std::string& id) const;
  result<std::vector<events::tenant_state>> tenants() const;  ///< ordered by id
  result<std::optional<std::string>> tenant_by_token_hash(const std::string& sha256_hex) const;

  /// The journal position the projections reflect.
  result<std::uint64_t> position() const;

 private:
  events::rocks_store& _store;
};

}  // namespace prov::projections
