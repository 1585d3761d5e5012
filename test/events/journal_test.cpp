#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/table_properties.h>
#include <rocksdb/convenience.h>
#include <rocksdb/write_batch.h>

#include "prov/core/be64.hpp"
#include "prov/core/ids.hpp"
#include "prov/events/memory_journal.hpp"
#include "prov/events/rocks_journal.hpp"
#include "prov/events/rocks_store.hpp"
#include "support/log_capture.hpp"
#include "support/wal_sync_gate.hpp"

using namespace prov;
using namespace prov::events;
using prov::test::gated_env;

namespace {

enum class kind { memory, rocks };

}  // namespace

namespace Catch {

template <>
struct StringMaker<kind> {
  static std::string convert(kind k) { return k == kind::memory ? "memory" : "rocks"; }
};

template <>
struct StringMaker<stored_event> {
  static std::string convert(const stored_event& e) {
    std::ostringstream out;
    out << "{#" << e.position << " " << e.stream << "@" << e.sequence << " t=" << e.time.time_since_epoch().count()
        << "us type=" << e.type_id << "/v" << int{e.version} << " payload=" << e.payload.size() << "B}";
    return out.str();
  }
};

}  // namespace Catch

namespace {

/// "ok" or "<code>: <message>", for INFO.
template <class T>
std::string describe(const result<T>& r) {
  return r.ok() ? std::string("ok") : std::string(prov::to_string(r.err().code)) + ": " + r.err().message;
}

#define REQUIRE_OK(expr)         \
  do {                           \
    const auto& r_ = (expr);     \
    INFO(describe(r_));          \
    REQUIRE(r_.ok());            \
  } while (false)

/// A fresh directory under the system temp dir, removed with its contents at scope end.
class temp_dir {
 public:
  temp_dir() : _path(std::filesystem::temp_directory_path() / ("prov-journal-test-" + random_hex(8))) {
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

/// One journal under test (in memory, or RocksDB in a temp dir) with a manual clock.
class journal_env {
 public:
  explicit journal_env(kind k, rocks_journal_options options = {}, rocksdb::Env* rocks_env = nullptr)
      : _options(options), _rocks_env(rocks_env) {
    if (k == kind::memory) {
      _journal = std::make_unique<memory_journal>(clk);
    } else {
      _dir.emplace();
      open();
    }
  }

  journal& j() { return *_journal; }
  rocks_store& store() { return *_store; }
  bool is_rocks() const { return _dir.has_value(); }
  std::string db_path() const { return (_dir->path() / "db").string(); }

  /// Destroys the journal (completing queued appends) and the store.
  void close() {
    _journal.reset();
    _store.reset();
  }

  /// Opens the store and a journal over it (RocksDB only).
  void open() {
    rocks_store_options store_options;
    store_options.path = db_path();
    store_options.env = _rocks_env;
    auto store = rocks_store::open(store_options);
    REQUIRE_OK(store);
    _store = std::move(store).value();
    auto journal = make_rocks_journal(*_store, clk, _options);
    REQUIRE_OK(journal);
    _journal = std::move(journal).value();
  }

  manual_clock clk;

 private:
  rocks_journal_options _options;
  rocksdb::Env* _rocks_env;
  std::optional<temp_dir> _dir;
  std::unique_ptr<rocks_store> _store;
  std::unique_ptr<journal> _journal;
};

event_record ev(std::uint16_t type_id, std::string payload, std::uint8_t version = 1) {
  return event_record{type_id, version, std::move(payload)};
}

stream_append to(std::string stream, std::uint64_t expected, std::vector<event_record> events) {
  return stream_append{std::move(stream), expected, std::move(events)};
}

/// Appends and waits for the handler.
result<append_receipt> append_now(journal& j, std::vector<stream_append> batch) {
  std::promise<result<append_receipt>> done;
  auto answer = done.get_future();
  j.append(std::move(batch), [&done](result<append_receipt> r) { done.set_value(std::move(r)); });
  return answer.get();
}

std::vector<stored_event> read_all(const journal& j, std::uint64_t from = 1,
                                   std::size_t max = std::numeric_limits<std::size_t>::max()) {
  std::vector<stored_event> out;
  const auto visited = j.read_all(from, max, [&](const stored_event& e) { out.push_back(e); });
  REQUIRE_OK(visited);
  REQUIRE(*visited == out.size());
  return out;
}

std::vector<stored_event> read_stream(const journal& j, std::string_view stream, std::uint64_t from = 1,
                                      std::uint64_t max = std::numeric_limits<std::uint64_t>::max()) {
  auto events = j.read_stream(stream, from, max);
  REQUIRE_OK(events);
  return std::move(events).value();
}

std::uint64_t version_of(const journal& j, std::string_view stream) {
  const auto v = j.stream_version(stream);
  REQUIRE_OK(v);
  return *v;
}

std::vector<std::uint64_t> positions(const std::vector<stored_event>& events) {
  std::vector<std::uint64_t> out;
  for (const auto& e : events) {
    out.push_back(e.position);
  }
  return out;
}

std::vector<std::uint64_t> sequences(const std::vector<stored_event>& events) {
  std::vector<std::uint64_t> out;
  for (const auto& e : events) {
    out.push_back(e.sequence);
  }
  return out;
}

using u64s = std::vector<std::uint64_t>;

}  // namespace

TEST_CASE("journal: appended events read back by stream and from the log", "[events][journal]") {
  const auto k = GENERATE(kind::memory, kind::rocks);
  CAPTURE(k);
  journal_env env(k);
  auto& j = env.j();
  const auto t1 = env.clk.now();

  CHECK(j.head() == 0);
  CHECK(read_all(j).empty());
  CHECK(read_stream(j, "request/a").empty());
  CHECK(version_of(j, "request/a") == 0);

  const std::string binary("\x00\x01\xff payload", 11);
  const auto first = append_now(j, {to("request/a", 0, {ev(1, "created"), ev(2, binary, 3)}),
                                    to("cluster/x", 0, {ev(7, "")})});
  REQUIRE_OK(first);
  CHECK(first->first_position == 1);
  CHECK(first->last_position == 3);
  CHECK(first->time == t1);
  CHECK(first->versions == u64s{2, 1});

  env.clk.advance(std::chrono::milliseconds{5});
  const auto t2 = env.clk.now();
  const auto second = append_now(j, {to("request/a", 2, {ev(3, "done")})});
  REQUIRE_OK(second);
  CHECK(second->first_position == 4);
  CHECK(second->last_position == 4);
  CHECK(second->time == t2);
  CHECK(second->versions == u64s{3});

  const std::vector<stored_event> expected{
      {1, "request/a", 1, t1, 1, 1, "created"},
      {2, "request/a", 2, t1, 2, 3, binary},
      {3, "cluster/x", 1, t1, 7, 1, ""},
      {4, "request/a", 3, t2, 3, 1, "done"},
  };
  CHECK(j.head() == 4);
  CHECK(read_all(j) == expected);
  CHECK(read_all(j, 0) == expected);
  CHECK(read_all(j, 2, 2) == std::vector<stored_event>{expected[1], expected[2]});
  CHECK(read_all(j, 4, 10) == std::vector<stored_event>{expected[3]});
  CHECK(read_all(j, 5).empty());
  CHECK(read_all(j, 1, 0).empty());

  CHECK(read_stream(j, "request/a") == std::vector<stored_event>{expected[0], expected[1], expected[3]});
  CHECK(read_stream(j, "request/a", 2, 1) == std::vector<stored_event>{expected[1]});
  CHECK(read_stream(j, "request/a", 3) == std::vector<stored_event>{expected[3]});
  CHECK(read_stream(j, "request/a", 4).empty());
  CHECK(read_stream(j, "request/a", 1, 0).empty());
  CHECK(read_stream(j, "cluster/x") == std::vector<stored_event>{expected[2]});
  CHECK(read_stream(j, "request/").empty());  // a prefix of another stream is not that stream
  CHECK(read_stream(j, "request/ab").empty());
  CHECK(version_of(j, "request/a") == 3);
  CHECK(version_of(j, "cluster/x") == 1);
  CHECK(version_of(j, "request/") == 0);
}

TEST_CASE("journal: commit times never run backwards when the wall clock is set back", "[events][journal]") {
  const auto k = GENERATE(kind::memory, kind::rocks);
  CAPTURE(k);
  journal_env env(k);
  auto& j = env.j();
  const auto t1 = env.clk.now();
  REQUIRE_OK(append_now(j, {to("request/a", 0, {ev(1, "a1")})}));

  // An NTP step or an operator sets the clock back an hour: the log keeps the last time
  // until the clock has caught up, then follows it again.
  env.clk.set(t1 - std::chrono::hours{1});
  const auto held = append_now(j, {to("request/a", 1, {ev(2, "a2")})});
  REQUIRE_OK(held);
  CHECK(held->time == t1);
  env.clk.advance(std::chrono::minutes{59});
  CHECK(append_now(j, {to("request/b", 0, {ev(3, "b1")})})->time == t1);
  env.clk.advance(std::chrono::minutes{2});
  const auto t2 = env.clk.now();
  REQUIRE(t2 > t1);
  CHECK(append_now(j, {to("request/a", 2, {ev(4, "a3")})})->time == t2);

  std::vector<timestamp> times;
  for (const auto& e : read_all(j)) {
    times.push_back(e.time);
  }
  CHECK(times == std::vector<timestamp>{t1, t1, t1, t2});

  if (k == kind::rocks) {
    // Reopened with the clock behind again: the time comes from the log's last record.
    env.close();
    env.clk.set(t1 - std::chrono::hours{2});
    env.open();
    CHECK(append_now(env.j(), {to("request/a", 3, {ev(5, "a4")})})->time == t2);
  }
}

TEST_CASE("journal: sequences and positions are dense", "[events][journal]") {
  const auto k = GENERATE(kind::memory, kind::rocks);
  CAPTURE(k);
  journal_env env(k);
  auto& j = env.j();

  const std::vector<std::string> streams{"s/1", "s/2", "s/3"};
  for (int round = 0; round < 5; ++round) {
    for (const auto& s : streams) {
      REQUIRE_OK(append_now(j, {to(s, any_version, {ev(1, "a"), ev(1, "b")})}));
    }
  }
  const auto all = read_all(j);
  REQUIRE(all.size() == 30);
  for (std::size_t i = 0; i < all.size(); ++i) {
    CHECK(all[i].position == i + 1);
  }
  for (const auto& s : streams) {
    const auto events = read_stream(j, s);
    u64s expected;
    for (std::uint64_t q = 1; q <= 10; ++q) {
      expected.push_back(q);
    }
    CHECK(sequences(events) == expected);
    CHECK(version_of(j, s) == 10);
  }
}

TEST_CASE("journal: a category's last position bounds where its streams were appended to", "[events][journal]") {
  const auto k = GENERATE(kind::memory, kind::rocks);
  CAPTURE(k);
  journal_env env(k);
  auto& j = env.j();
  CHECK(j.last_position_in("hook") == 0);

  const auto hook = append_now(j, {to("hook/1", 0, {ev(1, "h")})});
  REQUIRE_OK(hook);
  REQUIRE_OK(append_now(j, {to("request/1", 0, {ev(1, "a"), ev(1, "b")})}));
  REQUIRE_OK(append_now(j, {to("request/2", 0, {ev(1, "c")})}));
  CHECK(j.last_position_in("hook") == hook->last_position);
  CHECK(j.last_position_in("request") == j.head());
  CHECK(j.last_position_in("cluster") == 0);

  // A multi-stream append bounds each of its categories by its last position.
  const auto both = append_now(j, {to("request/1", 2, {ev(1, "d")}), to("hook/1", 1, {ev(1, "e")})});
  REQUIRE_OK(both);
  CHECK(j.last_position_in("hook") == both->last_position);
  // A rejected append moves nothing.
  CHECK_FALSE(append_now(j, {to("hook/1", 0, {ev(1, "stale")})}).ok());
  CHECK(j.last_position_in("hook") <= both->last_position);

  if (env.is_rocks()) {
    // After a reopen nothing is known of what came before: every category is bounded by the
    // head at opening.
    env.close();
    env.open();
    CHECK(env.j().last_position_in("cluster") == env.j().head());
    CHECK(env.j().last_position_in("hook") == env.j().head());
  }
}

TEST_CASE("journal: expected versions are enforced", "[events][journal]") {
  const auto k = GENERATE(kind::memory, kind::rocks);
  CAPTURE(k);
  journal_env env(k);
  auto& j = env.j();
  REQUIRE_OK(append_now(j, {to("request/abc", 0, {ev(1, "1"), ev(1, "2"), ev(1, "3")})}));

  SECTION("0 on an existing stream") {
    const auto r = append_now(j, {to("request/abc", 0, {ev(1, "x")})});
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().code == errc::version_conflict);
    CHECK(r.err().message == "stream request/abc: expected version 0, actual 3");
  }
  SECTION("a stale version") {
    const auto r = append_now(j, {to("request/abc", 2, {ev(1, "x")})});
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().code == errc::version_conflict);
    CHECK(r.err().message == "stream request/abc: expected version 2, actual 3");
  }
  SECTION("a version from the future") {
    const auto r = append_now(j, {to("request/abc", 4, {ev(1, "x")})});
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().code == errc::version_conflict);
  }
  SECTION("a non-zero version on a new stream") {
    const auto r = append_now(j, {to("request/new", 1, {ev(1, "x")})});
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().message == "stream request/new: expected version 1, actual 0");
  }
  SECTION("the current version and any_version succeed") {
    const auto exact = append_now(j, {to("request/abc", 3, {ev(1, "4")})});
    REQUIRE_OK(exact);
    CHECK(exact->versions == u64s{4});
    const auto any = append_now(j, {to("request/abc", any_version, {ev(1, "5")})});
    REQUIRE_OK(any);
    CHECK(any->versions == u64s{5});
    CHECK(version_of(j, "request/abc") == 5);
    return;
  }
  // Every failed section wrote nothing.
  CHECK(j.head() == 3);
  CHECK(version_of(j, "request/abc") == 3);
}

TEST_CASE("journal: a multi-stream append is all or nothing", "[events][journal]") {
  const auto k = GENERATE(kind::memory, kind::rocks);
  CAPTURE(k);
  journal_env env(k);
  auto& j = env.j();
  REQUIRE_OK(append_now(j, {to("b", 0, {ev(1, "b1")})}));

  const auto conflict =
      append_now(j, {to("a", 0, {ev(1, "a1")}), to("b", 0, {ev(1, "b2")}), to("c", 0, {ev(1, "c1")})});
  REQUIRE_FALSE(conflict.ok());
  CHECK(conflict.err().code == errc::version_conflict);
  CHECK(conflict.err().message == "stream b: expected version 0, actual 1");
  CHECK(j.head() == 1);
  CHECK(read_stream(j, "a").empty());
  CHECK(read_stream(j, "c").empty());
  CHECK(version_of(j, "a") == 0);

  // The rejected append left no trace in the version bookkeeping either.
  const auto ok = append_now(j, {to("a", 0, {ev(1, "a1")}), to("b", 1, {ev(1, "b2")})});
  REQUIRE_OK(ok);
  CHECK(ok->first_position == 2);
  CHECK(ok->last_position == 3);
  CHECK(ok->versions == u64s{1, 2});
}

TEST_CASE("journal: a stream named twice in one batch chains its versions", "[events][journal]") {
  const auto k = GENERATE(kind::memory, kind::rocks);
  CAPTURE(k);
  journal_env env(k);
  auto& j = env.j();

  const auto chained = append_now(j, {to("s", 0, {ev(1, "1")}), to("s", 1, {ev(1, "2"), ev(1, "3")})});
  REQUIRE_OK(chained);
  CHECK(chained->versions == u64s{1, 3});
  CHECK(sequences(read_stream(j, "s")) == u64s{1, 2, 3});

  const auto broken = append_now(j, {to("s", 3, {ev(1, "4")}), to("s", 3, {ev(1, "5")})});
  REQUIRE_FALSE(broken.ok());
  CHECK(broken.err().message == "stream s: expected version 3, actual 4");
  CHECK(version_of(j, "s") == 3);
  CHECK(j.head() == 3);
}

TEST_CASE("journal: malformed appends are invalid arguments", "[events][journal]") {
  const auto k = GENERATE(kind::memory, kind::rocks);
  CAPTURE(k);
  journal_env env(k);
  auto& j = env.j();

  std::vector<std::vector<stream_append>> bad{
      {},
      {to("s", 0, {})},
      {to("ok", 0, {ev(1, "x")}), to("s", 0, {})},
      {to("", 0, {ev(1, "x")})},
      {to(std::string("a\0b", 3), 0, {ev(1, "x")})},
  };
  for (std::size_t i = 0; i < bad.size(); ++i) {
    CAPTURE(i);
    const auto r = append_now(j, bad[i]);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().code == errc::invalid_argument);
  }
  CHECK(j.head() == 0);
  CHECK(version_of(j, "ok") == 0);
  CHECK(j.read_stream("", 1, 10).err().code == errc::invalid_argument);
  CHECK(j.stream_version(std::string("a\0b", 3)).err().code == errc::invalid_argument);
}

TEST_CASE("journal: commit listeners see the new head", "[events][journal]") {
  const auto k = GENERATE(kind::memory, kind::rocks);
  CAPTURE(k);
  journal_env env(k);
  auto& j = env.j();

  struct call {
    int listener;
    std::uint64_t head;
    std::uint64_t journal_head;
    std::size_t readable;
  };
  std::mutex mutex;
  std::vector<call> calls;
  for (int id = 1; id <= 2; ++id) {
    j.on_commit([&, id](std::uint64_t head) {
      // A listener may read the journal: everything up to the head is visible.
      std::size_t readable = 0;
      const auto visited = j.read_all(1, 1000, [&](const stored_event&) { ++readable; });
      std::lock_guard lock(mutex);
      calls.push_back({id, head, j.head(), visited.ok() ? readable : 0});
    });
  }

  std::uint64_t head_in_handler = 0;
  std::promise<void> answered;
  j.append({to("s", 0, {ev(1, "a"), ev(1, "b")})}, [&](result<append_receipt> r) {
    head_in_handler = j.head();
    answered.set_value();
  });
  answered.get_future().wait();
  REQUIRE_OK(append_now(j, {to("s", 2, {ev(1, "c")})}));
  CHECK_FALSE(append_now(j, {to("s", 0, {ev(1, "conflict")})}).ok());  // no commit, no call
  j.drain();

  CHECK(head_in_handler == 2);
  std::lock_guard lock(mutex);
  REQUIRE(calls.size() == 4);
  const std::vector<std::pair<int, std::uint64_t>> order{{1, 2}, {2, 2}, {1, 3}, {2, 3}};
  for (std::size_t i = 0; i < calls.size(); ++i) {
    CAPTURE(i);
    CHECK(calls[i].listener == order[i].first);
    CHECK(calls[i].head == order[i].second);
    CHECK(calls[i].journal_head == calls[i].head);
    CHECK(calls[i].readable == calls[i].head);
  }
}

TEST_CASE("journal: concurrent appends get every position exactly once", "[events][journal]") {
  struct setup {
    kind k;
    std::size_t max_batch_events;
  };
  const auto s = GENERATE(setup{kind::memory, 4096}, setup{kind::rocks, 4096}, setup{kind::rocks, 7});
  CAPTURE(s.k, s.max_batch_events);
  rocks_journal_options options;
  options.max_batch_events = s.max_batch_events;
  journal_env env(s.k, options);
  auto& j = env.j();

  constexpr int workers = 8;
  constexpr int appends_per_worker = 500;
  constexpr int contended_every = 10;  // each worker also extends the shared stream 50 times
  const std::string contended = "contended";

  std::mutex mutex;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;  // committed [first, last]
  std::vector<std::string> failures;                            // checked on this thread
  std::atomic<int> contended_ok{0};
  std::atomic<int> contended_conflicts{0};
  const auto record = [&](const result<append_receipt>& r) {
    std::lock_guard lock(mutex);
    if (r.ok()) {
      ranges.emplace_back(r->first_position, r->last_position);
    } else {
      failures.push_back(describe(r));
    }
  };

  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      const auto own = "worker/" + std::to_string(w);
      std::uint64_t seen = 0;  // the contended stream's version as last seen by this worker
      for (int i = 0; i < appends_per_worker; ++i) {
        // Own stream: queued without waiting; the queue keeps this thread's order.
        j.append({to(own, static_cast<std::uint64_t>(i), {ev(1, own + "#" + std::to_string(i + 1))})},
                 [&](result<append_receipt> r) { record(r); });
        if (i % contended_every != 0) {
          continue;
        }
        for (int tries = 0;; ++tries) {
          if (tries == 100'000) {  // bounded: a stale version would retry forever
            std::lock_guard lock(mutex);
            failures.push_back(own + ": the contended stream's version never caught up");
            break;
          }
          auto r = append_now(j, {to(contended, seen, {ev(2, own)})});
          if (r.ok()) {
            record(r);
            seen = r->versions.at(0);
            ++contended_ok;
            break;
          }
          if (r.err().code != errc::version_conflict) {
            record(r);
            break;
          }
          ++contended_conflicts;
          const auto v = j.stream_version(contended);
          if (!v) {
            record(v.err());
            break;
          }
          seen = *v;
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  j.drain();

  std::lock_guard lock(mutex);
  CHECK(failures.empty());
  if (!failures.empty()) {
    FAIL_CHECK(failures.front());
  }
  const auto total_appends = std::uint64_t{workers} * appends_per_worker + contended_ok.load();
  CHECK(contended_ok == workers * (appends_per_worker / contended_every));
  CHECK(ranges.size() == total_appends);
  CHECK(j.head() == total_appends);  // one event per append

  std::vector<int> hits(j.head() + 1, 0);
  for (const auto& [first, last] : ranges) {
    for (auto p = first; p <= last && p < hits.size(); ++p) {
      ++hits[p];
    }
  }
  std::size_t wrong = 0;
  for (std::size_t p = 1; p < hits.size(); ++p) {
    wrong += hits[p] == 1 ? 0 : 1;
  }
  CHECK(wrong == 0);

  // The log itself: dense positions, dense sequences per stream, payloads in append order.
  std::map<std::string, std::uint64_t> last_sequence;
  std::uint64_t expected_position = 1;
  std::size_t gaps = 0;
  std::size_t misordered = 0;
  const auto visited = j.read_all(1, std::numeric_limits<std::size_t>::max(), [&](const stored_event& e) {
    gaps += e.position == expected_position ? 0 : 1;
    ++expected_position;
    auto& last = last_sequence[e.stream];
    misordered += e.sequence == last + 1 ? 0 : 1;
    last = e.sequence;
    if (e.stream != contended && e.payload != e.stream + "#" + std::to_string(e.sequence)) {
      ++misordered;
    }
  });
  REQUIRE_OK(visited);
  CHECK(*visited == total_appends);
  CHECK(gaps == 0);
  CHECK(misordered == 0);
  CHECK(last_sequence.size() == workers + 1);
  CHECK(last_sequence[contended] == static_cast<std::uint64_t>(contended_ok.load()));
  CHECK(version_of(j, contended) == static_cast<std::uint64_t>(contended_ok.load()));
  for (int w = 0; w < workers; ++w) {
    const auto own = "worker/" + std::to_string(w);
    CHECK(last_sequence[own] == appends_per_worker);
    CHECK(read_stream(j, own).size() == appends_per_worker);
  }

  if (env.is_rocks()) {
    const auto stats = rocks_journal_stats_of(j);
    REQUIRE(stats.has_value());
    INFO("groups " << stats->groups << ", appends " << stats->appends << ", conflicts "
                   << contended_conflicts.load());
    CHECK(stats->appends == total_appends);
    CHECK(stats->events == total_appends);
    CHECK(stats->groups < stats->appends);
  } else {
    CHECK_FALSE(rocks_journal_stats_of(j).has_value());
  }
}

TEST_CASE("rocks journal: a reopened store has the same log and continues it", "[events][journal][rocks]") {
  journal_env env(kind::rocks);
  REQUIRE_OK(append_now(env.j(), {to("request/a", 0, {ev(1, "a1"), ev(2, "a2")}), to("cluster/x", 0, {ev(3, "x1")})}));
  env.clk.advance(std::chrono::seconds{3});
  REQUIRE_OK(append_now(env.j(), {to("request/a", 2, {ev(4, "a3")})}));
  const auto before = read_all(env.j());
  REQUIRE(before.size() == 4);

  env.close();
  env.clk.advance(std::chrono::seconds{60});
  env.open();
  auto& j = env.j();

  CHECK(j.head() == 4);
  CHECK(read_all(j) == before);
  CHECK(read_stream(j, "request/a") == std::vector<stored_event>{before[0], before[1], before[3]});
  CHECK(version_of(j, "request/a") == 3);
  CHECK(version_of(j, "cluster/x") == 1);

  // A cold version cache still enforces versions from disk.
  const auto conflict = append_now(j, {to("request/a", 0, {ev(1, "again")})});
  REQUIRE_FALSE(conflict.ok());
  CHECK(conflict.err().message == "stream request/a: expected version 0, actual 3");

  const auto next = append_now(j, {to("request/a", 3, {ev(5, "a4")}), to("new", 0, {ev(6, "n1")})});
  REQUIRE_OK(next);
  CHECK(next->first_position == 5);
  CHECK(next->last_position == 6);
  CHECK(next->versions == u64s{4, 1});
  CHECK(positions(read_stream(j, "request/a")) == u64s{1, 2, 4, 5});

  REQUIRE_OK(env.store().flush());
  env.close();
  env.open();
  CHECK(env.j().head() == 6);
  CHECK(read_all(env.j()).size() == 6);
}

TEST_CASE("rocks journal: a wall clock found behind the log is logged once, and again when it has caught up",
          "[events][journal][rocks]") {
  prov::test::log_capture logs;
  journal_env env(kind::rocks);
  const auto t1 = env.clk.now();
  REQUIRE_OK(append_now(env.j(), {to("request/a", 0, {ev(1, "a1")})}));
  env.clk.set(t1 - std::chrono::milliseconds{500});  // under a second: held, not worth a line
  REQUIRE_OK(append_now(env.j(), {to("request/a", 1, {ev(2, "a2")})}));
  CHECK(logs.with_message("journal_clock_behind").empty());

  env.clk.set(t1 - std::chrono::hours{1});
  REQUIRE_OK(append_now(env.j(), {to("request/a", 2, {ev(3, "a3")})}));
  env.clk.advance(std::chrono::minutes{30});
  REQUIRE_OK(append_now(env.j(), {to("request/a", 3, {ev(4, "a4")})}));
  const auto behind = logs.with_message("journal_clock_behind");
  REQUIRE(behind.size() == 1);
  CHECK(behind[0]["behind_ms"] == 3'600'000);
  CHECK(behind[0]["level"] == "warn");
  CHECK(logs.with_message("journal_clock_caught_up").empty());

  env.clk.advance(std::chrono::minutes{31});
  REQUIRE_OK(append_now(env.j(), {to("request/a", 4, {ev(5, "a5")})}));
  CHECK(logs.with_message("journal_clock_caught_up").size() == 1);
  env.clk.set(t1 - std::chrono::hours{1});  // set back again: a new line
  REQUIRE_OK(append_now(env.j(), {to("request/a", 5, {ev(6, "a6")})}));
  CHECK(logs.with_message("journal_clock_behind").size() == 2);
}

TEST_CASE("rocks journal: read_log_head reads the last position of a store's copy, read-only",
          "[events][journal][rocks]") {
  journal_env env(kind::rocks);
  const std::string empty_copy = env.db_path() + "-empty";
  REQUIRE_OK(env.store().checkpoint(empty_copy));
  REQUIRE_OK(append_now(env.j(), {to("request/a", 0, {ev(1, "a1"), ev(2, "a2")}), to("cluster/x", 0, {ev(3, "x1")})}));
  const std::string copy = env.db_path() + "-copy";
  REQUIRE_OK(env.store().checkpoint(copy));
  REQUIRE_OK(append_now(env.j(), {to("request/a", 2, {ev(4, "a3")})}));  // after the copy: not in it

  const auto head = read_log_head(copy);
  REQUIRE_OK(head);
  CHECK(*head == 3);
  CHECK(*read_log_head(empty_copy) == 0);
  CHECK(*read_log_head(env.db_path()) == 4);  // the live store too: a read-only open takes no lock
  CHECK_FALSE(read_log_head(env.db_path() + "-missing").ok());
}

TEST_CASE("rocks journal: destruction completes queued appends", "[events][journal][rocks]") {
  journal_env env(kind::rocks);
  constexpr int count = 300;
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::atomic<int> late_answers{0};
  std::atomic<int> late_unexpected{0};
  for (int i = 0; i < count; ++i) {
    env.j().append({to("s", static_cast<std::uint64_t>(i), {ev(1, std::to_string(i))})},
                   [&](result<append_receipt> r) { ++(r.ok() ? ok : failed); });
  }
  // An append made from a handler while the journal shuts down either commits (it was
  // queued before the stop) or is refused as unavailable, but is always answered once.
  auto* j = &env.j();
  j->append({to("t", 0, {ev(1, "first")})}, [&, j](result<append_receipt> r) {
    j->append({to("t", 1, {ev(1, "second")})}, [&](result<append_receipt> late) {
      ++late_answers;
      if (!late.ok() && late.err().code != errc::unavailable) {
        ++late_unexpected;
      }
    });
  });
  env.close();
  CHECK(ok == count);
  CHECK(failed == 0);
  CHECK(late_answers == 1);
  CHECK(late_unexpected == 0);

  env.open();
  CHECK(version_of(env.j(), "s") == count);
  CHECK(version_of(env.j(), "t") >= 1);
}

TEST_CASE("rocks journal: an append is published once its group is synced, and the next group is written meanwhile",
          "[events][journal][rocks]") {
  gated_env fs;
  rocks_journal_options options;
  options.early_write_events = 1;  // written at once, even during a sync
  journal_env env(kind::rocks, options, fs.env.get());
  auto& j = env.j();
  REQUIRE_OK(append_now(j, {to("s", 0, {ev(1, "a")})}));

  fs.gate->hold();
  std::promise<result<append_receipt>> b_done;
  auto b = b_done.get_future();
  j.append({to("s", 1, {ev(1, "b")})}, [&](result<append_receipt> r) { b_done.set_value(std::move(r)); });
  REQUIRE(fs.gate->wait_for_held_sync());

  // Written but not durable: not answered, not visible.
  CHECK(b.wait_for(std::chrono::milliseconds{0}) == std::future_status::timeout);
  CHECK(j.head() == 1);
  CHECK(read_stream(j, "s").size() == 1);
  CHECK(read_all(j).size() == 1);
  CHECK(version_of(j, "s") == 1);

  // The writer goes on while the sync waits: the next append is checked against the
  // unsynced one and written, and waits for its own sync.
  std::promise<result<append_receipt>> c_done;
  auto c = c_done.get_future();
  j.append({to("s", 2, {ev(1, "c")})}, [&](result<append_receipt> r) { c_done.set_value(std::move(r)); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  while (rocks_journal_stats_of(j)->groups < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  CHECK(rocks_journal_stats_of(j)->groups == 3);
  CHECK(c.wait_for(std::chrono::milliseconds{0}) == std::future_status::timeout);
  CHECK(j.head() == 1);

  fs.gate->release();
  const auto rb = b.get();
  REQUIRE_OK(rb);
  CHECK(rb->first_position == 2);
  const auto rc = c.get();
  REQUIRE_OK(rc);
  CHECK(rc->first_position == 3);
  CHECK(rc->versions == u64s{3});
  CHECK(j.head() == 3);
  CHECK(positions(read_stream(j, "s")) == u64s{1, 2, 3});
}

TEST_CASE("rocks journal: appends queued during a sync all ride the next one", "[events][journal][rocks]") {
  gated_env fs;
  rocks_journal_options options;
  options.early_write_events = 2;
  journal_env env(kind::rocks, options, fs.env.get());
  auto& j = env.j();
  REQUIRE_OK(append_now(j, {to("s", 0, {ev(1, "a")})}));
  CHECK(rocks_journal_stats_of(j)->syncs == 1);

  fs.gate->hold();
  std::vector<std::future<result<append_receipt>>> answers;
  std::vector<std::promise<result<append_receipt>>> promises(4);
  const auto append_one = [&](std::uint64_t expected, const char* payload) {
    auto& p = promises[answers.size()];
    answers.push_back(p.get_future());
    j.append({to("s", expected, {ev(1, payload)})}, [&p](result<append_receipt> r) { p.set_value(std::move(r)); });
  };
  const auto groups_reach = [&](std::uint64_t n) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
    while (rocks_journal_stats_of(j)->groups < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    return rocks_journal_stats_of(j)->groups == n;
  };
  append_one(1, "b");
  REQUIRE(fs.gate->wait_for_held_sync());  // b is being synced

  // During the sync: c alone waits (fewer than early_write_events); with d both are written
  // early; e waits again.
  append_one(2, "c");
  append_one(3, "d");
  CHECK(groups_reach(3));
  append_one(4, "e");
  CHECK(rocks_journal_stats_of(j)->groups == 3);

  // When b's sync ends, e is written before the next sync starts: c, d and e are answered
  // after one more sync, not two.
  fs.gate->release();
  for (std::size_t i = 0; i < answers.size(); ++i) {
    const auto r = answers[i].get();
    REQUIRE_OK(r);
    CHECK(r->first_position == i + 2);
  }
  const auto stats = rocks_journal_stats_of(j);
  CHECK(stats->groups == 4);
  CHECK(stats->syncs == 3);
  CHECK(stats->appends == 5);
  CHECK(j.head() == 5);
  CHECK(positions(read_stream(j, "s")) == u64s{1, 2, 3, 4, 5});
}

TEST_CASE("rocks journal: a failed WAL sync fails its appends and every later one until restart",
          "[events][journal][rocks]") {
  gated_env fs;
  // Told once, with the sync's error (provisiond stops on it).
  std::mutex told_mutex;
  std::vector<error> told;
  rocks_journal_options options;
  options.on_failure = [&](const error& e) {
    std::lock_guard lock(told_mutex);
    told.push_back(e);
  };
  journal_env env(kind::rocks, options, fs.env.get());
  REQUIRE_OK(append_now(env.j(), {to("s", 0, {ev(1, "a")})}));
  CHECK_FALSE(rocks_journal_stats_of(env.j())->failed);

  fs.gate->fail(true);
  const auto b = append_now(env.j(), {to("s", 1, {ev(1, "b")})});
  REQUIRE_FALSE(b.ok());
  // The append hears that its outcome is unknown, not the file system's words.
  CHECK(b.err().code == errc::unavailable);
  CHECK(b.err().message.find("may or may not be recorded") != std::string::npos);
  CHECK(b.err().message.find("injected") == std::string::npos);
  fs.gate->fail(false);
  CHECK(rocks_journal_stats_of(env.j())->failed);  // what readiness reports
  {
    std::lock_guard lock(told_mutex);
    REQUIRE(told.size() == 1);  // the callback runs before the append is answered
    CHECK(told[0].code == errc::io_error);
    CHECK(told[0].message.find("injected") != std::string::npos);
  }

  // The failed group's events may or may not be on disk: nothing may follow them.
  const auto c = append_now(env.j(), {to("other", 0, {ev(1, "c")})});
  REQUIRE_FALSE(c.ok());
  CHECK(c.err().code == errc::unavailable);
  CHECK(c.err().message == "journal: an earlier WAL sync or write failed; restart to recover");
  CHECK(env.j().head() == 1);
  CHECK(read_all(env.j()).size() == 1);
  CHECK(version_of(env.j(), "other") == 0);
  {
    std::lock_guard lock(told_mutex);
    CHECK(told.size() == 1);  // once, not with each refused append
  }

  // A restart recovers whatever reached the disk, and appends work again.
  env.close();
  env.open();
  const auto head = env.j().head();
  CHECK((head == 1 || head == 2));
  const auto events = read_all(env.j());
  REQUIRE(events.size() == head);
  CHECK(events[0].payload == "a");
  const auto d = append_now(env.j(), {to("s", head, {ev(1, "d")})});
  REQUIRE_OK(d);
  CHECK(d->first_position == head + 1);
  CHECK_FALSE(rocks_journal_stats_of(env.j())->failed);
}

TEST_CASE("rocks journal: an append larger than a group commits on its own", "[events][journal][rocks]") {
  rocks_journal_options options;
  options.sync = false;
  options.max_batch_events = 3;
  journal_env env(kind::rocks, options);
  std::vector<event_record> many;
  for (int i = 0; i < 10; ++i) {
    many.push_back(ev(1, std::to_string(i)));
  }
  std::vector<result<append_receipt>> answers;
  std::mutex mutex;
  for (int i = 0; i < 3; ++i) {
    env.j().append({to("s", any_version, many)}, [&](result<append_receipt> r) {
      std::lock_guard lock(mutex);
      answers.push_back(std::move(r));
    });
  }
  env.j().drain();
  std::lock_guard lock(mutex);
  REQUIRE(answers.size() == 3);
  for (std::size_t i = 0; i < answers.size(); ++i) {
    REQUIRE_OK(answers[i]);
    CHECK(answers[i]->first_position == 10 * i + 1);
    CHECK(answers[i]->versions == u64s{10 * (i + 1)});
  }
  CHECK(env.j().head() == 30);
  const auto stats = rocks_journal_stats_of(env.j());
  REQUIRE(stats.has_value());
  CHECK(stats->groups == 3);
  CHECK(stats->events == 30);
}

TEST_CASE("rocks journal: one journal per store", "[events][journal][rocks]") {
  journal_env env(kind::rocks);
  const auto second = make_rocks_journal(env.store(), env.clk);
  REQUIRE_FALSE(second.ok());
  CHECK(second.err().code == errc::conflict);
}

TEST_CASE("rocks store: a directory another store has open is refused as in use", "[events][journal][rocks]") {
  // A second provisiond on the same --data-dir: it must say what is wrong, not only "IO error".
  journal_env env(kind::rocks);
  rocks_store_options again;
  again.path = env.db_path();
  const auto second = rocks_store::open(again);
  REQUIRE_FALSE(second.ok());
  CHECK(second.err().code == errc::conflict);
  CHECK(second.err().message.find("in use") != std::string::npos);
  CHECK(second.err().message.find(env.db_path()) != std::string::npos);
}

TEST_CASE("rocks journal: on-disk record and index format 4", "[events][journal][rocks]") {
  rocks_journal_options options;
  options.index_checkpoint_interval = std::chrono::milliseconds{0};  // every group writes its index
  journal_env env(kind::rocks, options);
  env.clk.set(timestamp{std::chrono::microseconds{1'234'567}});
  REQUIRE_OK(append_now(env.j(), {to("s/1", 0, {ev(300, std::string("a\0b", 3), 2)})}));

  auto& store = env.store();
  std::string value;
  REQUIRE(store.db()->Get(rocksdb::ReadOptions(), store.log_cf(), be64(1), &value).ok());
  const std::string record{
      "\x02"              // format: one append
      "\x01"              // events
      "\x87\xad\x4b"      // time: 1234567 us
      "\x03" "s/1"        // stream
      "\x01"              // first sequence
      "\x01"              // events of the stream
      "\xac\x02"          // type id 300
      "\x02"              // version
      "\x03" "a\0b",      // payload
      18};
  CHECK(value == record);

  std::string index;
  REQUIRE(store.db()->Get(rocksdb::ReadOptions(), store.streams_cf(), std::string("s/1\0", 4) + be64(1), &index).ok());
  CHECK(index == be64(1));

  // An append is one log record at its first position, whatever its streams; each stream's
  // events are one index entry: its first sequence, and its first position and event count.
  REQUIRE_OK(append_now(env.j(), {to("s/1", 1, {ev(1, "b"), ev(1, "c"), ev(1, "d")}), to("s/2", 0, {ev(1, "e")})}));
  REQUIRE(store.db()->Get(rocksdb::ReadOptions(), store.log_cf(), be64(2), &value).ok());
  const std::string append{
      "\x02" "\x04" "\x87\xad\x4b"
      "\x03" "s/1" "\x02" "\x03"  "\x01\x01\x01" "b"  "\x01\x01\x01" "c"  "\x01\x01\x01" "d"
      "\x03" "s/2" "\x01" "\x01"  "\x01\x01\x01" "e",
      33};
  CHECK(value == append);
  for (const std::uint64_t inside : {3, 4, 5}) {
    CHECK(store.db()->Get(rocksdb::ReadOptions(), store.log_cf(), be64(inside), &value).IsNotFound());
  }
  REQUIRE(store.db()->Get(rocksdb::ReadOptions(), store.streams_cf(), std::string("s/1\0", 4) + be64(2), &index).ok());
  CHECK(index == be64(2) + be64(3));
  CHECK(store.db()->Get(rocksdb::ReadOptions(), store.streams_cf(), std::string("s/1\0", 4) + be64(3), &index).IsNotFound());
  REQUIRE(store.db()->Get(rocksdb::ReadOptions(), store.streams_cf(), std::string("s/2\0", 4) + be64(1), &index).ok());
  CHECK(index == be64(5));
  std::string indexed;
  REQUIRE(store.db()->Get(rocksdb::ReadOptions(), store.meta_cf(), "journal/indexed", &indexed).ok());
  CHECK(indexed == "5");

  std::string format;
  REQUIRE(store.db()->Get(rocksdb::ReadOptions(), store.meta_cf(), "format", &format).ok());
  CHECK(format == "4");

  // The head after a reopen is the last event of the last record, not its key.
  env.close();
  env.open();
  CHECK(env.j().head() == 5);
  CHECK(positions(read_all(env.j())) == u64s{1, 2, 3, 4, 5});
}

namespace {

std::string stream_entry(rocks_store& store, const std::string& stream, std::uint64_t sequence) {
  std::string value;
  const auto s = store.db()->Get(rocksdb::ReadOptions(), store.streams_cf(), stream + std::string(1, '\0') + be64(sequence), &value);
  return s.ok() ? value : s.IsNotFound() ? "(none)" : "(error)";
}

std::string meta_value(rocks_store& store, const std::string& key) {
  std::string value;
  const auto s = store.db()->Get(rocksdb::ReadOptions(), store.meta_cf(), key, &value);
  return s.ok() ? value : "(none)";
}

}  // namespace

TEST_CASE("rocks journal: the stream index is written at checkpoints, an entry per stream for its runs since the last",
          "[events][journal][rocks]") {
  rocks_journal_options options;
  options.index_checkpoint_interval = std::chrono::seconds{1};
  journal_env env(kind::rocks, options);
  auto& j = env.j();
  auto& store = env.store();

  // The first group after opening writes a checkpoint.
  REQUIRE_OK(append_now(j, {to("s", 0, {ev(1, "a")})}));
  CHECK(stream_entry(store, "s", 1) == be64(1));
  CHECK(meta_value(store, "journal/indexed") == "1");
  CHECK(rocks_journal_stats_of(j)->index_checkpoints == 1);

  // Within the interval the index is not written; readers find the runs in memory.
  REQUIRE_OK(append_now(j, {to("s", 1, {ev(1, "b")})}));
  REQUIRE_OK(append_now(j, {to("t", 0, {ev(1, "c")})}));
  REQUIRE_OK(append_now(j, {to("s", 2, {ev(1, "d"), ev(1, "e")})}));
  CHECK(stream_entry(store, "s", 2) == "(none)");
  CHECK(stream_entry(store, "t", 1) == "(none)");
  CHECK(meta_value(store, "journal/indexed") == "1");
  CHECK(positions(read_stream(j, "s")) == u64s{1, 2, 4, 5});
  CHECK(positions(read_stream(j, "s", 3)) == u64s{4, 5});
  CHECK(positions(read_stream(j, "s", 2, 2)) == u64s{2, 4});
  CHECK(read_stream(j, "s")[3].payload == "e");
  CHECK(version_of(j, "s") == 4);
  CHECK(version_of(j, "t") == 1);
  const auto conflict = append_now(j, {to("s", 2, {ev(1, "late")})});
  REQUIRE_FALSE(conflict.ok());
  CHECK(conflict.err().message == "stream s: expected version 2, actual 4");

  // The first group after the interval writes each stream's runs since the last checkpoint
  // as one entry at the first of their sequences: positions and counts.
  env.clk.advance(std::chrono::seconds{1});
  REQUIRE_OK(append_now(j, {to("u", 0, {ev(1, "f")})}));
  CHECK(stream_entry(store, "s", 2) == be64(2) + be64(1) + be64(4) + be64(2));
  CHECK(stream_entry(store, "t", 1) == be64(3));
  CHECK(stream_entry(store, "u", 1) == be64(6));
  CHECK(meta_value(store, "journal/indexed") == "6");
  CHECK(rocks_journal_stats_of(j)->index_checkpoints == 2);
  CHECK(positions(read_stream(j, "s")) == u64s{1, 2, 4, 5});
  CHECK(positions(read_stream(j, "s", 4)) == u64s{5});
  CHECK(version_of(j, "s") == 4);
}

TEST_CASE("rocks journal: a failed write is not recorded, fails the journal and the store's WAL writes until reopened",
          "[events][journal][rocks]") {
  gated_env fs;
  rocks_journal_options options;
  options.index_checkpoint_interval = std::chrono::hours{1};
  std::atomic<int> told{0};
  options.on_failure = [&](const error&) { ++told; };
  journal_env env(kind::rocks, options, fs.env.get());
  auto& j = env.j();
  REQUIRE_OK(append_now(j, {to("s", 0, {ev(1, "a")})}));  // with a checkpoint
  REQUIRE_OK(append_now(j, {to("s", 1, {ev(1, "b")})}));  // kept in memory

  // A write that fails as on a full disk: RocksDB would resume by itself, but a log file that
  // failed a write may hold a torn record, and what follows it would not be replayed.
  fs.gate->fail_appends(true);
  const auto failed = append_now(j, {to("s", 2, {ev(1, "c")})});
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.err().code == errc::unavailable);
  CHECK(failed.err().message.find("not recorded") != std::string::npos);
  CHECK(failed.err().message.find("injected") == std::string::npos);
  fs.gate->fail_appends(false);
  CHECK(told == 1);
  CHECK(rocks_journal_stats_of(j)->failed);
  CHECK(env.store().wal_failed());
  const auto meta = env.store().put_meta("test/key", "x");
  REQUIRE_FALSE(meta.ok());
  CHECK(meta.err().code == errc::unavailable);
  CHECK_FALSE(env.store().flush().ok());
  const temp_dir backups;
  CHECK(env.store().checkpoint((backups.path() / "b").string()).err().code == errc::unavailable);

  const auto later = append_now(j, {to("s", 2, {ev(1, "d")})});
  REQUIRE_FALSE(later.ok());
  CHECK(later.err().code == errc::unavailable);
  CHECK(told == 1);
  CHECK(j.head() == 2);

  // Reopened (the close does not write through the failed log): the stream goes on from b,
  // c took no position and no version.
  env.close();
  env.open();
  CHECK(positions(read_stream(env.j(), "s")) == u64s{1, 2});
  CHECK(version_of(env.j(), "s") == 2);
  const auto next = append_now(env.j(), {to("s", 2, {ev(1, "d")})});
  REQUIRE_OK(next);
  CHECK(next->first_position == 3);
  std::vector<std::string> payloads;
  for (const auto& e : read_stream(env.j(), "s")) {
    payloads.push_back(e.payload);
  }
  CHECK(payloads == std::vector<std::string>{"a", "b", "d"});
  CHECK_FALSE(env.store().wal_failed());
}

TEST_CASE("rocks journal: on open, what the stream index does not hold is found in the log", "[events][journal][rocks]") {
  rocks_journal_options options;
  options.index_checkpoint_interval = std::chrono::hours{1};
  options.checkpoint_on_stop = false;  // each close as a crash leaves the store
  journal_env env(kind::rocks, options);
  REQUIRE_OK(append_now(env.j(), {to("s", 0, {ev(1, "a")})}));  // with a checkpoint
  REQUIRE_OK(append_now(env.j(), {to("s", 1, {ev(1, "b")})}));
  REQUIRE_OK(append_now(env.j(), {to("t", 0, {ev(1, "c")})}));
  REQUIRE_OK(append_now(env.j(), {to("s", 2, {ev(1, "d")})}));
  CHECK(meta_value(env.store(), "journal/indexed") == "1");

  // Closed without a checkpoint (as a crash leaves it): the runs after position 1 are read
  // back from the log.
  env.close();
  env.open();
  auto& j = env.j();
  CHECK(positions(read_stream(j, "s")) == u64s{1, 2, 4});
  CHECK(positions(read_stream(j, "t")) == u64s{3});
  CHECK(version_of(j, "s") == 3);
  CHECK(version_of(j, "t") == 1);
  const auto conflict = append_now(j, {to("s", 0, {ev(1, "again")})});
  REQUIRE_FALSE(conflict.ok());
  CHECK(conflict.err().message == "stream s: expected version 0, actual 3");

  // The first group after opening writes them, with its own.
  REQUIRE_OK(append_now(j, {to("s", 3, {ev(1, "e")})}));
  CHECK(stream_entry(env.store(), "s", 2) == be64(2) + be64(1) + be64(4) + be64(2));
  CHECK(stream_entry(env.store(), "t", 1) == be64(3));
  CHECK(meta_value(env.store(), "journal/indexed") == "5");
  env.close();
  env.open();
  CHECK(positions(read_stream(env.j(), "s")) == u64s{1, 2, 4, 5});
  CHECK(version_of(env.j(), "s") == 4);
}

TEST_CASE("rocks journal: a clean stop writes the last index checkpoint", "[events][journal][rocks]") {
  rocks_journal_options options;
  options.index_checkpoint_interval = std::chrono::hours{1};
  journal_env env(kind::rocks, options);
  REQUIRE_OK(append_now(env.j(), {to("s", 0, {ev(1, "a")})}));  // with a checkpoint
  REQUIRE_OK(append_now(env.j(), {to("s", 1, {ev(1, "b")})}));
  REQUIRE_OK(append_now(env.j(), {to("t", 0, {ev(1, "c")})}));
  CHECK(meta_value(env.store(), "journal/indexed") == "1");
  env.close();
  env.open();
  // Stored at the stop: the runs since the last checkpoint, and the position they reach.
  CHECK(meta_value(env.store(), "journal/indexed") == "3");
  CHECK(stream_entry(env.store(), "s", 2) == be64(2));
  CHECK(stream_entry(env.store(), "t", 1) == be64(3));
  CHECK(positions(read_stream(env.j(), "s")) == u64s{1, 2});
  CHECK(version_of(env.j(), "t") == 1);
  // A stop with nothing new writes nothing.
  const auto checkpoints = rocks_journal_stats_of(env.j())->index_checkpoints;
  REQUIRE_OK(append_now(env.j(), {to("s", 2, {ev(1, "d")})}));  // the first group after opening: a checkpoint
  CHECK(rocks_journal_stats_of(env.j())->index_checkpoints == checkpoints + 1);
  CHECK(meta_value(env.store(), "journal/indexed") == "4");
}

namespace {

/// Holds WAL syncs, makes `appends` wait behind a held sync, then releases it: they are written
/// as one group. Returns their answers in order.
std::vector<result<append_receipt>> append_as_one_group(journal_env& env, gated_env& fs,
                                                        std::vector<std::vector<stream_append>> appends) {
  auto& j = env.j();
  const auto groups_before = rocks_journal_stats_of(j)->groups;
  fs.gate->hold();
  std::promise<result<append_receipt>> opener_done;
  auto opener = opener_done.get_future();
  j.append({to("opener", any_version, {ev(9, "o")})},
           [&](result<append_receipt> r) { opener_done.set_value(std::move(r)); });
  REQUIRE(fs.gate->wait_for_held_sync());
  std::vector<std::promise<result<append_receipt>>> promises(appends.size());
  std::vector<std::future<result<append_receipt>>> answers;
  for (std::size_t i = 0; i < appends.size(); ++i) {
    answers.push_back(promises[i].get_future());
    j.append(std::move(appends[i]), [&p = promises[i]](result<append_receipt> r) { p.set_value(std::move(r)); });
  }
  fs.gate->release();
  REQUIRE_OK(opener.get());
  std::vector<result<append_receipt>> out;
  for (auto& a : answers) {
    out.push_back(a.get());
  }
  CHECK(rocks_journal_stats_of(j)->groups == groups_before + 2);  // the opener's, then theirs
  return out;
}

}  // namespace

TEST_CASE("rocks journal: the appends of one group share a log record", "[events][journal][rocks]") {
  gated_env fs;
  rocks_journal_options options;
  options.early_write_events = 1000;  // nothing is written during the held sync
  journal_env env(kind::rocks, options, fs.env.get());
  env.clk.set(timestamp{std::chrono::microseconds{1'234'567}});
  REQUIRE_OK(append_now(env.j(), {to("s", 0, {ev(1, "a")})}));

  // Three appends in one group (the middle one refused: it takes no position).
  const auto answers = append_as_one_group(
      env, fs,
      {{to("s", 1, {ev(1, "b")})},
       {to("s", 0, {ev(1, "refused")})},
       {to("s", 2, {ev(1, "c"), ev(1, "d")}), to("t", 0, {ev(2, "e")})}});
  REQUIRE(answers.size() == 3);
  REQUIRE_OK(answers[0]);
  CHECK(answers[0]->first_position == 3);  // after the opener at 2
  REQUIRE_FALSE(answers[1].ok());
  CHECK(answers[1].err().code == errc::version_conflict);
  REQUIRE_OK(answers[2]);
  CHECK(answers[2]->first_position == 4);
  CHECK(answers[2]->last_position == 6);

  // One log entry for the group, at its first position: the runs of both appends in position
  // order, under one header (their commit time is the group's).
  auto& store = env.store();
  std::string value;
  REQUIRE(store.db()->Get(rocksdb::ReadOptions(), store.log_cf(), be64(3), &value).ok());
  const std::string record{
      "\x02" "\x04" "\x87\xad\x4b"
      "\x01" "s" "\x02" "\x01"  "\x01\x01\x01" "b"
      "\x01" "s" "\x03" "\x02"  "\x01\x01\x01" "c"  "\x01\x01\x01" "d"
      "\x01" "t" "\x01" "\x01"  "\x02\x01\x01" "e",
      33};
  CHECK(value == record);
  for (const std::uint64_t inside : {4, 5, 6, 7}) {
    CHECK(store.db()->Get(rocksdb::ReadOptions(), store.log_cf(), be64(inside), &value).IsNotFound());
  }

  // Readers see every event where it is, from any position and by stream; after a reopen too.
  for (int pass = 0; pass < 2; ++pass) {
    CAPTURE(pass);
    auto& j = env.j();
    CHECK(j.head() == 6);
    const auto all = read_all(j);
    CHECK(positions(all) == u64s{1, 2, 3, 4, 5, 6});
    CHECK(all[4].payload == "d");
    for (std::uint64_t from = 1; from <= 7; ++from) {
      CHECK(positions(read_all(j, from)) == [&] {
        u64s want;
        for (auto p = from; p <= 6; ++p) {
          want.push_back(p);
        }
        return want;
      }());
    }
    CHECK(positions(read_stream(j, "s")) == u64s{1, 3, 4, 5});
    CHECK(positions(read_stream(j, "s", 3)) == u64s{4, 5});
    CHECK(positions(read_stream(j, "s", 4, 1)) == u64s{5});
    const auto t = read_stream(j, "t");
    REQUIRE(t.size() == 1);
    CHECK(t[0].position == 6);
    CHECK(t[0].type_id == 2);
    CHECK(t[0].time == timestamp{std::chrono::microseconds{1'234'567}});
    CHECK(version_of(j, "s") == 4);
    CHECK(version_of(j, "t") == 1);
    env.close();
    env.open();
  }
}

TEST_CASE("rocks journal: a group's record ends at max_record_bytes and the next append starts another",
          "[events][journal][rocks]") {
  gated_env fs;
  rocks_journal_options options;
  options.early_write_events = 1000;
  options.max_record_bytes = 20;
  journal_env env(kind::rocks, options, fs.env.get());
  const std::string big(12, 'x');
  const auto answers = append_as_one_group(env, fs,
                                           {{to("s", 0, {ev(1, "a")})},    // 1 + 7 bytes: goes on
                                            {to("s", 1, {ev(1, big)})},    // reaches 20: ends the record
                                            {to("s", 2, {ev(1, "b")})},    // a new record
                                            {to("t", 0, {ev(1, "c")})}});  // the same one
  for (const auto& a : answers) {
    REQUIRE_OK(a);
  }
  // The opener at 1 is its own group; then records at 2 (positions 2-3) and 4 (4-5).
  auto& store = env.store();
  std::string value;
  for (const std::uint64_t key : {1, 2, 4}) {
    CAPTURE(key);
    CHECK(store.db()->Get(rocksdb::ReadOptions(), store.log_cf(), be64(key), &value).ok());
  }
  for (const std::uint64_t inside : {3, 5}) {
    CAPTURE(inside);
    CHECK(store.db()->Get(rocksdb::ReadOptions(), store.log_cf(), be64(inside), &value).IsNotFound());
  }
  CHECK(positions(read_all(env.j())) == u64s{1, 2, 3, 4, 5});
  CHECK(positions(read_stream(env.j(), "s")) == u64s{2, 3, 4});
  CHECK(read_stream(env.j(), "s")[1].payload == big);
  env.close();
  env.open();
  CHECK(env.j().head() == 5);
  CHECK(positions(read_stream(env.j(), "t")) == u64s{5});
}

TEST_CASE("rocks journal: the log reads from any position, inside an append's record or not", "[events][journal][rocks]") {
  journal_env env(kind::rocks);
  // Records of 4 (two streams), 1 and 3 events.
  REQUIRE_OK(append_now(env.j(), {to("s", 0, {ev(1, "1"), ev(1, "2"), ev(1, "3")}), to("t", 0, {ev(1, "4")})}));
  REQUIRE_OK(append_now(env.j(), {to("t", 1, {ev(1, "5")})}));
  REQUIRE_OK(append_now(env.j(), {to("s", 3, {ev(1, "6")}), to("u", 0, {ev(1, "7"), ev(1, "8")})}));
  for (std::uint64_t from = 0; from <= 9; ++from) {
    for (std::size_t max = 1; max <= 9; ++max) {
      CAPTURE(from, max);
      std::vector<stored_event> got;
      const auto visited = env.j().read_all(from, max, [&](const stored_event& e) { got.push_back(e); });
      REQUIRE_OK(visited);
      const auto first = std::max<std::uint64_t>(from, 1);
      const auto expected = first > 8 ? 0 : std::min<std::uint64_t>(max, 8 - first + 1);
      REQUIRE(*visited == expected);
      REQUIRE(got.size() == expected);
      for (std::size_t i = 0; i < got.size(); ++i) {
        CHECK(got[i].position == first + i);
        CHECK(got[i].payload == std::to_string(first + i));
      }
    }
  }
  const auto u = read_stream(env.j(), "u", 2);
  REQUIRE(u.size() == 1);
  CHECK(u[0].position == 8);
  CHECK(u[0].sequence == 2);
  CHECK(u[0].stream == "u");
}

TEST_CASE("rocks journal: reads a stream from any sequence across runs", "[events][journal][rocks]") {
  journal_env env(kind::rocks);
  // s: runs of 3, 1 and 4 events, interleaved with another stream's events.
  REQUIRE_OK(append_now(env.j(), {to("s", 0, {ev(1, "1"), ev(1, "2"), ev(1, "3")}), to("t", 0, {ev(1, "t1")})}));
  REQUIRE_OK(append_now(env.j(), {to("s", 3, {ev(1, "4")})}));
  REQUIRE_OK(append_now(env.j(), {to("t", 1, {ev(1, "t2")}), to("s", 4, {ev(1, "5"), ev(1, "6"), ev(1, "7"), ev(1, "8")})}));
  for (std::uint64_t from = 0; from <= 10; ++from) {
    for (std::uint64_t max = 1; max <= 9; ++max) {
      CAPTURE(from, max);
      const auto got = env.j().read_stream("s", from, max);
      REQUIRE_OK(got);
      const auto first = std::max<std::uint64_t>(from, 1);
      const auto expected = first > 8 ? 0 : std::min<std::uint64_t>(max, 8 - first + 1);
      REQUIRE(got->size() == expected);
      for (std::size_t i = 0; i < got->size(); ++i) {
        CHECK((*got)[i].sequence == first + i);
        CHECK((*got)[i].payload == std::to_string(first + i));
      }
    }
  }
  CHECK(version_of(env.j(), "s") == 8);
  CHECK(version_of(env.j(), "t") == 2);
  CHECK(read_stream(env.j(), "t").size() == 2);
  // Reopened: the versions come from the index.
  env.close();
  env.open();
  CHECK(version_of(env.j(), "s") == 8);
  REQUIRE_OK(append_now(env.j(), {to("s", 8, {ev(1, "9")})}));
  CHECK(read_stream(env.j(), "s", 7).size() == 3);
}

/// A log record of one event as formats 1 and 2 wrote them (time 1 us, type id 1, version 1);
/// `stream` shorter than 128 bytes, `sequence` under 128.
std::string one_event_record(const std::string& stream, std::uint64_t sequence, const std::string& payload) {
  std::string r{"\x01"};
  r += static_cast<char>(stream.size());
  r += stream;
  r += static_cast<char>(sequence);
  r += std::string("\x01\x01\x01", 3);
  r += payload;
  return r;
}

TEST_CASE("rocks journal: a format-1 store (one index entry per event) is read and upgraded", "[events][journal][rocks]") {
  journal_env env(kind::rocks);
  env.close();
  {
    // What format 1 wrote for stream "s" with two events and "t" with one.
    auto store = rocks_store::open({env.db_path()});
    REQUIRE_OK(store);
    auto* db = (*store)->db();
    rocksdb::WriteBatch wb;
    REQUIRE(wb.Put((*store)->log_cf(), be64(1), one_event_record("s", 1, "a")).ok());
    REQUIRE(wb.Put((*store)->log_cf(), be64(2), one_event_record("t", 1, "b")).ok());
    REQUIRE(wb.Put((*store)->log_cf(), be64(3), one_event_record("s", 2, "c")).ok());
    REQUIRE(wb.Put((*store)->streams_cf(), std::string("s\0", 2) + be64(1), be64(1)).ok());
    REQUIRE(wb.Put((*store)->streams_cf(), std::string("t\0", 2) + be64(1), be64(2)).ok());
    REQUIRE(wb.Put((*store)->streams_cf(), std::string("s\0", 2) + be64(2), be64(3)).ok());
    REQUIRE(wb.Put((*store)->meta_cf(), "format", "1").ok());
    REQUIRE(db->Write(rocksdb::WriteOptions(), &wb).ok());
  }
  env.open();
  std::string format;
  REQUIRE(env.store().db()->Get(rocksdb::ReadOptions(), env.store().meta_cf(), "format", &format).ok());
  CHECK(format == "4");
  CHECK(env.j().head() == 3);
  CHECK(version_of(env.j(), "s") == 2);
  const auto s = read_stream(env.j(), "s");
  REQUIRE(s.size() == 2);
  CHECK(s[0].payload == "a");
  CHECK(s[1].payload == "c");
  CHECK(s[1].position == 3);
  CHECK(read_stream(env.j(), "s", 2).size() == 1);
  // New appends go on in format 3 beside the old entries.
  REQUIRE_OK(append_now(env.j(), {to("s", 2, {ev(1, "d"), ev(1, "e")})}));
  const auto all = read_stream(env.j(), "s");
  REQUIRE(all.size() == 4);
  CHECK(all[3].payload == "e");
  CHECK(all[3].position == 5);
}

TEST_CASE("rocks journal: a format-2 store (one record per event, runs in the index) is read and upgraded",
          "[events][journal][rocks]") {
  journal_env env(kind::rocks);
  env.close();
  {
    // What format 2 wrote for one append of three events to "s" and one to "t", then one more
    // event to "s": a record per event, an index entry per run.
    auto store = rocks_store::open({env.db_path()});
    REQUIRE_OK(store);
    rocksdb::WriteBatch wb;
    REQUIRE(wb.Put((*store)->log_cf(), be64(1), one_event_record("s", 1, "a")).ok());
    REQUIRE(wb.Put((*store)->log_cf(), be64(2), one_event_record("s", 2, "b")).ok());
    REQUIRE(wb.Put((*store)->log_cf(), be64(3), one_event_record("s", 3, "c")).ok());
    REQUIRE(wb.Put((*store)->log_cf(), be64(4), one_event_record("t", 1, "d")).ok());
    REQUIRE(wb.Put((*store)->log_cf(), be64(5), one_event_record("s", 4, "e")).ok());
    REQUIRE(wb.Put((*store)->streams_cf(), std::string("s\0", 2) + be64(1), be64(1) + be64(3)).ok());
    REQUIRE(wb.Put((*store)->streams_cf(), std::string("t\0", 2) + be64(1), be64(4)).ok());
    REQUIRE(wb.Put((*store)->streams_cf(), std::string("s\0", 2) + be64(4), be64(5)).ok());
    REQUIRE(wb.Put((*store)->meta_cf(), "format", "2").ok());
    REQUIRE((*store)->db()->Write(rocksdb::WriteOptions(), &wb).ok());
  }
  env.open();
  std::string format;
  REQUIRE(env.store().db()->Get(rocksdb::ReadOptions(), env.store().meta_cf(), "format", &format).ok());
  CHECK(format == "4");
  CHECK(env.j().head() == 5);
  CHECK(version_of(env.j(), "s") == 4);
  for (std::uint64_t from = 1; from <= 4; ++from) {
    CAPTURE(from);
    const auto s = read_stream(env.j(), "s", from);
    REQUIRE(s.size() == 5 - from);
    CHECK(s.front().sequence == from);
    CHECK(s.back().payload == "e");
  }
  CHECK(env.j().read_stream("s", 2, 1)->front().payload == "b");

  // A new append's record follows the old ones; the log and the streams read across both.
  REQUIRE_OK(append_now(env.j(), {to("s", 4, {ev(1, "f"), ev(1, "g")}), to("t", 1, {ev(1, "h")})}));
  CHECK(env.j().head() == 8);
  const auto all = read_all(env.j(), 4);
  REQUIRE(all.size() == 5);
  CHECK(all[0].payload == "d");
  CHECK(all[2].payload == "f");
  CHECK(all[4].payload == "h");
  CHECK(all[4].position == 8);
  const auto s = read_stream(env.j(), "s", 3);
  REQUIRE(s.size() == 4);
  CHECK(s[3].payload == "g");
  CHECK(s[3].position == 7);
  CHECK(read_stream(env.j(), "t").size() == 2);
}

TEST_CASE("rocks journal: undecodable records are corrupt", "[events][journal][rocks]") {
  journal_env env(kind::rocks);
  REQUIRE_OK(append_now(env.j(), {to("s", 0, {ev(1, "a")})}));
  REQUIRE_OK(append_now(env.j(), {to("s", 1, {ev(1, "b")})}));
  const std::string key1("\0\0\0\0\0\0\0\x01", 8);
  const auto garbage = GENERATE(std::string("\x02whatever"), std::string("\x01\x7fs"), std::string(),
                                std::string("\x03\x01\x01\x01s\x01\x01\x01\x01\x01" "a"),  // unknown format
                                std::string("\x02\x00\x01"),                                // no events
                                std::string("\x02\x01\x01\x01s\x01\x02\x01\x01\x01" "a"),  // a run longer than the record
                                std::string("\x02\x01\x01\x01s\x01\x01\x01\x01\x05" "a"),  // payload cut short
                                std::string("\x02\x01\x01\x01s\x01\x01\x01\x01\x01" "aX"),  // bytes after the last event
                                std::string("\x02\x01\x01\x01s\x01\x01\x80\x80\x04\x01\x01" "a"));  // type id > 16 bits
  CAPTURE(garbage);
  REQUIRE(env.store().db()->Put(rocksdb::WriteOptions(), env.store().log_cf(), key1, garbage).ok());

  const auto all = env.j().read_all(1, 10, [](const stored_event&) {});
  REQUIRE_FALSE(all.ok());
  CHECK(all.err().code == errc::corrupt);
  const auto stream = env.j().read_stream("s", 1, 10);
  REQUIRE_FALSE(stream.ok());
  CHECK(stream.err().code == errc::corrupt);
  // The intact record is still readable on its own.
  CHECK(read_all(env.j(), 2).size() == 1);
}

TEST_CASE("rocks store: refuses a database of another format", "[events][journal][rocks]") {
  temp_dir dir;
  const auto path = (dir.path() / "db").string();
  {
    auto store = rocks_store::open({path});
    REQUIRE_OK(store);
    REQUIRE((*store)->db()->Put(rocksdb::WriteOptions(), (*store)->meta_cf(), "format", "5").ok());
  }
  const auto reopened = rocks_store::open({path});
  REQUIRE_FALSE(reopened.ok());
  CHECK(reopened.err().code == errc::corrupt);
  CHECK_THAT(reopened.err().message, Catch::Contains("format '5'"));
}

/// The nice values of this process's threads named `name` (Linux: /proc/self/task/*/).
std::vector<int> nice_of_threads_named(const std::string& name) {
  std::vector<int> nices;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm_file{task.path() / "comm"};
    std::string comm;
    std::getline(comm_file, comm);
    if (comm != name) {
      continue;
    }
    // stat: "pid (comm) state ..."; nice is the 19th field, the 17th after the ")".
    std::ifstream stat_file{task.path() / "stat"};
    std::string stat;
    std::getline(stat_file, stat);
    std::istringstream rest{stat.substr(stat.rfind(')') + 2)};
    std::string field;
    for (int i = 3; i < 19 && rest >> field; ++i) {
    }
    int nice = 0;
    if (rest >> nice) {
      nices.push_back(nice);
    }
  }
  return nices;
}

TEST_CASE("rocks store: flushes run at the lowest CPU priority", "[events][store]") {
  temp_dir dir;
  rocks_store_options options;
  options.path = (dir.path() / "db").string();
  REQUIRE(options.background_low_priority);  // the default
  auto store = rocks_store::open(options);
  REQUIRE(store.ok());
  REQUIRE((*store)->db()->Put(rocksdb::WriteOptions(), (*store)->meta_cf(), "k", "v").ok());
  // The flush runs on the high-priority pool's thread, which lowers itself before each job.
  REQUIRE((*store)->flush().ok());
  const auto nices = nice_of_threads_named("rocksdb:high");
  REQUIRE_FALSE(nices.empty());
  CHECK(std::find(nices.begin(), nices.end(), 19) != nices.end());
}

/// The compression of each table file of `cf` ("NoCompression", "LZ4", ...), sorted.
std::vector<std::string> table_compressions(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf) {
  rocksdb::TablePropertiesCollection tables;
  REQUIRE(db->GetPropertiesOfAllTables(cf, &tables).ok());
  std::vector<std::string> out;
  for (const auto& [file, properties] : tables) {
    out.push_back(properties->compression_name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST_CASE("rocks store: flushes write level 0 uncompressed, compactions compress", "[events][store]") {
  temp_dir dir;
  auto store = rocks_store::open({(dir.path() / "db").string()});
  REQUIRE_OK(store);
  auto* db = (*store)->db();
  const std::string value(4096, 'x');  // compressible
  for (auto* cf : {(*store)->log_cf(), (*store)->streams_cf(), (*store)->projections_cf()}) {
    for (int i = 0; i < 64; ++i) {
      REQUIRE(db->Put(rocksdb::WriteOptions(), cf, "key" + std::to_string(i), value).ok());
    }
  }
  REQUIRE((*store)->flush().ok());
  for (auto* cf : {(*store)->log_cf(), (*store)->streams_cf(), (*store)->projections_cf()}) {
    CHECK(table_compressions(db, cf) == std::vector<std::string>{"NoCompression"});
    REQUIRE(db->CompactRange(rocksdb::CompactRangeOptions(), cf, nullptr, nullptr).ok());
    const auto compacted = table_compressions(db, cf);
    REQUIRE(compacted.size() == 1);
    const auto supported = rocksdb::GetSupportedCompressions();
    if (std::find(supported.begin(), supported.end(), rocksdb::kLZ4Compression) != supported.end()) {
      CHECK(compacted.front() == "LZ4");
    }
  }
}

TEST_CASE("memory journal: crash hook, events and clone", "[events][journal]") {
  manual_clock clk;
  memory_journal j(clk);
  REQUIRE_OK(append_now(j, {to("a", 0, {ev(1, "a1")})}));

  int answered = 0;
  j.set_crash_hook([](const std::vector<stream_append>& batch) { return batch.front().stream != "boom"; });
  j.append({to("boom", 0, {ev(1, "lost")})}, [&](result<append_receipt>) { ++answered; });
  CHECK(answered == 0);
  CHECK(j.head() == 1);
  CHECK(read_stream(j, "boom").empty());
  j.set_crash_hook(nullptr);

  const auto copy = j.clone();
  CHECK(copy->events() == j.events());
  REQUIRE(copy->events().size() == 1);
  REQUIRE_OK(append_now(*copy, {to("a", 1, {ev(1, "a2")})}));
  CHECK(copy->head() == 2);
  CHECK(j.head() == 1);  // the clone is independent
  CHECK(version_of(*copy, "a") == 2);
  CHECK(version_of(j, "a") == 1);
}
