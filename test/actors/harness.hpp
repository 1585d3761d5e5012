#pragma once
// A whole engine's actors in one CAF actor system on the test coordinator (virtual time),
// over an in-memory journal and an in-memory simulated cloud. The journal and the cloud
// outlive a "node", so a test can crash a node (drop it mid-flight) and start a new one.

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include <memory>

#include "prov/actors/spawn.hpp"
#include "prov/events/apply.hpp"
#include "prov/events/memory_journal.hpp"
#include "prov/providers/inventory_store.hpp"

namespace prov::testing {

struct node {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  actors::engine_context ctx;
  actors::request_supervisor_actor supervisor;

  node(events::journal& journal, const clock& clk, providers::inventory_store& inventory,
       const std::vector<events::cluster_state>& clusters) {
    cfg.set("scheduler.policy", caf::atom("testing"));
    cfg.set("logger.verbosity", caf::atom("quiet"));
    sys = std::make_unique<caf::actor_system>(cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
    ctx.journal = &journal;
    ctx.clk = &clk;
    ctx.providers.simulation_inventory = &inventory;
    ctx.providers.clk = &clk;
    ctx.registry = actors::spawn_cluster_registry(*sys, ctx);
    for (const auto& c : clusters) {
      caf::anon_send(ctx.registry, actors::update_atom::value, c);
    }
    supervisor = actors::spawn_request_supervisor(*sys, ctx);
    run();
  }

  ~node() {
    // A crash: whatever is in flight is dropped, nothing is flushed or finished.
    sys->await_actors_before_shutdown(false);
    caf::anon_send_exit(supervisor, caf::exit_reason::kill);
    caf::anon_send_exit(ctx.registry, caf::exit_reason::kill);
    sched->run();
  }

  /// Runs messages and timers until nothing is left (bounded: a runaway loop fails).
  std::size_t run(std::size_t max_steps = 1'000'000) {
    std::size_t steps = 0;
    for (;;) {
      steps += sched->run();
      if (!sched->trigger_timeout()) {
        return steps;
      }
      if (++steps > max_steps) {
        throw std::runtime_error("actor system did not become idle");
      }
    }
  }

  caf::timespan virtual_now() const { return sched->clock().now().time_since_epoch(); }

  void start(const std::string& id) { caf::anon_send(supervisor, actors::start_atom::value, id); }

  /// How many request actors are alive (asked through the supervisor's protocol).
  std::size_t live_requests() {
    auto n = std::make_shared<std::size_t>(~std::size_t{0});
    auto target = supervisor;
    sys->spawn([n, target](caf::event_based_actor* self) {
      self->request(target, caf::infinite, actors::count_atom::value).then([n](std::size_t x) { *n = x; });
    });
    run();
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
