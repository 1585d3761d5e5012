#pragma once
/// Durable storage for the simulated cloud's resources. The simulation provider keeps them
/// here so that they survive an engine restart, as resources in a real cloud would: this is
/// the "provider side" the orphan audit compares with the journal. It is deliberately a
/// separate database from the journal (`<data-dir>/simcloud`).

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "prov/core/error.hpp"
#include "prov/providers/provider.hpp"

namespace prov::providers {

class inventory_store {
 public:
  virtual ~inventory_store() = default;

  /// Stores (or replaces) resources, all or none.
  virtual status put_all(const std::vector<inventory_item>& items) = 0;
  status put(const inventory_item& item) { return put_all({item}); }
  /// Stores what one provider call made: every resource of that call (one cluster, request and
  /// idempotency key), those it adopted included. A store may replace the call's earlier
  /// record with it without reading it.
  virtual status put_call(const std::vector<inventory_item>& items) { return put_all(items); }
  /// Removes a resource of a request; returns whether it existed.
  virtual result<bool> erase(const std::string& cluster, const std::string& request_id, const std::string& id) = 0;
  /// The resources a call (`idempotency_key`) of `request_id` created.
  virtual result<std::vector<inventory_item>> by_key(const std::string& cluster, const std::string& request_id,
                                                     const std::string& idempotency_key) = 0;
  virtual result<std::vector<inventory_item>> by_request(const std::string& cluster,
                                                         const std::string& request_id) = 0;
  virtual result<std::vector<inventory_item>> list(const std::string& cluster) = 0;
};

/// In memory, thread-safe: for tests that "restart" the engine but keep the cloud.
std::unique_ptr<inventory_store> make_memory_inventory_store();

/// RocksDB in `path` (created if missing), one record per provider call (format 3):
///   "c\x1f<cluster>\x1f<request id>\x1f<idempotency key>"  -> the call's resources (binary codec)
/// A lookup by call is one read; one by request is one short prefix scan. Two calls may hold
/// the same resource (a retry under a new key that finds a fixed name taken); reads list it
/// once, the newest, and `erase` removes it from each. Formats 1 (a record and two index keys
/// per resource) and 2 (a key per resource) are converted on open.
result<std::unique_ptr<inventory_store>> open_rocks_inventory_store(const std::string& path);

}  // namespace prov::providers
