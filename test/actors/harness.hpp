#pragma once
// A whole engine's actors in one CAF actor system on the test coordinator (virtual time),
// over an in-memory journal and an in-memory simulated cloud. The journal and the cloud
// outlive a "node", so a test can crash a node (drop it mid-flight) and start a new one.

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include <memory>
#include <mutex>

#include "prov/actors/spawn.hpp"
#include "prov/core/secret_box.hpp"
#include "prov/events/apply.hpp"
#include "prov/events/memory_journal.hpp"
#include "prov/providers/inventory_store.hpp"

namespace prov::testing {

/// Wall-clock time that follows the CAF test coordinator's virtual clock of whichever node is
/// running, continuous across node restarts (and able to jump while no node runs, as time
/// passes while a process is down). Journal timestamps and actor decisions both read it.
/// `elapsed` is the same time without the wall clock's steps (`step`).
class virtual_clock final : public clock {
 public:
  timestamp now() const override {
    std::lock_guard<std::mutex> guard{_mutex};
    return now_locked() + _stepped;
  }

  std::chrono::microseconds elapsed() const override {
    std::lock_guard<std::mutex> guard{_mutex};
    return now_locked().time_since_epoch();
  }

  /// The wall clock is set by `d` (an NTP step, an operator): no time passes.
  void step(std::chrono::microseconds d) {
    std::lock_guard<std::mutex> guard{_mutex};
    _stepped += d;
  }

  void attach(caf::scheduler::test_coordinator* sched) {
    std::lock_guard<std::mutex> guard{_mutex};
    const auto t = now_locked();
    _sched = sched;
    _offset = t - caf_now();
  }

  void detach() {
    std::lock_guard<std::mutex> guard{_mutex};
    _frozen = now_locked();
    _sched = nullptr;
  }

  /// Time passing while no node runs.
  void pass(std::chrono::microseconds d) {
    std::lock_guard<std::mutex> guard{_mutex};
    _frozen += d;
  }

 private:
  std::chrono::microseconds caf_now() const {
    return std::chrono::duration_cast<std::chrono::microseconds>(_sched->clock().now().time_since_epoch());
  }
  timestamp now_locked() const { return _sched == nullptr ? _frozen : _offset + caf_now(); }

  mutable std::mutex _mutex;
  caf::scheduler::test_coordinator* _sched = nullptr;
  timestamp _offset{};
  timestamp _frozen{std::chrono::seconds{1'800'000'000}};
  std::chrono::microseconds _stepped{0};
};

/// The engine's key for sealing credentials, fixed for tests.
inline const secret_box& test_secrets() {
  static const secret_box box = *secret_box::from_key(std::string(32, 'k'));
  return box;
}

struct node {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  actors::engine_context ctx;
  actors::request_supervisor_actor supervisor;
  actors::reconciler_actor reconciler;

  virtual_clock& vclock;

  node(events::journal& journal, virtual_clock& clk, providers::inventory_store& inventory,
       const std::vector<events::cluster_state>& clusters, actors::pipeline_options pipeline = {},
       actors::region_distances distances = {})
      : vclock(clk) {
    ctx.distances = std::move(distances);
    cfg.set("scheduler.policy", caf::atom("testing"));
    cfg.set("logger.verbosity", caf::atom("quiet"));
    sys = std::make_unique<caf::actor_system>(cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
    clk.attach(sched);
    ctx.journal = &journal;
    ctx.clk = &clk;
    ctx.providers.simulation_inventory = &inventory;
    ctx.providers.clk = &clk;
    ctx.providers.secrets = &test_secrets();
    ctx.pipeline = pipeline;
    ctx.registry = actors::spawn_cluster_registry(*sys, ctx);
    for (const auto& c : clusters) {
      caf::anon_send(ctx.registry, actors::update_atom::value, c);
    }
    ctx.admission = actors::spawn_admission(*sys, ctx);
    ctx.watchdog = actors::spawn_watchdog(*sys, ctx);
    ctx.dependencies = actors::spawn_dependency_graph(*sys, ctx);
    supervisor = actors::spawn_request_supervisor(*sys, ctx);
    ctx.supervisor = supervisor;
    reconciler = actors::spawn_reconciler(*sys, ctx);
    run_jobs();
  }

  ~node() {
    // A crash: whatever is in flight is dropped, nothing is flushed or finished.
    sys->await_actors_before_shutdown(false);
    caf::anon_send_exit(supervisor, caf::exit_reason::user_shutdown);  // also stops its request actors
    caf::anon_send_exit(ctx.registry, caf::exit_reason::kill);
    caf::anon_send_exit(ctx.admission, caf::exit_reason::kill);
    caf::anon_send_exit(ctx.watchdog, caf::exit_reason::kill);
    caf::anon_send_exit(ctx.dependencies, caf::exit_reason::kill);
    caf::anon_send_exit(reconciler, caf::exit_reason::kill);
    sched->run();
    vclock.detach();
  }


  /// Runs the messages that are ready, without moving time.
  std::size_t run_jobs() { return sched->run(); }

  /// Runs messages and timers in time order until `done()` holds (true), or until nothing is
  /// left to run or the next timer lies beyond `horizon` of virtual time from now (false).
  /// Periodic timers (the watchdog) and stale ones (call timeouts) never let a system become
  /// "idle", so tests say what they wait for.
  template <class Pred>
  bool run_until(Pred done, caf::timespan horizon = std::chrono::hours{24}) {
    auto& clk = sched->clock();
    const auto limit = clk.now() + horizon;
    for (std::size_t steps = 0; steps < 10'000'000; ++steps) {
      sched->run();
      if (done()) {
        return true;
      }
      const auto& pending = clk.schedule();
      if (pending.empty() || pending.begin()->first > limit) {
        return false;
      }
      sched->trigger_timeout();
    }
    throw std::runtime_error("actor system did not settle");
  }

  /// Runs messages and every timer due within the next `d` of virtual time, in order, and
  /// leaves the clock exactly `d` later.
  void run_for(caf::timespan d) {
    auto& clk = sched->clock();
    const auto target = clk.now() + d;
    run_until([&] {
      const auto& pending = clk.schedule();
      return pending.empty() || pending.begin()->first > target;
    }, d);
    clk.current_time = std::max(clk.current_time, target);
    sched->run();
  }

  /// Adds a request to the dependency graph, as the engine does at submission.
  actors::dependency_verdict add_dependencies(const std::string& id, const std::vector<std::string>& prerequisites,
                                              const std::string& key_node = {}) {
    auto out = std::make_shared<actors::dependency_verdict>();
    auto graph = ctx.dependencies;
    actors::dependency_node node{id, key_node, prerequisites};
    sys->spawn([out, graph, node](caf::event_based_actor* self) {
      self->request(graph, caf::infinite, actors::add_atom::value, node, true)
          .then([out](const actors::dependency_verdict& v) { *out = v; });
    });
    run_jobs();
    return *out;
  }

  /// The runtime state (breaker, bulkhead) of a cluster's actor.
  actors::cluster_runtime cluster_status(const std::string& id) {
    auto out = std::make_shared<actors::cluster_runtime>();
    auto registry = ctx.registry;
    sys->spawn([out, registry, id](caf::event_based_actor* self) {
      self->request(registry, caf::infinite, actors::lookup_atom::value, id).then([=](const actors::cluster_choice& c) {
        self->request(c.handle, caf::infinite, actors::status_atom::value).then([=](const actors::cluster_runtime& r) {
          *out = r;
        });
      });
    });
    run_jobs();
    return *out;
  }

  /// The orphan reconciler's totals.
  actors::reconcile_status reconciler_status() {
    auto out = std::make_shared<actors::reconcile_status>();
    auto target = reconciler;
    sys->spawn([out, target](caf::event_based_actor* self) {
      self->request(target, caf::infinite, actors::status_atom::value).then([out](const actors::reconcile_status& s) {
        *out = s;
      });
    });
    run_jobs();
    return *out;
  }

  /// Asks the reconciler for a pass over registered cluster `id` (as the engine does, with the
  /// registry's answer); `*out` holds its answer once it came.
  void ask_reconcile(const std::string& id, std::shared_ptr<std::optional<actors::reconcile_status>> out) {
    auto target = reconciler;
    auto registry = ctx.registry;
    sys->spawn([out, target, registry, id](caf::event_based_actor* self) {
      self->request(registry, caf::infinite, actors::lookup_atom::value, id).then([=](const actors::cluster_choice& c) {
        self->request(target, caf::infinite, actors::reconcile_atom::value, c)
            .then([out](const actors::reconcile_status& s) { *out = s; });
      });
    });
  }

  /// Changes a cluster at runtime (as a PATCH would).
  void update_cluster(events::cluster_state c) {
    caf::anon_send(ctx.registry, actors::update_atom::value, std::move(c));
    run_jobs();
  }

  caf::timespan virtual_now() const { return sched->clock().now().time_since_epoch(); }

  void start(const std::string& id) { caf::anon_send(supervisor, actors::start_atom::value, id); }
  /// As the engine starts a request it just submitted: with the state its submission committed.
  void start_from(const std::string& id, events::request_state initial) {
    caf::anon_send(supervisor, actors::start_atom::value, id, std::move(initial));
  }

  /// How many request actors are alive (asked through the supervisor's protocol).
  std::size_t live_requests() {
    auto n = std::make_shared<std::size_t>(~std::size_t{0});
    auto target = supervisor;
    sys->spawn([n, target](caf::event_based_actor* self) {
      self->request(target, caf::infinite, actors::count_atom::value).then([n](std::size_t x) { *n = x; });
    });
    run_jobs();
    return *n;
  }
};

inline events::cluster_state sim_cluster(const std::string& id, events::simulation_settings sim = {},
                                         std::string region = "local") {
  events::cluster_state c;
  c.id = id;
  c.name = id;
  c.type = events::provider_type::simulation;
  c.region = std::move(region);
  c.simulation = sim;
  c.is_default = true;
  c.version = 1;
  return c;
}

inline events::request_submitted vps_request(const std::string& id, events::service_type type = events::service_type::vps) {
  events::request_submitted e;
  e.request_id = id;
  e.tenant = "acme";
  e.type = type;
  e.provider = events::provider_type::simulation;
  e.region = "local";
  e.spec = events::resource_spec{2000, 4096, 40, ""};
  return e;
}

/// Appends events to a request's stream at its current version (as a command would).
inline void append_to(events::journal& journal, const std::string& id, std::vector<events::request_event> batch) {
  auto version = *journal.stream_version(events::request_stream(id));
  std::vector<events::event_record> records;
  for (const auto& e : batch) {
    records.push_back(std::visit([](const auto& x) { return events::to_record(x); }, e));
  }
  std::vector<events::stream_append> appends;
  appends.push_back(events::stream_append{events::request_stream(id), version, std::move(records)});
  bool done = false;
  journal.append(std::move(appends), [&](result<events::append_receipt> r) {
    if (!r) {
      throw std::runtime_error(r.err().message);
    }
    done = true;
  });
  if (!done) {
    throw std::runtime_error("append did not complete inline");
  }
}

/// Appends a submitted request to the journal (inline for the memory journal).
inline void submit(events::journal& journal, const events::request_submitted& e) {
  std::vector<events::stream_append> batch;
  batch.push_back(events::stream_append{events::request_stream(e.request_id), 0, {events::to_record(e)}});
  bool done = false;
  journal.append(std::move(batch), [&](result<events::append_receipt> r) {
    if (!r) {
      throw std::runtime_error(r.err().message);
    }
    done = true;
  });
  if (!done) {
    throw std::runtime_error("submit append did not complete inline");
  }
}

inline events::request_state fold(const events::journal& journal, const std::string& id) {
  auto stored = journal.read_stream(events::request_stream(id));
  if (!stored) {
    throw std::runtime_error(stored.err().message);
  }
  auto s = events::fold_request(*stored);
  if (!s) {
    throw std::runtime_error(s.err().message);
  }
  return *s;
}

/// True once every listed request is at rest (completed, suspended, rolled back).
inline bool at_rest(const events::journal& journal, const std::vector<std::string>& ids) {
  for (const auto& id : ids) {
    auto stored = journal.read_stream(events::request_stream(id));
    auto s = events::fold_request(*stored);
    if (!s || !events::is_at_rest(s->state)) {
      return false;
    }
  }
  return true;
}

/// Type names of a request's events, in order.
inline std::vector<std::string> event_types(const events::journal& journal, const std::string& id) {
  std::vector<std::string> out;
  const auto stored = journal.read_stream(events::request_stream(id));
  for (const auto& e : *stored) {
    out.emplace_back(events::type_name(e.type_id));
  }
  return out;
}

}  // namespace prov::testing
