#include "prov/projections/views.hpp"

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>

#include <rocksdb/db.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/snapshot.h>

#include "detail/keys.hpp"
#include "detail/usage_moves.hpp"
#include "detail/rocks_status.hpp"
#include "prov/events/codec.hpp"

namespace prov::projections {

namespace {

constexpr std::size_t default_limit = 50;
constexpr std::size_t max_limit = 1000;
/// Longest id a cursor may carry (ids are at most 128 characters; leave room).
constexpr std::size_t max_cursor_id = 1024;

constexpr std::string_view hex_digits = "0123456789abcdef";

std::string to_hex(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out.push_back(hex_digits[b >> 4]);
    out.push_back(hex_digits[b & 0x0f]);
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

/// The index suffix (`<inv><id>`) a cursor carries, or `errc::invalid_argument`.
result<std::string> decode_cursor(std::string_view cursor) {
  const auto invalid = [] { return make_error(errc::invalid_argument, "invalid cursor"); };
  if (cursor.size() % 2 != 0 || cursor.size() < 2 * (detail::inv_size + 1) ||
      cursor.size() > 2 * (detail::inv_size + max_cursor_id)) {
    return invalid();
  }
  std::string out;
  out.reserve(cursor.size() / 2);
  for (std::size_t i = 0; i < cursor.size(); i += 2) {
    const int hi = hex_value(cursor[i]);
    const int lo = hex_value(cursor[i + 1]);
    if (hi < 0 || lo < 0) {
      return invalid();
    }
    out.push_back(static_cast<char>((hi << 4) | lo));
  }
  return out;
}

std::string_view view_of(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

/// Reads and decodes one value; nullopt if the key is absent.
template <class T>
result<std::optional<T>> get_value(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
                                   const rocksdb::ReadOptions& read, const std::string& key) {
  rocksdb::PinnableSlice value;
  const auto s = db->Get(read, cf, key, &value);
  if (s.IsNotFound()) {
    return std::optional<T>{};
  }
  if (!s.ok()) {
    return detail::to_error(s, "projections: read " + key);
  }
  auto decoded = events::decode_binary<T>(view_of(value));
  if (!decoded) {
    return make_error(errc::corrupt, "projections: value of " + key + " is malformed (rebuild the projections)");
  }
  return std::optional<T>{std::move(*decoded)};
}

/// Decodes every value under `prefix`, in key order.
template <class T>
result<std::vector<T>> scan_values(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::string_view prefix) {
  const auto upper = detail::prefix_successor(prefix);
  const rocksdb::Slice upper_slice{upper};
  rocksdb::ReadOptions read;
  read.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it{db->NewIterator(read, cf)};
  std::vector<T> out;
  for (it->Seek(rocksdb::Slice{prefix.data(), prefix.size()}); it->Valid(); it->Next()) {
    auto decoded = events::decode_binary<T>(view_of(it->value()));
    if (!decoded) {
      return make_error(errc::corrupt, "projections: value of " + it->key().ToString() +
                                           " is malformed (rebuild the projections)");
    }
    out.push_back(std::move(*decoded));
  }
  if (!it->status().ok()) {
    return detail::to_error(it->status(), "projections: scan " + std::string{prefix});
  }
  return out;
}

/// The view of request `id`: its unwritten state if the projector has one, else the stored one
/// (`key`: scratch for its key).
result<std::optional<events::request_state>> request_view(const unwritten_requests* unwritten, rocksdb::DB* db,
                                                          rocksdb::ColumnFamilyHandle* cf,
                                                          const rocksdb::ReadOptions& read, std::string_view id,
                                                          std::string& key) {
  if (unwritten != nullptr) {
    if (auto state = unwritten->find(id)) {
      return state;
    }
  }
  return get_value<events::request_state>(db, cf, read, detail::make_key(key, detail::request_prefix, id));
}

}  // namespace

std::optional<events::request_state> unwritten_requests::find(std::string_view id) const {
  std::lock_guard lock(_mutex);
  const auto found = _states.find(id);
  if (found == _states.end()) {
    return std::nullopt;
  }
  return found->second.state;
}

std::size_t unwritten_requests::size() const {
  std::lock_guard lock(_mutex);
  return _states.size();
}

void unwritten_requests::visit(const std::function<void(std::string_view id, const entry&)>& visit) const {
  std::lock_guard lock(_mutex);
  for (const auto& [id, e] : _states) {
    visit(id, e);
  }
}

void unwritten_requests::update(const std::vector<put_item>& put, const std::vector<std::string_view>& erase) {
  std::lock_guard lock(_mutex);
  for (const auto id : erase) {
    if (const auto found = _states.find(id); found != _states.end()) {
      _states.erase(found);
    }
  }
  for (const auto& item : put) {
    if (const auto found = _states.find(item.id); found != _states.end()) {
      found->second.state = *item.state;  // over the buffers it has
      if (item.stored) {
        found->second.stored = *item.stored;
      }
    } else {
      _states.emplace(std::string{item.id}, entry{*item.state, item.stored.value_or(stored_image{})});
    }
  }
}

void unwritten_requests::clear() {
  std::lock_guard lock(_mutex);
  _states.clear();
}

const unwritten_requests::entry* unwritten_requests::peek(std::string_view id) const {
  const auto found = _states.find(id);
  return found == _states.end() ? nullptr : &found->second;
}

result<std::optional<events::request_state>> views::request(const std::string& id) const {
  std::string key;
  return request_view(_unwritten, _store.db(), _store.projections_cf(), rocksdb::ReadOptions{}, id, key);
}

result<request_page> views::requests(const request_query& query) const {
  const std::size_t limit = query.limit == 0 ? default_limit : std::min(query.limit, max_limit);

  std::string start;
  if (!query.cursor.empty()) {
    auto suffix = decode_cursor(query.cursor);
    if (!suffix) {
      return std::move(suffix).err();
    }
    start = std::move(*suffix);
  }

  // A list by state reads that state's bucket of the state index ("x/s/<bucket>", by tenant
  // "x/u/<tenant>\0<bucket>"); a list of every state merges all the buckets by index suffix
  // (newest first): each request is in exactly one of them in a snapshot.
  std::optional<std::string_view> tenant;
  if (query.tenant) {
    tenant = *query.tenant;
  }
  std::vector<std::string> prefixes;
  if (query.state) {
    prefixes.emplace_back();
    detail::append_index_prefix(prefixes.back(), tenant, *query.state);
  } else {
    for (const auto bucket : detail::index_buckets()) {
      prefixes.emplace_back();
      detail::append_index_prefix(prefixes.back(), tenant, bucket);
    }
  }

  // The active states share one index entry (`detail::index_bucket`): a list by one of them
  // reads the bucket and keeps the requests whose view is in that state.
  const bool filter_by_view = query.state && detail::in_active_bucket(*query.state);
  const auto matches = [&](const events::request_state& r) {
    if (query.tenant && r.tenant != *query.tenant) {
      return false;
    }
    if (!query.state) {
      return true;
    }
    return filter_by_view ? r.state == *query.state : detail::index_bucket(r.state) == detail::index_bucket(*query.state);
  };

  // Unwritten requests are listed by their newest state, merged in by their index suffix; the
  // store's index entries of them (the stored image's, if any) are skipped. Read before the
  // snapshot: one written in between is still skipped in the store and listed from here.
  // Only ids whose stored entries lie in the range this list reads need skipping (most
  // requests in flight have none stored at all). Of the unwritten requests that match, only
  // the first `limit + 1` after the cursor can show on this page (or say that more follow):
  // only their states are copied, whatever the number in flight.
  std::unordered_set<std::string, string_hash, std::equal_to<>> unwritten_ids;
  using pending_item = std::pair<std::string, events::request_state>;  // (index suffix, state)
  std::vector<pending_item> unwritten_items;  // a max-heap by suffix while it is filled
  const auto by_suffix = [](const pending_item& x, const pending_item& y) { return x.first < y.first; };
  if (_unwritten != nullptr) {
    const std::size_t keep = limit + 1;
    std::string suffix;
    _unwritten->visit([&](std::string_view id, const unwritten_requests::entry& e) {
      if (e.stored.version != 0 && (!query.tenant || e.state.tenant == *query.tenant) &&
          (!query.state || detail::index_bucket(e.stored.state) == detail::index_bucket(*query.state))) {
        unwritten_ids.emplace(id);
      }
      if (!matches(e.state)) {
        return;
      }
      suffix.clear();
      detail::append_index_suffix(suffix, e.state, id);
      if (suffix <= start) {
        return;
      }
      if (unwritten_items.size() < keep) {
        unwritten_items.emplace_back(suffix, e.state);
        std::push_heap(unwritten_items.begin(), unwritten_items.end(), by_suffix);
      } else if (suffix < unwritten_items.front().first) {
        std::pop_heap(unwritten_items.begin(), unwritten_items.end(), by_suffix);
        unwritten_items.back().first = suffix;
        unwritten_items.back().second = e.state;
        std::push_heap(unwritten_items.begin(), unwritten_items.end(), by_suffix);
      }
    });
    std::sort_heap(unwritten_items.begin(), unwritten_items.end(), by_suffix);
  }

  auto* db = _store.db();
  auto* cf = _store.projections_cf();
  // One snapshot for the index and the values: every item matches the filter it was found by.
  rocksdb::ManagedSnapshot snapshot{db};
  rocksdb::ReadOptions read;
  read.snapshot = snapshot.snapshot();

  /// One bucket's entries after the cursor, in index order.
  struct bucket_reader {
    std::string prefix;
    std::string upper;
    rocksdb::Slice upper_slice;
    std::unique_ptr<rocksdb::Iterator> it;
  };
  std::vector<bucket_reader> readers(prefixes.size());
  for (std::size_t i = 0; i < prefixes.size(); ++i) {
    auto& r = readers[i];
    r.prefix = std::move(prefixes[i]);
    r.upper = detail::prefix_successor(r.prefix);
    r.upper_slice = rocksdb::Slice{r.upper};
    rocksdb::ReadOptions scan = read;
    scan.iterate_upper_bound = &r.upper_slice;
    r.it.reset(db->NewIterator(scan, cf));
    const std::string seek_key = r.prefix + start;
    r.it->Seek(seek_key);
    if (!start.empty() && r.it->Valid() && view_of(r.it->key()) == seek_key) {
      r.it->Next();  // the cursor names the last item of the previous page
    }
  }

  // The next stored request the list shows, in index order (none once the index is exhausted).
  std::optional<std::pair<std::string, events::request_state>> stored;
  std::string key;
  const auto next_stored = [&]() -> status {
    stored.reset();
    for (;;) {
      bucket_reader* first = nullptr;  // the reader whose entry comes first
      std::string_view first_suffix;
      for (auto& r : readers) {
        if (!r.it->Valid()) {
          if (!r.it->status().ok()) {
            return detail::to_error(r.it->status(), "projections: list requests");
          }
          continue;
        }
        const auto suffix = view_of(r.it->key()).substr(r.prefix.size());
        if (first == nullptr || suffix < first_suffix) {
          first = &r;
          first_suffix = suffix;
        }
      }
      if (first == nullptr) {
        return {};
      }
      if (first_suffix.size() <= detail::inv_size) {
        return make_error(errc::corrupt, "projections: malformed index key (rebuild the projections)");
      }
      const auto id = first_suffix.substr(detail::inv_size);
      if (unwritten_ids.contains(id)) {
        first->it->Next();
        continue;
      }
      auto state = get_value<events::request_state>(db, cf, read, detail::make_key(key, detail::request_prefix, id));
      if (!state) {
        return std::move(state).err();
      }
      if (!*state) {
        return make_error(errc::corrupt, "projections: index names a missing request (rebuild the projections)");
      }
      if (!matches(**state)) {
        first->it->Next();
        continue;
      }
      stored.emplace(std::string{first_suffix}, std::move(**state));
      first->it->Next();
      return {};
    }
  };

  request_page page;
  std::string last_suffix;
  bool more = false;  // another item follows the page
  auto pending = unwritten_items.begin();
  if (auto read_next = next_stored(); !read_next) {
    return std::move(read_next).err();
  }
  while (stored || pending != unwritten_items.end()) {
    if (page.items.size() == limit) {
      more = true;
      break;
    }
    if (stored && (pending == unwritten_items.end() || stored->first < pending->first)) {
      last_suffix = std::move(stored->first);
      page.items.push_back(std::move(stored->second));
      if (auto read_next = next_stored(); !read_next) {
        return std::move(read_next).err();
      }
    } else {
      last_suffix = std::move(pending->first);
      page.items.push_back(std::move(pending->second));
      ++pending;
    }
  }
  if (more && !page.items.empty()) {
    page.next_cursor = to_hex(last_suffix);
  }
  return page;
}

result<std::vector<std::string>> views::live_requests() const {
  auto* db = _store.db();
  auto* cf = _store.projections_cf();
  rocksdb::ManagedSnapshot snapshot{db};
  rocksdb::ReadOptions read;
  read.snapshot = snapshot.snapshot();

  // The state index's buckets of every state not at rest; their keys carry the creation time.
  std::vector<std::pair<std::uint64_t, std::string>> live;  // (inverted creation time, id)
  for (const auto bucket : detail::index_buckets()) {
    if (events::is_at_rest(bucket)) {
      continue;
    }
    std::string prefix;
    detail::append_index_prefix(prefix, std::nullopt, bucket);
    const auto upper = detail::prefix_successor(prefix);
    const rocksdb::Slice upper_slice{upper};
    rocksdb::ReadOptions scan = read;
    scan.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it{db->NewIterator(scan, cf)};
    for (it->Seek(prefix); it->Valid(); it->Next()) {
      const auto suffix = view_of(it->key()).substr(prefix.size());
      if (suffix.size() <= detail::inv_size) {
        return make_error(errc::corrupt, "projections: malformed index key (rebuild the projections)");
      }
      live.emplace_back(detail::read_be64(suffix), std::string{suffix.substr(detail::inv_size)});
    }
    if (!it->status().ok()) {
      return detail::to_error(it->status(), "projections: list live requests");
    }
  }
  // Unwritten requests are not at rest, wherever the store has them.
  if (_unwritten != nullptr) {
    _unwritten->visit([&](std::string_view id, const unwritten_requests::entry& e) {
      live.emplace_back(detail::inverted_time(e.state.created_at), std::string{id});
    });
  }
  // Oldest first (the largest inverted time), then by id.
  std::sort(live.begin(), live.end(), [](const auto& x, const auto& y) {
    return x.first != y.first ? x.first > y.first : x.second < y.second;
  });
  live.erase(std::unique(live.begin(), live.end()), live.end());
  std::vector<std::string> out;
  out.reserve(live.size());
  for (auto& [inv, id] : live) {
    out.push_back(std::move(id));
  }
  return out;
}

result<std::optional<events::cluster_state>> views::cluster(const std::string& id) const {
  std::string key;
  return get_value<events::cluster_state>(_store.db(), _store.projections_cf(), rocksdb::ReadOptions{},
                                          detail::make_key(key, detail::cluster_prefix, id));
}

result<std::vector<events::cluster_state>> views::clusters() const {
  return scan_values<events::cluster_state>(_store.db(), _store.projections_cf(), detail::cluster_prefix);
}

result<std::optional<events::tenant_state>> views::tenant(const std::string& id) const {
  std::string key;
  return get_value<events::tenant_state>(_store.db(), _store.projections_cf(), rocksdb::ReadOptions{},
                                         detail::make_key(key, detail::tenant_prefix, id));
}

result<std::vector<events::tenant_state>> views::tenants() const {
  return scan_values<events::tenant_state>(_store.db(), _store.projections_cf(), detail::tenant_prefix);
}

result<std::optional<std::string>> views::tenant_by_token_hash(const std::string& sha256_hex) const {
  std::string key;
  detail::make_key(key, detail::token_prefix, sha256_hex);
  rocksdb::PinnableSlice value;
  const auto s = _store.db()->Get(rocksdb::ReadOptions{}, _store.projections_cf(), key, &value);
  if (s.IsNotFound()) {
    return std::optional<std::string>{};
  }
  if (!s.ok()) {
    return detail::to_error(s, "projections: read token");
  }
  return std::optional<std::string>{value.ToString()};
}

result<std::uint64_t> views::position() const {
  rocksdb::PinnableSlice value;
  const rocksdb::Slice key{detail::position_key.data(), detail::position_key.size()};
  const auto s = _store.db()->Get(rocksdb::ReadOptions{}, _store.projections_cf(), key, &value);
  if (s.IsNotFound()) {
    return std::uint64_t{0};
  }
  if (!s.ok()) {
    return detail::to_error(s, "projections: read position");
  }
  if (value.size() != 8) {
    return make_error(errc::corrupt, "projections: malformed position (rebuild the projections)");
  }
  return detail::read_be64(view_of(value));
}

}  // namespace prov::projections

namespace prov::projections {

namespace {

/// Decodes every value under `prefix`, keyed by the rest of its key.
template <class T>
result<std::map<std::string, T>> scan_entries(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, rocksdb::ReadOptions read,
                                             std::string_view prefix) {
  const auto upper = detail::prefix_successor(prefix);
  const rocksdb::Slice upper_slice{upper};
  read.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it{db->NewIterator(read, cf)};
  std::map<std::string, T> out;
  for (it->Seek(rocksdb::Slice{prefix.data(), prefix.size()}); it->Valid(); it->Next()) {
    auto decoded = events::decode_binary<T>(view_of(it->value()));
    if (!decoded) {
      return make_error(errc::corrupt, "projections: value of " + it->key().ToString() +
                                           " is malformed (rebuild the projections)");
    }
    out.emplace(it->key().ToString().substr(prefix.size()), std::move(*decoded));
  }
  if (!it->status().ok()) {
    return detail::to_error(it->status(), "projections: scan " + std::string{prefix});
  }
  return out;
}

}  // namespace

void usage_totals::add(const events::request_state& r, int sign) {
  cpu_millis += sign * r.spec.cpu_millis;
  memory_mb += sign * r.spec.memory_mb;
  storage_gb += sign * r.spec.storage_gb;
  instances += sign;
  auto& by_type = instances_by_type[std::string{events::enum_name(r.type)}];
  by_type += sign;
  if (by_type == 0) {
    instances_by_type.erase(std::string{events::enum_name(r.type)});
  }
}

template <int Kind>
usage_totals usage_record<Kind>::total() const {
  usage_totals t = used;
  t.cpu_millis += reserved.cpu_millis;
  t.memory_mb += reserved.memory_mb;
  t.storage_gb += reserved.storage_gb;
  t.instances += reserved.instances;
  for (const auto& [type, n] : reserved.instances_by_type) {
    t.instances_by_type[type] += n;
  }
  return t;
}

template struct usage_record<0>;
template struct usage_record<1>;

usage_bucket bucket_of(const events::request_state& r) {
  if (!r.exists() || r.state == events::lifecycle_state::rolled_back) {
    return usage_bucket::none;
  }
  return r.step(events::step_kind::allocate).status == events::step_status::succeeded ? usage_bucket::used
                                                                                       : usage_bucket::reserved;
}

result<std::optional<events::rule_state>> views::rule(const std::string& id) const {
  std::string key;
  return get_value<events::rule_state>(_store.db(), _store.projections_cf(), rocksdb::ReadOptions{},
                                       detail::make_key(key, detail::rule_prefix, id));
}

result<std::vector<events::rule_state>> views::rules() const {
  auto all = scan_values<events::rule_state>(_store.db(), _store.projections_cf(), detail::rule_prefix);
  if (!all) {
    return std::move(all).err();
  }
  std::erase_if(*all, [](const events::rule_state& r) { return r.deleted; });
  return all;
}

namespace {

using unwritten_entries = std::vector<std::pair<std::string, unwritten_requests::entry>>;

/// Keeps the entries of `pending` whose change the snapshot `read` does not hold: those whose
/// stored view there is still the one their image names. `pending` was copied before the
/// snapshot was taken, so an entry written in between is counted by the snapshot's usage
/// records (written with its view) and dropped here.
status drop_written(unwritten_entries& pending, rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
                    const rocksdb::ReadOptions& read) {
  std::string key;
  std::optional<error> failed;
  std::erase_if(pending, [&](const auto& item) {
    if (failed) {
      return false;
    }
    auto stored = get_value<events::request_state>(db, cf, read, detail::make_key(key, detail::request_prefix, item.first));
    if (!stored) {
      failed = std::move(stored).err();
      return false;
    }
    return (*stored ? (*stored)->version : 0) != item.second.stored.version;
  });
  if (failed) {
    return std::move(*failed);
  }
  return {};
}

/// The usage records that `with_unwritten_moves` callers do not change.
tenant_usage* no_tenant_record() { return nullptr; }
cluster_usage* no_cluster_record(const std::string&) { return nullptr; }

/// Usage records as `read_records` reads them from one snapshot, with the moves of the
/// unwritten changes `pick` selects added by `add` (those the snapshot does not hold yet).
template <class Read, class Add>
auto with_unwritten_moves(const unwritten_requests* unwritten, rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
                          const std::function<bool(const unwritten_requests::entry&)>& pick, Read read_records, Add add)
    -> decltype(read_records(rocksdb::ReadOptions{})) {
  unwritten_entries pending;
  if (unwritten != nullptr) {
    // Before the snapshot (see `drop_written`).
    unwritten->visit([&](std::string_view id, const unwritten_requests::entry& e) {
      if (pick(e)) {
        pending.emplace_back(id, e);
      }
    });
  }
  rocksdb::ManagedSnapshot snapshot{db};
  rocksdb::ReadOptions read;
  read.snapshot = snapshot.snapshot();
  auto records = read_records(read);
  if (!records) {
    return records;
  }
  if (auto dropped = drop_written(pending, db, cf, read); !dropped) {
    return std::move(dropped).err();
  }
  for (const auto& item : pending) {
    add(*records, item.second);
  }
  return records;
}

template <class Usage>
result<Usage> usage_at(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, const rocksdb::ReadOptions& read,
                       std::string_view prefix, const std::string& id) {
  std::string key;
  auto found = get_value<Usage>(db, cf, read, detail::make_key(key, prefix, id));
  if (!found) {
    return std::move(found).err();
  }
  return found->value_or(Usage{});
}

bool any_entry(const unwritten_requests::entry&) { return true; }

}  // namespace

// The usage records agree with the stored views; the moves of unwritten changes are added to
// them here, so that usage is as current as the views.

result<tenant_usage> views::usage_of_tenant(const std::string& tenant) const {
  auto* db = _store.db();
  auto* cf = _store.projections_cf();
  return with_unwritten_moves(
      _unwritten, db, cf, [&](const unwritten_requests::entry& e) { return e.state.tenant == tenant; },
      [&](const rocksdb::ReadOptions& read) { return usage_at<tenant_usage>(db, cf, read, detail::tenant_usage_prefix, tenant); },
      [](tenant_usage& u, const unwritten_requests::entry& e) {
        detail::move_request_usage(e.stored, e.state, [&] { return &u; }, no_cluster_record);
      });
}

result<cluster_usage> views::usage_of_cluster(const std::string& cluster) const {
  auto* db = _store.db();
  auto* cf = _store.projections_cf();
  return with_unwritten_moves(
      _unwritten, db, cf,
      [&](const unwritten_requests::entry& e) { return e.stored.cluster == cluster || e.state.cluster == cluster; },
      [&](const rocksdb::ReadOptions& read) {
        return usage_at<cluster_usage>(db, cf, read, detail::cluster_usage_prefix, cluster);
      },
      [&](cluster_usage& u, const unwritten_requests::entry& e) {
        detail::move_request_usage(e.stored, e.state, no_tenant_record,
                                   [&](const std::string& id) { return id == cluster ? &u : nullptr; });
      });
}

result<std::map<std::string, tenant_usage>> views::tenant_usages() const {
  auto* db = _store.db();
  auto* cf = _store.projections_cf();
  return with_unwritten_moves(
      _unwritten, db, cf, any_entry,
      [&](const rocksdb::ReadOptions& read) { return scan_entries<tenant_usage>(db, cf, read, detail::tenant_usage_prefix); },
      [](std::map<std::string, tenant_usage>& all, const unwritten_requests::entry& e) {
        detail::move_request_usage(e.stored, e.state, [&] { return &all[e.state.tenant]; }, no_cluster_record);
      });
}

result<std::map<std::string, cluster_usage>> views::cluster_usages() const {
  auto* db = _store.db();
  auto* cf = _store.projections_cf();
  return with_unwritten_moves(
      _unwritten, db, cf, any_entry,
      [&](const rocksdb::ReadOptions& read) { return scan_entries<cluster_usage>(db, cf, read, detail::cluster_usage_prefix); },
      [](std::map<std::string, cluster_usage>& all, const unwritten_requests::entry& e) {
        detail::move_request_usage(e.stored, e.state, no_tenant_record, [&](const std::string& id) { return &all[id]; });
      });
}

}  // namespace prov::projections

namespace prov::projections {

result<std::optional<events::webhook_state>> views::webhook(const std::string& id) const {
  std::string key;
  return get_value<events::webhook_state>(_store.db(), _store.projections_cf(), rocksdb::ReadOptions{},
                                          detail::make_key(key, detail::webhook_prefix, id));
}

result<std::vector<events::webhook_state>> views::webhooks(const std::optional<std::string>& tenant) const {
  auto all = scan_values<events::webhook_state>(_store.db(), _store.projections_cf(), detail::webhook_prefix);
  if (!all) {
    return std::move(all).err();
  }
  std::erase_if(*all, [&](const events::webhook_state& w) { return w.deleted || (tenant && w.tenant != *tenant); });
  return all;
}

result<std::vector<events::webhook_delivery_attempted>> views::webhook_deliveries(const std::string& id,
                                                                                  std::size_t limit) const {
  const auto prefix = detail::webhook_delivery_key_prefix(id);
  const auto upper = detail::prefix_successor(prefix);
  const rocksdb::Slice lower_slice{prefix};
  const rocksdb::Slice upper_slice{upper};
  rocksdb::ReadOptions read;
  read.iterate_lower_bound = &lower_slice;
  read.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it{_store.db()->NewIterator(read, _store.projections_cf())};
  std::vector<events::webhook_delivery_attempted> out;
  for (it->SeekToLast(); it->Valid() && out.size() < limit; it->Prev()) {
    auto decoded = events::decode_binary<events::webhook_delivery_attempted>(view_of(it->value()));
    if (!decoded) {
      return make_error(errc::corrupt, "projections: a delivery record of webhook " + id +
                                           " is malformed (rebuild the projections)");
    }
    out.push_back(std::move(*decoded));
  }
  if (!it->status().ok()) {
    return detail::to_error(it->status(), "projections: list deliveries of webhook " + id);
  }
  return out;
}

}  // namespace prov::projections
