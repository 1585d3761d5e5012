#include "prov/actors/engine.hpp"

#include "detail/engine_impl.hpp"

#include <atomic>
#include <filesystem>
#include <future>
#include <thread>

#include <caf/all.hpp>

#include "prov/actors/scheduler.hpp"
#include "prov/actors/spawn.hpp"
#include "prov/core/ids.hpp"
#include "prov/core/log.hpp"
#include "prov/core/secret_box.hpp"
#include "prov/events/apply.hpp"
#include "prov/events/catalog.hpp"
#include "prov/events/rocks_journal.hpp"
#include "prov/events/rocks_store.hpp"
#include "prov/projections/projector.hpp"
#include "prov/providers/inventory_store.hpp"

namespace prov::actors {

namespace {

events::cluster_registered default_cluster() {
  events::cluster_registered c;
  c.cluster_id = "simulation-local";
  c.name = "Default simulation cluster";
  c.type = events::provider_type::simulation;
  c.region = "local";
  c.is_default = true;
  c.simulation.delay_min_ms = 20;
  c.simulation.delay_max_ms = 200;
  return c;
}

}  // namespace

engine::engine(std::unique_ptr<impl> i) : _impl(std::move(i)) {}

engine::~engine() { shutdown(); }

result<std::unique_ptr<engine>> engine::open(const engine_options& options, const clock& clk) {
  auto self = std::make_unique<impl>(options, clk);
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) {
    return make_error(errc::io_error, "cannot create data dir " + options.data_dir + ": " + ec.message());
  }
  events::rocks_store_options store_options;
  store_options.path = (std::filesystem::path{options.data_dir} / "db").string();
  store_options.projections_insert_hint = projections::insert_hint();
  store_options.env = options.store_env;
  auto store = events::rocks_store::open(store_options);
  if (!store) {
    return std::move(store).err();
  }
  self->store = std::move(*store);
  auto inventory = providers::open_rocks_inventory_store((std::filesystem::path{options.data_dir} / "simcloud").string());
  if (!inventory) {
    return std::move(inventory).err();
  }
  self->sim_inventory = std::move(*inventory);
  auto secrets = secret_box::open_or_create((std::filesystem::path{options.data_dir} / "secret.key").string());
  if (!secrets) {
    return std::move(secrets).err();
  }
  self->secrets = std::make_unique<secret_box>(std::move(*secrets));
  events::rocks_journal_options journal_options;
  journal_options.sync = options.journal_sync;
  journal_options.on_failure = options.on_journal_failure;
  auto journal = events::make_rocks_journal(*self->store, clk, journal_options);
  if (!journal) {
    return std::move(journal).err();
  }
  self->journal = std::move(*journal);
  self->projector = std::make_unique<projections::projector>(*self->store, *self->journal);
  self->views = std::make_unique<projections::views>(*self->store, &self->projector->unwritten());
  if (auto st = options.rebuild_projections ? self->projector->rebuild() : self->projector->catch_up(); !st) {
    return std::move(st).err();
  }

  // Actors.
  self->cfg.set("logger.file-verbosity", caf::atom("quiet"));
  self->cfg.set("logger.console-verbosity", caf::atom("quiet"));
  self->cfg.set("scheduler.policy",
                options.scheduler == scheduler_policy::sharing ? caf::atom("sharing") : caf::atom("stealing"));
  // The policy's coordinator, with a clock that an actor's end wakes only if it set a timeout.
  load_lean_scheduler(self->cfg, options.scheduler == scheduler_policy::sharing);
  // One worker per core unless told otherwise (CAF's own default is at least 4, which on a
  // 2-core machine only adds context switches).
  self->cfg.set("scheduler.max-threads",
                options.scheduler_threads > 0 ? options.scheduler_threads
                                              : std::max<std::size_t>(std::thread::hardware_concurrency(), 1));
  self->sys = std::make_unique<caf::actor_system>(self->cfg);
  self->ctx.journal = self->journal.get();
  self->ctx.clk = &clk;
  self->ctx.providers.simulation_inventory = self->sim_inventory.get();
  self->ctx.providers.clk = &clk;
  self->ctx.providers.secrets = self->secrets.get();
  self->ctx.pipeline = options.pipeline;
  self->ctx.distances = options.distances;
  self->ctx.registry = spawn_cluster_registry(*self->sys, self->ctx);
  auto clusters = self->views->clusters();
  if (!clusters) {
    return std::move(clusters).err();
  }
  for (const auto& c : *clusters) {
    caf::anon_send(self->ctx.registry, update_atom::value, c);
  }
  // Capacity and quota usage start from the projections (a fresh replay's result).
  auto cluster_usage = self->views->cluster_usages();
  auto tenant_usage = self->views->tenant_usages();
  if (!cluster_usage || !tenant_usage) {
    return !cluster_usage ? std::move(cluster_usage).err() : std::move(tenant_usage).err();
  }
  capacity_map capacity;
  for (const auto& [id, u] : *cluster_usage) {
    capacity.emplace(id, u.total());
  }
  caf::anon_send(self->ctx.registry, usage_atom::value, std::move(capacity));
  std::unordered_map<std::string, projections::usage_totals> held;
  for (const auto& [tenant, u] : *tenant_usage) {
    held.emplace(tenant, u.total());
  }
  self->ledger.reset(std::move(held));
  auto registry = self->ctx.registry;
  self->projector->on_cluster_change(
      [registry](const events::cluster_state& c) { caf::anon_send(registry, update_atom::value, c); });
  {
    auto* counter = &self->unfinished;
    auto* ledger = &self->ledger;
    auto user = options.on_request_change;
    self->projector->on_request_change(
        [counter, ledger, user](const projections::request_before& before, const events::request_state& after) {
          // A rolled back request holds no quota any more.
          if (after.state == events::lifecycle_state::rolled_back && before.state != events::lifecycle_state::rolled_back) {
            ledger->release(after.tenant, after);
          }
          // A new request was counted when its submission committed.
          const bool was_unfinished = !before.exists() || !events::is_at_rest(before.state);
          if (was_unfinished && events::is_at_rest(after.state)) {
            counter->fetch_sub(1, std::memory_order_relaxed);
          } else if (!was_unfinished && !events::is_at_rest(after.state)) {
            counter->fetch_add(1, std::memory_order_relaxed);
          }
          if (user) {
            user(before, after);
          }
        });
  }
  self->projector->start();
  self->ctx.admission = spawn_admission(*self->sys, self->ctx);
  self->ctx.watchdog = spawn_watchdog(*self->sys, self->ctx);
  self->ctx.dependencies = spawn_dependency_graph(*self->sys, self->ctx);
  self->supervisor = spawn_request_supervisor(*self->sys, self->ctx);
  self->start_webhooks();
  self->ctx.supervisor = self->supervisor;
  self->ctx.views = self->views.get();
  self->reconciler = spawn_reconciler(*self->sys, self->ctx);
  self->runner = self->sys->spawn([]() -> caf::behavior {
    return {[](const detail::deferred_work& w) { w(); }};
  });

  std::unique_ptr<engine> eng{new engine(std::move(self))};
  auto& i = *eng->_impl;

  if (options.default_cluster && clusters->empty() && i.journal->head() == 0) {
    std::promise<result<events::cluster_state>> registered;
    eng->register_cluster(default_cluster(), {}, [&](result<events::cluster_state> r) { registered.set_value(std::move(r)); });
    if (auto r = registered.get_future().get(); !r) {
      return std::move(r).err();
    }
    log::info("default_cluster_registered", {{"cluster", "simulation-local"}, {"region", "local"}});
  }

  auto live = i.views->live_requests();
  if (!live) {
    return std::move(live).err();
  }
  i.unfinished.store(static_cast<std::int64_t>(live->size()));
  // The dependency graph holds the unsettled requests that wait for others.
  for (const auto& id : *live) {
    auto view = i.views->request(id);
    if (view && *view && !(*view)->depends_on.empty()) {
      if (auto node = i.dependency_node_of(**view)) {
        caf::anon_send(i.ctx.dependencies, add_atom::value, std::move(*node), false);
      }
    }
  }
  for (const auto& id : *live) {
    caf::anon_send(i.supervisor, start_atom::value, id);
  }
  log::info("engine_started", {{"data_dir", options.data_dir},
                               {"journal_head", i.journal->head()},
                               {"resumed_requests", live->size()}});
  return eng;
}

void engine::submit(submit_command cmd, callback<submit_reply> done) {
  auto& i = *_impl;
  if (const auto n = i.unfinished.load(std::memory_order_relaxed); n >= static_cast<std::int64_t>(i.options.max_pending)) {
    done(make_error(errc::overloaded, std::to_string(n) + " requests are unfinished (limit " +
                                          std::to_string(i.options.max_pending) + "); retry later"));
    return;
  }
  events::request_submitted e;
  e.request_id = make_uuid_v7(i.clk.now());
  e.tenant = std::move(cmd.tenant);
  e.type = cmd.type;
  e.provider = cmd.provider;
  e.region = std::move(cmd.region);
  e.spec = std::move(cmd.spec);
  e.depends_on = std::move(cmd.depends_on);
  e.idempotency_key = std::move(cmd.idempotency_key);
  e.requested_cluster = std::move(cmd.requested_cluster);
  // The tenant and its quota: taken now, given back if the submission does not commit.
  const auto generation = i.projector->catalog_generation();  // before the reads it vouches for
  auto tenant = i.catalog.tenant(*i.views, generation, e.tenant);
  if (!tenant || !*tenant) {
    done(!tenant ? std::move(tenant).err() : make_error(errc::not_found, "tenant " + e.tenant + " does not exist"));
    return;
  }
  auto rules = i.catalog.rules(*i.views, generation);
  if (!rules) {
    done(std::move(rules).err());
    return;
  }
  events::request_state as_state;
  as_state.tenant = e.tenant;
  as_state.type = e.type;
  as_state.spec = e.spec;
  if (auto reserved = i.ledger.reserve(e.tenant, (*tenant)->quota, as_state); !reserved) {
    done(std::move(reserved).err());
    return;
  }
  // Approval gates: the first matching rule, recorded with the submission.
  std::optional<events::approval_required> approval;
  if (const auto* rule = events::first_matching_rule(*rules, e.tenant, e.spec, e.type, e.region)) {
    approval = events::approval_required{rule->id, rule->name};
  }
  // dependsOn: every reference known, and no cycle. Last, so that nothing refuses the
  // submission once the graph holds it (until the append: then it is forgotten).
  const bool in_graph = !e.depends_on.empty() || !e.idempotency_key.empty();
  if (!in_graph) {
    i.commit_submission(std::move(e), std::move(approval), std::move(as_state), false, std::move(done));
    return;
  }
  events::request_state probe;
  probe.id = e.request_id;
  probe.tenant = e.tenant;
  probe.depends_on = e.depends_on;
  probe.idempotency_key = e.idempotency_key;
  auto node = i.dependency_node_of(probe);
  if (!node) {
    i.ledger.release(e.tenant, as_state);
    done(std::move(node).err());
    return;
  }
  if (node->prerequisites.empty()) {
    // Only a key: a request that waits for nothing closes no cycle, so there is nothing to
    // ask. The graph records the pending claim before the append's `claimed` (or `forget`)
    // can reach it: this message is in its mailbox first.
    caf::anon_send(i.ctx.dependencies, add_atom::value, std::move(*node), false);
    i.commit_submission(std::move(e), std::move(approval), std::move(as_state), true, std::move(done));
    return;
  }
  // The graph checks for a cycle and hands its verdict to the rest of the submission, on its
  // own thread: the caller (an HTTP I/O thread, the Kafka consumer) does not wait for it. The
  // node is in the graph's mailbox before this returns, so a later submission that names this
  // one's key (the next item of a batch) is checked with it.
  struct pending {
    events::request_submitted e;
    std::optional<events::approval_required> approval;
    events::request_state as_state;
    callback<submit_reply> done;
  };
  auto p = std::make_shared<pending>(pending{std::move(e), std::move(approval), std::move(as_state), std::move(done)});
  auto* impl = _impl.get();
  auto on_verdict = [impl, p](const dependency_verdict& v) {
    if (!v.ok) {
      impl->ledger.release(p->e.tenant, p->as_state);
      p->done(make_error(errc::invalid_argument, "dependsOn would close a cycle: " + v.cycle));
      return;
    }
    impl->commit_submission(std::move(p->e), std::move(p->approval), std::move(p->as_state), true, std::move(p->done));
  };
  // The graph stopped (shutdown) before it checked the node: nothing was appended.
  auto on_drop = [impl, p] {
    impl->ledger.release(p->e.tenant, p->as_state);
    p->done(detail::shutting_down());
  };
  caf::anon_send(i.ctx.dependencies, add_atom::value, std::move(*node), verdict_sink{std::move(on_verdict), std::move(on_drop)});
}

void engine::impl::commit_submission(events::request_submitted e, std::optional<events::approval_required> approval,
                                     events::request_state as_state, bool in_graph, callback<submit_reply> done) {
  std::vector<events::event_record> records{events::to_record(e)};
  if (approval) {
    records.push_back(events::to_record(*approval));
  }
  std::vector<events::stream_append> batch;
  batch.push_back(events::stream_append{events::request_stream(e.request_id), 0, std::move(records)});
  if (!e.idempotency_key.empty()) {
    batch.push_back(events::stream_append{events::idempotency_stream(e.tenant, e.idempotency_key), 0,
                                          {events::to_record(events::idempotency_claimed{e.request_id})}});
  }
  const bool needs_approval = approval.has_value();
  auto submitted = std::make_shared<events::request_submitted>(std::move(e));
  append_then(std::move(batch), [this, submitted, done, as_state, needs_approval, in_graph](result<events::append_receipt> r) {
    if (r) {
      unfinished.fetch_add(1, std::memory_order_relaxed);
      if (!submitted->idempotency_key.empty()) {
        // Before the request can settle: what waits for its key waits for it from now on.
        caf::anon_send(ctx.dependencies, claimed_atom::value, key_node_of(submitted->tenant, submitted->idempotency_key),
                       submitted->request_id);
      }
      if (!needs_approval) {
        // The request's actor starts from the state just committed: no read of its stream.
        events::request_state initial;
        if (events::apply_to(initial, events::request_event{*submitted}, events::event_meta{1, r->time})) {
          caf::anon_send(supervisor, start_atom::value, submitted->request_id, std::move(initial));
        } else {
          caf::anon_send(supervisor, start_atom::value, submitted->request_id);
        }
      }
      const auto state = needs_approval ? events::lifecycle_state::pending_approval : events::lifecycle_state::queued;
      after_projection(r->last_position, [submitted, done, state] {
        done(submit_reply{submitted->request_id, state, false});
      });
      return;
    }
    ledger.release(submitted->tenant, as_state);
    if (in_graph) {
      caf::anon_send(ctx.dependencies, forget_atom::value, submitted->request_id);
    }
    if (r.err().code == errc::version_conflict && !submitted->idempotency_key.empty()) {
      elsewhere([this, submitted, done] { replay_submission(*submitted, done); }, [done] { done(detail::shutting_down()); });
      return;
    }
    done(std::move(r).err());
  });
}

void engine::create_tenant(tenant_command cmd, callback<tenant_reply> done) {
  auto& i = *_impl;
  auto reply = std::make_shared<tenant_reply>(tenant_reply{cmd.id, detail::new_tenant_token()});
  events::tenant_created e{cmd.id, cmd.name, sha256_hex(reply->token), cmd.quota};
  std::vector<events::stream_append> batch;
  batch.push_back(events::stream_append{events::tenant_stream(cmd.id), 0, {events::to_record(e)}});
  i.append_then(std::move(batch), [this, reply, done](result<events::append_receipt> r) {
    if (!r) {
      if (r.err().code == errc::version_conflict) {
        done(make_error(errc::conflict, "tenant " + reply->id + " already exists"));
      } else {
        done(std::move(r).err());
      }
      return;
    }
    _impl->after_projection(r->last_position, [reply, done] { done(*reply); });
  });
}

void engine::register_cluster(events::cluster_registered cmd, std::string credentials_json,
                              callback<events::cluster_state> done) {
  auto& i = *_impl;
  cmd.credentials_sealed = credentials_json.empty() ? std::string{} : i.secrets->seal(credentials_json);
  const auto id = cmd.cluster_id;
  std::vector<events::stream_append> batch;
  batch.push_back(events::stream_append{events::cluster_stream(id), 0, {events::to_record(cmd)}});
  i.append_then(std::move(batch), [this, id, done](result<events::append_receipt> r) {
    if (!r) {
      if (r.err().code == errc::version_conflict) {
        done(make_error(errc::conflict, "cluster " + id + " is already registered"));
      } else {
        done(std::move(r).err());
      }
      return;
    }
    _impl->after_projection(r->last_position, [this, id, done] {
      auto c = _impl->views->cluster(id);
      if (!c || !*c) {
        done(make_error(errc::internal, "cluster " + id + " missing from projections after registration"));
        return;
      }
      done(**c);
    });
  });
}

void engine::update_cluster(std::string id, events::cluster_updated cmd, std::string credentials_json,
                            callback<events::cluster_state> done) {
  auto& i = *_impl;
  if (!credentials_json.empty()) {
    cmd.credentials_sealed = i.secrets->seal(credentials_json);
  }
  auto version = i.journal->stream_version(events::cluster_stream(id));
  if (!version) {
    done(std::move(version).err());
    return;
  }
  if (*version == 0) {
    done(make_error(errc::not_found, "cluster " + id + " is not registered"));
    return;
  }
  std::vector<events::stream_append> batch;
  batch.push_back(events::stream_append{events::cluster_stream(id), *version, {events::to_record(cmd)}});
  i.append_then(std::move(batch), [this, id, done](result<events::append_receipt> r) {
    if (!r) {
      if (r.err().code == errc::version_conflict) {
        done(make_error(errc::conflict, "cluster " + id + " was changed concurrently; retry"));
      } else {
        done(std::move(r).err());
      }
      return;
    }
    _impl->after_projection(r->last_position, [this, id, done] {
      auto c = _impl->views->cluster(id);
      if (!c || !*c) {
        done(make_error(errc::internal, "cluster " + id + " missing from projections after update"));
        return;
      }
      done(**c);
    });
  });
}

namespace {

/// Looks up a registered cluster, then hands it to `then`; `done` gets why not (unknown:
/// `errc::not_found`; the engine stopping, or the registry not answering: `unavailable`).
template <class T>
void with_cluster(bool stopping, caf::actor_system* sys, const cluster_registry_actor& registry, const std::string& id,
                  callback<T> done, std::function<void(cluster_choice)> then) {
  if (stopping) {
    done(detail::shutting_down());
    return;
  }
  detail::ask<cluster_choice>(*sys, registry,
                              std::function<void(result<cluster_choice>)>{[done, then](result<cluster_choice> choice) {
                                if (!choice) {
                                  done(std::move(choice).err());
                                } else if (!choice->ok) {
                                  done(make_error(errc::not_found, choice->message));
                                } else {
                                  then(std::move(*choice));
                                }
                              }},
                              lookup_atom::value, id);
}

}  // namespace

void engine::inventory(std::string cluster_id, callback<inventory_listing> done) {
  auto& i = *_impl;
  auto* sys = i.sys.get();
  with_cluster(i.stopping.load(), sys, i.ctx.registry, cluster_id, done, [sys, cluster_id, done](cluster_choice c) {
    detail::ask<inventory_reply>(*sys, c.handle,
                                 std::function<void(result<inventory_reply>)>{[cluster_id, done](result<inventory_reply> reply) {
                                   if (!reply) {
                                     done(std::move(reply).err());
                                   } else if (!reply->ok) {
                                     done(reply->err);
                                   } else {
                                     done(inventory_listing{cluster_id, std::move(reply->items)});
                                   }
                                 }},
                                 inventory_atom::value);
  });
}

void engine::reconcile(std::string cluster_id, callback<reconcile_status> done) {
  auto& i = *_impl;
  auto* sys = i.sys.get();
  auto reconciler = i.reconciler;
  with_cluster(i.stopping.load(), sys, i.ctx.registry, cluster_id, done, [sys, reconciler, done](cluster_choice c) {
    detail::ask<reconcile_status>(*sys, reconciler, std::function<void(result<reconcile_status>)>{done},
                                  reconcile_atom::value, std::move(c));
  });
}

const projections::views& engine::views() const { return *_impl->views; }

const events::journal& engine::journal() const { return *_impl->journal; }

std::uint64_t engine::projection_position() const noexcept { return _impl->projector->position(); }

std::size_t engine::unwritten_request_states() const { return _impl->projector->unwritten().size(); }

engine::storage_access engine::storage() { return storage_access{*_impl->journal, *_impl->store}; }

std::size_t engine::unfinished_requests() const noexcept {
  return static_cast<std::size_t>(std::max<std::int64_t>(0, _impl->unfinished.load(std::memory_order_relaxed)));
}

void engine::shutdown() {
  auto& i = *_impl;
  std::lock_guard<std::mutex> guard{i.shutdown_mutex};
  if (i.stopped) {
    return;
  }
  i.stopped = true;
  i.stopping.store(true);
  {
    caf::scoped_actor self{*i.sys};
    self->send(i.ctx.admission, drain_atom::value);
    const auto started = std::chrono::steady_clock::now();
    self->request(i.supervisor, i.options.shutdown_grace, drain_atom::value)
        .receive(
            [&](std::size_t drained) {
              log::info("drained", {{"requests", drained},
                                    {"ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                               std::chrono::steady_clock::now() - started)
                                               .count()}});
            },
            [&](caf::error&) {
              log::warn("drain_incomplete", {{"grace_ms", i.options.shutdown_grace.count()},
                                             {"note", "calls still in flight resume on the next start"}});
            });
    for (auto actor : {caf::actor_cast<caf::actor>(i.reconciler), caf::actor_cast<caf::actor>(i.supervisor),
                       caf::actor_cast<caf::actor>(i.ctx.watchdog),
                       caf::actor_cast<caf::actor>(i.ctx.dependencies),
                       caf::actor_cast<caf::actor>(i.ctx.admission), caf::actor_cast<caf::actor>(i.ctx.registry)}) {
      self->send_exit(actor, caf::exit_reason::user_shutdown);
      self->wait_for(actor);
    }
  }
  i.stop_webhooks();
  // Appends still in flight are answered while the actor system can take their messages;
  // then nothing feeds the actors any more and the system can go.
  i.journal->drain();
  {
    // After the drain: an append answered during it may have handed the runner work (which
    // the stopping engine answers at once). The exit queues behind that work.
    caf::scoped_actor self{*i.sys};
    self->send_exit(i.runner, caf::exit_reason::user_shutdown);
    self->wait_for(i.runner);
    i.runner = nullptr;
  }
  // Applies everything committed up to now before it stops: answers waiting on the
  // projection (a submit that committed just before) are given, not dropped.
  i.projector->stop();
  i.reconciler = nullptr;
  i.supervisor = nullptr;
  i.ctx.supervisor = nullptr;
  i.ctx.registry = nullptr;
  i.ctx.admission = nullptr;
  i.ctx.watchdog = nullptr;
  i.ctx.dependencies = nullptr;
  i.sys.reset();  // waits for every remaining actor
  if (auto st = i.store->flush(); !st) {
    log::error("flush_failed", {{"error", st.err().message}});
  }
  log::info("engine_stopped", {{"journal_head", i.journal->head()}});
}

}  // namespace prov::actors
