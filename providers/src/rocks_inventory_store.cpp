#include <filesystem>
#include <memory>
#include <string_view>

#include <rocksdb/db.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/write_batch.h>

#include "prov/events/codec.hpp"
#include "prov/providers/inventory_store.hpp"

namespace prov::providers {

namespace {

constexpr char sep = '\x1f';
constexpr char item_tag = 'i';
/// Tags of format 1: a record by id and two index keys, converted on open.
constexpr std::string_view old_tags = "kqr";

/// "i\x1f<cluster>\x1f", then each part followed by the separator except the last.
std::string key_of(std::string_view cluster, std::string_view request = {}, std::string_view id = {}) {
  std::string k;
  k.reserve(4 + cluster.size() + request.size() + id.size());
  k.push_back(item_tag);
  k.push_back(sep);
  k += cluster;
  k.push_back(sep);
  if (!request.empty()) {
    k += request;
    k.push_back(sep);
    k += id;  // empty: the prefix of the request's resources
  }
  return k;
}

std::string key_of(const inventory_item& item) { return key_of(item.cluster, item.request_id, item.id); }

error io(const rocksdb::Status& s) { return make_error(errc::io_error, "inventory: " + s.ToString()); }

class rocks_inventory_store final : public inventory_store {
 public:
  explicit rocks_inventory_store(rocksdb::DB* db) : _db(db) {}
  ~rocks_inventory_store() override { delete _db; }

  rocks_inventory_store(const rocks_inventory_store&) = delete;
  rocks_inventory_store& operator=(const rocks_inventory_store&) = delete;

  status put_all(const std::vector<inventory_item>& items) override {
    if (items.empty()) {
      return {};
    }
    rocksdb::WriteBatch batch;
    for (const auto& item : items) {
      batch.Put(key_of(item), events::encode_binary(item));
    }
    if (auto s = _db->Write(rocksdb::WriteOptions{}, &batch); !s.ok()) {
      return io(s);
    }
    return {};
  }

  result<bool> erase(const std::string& cluster, const std::string& request_id, const std::string& id) override {
    const auto key = key_of(cluster, request_id, id);
    std::string value;
    auto s = _db->Get(rocksdb::ReadOptions{}, key, &value);
    if (s.IsNotFound()) {
      return false;
    }
    if (!s.ok()) {
      return io(s);
    }
    s = _db->Delete(rocksdb::WriteOptions{}, key);
    if (!s.ok()) {
      return io(s);
    }
    return true;
  }

  result<std::vector<inventory_item>> by_key(const std::string& cluster, const std::string& request_id,
                                             const std::string& key) override {
    return scan(key_of(cluster, request_id, {}), [&](const inventory_item& i) { return i.idempotency_key == key; });
  }

  result<std::vector<inventory_item>> by_request(const std::string& cluster, const std::string& request) override {
    return scan(key_of(cluster, request, {}), [](const inventory_item&) { return true; });
  }

  result<std::vector<inventory_item>> list(const std::string& cluster) override {
    return scan(key_of(cluster), [](const inventory_item&) { return true; });
  }

  /// Converts format 1 keys, if any: each record is written under its new key and every old
  /// key removed, in one batch.
  status upgrade() {
    rocksdb::WriteBatch batch;
    std::unique_ptr<rocksdb::Iterator> it{_db->NewIterator(rocksdb::ReadOptions{})};
    for (const char tag : old_tags) {
      const std::string prefix{tag, sep};
      for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
        if (tag == 'r') {
          auto item = events::decode_binary<inventory_item>(it->value().ToStringView());
          if (!item) {
            return std::move(item).err();
          }
          batch.Put(key_of(*item), it->value());
        }
        batch.Delete(it->key());
      }
      if (!it->status().ok()) {
        return io(it->status());
      }
    }
    if (batch.Count() == 0) {
      return {};
    }
    rocksdb::WriteOptions sync;
    sync.sync = true;
    if (auto s = _db->Write(sync, &batch); !s.ok()) {
      return io(s);
    }
    return {};
  }

 private:
  template <class Pred>
  result<std::vector<inventory_item>> scan(const std::string& prefix, Pred pred) {
    std::vector<inventory_item> out;
    const rocksdb::Slice lower{prefix};
    std::string end = prefix;
    end.back() = static_cast<char>(sep + 1);  // every prefix ends with the separator
    const rocksdb::Slice upper{end};
    rocksdb::ReadOptions read;
    read.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it{_db->NewIterator(read)};
    for (it->Seek(lower); it->Valid(); it->Next()) {
      auto item = events::decode_binary<inventory_item>(it->value().ToStringView());
      if (!item) {
        return std::move(item).err();
      }
      if (pred(*item)) {
        out.push_back(std::move(*item));
      }
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
  // Resources are keyed by request, whose ids (UUIDv7) grow in time: a new call's resources
  // mostly land next to the previous call's, where the memtable's insert hint starts.
  options.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(2));
  // Hints are ignored for parallel inserts; a group's leader inserts every batch itself.
  options.allow_concurrent_memtable_write = false;
  rocksdb::DB* db = nullptr;
  auto s = rocksdb::DB::Open(options, path, &db);
  if (!s.ok()) {
    return io(s);
  }
  auto store = std::make_unique<rocks_inventory_store>(db);
  if (auto upgraded = store->upgrade(); !upgraded) {
    return std::move(upgraded).err();
  }
  return std::unique_ptr<inventory_store>{std::move(store)};
}

}  // namespace prov::providers
