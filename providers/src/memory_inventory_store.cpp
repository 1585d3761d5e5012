#include <map>
#include <mutex>

#include "prov/providers/inventory_store.hpp"

namespace prov::providers {

namespace {

class memory_inventory_store final : public inventory_store {
 public:
  status put_all(const std::vector<inventory_item>& items) override {
    std::lock_guard<std::mutex> guard{_mutex};
    for (const auto& item : items) {
      _items[{item.cluster, item.id}] = item;
    }
    return {};
  }

  result<bool> erase(const std::string& cluster, const std::string& request_id, const std::string& id) override {
    std::lock_guard<std::mutex> guard{_mutex};
    const auto found = _items.find({cluster, id});
    if (found == _items.end() || found->second.request_id != request_id) {
      return false;
    }
    _items.erase(found);
    return true;
  }

  result<std::vector<inventory_item>> by_key(const std::string& cluster, const std::string& request_id,
                                             const std::string& key) override {
    return select(cluster,
                  [&](const inventory_item& i) { return i.request_id == request_id && i.idempotency_key == key; });
  }

  result<std::vector<inventory_item>> by_request(const std::string& cluster, const std::string& request) override {
    return select(cluster, [&](const inventory_item& i) { return i.request_id == request; });
  }

  result<std::vector<inventory_item>> list(const std::string& cluster) override {
    return select(cluster, [](const inventory_item&) { return true; });
  }

 private:
  template <class Pred>
  std::vector<inventory_item> select(const std::string& cluster, Pred pred) {
    std::lock_guard<std::mutex> guard{_mutex};
    std::vector<inventory_item> out;
    for (auto it = _items.lower_bound({cluster, ""}); it != _items.end() && it->first.first == cluster; ++it) {
      if (pred(it->second)) {
        out.push_back(it->second);
      }
    }
    return out;
  }

  std::mutex _mutex;
  std::map<std::pair<std::string, std::string>, inventory_item> _items;
};

}  // namespace

std::unique_ptr<inventory_store> make_memory_inventory_store() {
  return std::make_unique<memory_inventory_store>();
}

}  // namespace prov::providers
