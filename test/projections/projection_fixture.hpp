#pragma once
/// Shared by the projection tests: a RocksDB store in a temp dir, a journal over it (in memory
/// by default, so appends complete inline), and short ways to append request, cluster and
/// tenant events.

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rocksdb/db.h>
#include <rocksdb/iterator.h>

#include "prov/core/ids.hpp"
#include "prov/events/apply.hpp"
#include "prov/events/catalog.hpp"
#include "prov/events/memory_journal.hpp"
#include "prov/events/rocks_journal.hpp"
#include "prov/events/rocks_store.hpp"
#include "prov/projections/projector.hpp"
#include "prov/projections/views.hpp"

namespace projection_test {

using namespace prov;
using namespace prov::events;
using prov::projections::projector;
using prov::projections::projector_options;
using prov::projections::request_before;
using prov::projections::request_page;
using prov::projections::request_query;
using prov::projections::views;

/// "ok" or "<code>: <message>", for INFO.
template <class T>
std::string describe(const result<T>& r) {
  return r.ok() ? std::string("ok") : std::string(prov::to_string(r.err().code)) + ": " + r.err().message;
}

#define REQUIRE_OK(expr)     \
  do {                       \
    const auto& r_ = (expr); \
    INFO(describe(r_));      \
    REQUIRE(r_.ok());        \
  } while (false)

/// The value of a result that must be ok.
template <class T>
T must(result<T> r) {
  INFO(describe(r));
  REQUIRE(r.ok());
  return std::move(r).value();
}

/// A fresh directory under the system temp dir, removed with its contents at scope end.
class temp_dir {
 public:
  temp_dir() : _path(std::filesystem::temp_directory_path() / ("prov-projections-test-" + random_hex(8))) {
    std::filesystem::create_directories(_path);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(_path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::filesystem::path& path() const { return _path; }

 private:
  std::filesystem::path _path;
};

enum class journal_kind { memory, rocks };

/// A store, a journal over it, and a clock that moves 1 ms before every append (so requests
/// appended separately have distinct creation times). Declare projectors after it: the
/// journal must outlive them.
class world {
 public:
  explicit world(journal_kind kind = journal_kind::memory) {
    _store = must(rocks_store::open({(_dir.path() / "db").string()}));
    if (kind == journal_kind::memory) {
      _journal = std::make_unique<memory_journal>(clk);
    } else {
      _journal = must(make_rocks_journal(*_store, clk));
    }
  }

  rocks_store& store() { return *_store; }
  journal& j() { return *_journal; }

  /// Appends and waits for the commit (inline for memory, via a future for RocksDB).
  append_receipt append(std::vector<stream_append> batch) {
    clk.advance(std::chrono::milliseconds{1});
    std::promise<result<append_receipt>> done;
    auto answer = done.get_future();
    _journal->append(std::move(batch), [&done](result<append_receipt> r) { done.set_value(std::move(r)); });
    REQUIRE(answer.wait_for(std::chrono::seconds{30}) == std::future_status::ready);
    return must(answer.get());
  }

  /// Appends records to one stream, whatever its version.
  append_receipt append(const std::string& stream, std::vector<event_record> records) {
    return append({stream_append{stream, any_version, std::move(records)}});
  }

  manual_clock clk;

 private:
  temp_dir _dir;
  std::unique_ptr<rocks_store> _store;
  std::unique_ptr<journal> _journal;
};

// ---------------------------------------------------------------------------------------------
// Request histories

inline request_submitted submitted(const std::string& id, const std::string& tenant) {
  request_submitted e;
  e.request_id = id;
  e.tenant = tenant;
  e.region = "local";
  e.spec = resource_spec{1000, 2048, 20, ""};
  return e;
}

inline append_receipt submit(world& w, const std::string& id, const std::string& tenant) {
  return w.append(request_stream(id), {to_record(submitted(id, tenant))});
}

/// Several requests in one atomic append: they share a commit time.
inline append_receipt submit_together(world& w, const std::vector<std::string>& ids, const std::string& tenant) {
  std::vector<stream_append> batch;
  for (const auto& id : ids) {
    batch.push_back(stream_append{request_stream(id), 0, {to_record(submitted(id, tenant))}});
  }
  return w.append(std::move(batch));
}

/// queued -> allocating.
inline append_receipt start_allocating(world& w, const std::string& id) {
  return w.append(request_stream(id), {to_record(cluster_assigned{"sim-local"}),
                                       to_record(step_started{step_kind::allocate, 1, id + "/allocate/1"})});
}

/// The next step's state: allocating -> configuring -> activating -> verifying.
inline append_receipt finish_step(world& w, const std::string& id, step_kind step) {
  const auto next = static_cast<step_kind>(static_cast<int>(step) + 1);
  return w.append(request_stream(id), {to_record(step_succeeded{step, 1, {}}),
                                       to_record(step_started{next, 1, id + "/" + std::string{enum_name(next)} + "/1"})});
}

/// allocating -> completed (every step succeeds).
inline append_receipt complete(world& w, const std::string& id) {
  std::vector<event_record> records{to_record(step_succeeded{step_kind::allocate, 1, {}})};
  for (const auto step : {step_kind::configure, step_kind::activate, step_kind::verify}) {
    const auto key = id + "/" + std::string{enum_name(step)} + "/1";
    records.push_back(to_record(step_started{step, 1, key}));
    records.push_back(to_record(step_succeeded{step, 1, {{std::string{enum_name(step)}, "http://" + id}}}));
  }
  records.push_back(to_record(request_completed{}));
  return w.append(request_stream(id), std::move(records));
}

/// allocating -> failed.
inline append_receipt fail(world& w, const std::string& id) {
  return w.append(request_stream(id), {to_record(step_failed{step_kind::allocate, 1, "boom", "it broke", false}),
                                       to_record(request_failed{"provider_error", "it broke"})});
}

/// failed -> rolling_back.
inline append_receipt start_rollback(world& w, const std::string& id) {
  return w.append(request_stream(id), {to_record(rollback_started{"provider_error"})});
}

/// rolling_back -> rolled_back.
inline append_receipt finish_rollback(world& w, const std::string& id) {
  return w.append(request_stream(id), {to_record(request_rolled_back{})});
}

// ---------------------------------------------------------------------------------------------
// Clusters and tenants

inline append_receipt register_cluster(world& w, const std::string& id, const std::string& name) {
  cluster_registered e;
  e.cluster_id = id;
  e.name = name;
  e.region = "local";
  e.capacity = cluster_capacity{64000, 262144, 4096, 100};
  return w.append(cluster_stream(id), {to_record(e)});
}

inline append_receipt create_tenant(world& w, const std::string& id, const std::string& token) {
  tenant_created e;
  e.tenant_id = id;
  e.name = "Tenant " + id;
  e.token_sha256 = sha256_hex(token);
  return w.append(tenant_stream(id), {to_record(e)});
}

// ---------------------------------------------------------------------------------------------
// Inspection

/// The fold of a request's stream, straight from the journal.
inline request_state folded(world& w, const std::string& id) {
  const auto events = must(w.j().read_stream(request_stream(id), 1, std::numeric_limits<std::uint64_t>::max()));
  return must(fold_request(events));
}

/// Every key and value of the projections column family, in key order.
inline std::map<std::string, std::string> dump_projections(rocks_store& store) {
  std::map<std::string, std::string> out;
  std::unique_ptr<rocksdb::Iterator> it{store.db()->NewIterator(rocksdb::ReadOptions{}, store.projections_cf())};
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    out.emplace(it->key().ToString(), it->value().ToString());
  }
  REQUIRE(it->status().ok());
  return out;
}

/// How many keys of a dump start with `prefix`.
inline std::size_t count_prefix(const std::map<std::string, std::string>& dump, std::string_view prefix) {
  std::size_t n = 0;
  for (const auto& [k, v] : dump) {
    n += std::string_view{k}.starts_with(prefix) ? 1 : 0;
  }
  return n;
}

inline std::vector<std::string> ids_of(const std::vector<request_state>& states) {
  std::vector<std::string> out;
  for (const auto& s : states) {
    out.push_back(s.id);
  }
  return out;
}

/// Every page of a query, concatenated (pages of `limit`); REQUIREs that paging ends.
inline std::vector<std::string> list_all(const views& v, request_query query, std::size_t* pages = nullptr) {
  std::vector<std::string> out;
  std::size_t n = 0;
  for (;;) {
    const auto page = must(v.requests(query));
    ++n;
    REQUIRE(n < 10000);
    REQUIRE((n == 1 || !page.items.empty()));  // a cursor is given only when more items follow
    for (const auto& s : page.items) {
      out.push_back(s.id);
    }
    if (page.next_cursor.empty()) {
      break;
    }
    REQUIRE(page.items.size() == std::min<std::size_t>(query.limit == 0 ? 50 : query.limit, 1000));
    query.cursor = page.next_cursor;
  }
  if (pages != nullptr) {
    *pages = n;
  }
  return out;
}

}  // namespace projection_test
