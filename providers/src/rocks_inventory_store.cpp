#include <filesystem>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "prov/events/codec.hpp"
#include "prov/providers/inventory_store.hpp"

namespace prov::providers {

namespace {

constexpr char sep = '\x1f';

std::string key_of(char tag, const std::string& cluster, const std::string& middle, const std::string& id = {}) {
  std::string k;
  k.reserve(3 + cluster.size() + middle.size() + id.size());
  k.push_back(tag);
  k.push_back(sep);
  k += cluster;
  k.push_back(sep);
  k += middle;
  if (!id.empty()) {
    k.push_back(sep);
    k += id;
  }
  return k;
}

error io(const rocksdb::Status& s) { return make_error(errc::io_error, "inventory: " + s.ToString()); }

class rocks_inventory_store final : public inventory_store {
 public:
  explicit rocks_inventory_store(rocksdb::DB* db) : _db(db) {}
  ~rocks_inventory_store() override { delete _db; }

  status put(const inventory_item& item) override {
    rocksdb::WriteBatch batch;
    batch.Put(key_of('r', item.cluster, item.id), events::encode_binary(item));
    batch.Put(key_of('k', item.cluster, item.idempotency_key, item.id), "");
    batch.Put(key_of('q', item.cluster, item.request_id, item.id), "");
    auto s = _db->Write(rocksdb::WriteOptions{}, &batch);
    if (!s.ok()) {
      return io(s);
    }
    return {};
  }

  result<bool> erase(const std::string& cluster, const std::string& id) override {
    std::string value;
    auto s = _db->Get(rocksdb::ReadOptions{}, key_of('r', cluster, id), &value);
    if (s.IsNotFound()) {
      return false;
    }
    if (!s.ok()) {
      return io(s);
    }
    auto item = events::decode_binary<inventory_item>(value);
    if (!item) {
      return std::move(item).err();
    }
    rocksdb::WriteBatch batch;
    batch.Delete(key_of('r', cluster, id));
    batch.Delete(key_of('k', cluster, item->idempotency_key, id));
    batch.Delete(key_of('q', cluster, item->request_id, id));
    s = _db->Write(rocksdb::WriteOptions{}, &batch);
    if (!s.ok()) {
      return io(s);
    }
    return true;
  }

  result<std::vector<inventory_item>> by_key(const std::string& cluster, const std::string& key) override {
    return via_index('k', cluster, key);
  }

  result<std::vector<inventory_item>> by_request(const std::string& cluster, const std::string& request) override {
    return via_index('q', cluster, request);
  }

  result<std::vector<inventory_item>> list(const std::string& cluster) override {
    std::vector<inventory_item> out;
    const std::string prefix = key_of('r', cluster, "");
    std::unique_ptr<rocksdb::Iterator> it{_db->NewIterator(rocksdb::ReadOptions{})};
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      auto item = events::decode_binary<inventory_item>(it->value().ToStringView());
      if (!item) {
        return std::move(item).err();
      }
      out.push_back(std::move(*item));
    }
    if (!it->status().ok()) {
      return io(it->status());
    }
    return out;
  }

 private:
  result<std::vector<inventory_item>> via_index(char tag, const std::string& cluster, const std::string& middle) {
    std::vector<inventory_item> out;
    const std::string prefix = key_of(tag, cluster, middle) + sep;
    std::unique_ptr<rocksdb::Iterator> it{_db->NewIterator(rocksdb::ReadOptions{})};
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      const auto id = it->key().ToString().substr(prefix.size());
      std::string value;
      auto s = _db->Get(rocksdb::ReadOptions{}, key_of('r', cluster, id), &value);
      if (s.IsNotFound()) {
        continue;
      }
      if (!s.ok()) {
        return io(s);
      }
      auto item = events::decode_binary<inventory_item>(value);
      if (!item) {
        return std::move(item).err();
      }
      out.push_back(std::move(*item));
    }
    if (!it->status().ok()) {
      return io(it->status());
    }
    return out;
  }

  rocksdb::DB* _db;
};

}  // namespace

result<std::unique_ptr<inventory_store>> open_rocks_inventory_store(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) {
    return make_error(errc::io_error, "inventory: cannot create " + path + ": " + ec.message());
  }
  rocksdb::Options options;
  options.create_if_missing = true;
  options.max_background_jobs = 1;
  rocksdb::DB* db = nullptr;
  auto s = rocksdb::DB::Open(options, path, &db);
  if (!s.ok()) {
    return io(s);
  }
  return std::unique_ptr<inventory_store>{new rocks_inventory_store(db)};
}

}  // namespace prov::providers
