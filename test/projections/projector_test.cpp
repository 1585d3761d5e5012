#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <rocksdb/db.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/write_batch.h>

#include "prov/core/log.hpp"

#include "projection_fixture.hpp"
#include "support/log_capture.hpp"

using namespace projection_test;

namespace {

constexpr auto generous = std::chrono::seconds{30};

using prov::test::log_capture;

/// A mixed history: requests in every reachable state, clusters, tenants, idempotency claims.
void write_history(world& w) {
  create_tenant(w, "acme", "token-a");
  create_tenant(w, "globex", "token-g");
  register_cluster(w, "sim-1", "Simulation 1");
  for (int i = 0; i < 12; ++i) {
    const auto id = "req-" + std::to_string(i);
    const auto tenant = i % 3 == 0 ? "globex" : "acme";
    submit(w, id, tenant);
    w.append(idempotency_stream(tenant, id), {to_record(idempotency_claimed{id})});
    if (i % 4 == 0) {
      continue;  // stays queued
    }
    start_allocating(w, id);
    if (i % 4 == 1) {
      complete(w, id);
    } else if (i % 4 == 2) {
      fail(w, id);
      start_rollback(w, id);
      if (i % 8 == 2) {
        finish_rollback(w, id);
      }
    }
  }
  cluster_updated update;
  update.enabled = false;
  w.append(cluster_stream("sim-1"), {to_record(update)});
  submit_together(w, {"batch-b", "batch-a", "batch-c"}, "acme");
}

/// The views' answers, rendered: equal renderings mean equal views.
std::vector<std::string> render_views(const views& v) {
  std::vector<std::string> out;
  request_query all;
  all.limit = 1000;
  for (const auto& s : must(v.requests(all)).items) {
    out.push_back(s.id + " " + std::string{enum_name(s.state)} + " v" + std::to_string(s.version));
  }
  for (const auto& id : must(v.live_requests())) {
    out.push_back("live " + id);
  }
  for (const auto& c : must(v.clusters())) {
    out.push_back("cluster " + c.id + " v" + std::to_string(c.version));
  }
  for (const auto& t : must(v.tenants())) {
    out.push_back("tenant " + t.id + " v" + std::to_string(t.version));
  }
  out.push_back("position " + std::to_string(must(v.position())));
  return out;
}

}  // namespace

TEST_CASE("projector: rebuild yields byte-identical projections and views", "[projections][projector]") {
  world w;
  const views v{w.store()};
  write_history(w);
  // Small batches first, so batch boundaries fall inside request histories.
  projector p{w.store(), w.j(), projector_options{7}};
  REQUIRE_OK(p.catch_up());
  CHECK(p.position() == w.j().head());
  const auto dump = dump_projections(w.store());
  const auto rendered = render_views(v);
  REQUIRE(dump.size() > 50);

  REQUIRE_OK(p.rebuild());
  CHECK(p.position() == w.j().head());
  CHECK(dump_projections(w.store()) == dump);
  CHECK(render_views(v) == rendered);

  // One big batch gives the same bytes as many small ones.
  projector big{w.store(), w.j(), projector_options{100000}};
  REQUIRE_OK(big.rebuild());
  CHECK(dump_projections(w.store()) == dump);
  CHECK(render_views(v) == rendered);
  CHECK(big.skipped() == 0);

  // And one event per batch.
  projector tiny{w.store(), w.j(), projector_options{1}};
  REQUIRE_OK(tiny.rebuild());
  CHECK(dump_projections(w.store()) == dump);
}

TEST_CASE("projector: projections in an older layout are rebuilt in the current layout when opened",
          "[projections][projector]") {
  world w;
  const views v{w.store()};
  write_history(w);
  // req-3 (allocating) and req-7 (configuring) are in the step states.
  finish_step(w, "req-7", step_kind::allocate);
  std::map<std::string, std::string> dump;
  {
    projector p{w.store(), w.j()};
    REQUIRE_OK(p.catch_up());
    dump = dump_projections(w.store());
  }
  REQUIRE(dump.at("m/layout") == "5");
  const auto rendered = render_views(v);

  auto* db = w.store().db();
  auto* cf = w.store().projections_cf();
  rocksdb::WriteBatch old;
  SECTION("layout 1: no layout key, every active state indexed under its own byte instead of the "
          "shared 0x80, and a live set") {
    REQUIRE(old.Delete(cf, "m/layout").ok());
    for (const auto* id : {"req-0", "req-3"}) {
      REQUIRE(old.Put(cf, std::string{"x/live/"} + id, "").ok());
    }
    std::size_t moved = 0;
    for (const auto& [k, value] : dump) {
      for (const std::string prefix : {"x/s/", "x/u/"}) {
        if (k.rfind(prefix, 0) != 0) {
          continue;
        }
        const auto at = prefix == "x/s/" ? prefix.size() : k.find('\0', prefix.size()) + 1;
        if (static_cast<unsigned char>(k[at]) != 0x80) {
          continue;
        }
        const auto id = k.substr(at + 1 + 8);
        auto legacy = k;
        legacy[at] = static_cast<char>(folded(w, id).state);
        REQUIRE(old.Delete(cf, k).ok());
        REQUIRE(old.Put(cf, legacy, "").ok());
        ++moved;
      }
    }
    // req-3, req-7 and req-11 in the steps, and six queued (req-0, req-4, req-8, batch-a..c),
    // each in "x/s/" and "x/u/".
    CHECK(moved == 18);
  }
  SECTION("layout 4: besides the state indexes, \"x/a/<inv><id>\" and \"x/t/<tenant>\\0<inv><id>\"") {
    REQUIRE(old.Put(cf, "m/layout", "4").ok());
    std::size_t added = 0;
    for (const auto& [k, value] : dump) {
      if (k.rfind("x/u/", 0) != 0) {
        continue;
      }
      const auto tenant_end = k.find('\0', 4);
      const auto suffix = k.substr(tenant_end + 2);  // after the bucket byte
      REQUIRE(old.Put(cf, "x/a/" + suffix, "").ok());
      REQUIRE(old.Put(cf, "x/t/" + k.substr(4, tenant_end - 4) + std::string(1, '\0') + suffix, "").ok());
      ++added;
    }
    CHECK(added == 15);  // every request of the history
  }
  REQUIRE(db->Write(rocksdb::WriteOptions{}, &old).ok());
  REQUIRE(dump_projections(w.store()) != dump);

  log_capture logs;
  projector reopened{w.store(), w.j()};
  REQUIRE_OK(reopened.catch_up());
  CHECK(logs.with_message("projector: the projections are in an older key layout; rebuilding them from the journal").size() == 1);
  CHECK(reopened.position() == w.j().head());
  CHECK(dump_projections(w.store()) == dump);
  CHECK(render_views(v) == rendered);

  // Current now: the next open only catches up.
  projector again{w.store(), w.j()};
  REQUIRE_OK(again.catch_up());
  CHECK(logs.with_message("projector: the projections are in an older key layout; rebuilding them from the journal").size() == 1);
}

TEST_CASE("projector: projections of another layout version are rebuilt when opened", "[projections][projector]") {
  world w;
  write_history(w);
  std::map<std::string, std::string> dump;
  {
    projector p{w.store(), w.j()};
    REQUIRE_OK(p.catch_up());
    dump = dump_projections(w.store());
  }
  auto* db = w.store().db();
  auto* cf = w.store().projections_cf();
  SECTION("layout 2 kept a live set beside the state index") {
    REQUIRE(db->Put(rocksdb::WriteOptions{}, cf, "m/layout", "2").ok());
    REQUIRE(db->Put(rocksdb::WriteOptions{}, cf, "x/live/req-3", "").ok());
  }
  SECTION("layout 3 indexed queued requests under their own byte") {
    REQUIRE(db->Put(rocksdb::WriteOptions{}, cf, "m/layout", "3").ok());
    rocksdb::WriteBatch old;
    for (const auto& [k, value] : dump) {
      const auto at = k.rfind("x/s/", 0) == 0 ? std::size_t{4} : k.rfind("x/u/", 0) == 0 ? k.find('\0', 4) + 1 : 0;
      if (at != 0 && static_cast<unsigned char>(k[at]) == 0x80 &&
          folded(w, k.substr(at + 1 + 8)).state == lifecycle_state::queued) {
        auto legacy = k;
        legacy[at] = static_cast<char>(lifecycle_state::queued);
        REQUIRE(old.Delete(cf, k).ok());
        REQUIRE(old.Put(cf, legacy, "").ok());
      }
    }
    REQUIRE(old.Count() == 24);  // six queued requests, two index entries each, moved
    REQUIRE(db->Write(rocksdb::WriteOptions{}, &old).ok());
  }
  REQUIRE(dump_projections(w.store()) != dump);
  projector reopened{w.store(), w.j()};
  REQUIRE_OK(reopened.catch_up());
  CHECK(dump_projections(w.store()) == dump);
}

TEST_CASE("projector: folding from the states it wrote last gives what a rebuild gives", "[projections][projector]") {
  // The projector keeps the states of live requests and the usage records it wrote, and
  // folds the next events on them without reading the store: one catch-up per append, so
  // every step starts from such a kept state, then the same journal rebuilt from scratch.
  world w;
  projector p{w.store(), w.j()};
  create_tenant(w, "acme", "token-a");
  const auto step = [&](auto append) {
    append();
    REQUIRE_OK(p.catch_up());
  };
  step([&] { submit(w, "r1", "acme"); });
  step([&] { submit(w, "r2", "acme"); });
  step([&] { start_allocating(w, "r1"); });
  step([&] { start_allocating(w, "r2"); });
  step([&] { finish_step(w, "r1", step_kind::allocate); });
  step([&] { fail(w, "r2"); });
  step([&] { submit(w, "r3", "acme"); });
  step([&] { start_rollback(w, "r2"); });
  step([&] { finish_rollback(w, "r2"); });  // at rest: no longer kept
  step([&] { start_allocating(w, "r3"); });
  step([&] { finish_step(w, "r1", step_kind::configure); });
  step([&] { complete(w, "r3"); });
  for (const auto* id : {"r1", "r2", "r3"}) {
    CHECK(*must(views{w.store()}.request(id)) == folded(w, id));
  }
  const auto incremental = dump_projections(w.store());

  REQUIRE_OK(p.rebuild());
  CHECK(dump_projections(w.store()) == incremental);

  // After a rebuild nothing kept from before it is used: more events, then another rebuild.
  step([&] { finish_step(w, "r1", step_kind::activate); });
  step([&] { submit(w, "r4", "acme"); });
  step([&] { start_allocating(w, "r4"); });
  const auto after = dump_projections(w.store());
  projector fresh{w.store(), w.j()};
  REQUIRE_OK(fresh.rebuild());
  CHECK(dump_projections(w.store()) == after);
}

TEST_CASE("projector: a new projector continues from the stored position", "[projections][projector]") {
  world w;
  const views v{w.store()};
  submit(w, "r1", "acme");
  start_allocating(w, "r1");
  submit(w, "r2", "acme");
  std::uint64_t first_position = 0;
  {
    projector p{w.store(), w.j()};
    CHECK(p.position() == 0);
    REQUIRE_OK(p.catch_up());
    first_position = p.position();
  }
  CHECK(must(v.position()) == first_position);

  complete(w, "r1");
  submit(w, "r3", "globex");

  projector again{w.store(), w.j()};
  CHECK(again.position() == first_position);
  std::vector<std::pair<request_before, request_state>> changes;
  again.on_request_change([&](const request_before& before, const request_state& after) {
    changes.emplace_back(before, after);
  });
  REQUIRE_OK(again.catch_up());
  CHECK(again.position() == w.j().head());
  CHECK(again.skipped() == 0);

  // Only what followed the stored position was applied, each event once.
  REQUIRE(changes.size() == 2);
  CHECK(changes[0].second.id == "r1");
  CHECK(changes[0].first.version == 3);
  CHECK(changes[0].first.state == lifecycle_state::allocating);
  CHECK(changes[0].second.version == 11);
  CHECK(changes[1].first.version == 0);
  CHECK(changes[1].second.id == "r3");
  for (const std::string id : {"r1", "r2", "r3"}) {
    CAPTURE(id);
    CHECK(must(v.request(id)) == std::optional<request_state>{folded(w, id)});
  }
  const auto dump = dump_projections(w.store());

  // Catching up again changes nothing.
  REQUIRE_OK(again.catch_up());
  CHECK(dump_projections(w.store()) == dump);

  // A stored position behind the states (defensive: the batch is atomic, so this should not
  // happen): events the states already hold are skipped silently, nothing changes.
  {
    std::string older;
    for (int shift = 56; shift >= 0; shift -= 8) {
      older.push_back(static_cast<char>((first_position >> shift) & 0xff));
    }
    REQUIRE(w.store().db()->Put(rocksdb::WriteOptions{}, w.store().projections_cf(), "m/position", older).ok());
  }
  projector behind{w.store(), w.j()};
  CHECK(behind.position() == first_position);
  std::size_t reported = 0;
  behind.on_request_change([&](const request_before&, const request_state&) { ++reported; });
  REQUIRE_OK(behind.catch_up());
  CHECK(reported == 0);
  CHECK(behind.skipped() == 0);
  CHECK(dump_projections(w.store()) == dump);
}

TEST_CASE("projector: events that do not decode or apply are skipped, counted and logged", "[projections][projector]") {
  world w;
  projector p{w.store(), w.j()};
  const views v{w.store()};

  submit(w, "r1", "acme");
  w.append(request_stream("r1"), {event_record{999, 1, "\x01\x02 not an event"}});  // unknown type id
  start_allocating(w, "r1");
  w.append(request_stream("r1"), {to_record(request_completed{})});  // not allowed while allocating
  w.append(request_stream("r1"), {to_record(tenant_quota_set{})});    // another aggregate's event
  submit(w, "r2", "acme");
  w.append(request_stream("r2"), {event_record{1, 1, std::string{"\xff\xff\xff"}}});  // malformed payload
  w.append(request_stream("r2"), {to_record(cluster_assigned{"sim-9"})});
  // A stream whose first event is bad: every later event has nothing to apply to.
  w.append(request_stream("r3"), {event_record{1, 7, "future schema version"}});
  w.append(request_stream("r3"), {to_record(cluster_assigned{"sim-9"})});

  {
    log_capture logs;
    REQUIRE_OK(p.catch_up());
    // One error per skipped event, saying where it is and why, never what it holds.
    const auto skipped = logs.with_message("projector: event skipped");
    REQUIRE(skipped.size() == 6);
    CHECK(skipped[0]["stream"] == "request/r1");
    CHECK(skipped[0]["sequence"] == 2);
    CHECK(skipped[0]["level"] == "error");
    CHECK(skipped[0]["code"] == "corrupt");
    for (const auto& line : logs.lines()) {
      CHECK(line.find("not an event") == std::string::npos);
      CHECK(line.find("future schema") == std::string::npos);
    }
  }
  CHECK(p.position() == w.j().head());
  CHECK(p.skipped() == 6);

  const auto r1 = must(v.request("r1"));
  REQUIRE(r1.has_value());
  CHECK(r1->state == lifecycle_state::allocating);
  CHECK(r1->cluster == "sim-local");
  CHECK(r1->version == 4);  // events 1, 3 and 4 applied; 2, 5 and 6 skipped
  const auto r2 = must(v.request("r2"));
  REQUIRE(r2.has_value());
  CHECK(r2->cluster == "sim-9");
  CHECK_FALSE(must(v.request("r3")).has_value());

  // Later events still apply.
  complete(w, "r1");
  REQUIRE_OK(p.catch_up());
  CHECK(must(v.request("r1"))->state == lifecycle_state::completed);
  CHECK(p.skipped() == 6);

  // A rebuild counts the same events again, from zero.
  REQUIRE_OK(p.rebuild());
  CHECK(p.skipped() == 6);
  CHECK(must(v.request("r1"))->state == lifecycle_state::completed);
}

TEST_CASE("projector: listeners see each changed aggregate with its state before and after",
          "[projections][projector]") {
  world w;
  projector p{w.store(), w.j()};
  struct change {
    std::string id;
    std::uint64_t before_version;
    lifecycle_state before_state;
    std::uint64_t after_version;
    lifecycle_state after_state;
    bool operator==(const change&) const = default;
  };
  std::vector<change> changes;
  std::vector<cluster_state> cluster_changes;
  p.on_request_change([&](const request_before& before, const request_state& after) {
    changes.push_back({after.id, before.version, before.state, after.version, after.state});
  });
  p.on_cluster_change([&](const cluster_state& after) { cluster_changes.push_back(after); });

  using ls = lifecycle_state;
  submit(w, "r1", "acme");
  submit(w, "r2", "acme");
  REQUIRE_OK(p.catch_up());
  CHECK(changes == std::vector<change>{{"r1", 0, ls::queued, 1, ls::queued}, {"r2", 0, ls::queued, 1, ls::queued}});
  CHECK(cluster_changes.empty());

  changes.clear();
  start_allocating(w, "r1");
  fail(w, "r1");
  register_cluster(w, "sim-1", "one");
  create_tenant(w, "acme", "t");
  REQUIRE_OK(p.catch_up());
  // One call per request per batch, from its state before the batch to its state after.
  CHECK(changes == std::vector<change>{{"r1", 1, ls::queued, 5, ls::failed}});
  REQUIRE(cluster_changes.size() == 1);
  CHECK(cluster_changes[0].id == "sim-1");
  CHECK(cluster_changes[0].version == 1);

  // An event that is skipped changes nothing and is not reported.
  changes.clear();
  w.append(request_stream("r2"), {to_record(request_completed{})});
  REQUIRE_OK(p.catch_up());
  CHECK(changes.empty());
  CHECK(p.skipped() == 1);
}

TEST_CASE("projector: when_applied fires at once when applied, else from the thread", "[projections][projector]") {
  world w{journal_kind::rocks};
  projector p{w.store(), w.j()};
  const views v{w.store(), &p.unwritten()};

  const auto first = submit(w, "r1", "acme");
  REQUIRE_OK(p.catch_up());

  bool ran = false;
  p.when_applied(first.last_position, [&] { ran = true; });
  CHECK(ran);  // on the caller's thread, before returning
  ran = false;
  p.when_applied(0, [&] { ran = true; });
  CHECK(ran);

  // Waiting for positions not yet written: resolved by the thread once the appends commit.
  std::promise<void> second_applied;
  std::promise<void> third_applied;
  p.when_applied(first.last_position + 1, [&] { second_applied.set_value(); });
  p.when_applied(first.last_position + 2, [&] { third_applied.set_value(); });
  std::promise<std::pair<request_before, request_state>> changed;
  std::atomic<int> changes{0};
  p.on_request_change([&](const request_before& before, const request_state& after) {
    if (changes.fetch_add(1) == 0) {
      changed.set_value({before, after});
    }
  });
  p.start();
  p.start();  // idempotent

  const auto second = submit(w, "r2", "acme");
  CHECK(second.last_position == first.last_position + 1);
  REQUIRE(second_applied.get_future().wait_for(generous) == std::future_status::ready);
  CHECK(p.position() >= second.last_position);
  CHECK(must(v.request("r2")).has_value());
  auto change = changed.get_future();
  REQUIRE(change.wait_for(generous) == std::future_status::ready);
  const auto [before, after] = change.get();
  CHECK(before.version == 0);
  CHECK(after.id == "r2");

  start_allocating(w, "r2");
  REQUIRE(third_applied.get_future().wait_for(generous) == std::future_status::ready);

  // catch_up and rebuild refuse to run beside the thread.
  CHECK(p.catch_up().err().code == errc::conflict);
  CHECK(p.rebuild().err().code == errc::conflict);

  p.stop();
  p.stop();  // idempotent
  REQUIRE_OK(p.catch_up());
}

TEST_CASE("projector: no waiter is lost while appends race with registration", "[projections][projector]") {
  world w{journal_kind::rocks};
  projector p{w.store(), w.j(), projector_options{3}};
  p.start();

  constexpr int appends = 200;
  std::atomic<int> fired{0};
  std::promise<void> all_fired;
  const auto on_fired = [&] {
    if (fired.fetch_add(1) + 1 == appends) {
      all_fired.set_value();
    }
  };
  // Registered from the journal's writer thread right after each commit, racing the
  // projector's thread that applies it.
  std::vector<std::future<void>> committed;
  std::vector<std::promise<void>> commit_promises(appends);
  for (int i = 0; i < appends; ++i) {
    const auto id = "race-" + std::to_string(i);
    w.j().append({stream_append{request_stream(id), 0, {to_record(submitted(id, "acme"))}}},
                 [&, i](result<append_receipt> r) {
                   if (r) {
                     p.when_applied(r->last_position, on_fired);
                   }
                   commit_promises[i].set_value();
                 });
  }
  for (auto& c : commit_promises) {
    REQUIRE(c.get_future().wait_for(generous) == std::future_status::ready);
  }
  REQUIRE(all_fired.get_future().wait_for(generous) == std::future_status::ready);
  CHECK(fired.load() == appends);
  p.stop();
  CHECK(p.position() == w.j().head());
  CHECK(p.skipped() == 0);
}

TEST_CASE("projector: a stop first applies what was committed before it, so every waiter is answered",
          "[projections][projector]") {
  world w{journal_kind::rocks};
  projector p{w.store(), w.j(), projector_options{1}};  // one event per batch
  // The first change holds the projector's thread inside its batch until released.
  std::promise<void> holding;
  std::promise<void> release;
  auto released = release.get_future().share();
  std::atomic<int> changes{0};
  p.on_request_change([&](const request_before&, const request_state&) {
    if (changes.fetch_add(1) == 0) {
      holding.set_value();
      released.wait();
    }
  });
  p.start();
  submit(w, "held", "acme");
  REQUIRE(holding.get_future().wait_for(generous) == std::future_status::ready);

  // Committed while the thread is held: not applied yet.
  const auto later = submit(w, "committed-before-stop", "acme");
  std::atomic<bool> answered{false};
  p.when_applied(later.last_position, [&] { answered = true; });
  CHECK_FALSE(answered);

  p.request_stop();  // asked while the thread is still inside the first batch
  release.set_value();
  p.stop();
  CHECK(answered);
  CHECK(p.position() == w.j().head());
  CHECK(must(views{w.store()}.request("committed-before-stop")).has_value());
}

TEST_CASE("projector: the thread catches up with commits made before start", "[projections][projector]") {
  world w;  // memory journal: appends commit inline, before the thread exists
  write_history(w);
  projector p{w.store(), w.j(), projector_options{5}};
  std::promise<void> applied;
  p.when_applied(w.j().head(), [&] { applied.set_value(); });
  p.start();
  REQUIRE(applied.get_future().wait_for(generous) == std::future_status::ready);
  p.stop();
  CHECK(p.position() == w.j().head());

  // Appends on this thread while the projector runs (commit listener called inline).
  p.start();
  std::promise<void> later;
  const auto receipt = submit(w, "after-start", "acme");
  p.when_applied(receipt.last_position, [&] { later.set_value(); });
  REQUIRE(later.get_future().wait_for(generous) == std::future_status::ready);
  p.stop();
  CHECK(must(views{w.store()}.request("after-start")).has_value());
}

TEST_CASE("projector: across batch boundaries each change starts where the last ended", "[projections][projector]") {
  world w;
  write_history(w);
  const auto batch_size = GENERATE(std::size_t{1}, std::size_t{2}, std::size_t{5}, std::size_t{64});
  CAPTURE(batch_size);
  projector p{w.store(), w.j(), projector_options{batch_size}};
  std::map<std::string, std::vector<std::pair<request_before, request_state>>> changes;
  p.on_request_change([&](const request_before& before, const request_state& after) {
    changes[after.id].emplace_back(before, after);
  });
  std::vector<std::string> cluster_versions;
  p.on_cluster_change([&](const cluster_state& after) {
    cluster_versions.push_back(after.id + " v" + std::to_string(after.version));
  });
  REQUIRE_OK(p.catch_up());

  REQUIRE(changes.size() == 15);
  for (const auto& [id, chain] : changes) {
    CAPTURE(id);
    REQUIRE_FALSE(chain.empty());
    CHECK_FALSE(chain.front().first.exists());
    for (std::size_t i = 1; i < chain.size(); ++i) {
      CHECK(chain[i].first.version == chain[i - 1].second.version);
      CHECK(chain[i].first.state == chain[i - 1].second.state);
    }
    CHECK(chain.back().second == folded(w, id));
  }
  CHECK(cluster_versions == std::vector<std::string>{"sim-1 v1", "sim-1 v2"});
}

namespace {

/// Waits until the running projector has applied everything the journal committed.
void wait_applied(projector& p, world& w) {
  std::promise<void> applied;
  p.when_applied(w.j().head(), [&] { applied.set_value(); });
  REQUIRE(applied.get_future().wait_for(generous) == std::future_status::ready);
}

/// Puts `dump` back as the whole projections column family (the store as a crash left it).
void restore_projections(rocks_store& store, const std::map<std::string, std::string>& dump) {
  rocksdb::WriteBatch wb;
  for (const auto& [k, v] : dump_projections(store)) {
    REQUIRE(wb.Delete(store.projections_cf(), k).ok());
  }
  for (const auto& [k, v] : dump) {
    REQUIRE(wb.Put(store.projections_cf(), k, v).ok());
  }
  REQUIRE(store.db()->Write(rocksdb::WriteOptions{}, &wb).ok());
}

/// The version of the view the store holds of request `id` (0: none).
std::uint64_t stored_version(rocks_store& store, const std::string& id) {
  const auto state = must(views{store}.request(id));
  return state ? state->version : 0;
}

}  // namespace

TEST_CASE("projector: a request's changes are served unwritten until it rests, and a restart from the store a crash left replays them",
          "[projections][projector][unwritten]") {
  world w{journal_kind::rocks};
  write_history(w);
  projector p{w.store(), w.j()};
  const views served{w.store(), &p.unwritten()};
  const views stored{w.store()};
  REQUIRE_OK(p.catch_up());  // as the engine opens it
  const auto acme_before = must(stored.usage_of_tenant("acme"));
  const auto cluster_before = must(stored.usage_of_cluster("sim-local"));
  p.start();

  // Every change of a request on its way is applied, not written: its creation, its cluster,
  // its move from reserved to used, a step's change; and another's failure and rollback.
  const auto created = submit(w, "moving", "acme");
  start_allocating(w, "moving");
  finish_step(w, "moving", step_kind::allocate);
  const auto activating = finish_step(w, "moving", step_kind::configure);
  submit(w, "doomed", "acme");
  start_allocating(w, "doomed");
  fail(w, "doomed");
  start_rollback(w, "doomed");
  // A request that comes to rest is written: the tenant's and the cluster's usage records move
  // while the others' moves are unwritten.
  submit(w, "later", "acme");
  start_allocating(w, "later");
  complete(w, "later");
  wait_applied(p, w);
  REQUIRE(p.unwritten().size() == 2);
  CHECK(must(served.request("moving"))->state == lifecycle_state::activating);
  CHECK(must(served.request("moving"))->version == activating.versions.front());
  CHECK(must(served.request("doomed"))->state == lifecycle_state::rolling_back);
  CHECK(stored_version(w.store(), "moving") == 0);
  CHECK(stored_version(w.store(), "doomed") == 0);
  CHECK(stored_version(w.store(), "later") == folded(w, "later").version);

  // Lists merge them with the stored index by their newest state; the store has no index
  // entry of them yet.
  request_query by_state;
  by_state.state = lifecycle_state::activating;
  CHECK(ids_of(must(served.requests(by_state)).items) == std::vector<std::string>{"moving"});
  CHECK(must(stored.requests(by_state)).items.empty());
  by_state.state = lifecycle_state::rolling_back;
  CHECK(ids_of(must(served.requests(by_state)).items) == std::vector<std::string>{"doomed", "req-6"});
  request_query by_tenant;
  by_tenant.tenant = "acme";
  by_tenant.limit = 3;
  CHECK(ids_of(must(served.requests(by_tenant)).items) == std::vector<std::string>{"later", "doomed", "moving"});
  CHECK(list_all(stored, by_tenant).size() == list_all(served, by_tenant).size() - 2);
  // Pages of one or two items walk through stored and unwritten requests alike, in one order.
  request_query all;
  all.limit = 1000;
  const auto served_all = list_all(served, all);
  all.limit = 2;
  CHECK(list_all(served, all) == served_all);
  all.limit = 1;
  CHECK(list_all(served, all) == served_all);
  by_tenant.limit = 1;
  CHECK(list_all(served, by_tenant) == list_all(served, [] {
          request_query q;
          q.tenant = "acme";
          q.limit = 1000;
          return q;
        }()));
  const auto live = must(served.live_requests());
  CHECK(std::count(live.begin(), live.end(), "moving") == 1);
  CHECK(std::count(live.begin(), live.end(), "doomed") == 1);
  CHECK(std::count(live.begin(), live.end(), "later") == 0);

  // The stored usage records agree with the stored views (only "later" moved them); the served
  // usage adds the unwritten moves: "moving" used, "doomed" reserved, both on sim-local.
  const auto acme_stored = must(stored.usage_of_tenant("acme"));
  CHECK(acme_stored.used.instances == acme_before.used.instances + 1);
  CHECK(acme_stored.reserved.instances == acme_before.reserved.instances);
  const auto acme_served = must(served.usage_of_tenant("acme"));
  CHECK(acme_served.used.instances == acme_before.used.instances + 2);
  CHECK(acme_served.reserved.instances == acme_before.reserved.instances + 1);
  const auto cluster_served = must(served.usage_of_cluster("sim-local"));
  CHECK(cluster_served.used.instances == cluster_before.used.instances + 2);
  CHECK(cluster_served.reserved.instances == cluster_before.reserved.instances + 1);
  CHECK(must(served.tenant_usages()).at("acme") == acme_served);
  CHECK(must(served.cluster_usages()).at("sim-local") == cluster_served);

  // The stored position stays before the oldest unwritten change; the applied one is the head.
  CHECK(must(stored.position()) == created.first_position - 1);
  CHECK(p.position() == w.j().head());
  const auto crashed = dump_projections(w.store());

  // A stop writes them with their usage moves, and the position reaches the head: the store
  // then holds what was served.
  p.stop();
  CHECK(p.unwritten().size() == 0);
  CHECK(stored_version(w.store(), "moving") == activating.versions.front());
  CHECK(must(stored.usage_of_tenant("acme")) == acme_served);
  CHECK(must(stored.usage_of_cluster("sim-local")) == cluster_served);
  CHECK(must(stored.position()) == w.j().head());
  all.limit = 1000;
  CHECK(list_all(stored, all) == served_all);
  CHECK(must(stored.live_requests()) == live);
  const auto stopped = dump_projections(w.store());

  // The store as a kill -9 would have left it: the next start replays from the stored position,
  // applies the unwritten changes once, and skips the changes already stored (usage counted once).
  restore_projections(w.store(), crashed);
  projector restarted{w.store(), w.j()};
  REQUIRE_OK(restarted.catch_up());
  CHECK(dump_projections(w.store()) == stopped);
  REQUIRE_OK(restarted.rebuild());
  CHECK(dump_projections(w.store()) == stopped);
}

TEST_CASE("projector: a list pages through more unwritten requests than fit on a page", "[projections][projector][unwritten]") {
  world w{journal_kind::rocks};
  projector p{w.store(), w.j()};
  const views served{w.store(), &p.unwritten()};
  p.start();
  std::vector<std::string> newest_first;
  for (int i = 1; i <= 7; ++i) {
    const auto id = "flight-" + std::to_string(i);
    submit(w, id, i % 2 == 0 ? "acme" : "globex");
    newest_first.insert(newest_first.begin(), id);
  }
  wait_applied(p, w);
  REQUIRE(p.unwritten().size() == 7);
  // Nothing is stored: every page, and whether another follows, comes from the unwritten ones.
  for (const std::size_t limit : {1, 2, 3, 7, 8}) {
    CAPTURE(limit);
    request_query all;
    all.limit = limit;
    std::size_t pages = 0;
    CHECK(list_all(served, all, &pages) == newest_first);
    CHECK(pages == (newest_first.size() + limit - 1) / limit);
  }
  request_query acme;
  acme.tenant = "acme";
  acme.limit = 2;
  CHECK(list_all(served, acme) == std::vector<std::string>{"flight-6", "flight-4", "flight-2"});
}

TEST_CASE("projector: a request that rests writes its view and moves its usage from what the store holds of it",
          "[projections][projector][unwritten]") {
  world w{journal_kind::rocks};
  projector p{w.store(), w.j()};
  const views served{w.store(), &p.unwritten()};
  const views stored{w.store()};
  REQUIRE_OK(p.catch_up());
  p.start();
  // Stored once (overdue would do the same): then its later changes are unwritten again.
  submit(w, "r", "acme");
  wait_applied(p, w);
  p.stop();
  REQUIRE(stored_version(w.store(), "r") == 1);
  REQUIRE(must(stored.usage_of_tenant("acme")).reserved.instances == 1);

  p.start();
  start_allocating(w, "r");
  finish_step(w, "r", step_kind::allocate);
  wait_applied(p, w);
  REQUIRE(p.unwritten().size() == 1);
  CHECK(must(stored.usage_of_tenant("acme")).reserved.instances == 1);
  CHECK(must(served.usage_of_tenant("acme")).used.instances == 1);
  CHECK(must(served.usage_of_tenant("acme")).reserved.instances == 0);
  CHECK(must(stored.usage_of_cluster("sim-local")).used.instances == 0);
  CHECK(must(served.usage_of_cluster("sim-local")).used.instances == 1);

  // Rolled back: written, and its spec leaves the records it is stored in (reserved, no
  // cluster), not the ones it was served in.
  w.append(request_stream("r"), {to_record(step_failed{step_kind::configure, 1, "boom", "it broke", false}),
                                  to_record(request_failed{"provider_error", "it broke"})});
  wait_applied(p, w);
  // Listed once, by its served state: the stored entries (queued, in the active bucket) are
  // skipped wherever a list reads them.
  request_query by_state;
  by_state.limit = 1000;
  CHECK(list_all(served, by_state) == std::vector<std::string>{"r"});
  by_state.state = lifecycle_state::failed;
  CHECK(list_all(served, by_state) == std::vector<std::string>{"r"});
  by_state.state = lifecycle_state::queued;
  CHECK(list_all(served, by_state).empty());
  CHECK(list_all(stored, by_state) == std::vector<std::string>{"r"});
  by_state.tenant = "acme";
  CHECK(list_all(served, by_state).empty());
  start_rollback(w, "r");
  finish_rollback(w, "r");
  REQUIRE(folded(w, "r").state == lifecycle_state::rolled_back);
  wait_applied(p, w);
  CHECK(p.unwritten().size() == 0);
  CHECK(stored_version(w.store(), "r") == folded(w, "r").version);
  CHECK(must(stored.usage_of_tenant("acme")) == prov::projections::tenant_usage{});
  CHECK(must(stored.usage_of_cluster("sim-local")) == prov::projections::cluster_usage{});
  p.stop();
  const auto live = render_views(stored);
  REQUIRE_OK(p.rebuild());
  CHECK(render_views(stored) == live);
  CHECK(must(stored.usage_of_tenant("acme")) == prov::projections::tenant_usage{});
  CHECK(must(stored.usage_of_cluster("sim-local")) == prov::projections::cluster_usage{});
}

TEST_CASE("projector: an unwritten state is written once the journal moves max_deferred_events past it",
          "[projections][projector][unwritten]") {
  world w{journal_kind::rocks};
  projector_options options;
  options.max_deferred_events = 8;
  projector p{w.store(), w.j(), options};
  p.start();
  const auto created = submit(w, "slow", "acme");
  start_allocating(w, "slow");
  finish_step(w, "slow", step_kind::allocate);
  const auto activating = finish_step(w, "slow", step_kind::configure);  // 7 events in all
  wait_applied(p, w);
  REQUIRE(p.unwritten().size() == 1);
  CHECK(stored_version(w.store(), "slow") == 0);

  create_tenant(w, "t1", "token-1");  // 7 events past its first change: still unwritten
  wait_applied(p, w);
  REQUIRE(w.j().head() == created.first_position + 7);
  CHECK(p.unwritten().size() == 1);
  create_tenant(w, "t2", "token-2");  // 8 past it
  wait_applied(p, w);
  CHECK(p.unwritten().size() == 0);
  CHECK(stored_version(w.store(), "slow") == activating.versions.front());
  CHECK(must(views{w.store()}.usage_of_cluster("sim-local")).used.instances == 1);
  CHECK(must(views{w.store()}.position()) == w.j().head());
  p.stop();

  // 0: every change is written with its batch.
  projector_options never;
  never.max_deferred_events = 0;
  projector q{w.store(), w.j(), never};
  q.start();
  const auto verifying = finish_step(w, "slow", step_kind::activate);
  wait_applied(q, w);
  CHECK(q.unwritten().size() == 0);
  CHECK(stored_version(w.store(), "slow") == verifying.versions.front());
}

TEST_CASE("projections insert hint: one per tenant and bucket in the tenant index, per bucket in the state index",
          "[projections][hint]") {
  const auto hint = prov::projections::insert_hint();
  const auto prefix = [&](std::string_view key) {
    const rocksdb::Slice k{key.data(), key.size()};
    REQUIRE(hint->InDomain(k));
    return hint->Transform(k).ToString();
  };
  using namespace std::string_literals;
  CHECK(prefix("x/u/acme\0\x80\xff\x01r1"s) == "x/u/acme\0\x80"s);
  CHECK(prefix("x/s/\x80\xff\x01r1"s) == "x/s/\x80"s);
  CHECK(prefix("x/u/acme") == "x/u/acme");  // no end of the tenant: all of it
  CHECK(prefix("r/0193abcd") == "r/01");
  CHECK(prefix("u/acme") == "u/ac");
  CHECK_FALSE(hint->InDomain(rocksdb::Slice{"r/"}));
}
