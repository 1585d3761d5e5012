// The engine with a real actor system: a submission that waits for another must not hold its
// caller's thread while the dependency graph checks it for cycles (one scheduler thread), and
// a command that loses a race to another writer is decided again instead of answered 409;
// a backup made while appends go on says exactly what its copy holds.

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <thread>

#include "prov/actors/engine.hpp"
#include "prov/events/rocks_journal.hpp"
#include "prov/events/rocks_store.hpp"
#include "prov/core/clock.hpp"

using namespace prov;
using namespace prov::actors;

namespace {

template <class T>
T await(std::future<T>& f) {
  REQUIRE(f.wait_for(std::chrono::seconds{20}) == std::future_status::ready);
  return f.get();
}

submit_command vps_for(const std::string& tenant) {
  submit_command cmd;
  cmd.tenant = tenant;
  cmd.region = "local";
  cmd.spec.cpu_millis = 1000;
  cmd.spec.memory_mb = 1024;
  return cmd;
}

/// An engine with real threads in a fresh directory (removed afterwards), with a tenant "acme"
/// and one vps request of it submitted.
struct running_engine {
  std::filesystem::path dir = std::filesystem::temp_directory_path() /
                              ("prov-engine-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  system_clock_source clk;
  std::unique_ptr<engine> e;
  std::string first;  ///< the request submitted

  explicit running_engine(std::size_t scheduler_threads = 0) {
    engine_options options;
    options.data_dir = dir.string();
    options.scheduler_threads = scheduler_threads;
    auto opened = engine::open(options, clk);
    REQUIRE(opened.ok());
    e = std::move(*opened);
    std::promise<result<tenant_reply>> tenant;
    e->create_tenant(tenant_command{"acme", "Acme", {}}, [&](result<tenant_reply> r) { tenant.set_value(r); });
    auto tenant_done = tenant.get_future();
    REQUIRE(await(tenant_done).ok());
    std::promise<result<submit_reply>> submitted;
    e->submit(vps_for("acme"), [&](result<submit_reply> r) { submitted.set_value(r); });
    auto submitted_done = submitted.get_future();
    const auto reply = await(submitted_done);
    REQUIRE(reply.ok());
    first = reply->id;
  }
  ~running_engine() {
    if (e) {
      e->shutdown();
      e.reset();
    }
    std::filesystem::remove_all(dir);
  }
};

}  // namespace

TEST_CASE("a submission that waits for another returns before the dependency graph answers it",
          "[actors][dependencies][engine]") {
  running_engine run{1};  // the graph and every other actor share one thread
  auto& e = *run.e;
  {
    // Submitted from the engine's only actor thread (an inventory answer's callback runs
    // there): had the submission waited for the graph's verdict, nothing could have run the
    // graph, and the call would have returned only when its ask timed out (30 s).
    std::promise<void> returned;
    std::promise<result<submit_reply>> answered;
    e.inventory("simulation-local", [&](result<inventory_listing>) {
      auto cmd = vps_for("acme");
      cmd.depends_on = {run.first};
      e.submit(std::move(cmd), [&](result<submit_reply> r) { answered.set_value(r); });
      returned.set_value();
    });
    auto returned_done = returned.get_future();
    await(returned_done);
    auto answered_done = answered.get_future();
    const auto dependent = await(answered_done);
    REQUIRE(dependent.ok());
    CHECK(dependent->state == events::lifecycle_state::queued);
    CHECK(dependent->id != run.first);
  }
}

TEST_CASE("a command that loses a race to another writer is decided again on the new state",
          "[actors][engine][commands]") {
  running_engine run;
  auto& e = *run.e;
  const auto id = run.first;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{20};
  auto state = [&] {
    auto v = e.views().request(id);
    return v && *v ? (*v)->state : events::lifecycle_state::queued;
  };
  while (state() != events::lifecycle_state::completed && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  REQUIRE(state() == events::lifecycle_state::completed);

  // Both are decided on the same fold (the first one's append is still on its way to the
  // journal when the second reads the stream), so the second one's append expects a version
  // the first one took. Deprovisioning a request with a suspension pending is allowed: decided
  // again, it goes through. (Were the first append to land before the second reads, both
  // would pass anyway: this can only miss the race, never fail on correct code.)
  std::promise<result<events::request_state>> suspend;
  std::promise<result<events::request_state>> deprovision;
  e.command(id, lifecycle_command::suspend, command_input{"non-payment", "admin"},
            [&](result<events::request_state> r) { suspend.set_value(r); });
  e.command(id, lifecycle_command::deprovision, command_input{"", "admin"},
            [&](result<events::request_state> r) { deprovision.set_value(r); });
  auto suspend_done = suspend.get_future();
  auto deprovision_done = deprovision.get_future();
  const auto suspended = await(suspend_done);
  const auto deprovisioned = await(deprovision_done);
  INFO((suspended ? std::string{"suspend ok"} : suspended.err().message));
  INFO((deprovisioned ? std::string{"deprovision ok"} : deprovisioned.err().message));
  CHECK(suspended.ok());
  CHECK(deprovisioned.ok());
}

TEST_CASE("a backup made while appends go on reports the last journal position its copy holds",
          "[actors][engine][backup]") {
  running_engine run;
  auto& e = *run.e;
  // Submissions, one at a time, keep the journal writing while the backup is made.
  std::atomic<bool> stop{false};
  std::thread load([&] {
    for (int i = 0; i < 5000 && !stop.load(); ++i) {
      std::promise<void> answered;
      e.submit(vps_for("acme"), [&](const result<submit_reply>&) { answered.set_value(); });
      answered.get_future().wait();
    }
  });
  std::promise<result<backup_report>> made;
  e.backup("during-load", [&](result<backup_report> r) { made.set_value(std::move(r)); });
  auto made_done = made.get_future();
  const auto report = await(made_done);
  stop = true;
  load.join();
  REQUIRE(report.ok());
  CHECK(report->journal_head > 0);

  // The copy, opened as provisiond opens a data directory: its log ends where the report says.
  events::rocks_store_options options;
  options.path = report->path + "/db";
  auto store = events::rocks_store::open(options);
  REQUIRE(store.ok());
  auto journal = events::make_rocks_journal(**store, run.clk);
  REQUIRE(journal.ok());
  CHECK((*journal)->head() == report->journal_head);
}
