#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <tuple>

#include <rocksdb/db.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/write_batch.h>

#include "prov/core/log.hpp"
#include "prov/events/codec.hpp"
#include "prov/providers/inventory_store.hpp"

namespace prov::providers {

namespace {

constexpr char sep = '\x1f';
constexpr char call_tag = 'c';
/// Older formats, converted on open: format 2 kept one key per resource ("i"), format 1 a
/// record by id and two index keys ("r", "k", "q").
constexpr char format2_tag = 'i';
constexpr std::string_view format1_tags = "kqr";
constexpr char format1_record_tag = 'r';

/// A resource as its call's record keeps it: the key holds its cluster, request and call.
struct stored_resource {
  std::string kind;
  std::string id;
  std::string name;
  events::step_kind step = events::step_kind::allocate;
  timestamp created_at{};
  bool suspended = false;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("kind", x.kind);
    f("id", x.id);
    f("name", x.name);
    f("step", x.step);
    f("createdAt", x.created_at);
    f("suspended", x.suspended);
  }
};

/// What one provider call made.
struct call_record {
  std::vector<stored_resource> resources;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("resources", x.resources);
  }
};

/// "c\x1f<cluster>\x1f", then "<request>\x1f" if given: the prefix of a cluster's or a
/// request's records.
std::string prefix_of(std::string_view cluster, std::string_view request = {}) {
  std::string k;
  k.reserve(4 + cluster.size() + request.size());
  k.push_back(call_tag);
  k.push_back(sep);
  k += cluster;
  k.push_back(sep);
  if (!request.empty()) {
    k += request;
    k.push_back(sep);
  }
  return k;
}

std::string key_of(std::string_view cluster, std::string_view request, std::string_view call) {
  return prefix_of(cluster, request) += call;
}

std::string key_of(const inventory_item& item) { return key_of(item.cluster, item.request_id, item.idempotency_key); }

/// The cluster, request and call a record's key names (nullopt: not a record's key).
std::optional<std::tuple<std::string_view, std::string_view, std::string_view>> parse_key(std::string_view key) {
  if (key.size() < 2 || key[0] != call_tag || key[1] != sep) {
    return std::nullopt;
  }
  key.remove_prefix(2);
  const auto cluster_end = key.find(sep);
  if (cluster_end == std::string_view::npos) {
    return std::nullopt;
  }
  const auto request_end = key.find(sep, cluster_end + 1);
  if (request_end == std::string_view::npos) {
    return std::nullopt;
  }
  return std::tuple{key.substr(0, cluster_end), key.substr(cluster_end + 1, request_end - cluster_end - 1),
                    key.substr(request_end + 1)};
}

stored_resource stored_of(const inventory_item& item) {
  return stored_resource{item.kind, item.id, item.name, item.step, item.created_at, item.suspended};
}

error io(const rocksdb::Status& s) { return make_error(errc::io_error, "inventory: " + s.ToString()); }

result<call_record> decode_record(std::string_view key, std::string_view value) {
  auto record = events::decode_binary<call_record>(value);
  if (!record) {
    return make_error(errc::corrupt, "inventory: record " + std::string{key} + ": " + record.err().message);
  }
  return record;
}

/// Appends the resources of the record under `key` to `out`, as inventory items.
status append_items(std::string_view key, std::string_view value, std::vector<inventory_item>& out) {
  const auto names = parse_key(key);
  if (!names) {
    return make_error(errc::corrupt, "inventory: unexpected key " + std::string{key});
  }
  auto record = decode_record(key, value);
  if (!record) {
    return std::move(record).err();
  }
  const auto& [cluster, request, call] = *names;
  for (auto& r : record->resources) {
    auto& item = out.emplace_back();
    item.cluster = cluster;
    item.kind = std::move(r.kind);
    item.id = std::move(r.id);
    item.name = std::move(r.name);
    item.request_id = request;
    item.idempotency_key = call;
    item.step = r.step;
    item.created_at = r.created_at;
    item.suspended = r.suspended;
  }
  return {};
}

/// Leaves one item per resource of a request, the newest: two calls' records may hold the same
/// resource (a namespace's name is fixed by its request, so a retry under a new key gets the
/// one an earlier try made, as a real cluster's "already exists" would). A request's records
/// are next to each other in `items`.
void keep_newest(std::vector<inventory_item>& items) {
  std::size_t kept = 0;
  std::size_t run = 0;  // where the current request's items start among the kept ones
  for (auto& item : items) {
    if (run < kept && items[run].request_id != item.request_id) {
      run = kept;
    }
    const auto first = items.begin() + static_cast<std::ptrdiff_t>(run);
    const auto last = items.begin() + static_cast<std::ptrdiff_t>(kept);
    if (const auto same = std::find_if(first, last, [&](const inventory_item& k) { return k.id == item.id; });
        same != last) {
      if (item.created_at >= same->created_at) {
        *same = std::move(item);
      }
      continue;
    }
    if (&items[kept] != &item) {
      items[kept] = std::move(item);
    }
    ++kept;
  }
  items.resize(kept);
}

/// Format 3: one record per provider call,
///   "c\x1f<cluster>\x1f<request id>\x1f<idempotency key>" -> call_record (binary codec)
/// A call that creates three resources is one key to write (and to flush and compact), not
/// three. Writes hold `_write`: a change to a record reads it first, and two changes to one
/// record must not both start from the same read.
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
    std::lock_guard<std::mutex> guard{_write};
    rocksdb::WriteBatch batch;
    if (auto merged = merge(items, batch); !merged) {
      return merged;
    }
    return write(batch);
  }

  status put_call(const std::vector<inventory_item>& items) override {
    if (items.empty()) {
      return {};
    }
    const auto& call = items.front();
    call_record record;
    record.resources.reserve(items.size());
    for (const auto& item : items) {
      if (item.cluster != call.cluster || item.request_id != call.request_id ||
          item.idempotency_key != call.idempotency_key) {
        return put_all(items);  // not one call's: each record is read and changed
      }
      record.resources.push_back(stored_of(item));
    }
    const auto key = key_of(call);
    std::string value;
    events::encode_binary(record, value);
    std::lock_guard<std::mutex> guard{_write};
    if (_failed) {
      return failed_earlier();
    }
    return checked(_db->Put(rocksdb::WriteOptions{}, key, value));
  }

  result<bool> erase(const std::string& cluster, const std::string& request_id, const std::string& id) override {
    std::lock_guard<std::mutex> guard{_write};
    rocksdb::WriteBatch batch;
    bool found = false;
    auto scanned = scan(prefix_of(cluster, request_id), [&](std::string_view key, std::string_view value) -> status {
      auto record = decode_record(key, value);
      if (!record) {
        return std::move(record).err();
      }
      auto& resources = record->resources;
      const auto before = resources.size();
      std::erase_if(resources, [&](const stored_resource& r) { return r.id == id; });
      if (resources.size() == before) {
        return {};
      }
      found = true;
      const rocksdb::Slice k{key.data(), key.size()};
      return detail_status(resources.empty() ? batch.Delete(k) : batch.Put(k, events::encode_binary(*record)));
    });
    if (!scanned) {
      return std::move(scanned).err();
    }
    if (auto written = write(batch); !written) {
      return std::move(written).err();
    }
    return found;
  }

  result<std::vector<inventory_item>> by_key(const std::string& cluster, const std::string& request_id,
                                             const std::string& key) override {
    const auto k = key_of(cluster, request_id, key);
    std::string value;
    std::vector<inventory_item> out;
    const auto s = _db->Get(rocksdb::ReadOptions{}, k, &value);
    if (s.IsNotFound()) {
      return out;
    }
    if (!s.ok()) {
      return io(s);
    }
    if (auto appended = append_items(k, value, out); !appended) {
      return std::move(appended).err();
    }
    return out;
  }

  result<std::vector<inventory_item>> by_request(const std::string& cluster, const std::string& request) override {
    return items_under(prefix_of(cluster, request));
  }

  result<std::vector<inventory_item>> list(const std::string& cluster) override {
    return items_under(prefix_of(cluster));
  }

  /// Converts the keys of formats 1 and 2, if any: their resources go into their calls'
  /// records, and every old key is removed, in one synced batch.
  status upgrade() {
    std::vector<inventory_item> old_items;
    rocksdb::WriteBatch batch;
    std::unique_ptr<rocksdb::Iterator> it{_db->NewIterator(rocksdb::ReadOptions{})};
    const auto tags = std::string{format1_tags} + format2_tag;
    for (const char tag : tags) {
      const std::string prefix{tag, sep};
      for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
        if (tag == format1_record_tag || tag == format2_tag) {
          auto item = events::decode_binary<inventory_item>(it->value().ToStringView());
          if (!item) {
            return std::move(item).err();
          }
          old_items.push_back(std::move(*item));
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
    if (auto merged = merge(old_items, batch); !merged) {
      return merged;
    }
    rocksdb::WriteOptions sync;
    sync.sync = true;
    if (auto s = _db->Write(sync, &batch); !s.ok()) {
      return io(s);
    }
    return {};
  }

 private:
  static status detail_status(const rocksdb::Status& s) { return s.ok() ? status{} : status{io(s)}; }

  /// Under `_write`.
  status write(rocksdb::WriteBatch& batch) {
    if (batch.Count() == 0) {
      return {};
    }
    if (_failed) {
      return failed_earlier();
    }
    return checked(_db->Write(rocksdb::WriteOptions{}, &batch));
  }

  /// A write's outcome, under `_write`. After a failed write nothing more is written until the
  /// store is reopened: its log file may hold a torn record, and Debian's RocksDB 7.8 aborts
  /// the process on a later write to a log file that failed one (a full disk did).
  status checked(const rocksdb::Status& s) {
    if (s.ok()) {
      return {};
    }
    _failed = true;
    log::error("inventory_write_failed",
               {{"error", s.ToString()}, {"hint", "the simulated cloud takes no more writes until provisiond restarts"}});
    return io(s);
  }

  static error failed_earlier() {
    return make_error(errc::unavailable, "inventory: an earlier write failed; provisiond must be restarted");
  }

  /// Stages in `batch` the records of the calls `items` belong to, each read once and changed:
  /// an item replaces the resource with its id, or joins the record.
  status merge(const std::vector<inventory_item>& items, rocksdb::WriteBatch& batch) {
    std::map<std::string, call_record> records;
    for (const auto& item : items) {
      auto key = key_of(item);
      auto found = records.find(key);
      if (found == records.end()) {
        auto read = read_record(key);
        if (!read) {
          return std::move(read).err();
        }
        found = records.emplace(std::move(key), std::move(*read)).first;
      }
      auto& resources = found->second.resources;
      const auto same = std::find_if(resources.begin(), resources.end(),
                                     [&](const stored_resource& r) { return r.id == item.id; });
      if (same != resources.end()) {
        *same = stored_of(item);
      } else {
        resources.push_back(stored_of(item));
      }
    }
    for (const auto& [key, record] : records) {
      batch.Put(key, events::encode_binary(record));
    }
    return {};
  }

  /// The record under `key` (empty if there is none).
  result<call_record> read_record(const std::string& key) {
    std::string value;
    const auto s = _db->Get(rocksdb::ReadOptions{}, key, &value);
    if (s.IsNotFound()) {
      return call_record{};
    }
    if (!s.ok()) {
      return io(s);
    }
    return decode_record(key, value);
  }

  result<std::vector<inventory_item>> items_under(const std::string& prefix) {
    std::vector<inventory_item> out;
    auto scanned = scan(prefix, [&](std::string_view key, std::string_view value) { return append_items(key, value, out); });
    if (!scanned) {
      return std::move(scanned).err();
    }
    keep_newest(out);
    return out;
  }

  /// Calls `visit(key, value)` for each record under `prefix` (which ends with the separator).
  template <class Visit>
  status scan(const std::string& prefix, Visit visit) {
    const rocksdb::Slice lower{prefix};
    std::string end = prefix;
    end.back() = static_cast<char>(sep + 1);
    const rocksdb::Slice upper{end};
    rocksdb::ReadOptions read;
    read.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it{_db->NewIterator(read)};
    for (it->Seek(lower); it->Valid(); it->Next()) {
      if (auto visited = visit(it->key().ToStringView(), it->value().ToStringView()); !visited) {
        return visited;
      }
    }
    if (!it->status().ok()) {
      return io(it->status());
    }
    return {};
  }

  rocksdb::DB* _db;
  std::mutex _write;
  bool _failed = false;  ///< a write failed (under `_write`)
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
  // Records are keyed by request, whose ids (UUIDv7) grow in time: a new call's record mostly
  // lands next to the previous call's, where the memtable's insert hint starts.
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
