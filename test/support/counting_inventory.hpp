#pragma once
// An inventory store that counts the simulated cloud's lookups by call and forwards every
// operation to another store: tests see which calls a provider looked something up for.

#include <atomic>
#include <string>
#include <vector>

#include "prov/providers/inventory_store.hpp"

namespace prov::test {

class counting_inventory final : public providers::inventory_store {
 public:
  explicit counting_inventory(providers::inventory_store& inner) : _inner(inner) {}

  std::size_t lookups() const noexcept { return _lookups.load(); }

  status put_all(const std::vector<providers::inventory_item>& items) override { return _inner.put_all(items); }
  status put_call(const std::vector<providers::inventory_item>& items) override { return _inner.put_call(items); }
  result<bool> erase(const std::string& cluster, const std::string& request_id, const std::string& id) override {
    return _inner.erase(cluster, request_id, id);
  }
  result<std::vector<providers::inventory_item>> by_key(const std::string& cluster, const std::string& request_id,
                                                        const std::string& idempotency_key) override {
    _lookups.fetch_add(1);
    return _inner.by_key(cluster, request_id, idempotency_key);
  }
  result<std::vector<providers::inventory_item>> by_request(const std::string& cluster,
                                                            const std::string& request_id) override {
    return _inner.by_request(cluster, request_id);
  }
  result<std::vector<providers::inventory_item>> list(const std::string& cluster) override {
    return _inner.list(cluster);
  }

 private:
  providers::inventory_store& _inner;
  std::atomic<std::size_t> _lookups{0};
};

}  // namespace prov::test
