// The orphan reconciler (R-2.3: no orphaned resource may remain). A provider call that times
// out may still create what it was asked to: its answer comes after the engine gave up on it,
// so the resources are in no event. The request retries with a new key (the provider does not
// adopt them) and completes, or rolls back and sweeps before they exist. A periodic pass
// finds them:
//
// 1. For each registered cluster (one at a time), read the provider's inventory.
// 2. Group its resources by the request they are tagged with; fold each request from the
//    journal (the authority, not the projections, which may lag). Unknown requests are
//    counted as foreign and left alone; requests not at rest, or at rest for less than
//    `settled_for`, are deferred to a later pass.
// 3. A resource the request holds (recorded, not released) is never touched. One it never
//    recorded is an orphan: `request.orphan_found` events are appended for all of a request's
//    orphans at once, expecting the version just folded (a command that moved the request
//    meanwhile wins; the next pass looks again). Then each is deleted at the provider.
// 4. A resource the request recorded as released (an orphan whose delete failed, or a rolled
//    back resource still listed) is deleted again, without a new event.
//
// Append first, then delete: after a crash in between, the next pass finds the resource
// recorded as released and deletes it. Requests are handled one at a time; a pass is rare
// and must not compete with the pipeline for the cluster's bulkhead.

#include <algorithm>
#include <deque>
#include <map>
#include <optional>

#include <caf/all.hpp>

#include "prov/actors/spawn.hpp"
#include "prov/core/log.hpp"
#include "prov/events/apply.hpp"
#include "prov/events/catalog.hpp"

namespace prov::actors {

namespace {

/// The orphans of one request on the current cluster.
struct orphan_work {
  std::string request_id;
  std::uint64_t version = 0;  ///< folded; the expected version of the append
  std::vector<providers::inventory_item> to_record;   ///< never recorded: an event first
  std::vector<providers::inventory_item> to_release;  ///< every orphan, recorded or not
};

struct reconciler_state {
  static inline const char* name = "orphan_reconciler";
  const engine_context* ctx = nullptr;
  reconcile_status totals;
  reconcile_status at_pass_start;
  bool busy = false;
  std::vector<cluster_choice> clusters;
  std::size_t next_cluster = 0;
  cluster_actor cluster;  ///< the one whose inventory is being looked at
  /// The cluster's resources by request, not looked at yet.
  std::deque<std::pair<std::string, std::vector<providers::inventory_item>>> unplanned;
  std::optional<orphan_work> current;  ///< the request being acted on
  std::size_t releasing = 0;           ///< release calls of `current` not answered yet
  /// Who asked for the running pass (none: the timer started it).
  std::optional<caf::typed_response_promise<reconcile_status>> asked;
  /// Passes asked for while one ran: a cluster each, run in order.
  std::deque<std::pair<cluster_choice, caf::typed_response_promise<reconcile_status>>> waiting;
};

using self_ptr = reconciler_actor::stateful_pointer<reconciler_state>;

/// Requests looked at per message: a pass over a large inventory leaves the worker thread to
/// other actors in between.
constexpr std::size_t requests_per_turn = 64;

void next_cluster(self_ptr self);
void advance(self_ptr self);
void start_pass(self_ptr self, std::optional<cluster_choice> only);

/// How long the reconciler waits for a provider call: the calls' own timeout, else a pass.
caf::timespan call_limit(const engine_context& ctx) {
  const auto& p = ctx.pipeline;
  return p.calls.call_timeout.count() > 0 ? p.calls.call_timeout : p.reconcile.every;
}

events::resource as_resource(const providers::inventory_item& item) {
  return events::resource{item.kind, item.id, item.name, item.step, item.idempotency_key, true};
}

bool holds(const events::request_state& req, const providers::inventory_item& item) {
  return std::any_of(req.resources.begin(), req.resources.end(), [&](const events::resource& r) {
    return r.kind == item.kind && r.id == item.id && !r.released;
  });
}

/// Whether the request's view (if the engine has views) shows it holding all of `items`: then
/// nothing can be an orphan (the journal may be ahead, and the next pass sees what it adds).
bool view_holds_all(const engine_context& ctx, const std::string& request_id,
                    const std::vector<providers::inventory_item>& items) {
  if (ctx.views == nullptr) {
    return false;
  }
  auto view = ctx.views->request(request_id);
  if (!view || !*view) {
    return false;
  }
  return std::all_of(items.begin(), items.end(), [&](const auto& item) { return holds(**view, item); });
}

/// What to do about one request's resources at the provider (nothing: counted, or held).
std::optional<orphan_work> plan_request(self_ptr self, const std::string& request_id,
                                        std::vector<providers::inventory_item> items) {
  auto& st = self->state;
  if (view_holds_all(*st.ctx, request_id, items)) {
    return std::nullopt;  // the common case, without reading the journal
  }
  auto stored = st.ctx->journal->read_stream(events::request_stream(request_id));
  if (!stored) {
    log::warn("reconcile_read_failed", {{"request", request_id}, {"error", stored.err().message}});
    return std::nullopt;
  }
  if (stored->empty()) {
    st.totals.foreign += items.size();
    return std::nullopt;
  }
  auto folded = events::fold_request(*stored);
  if (!folded) {
    log::warn("reconcile_read_failed", {{"request", request_id}, {"error", folded.err().message}});
    return std::nullopt;
  }
  const auto& req = *folded;
  // A request in flight may still record what it has at the provider; one at rest only
  // recently may still have an answer on its way (a new orphan waits until it settled).
  const bool at_rest = events::is_at_rest(req.state);
  const auto settled = std::chrono::duration_cast<std::chrono::microseconds>(st.ctx->pipeline.reconcile.settled_for);
  const bool settled_long_enough = at_rest && st.ctx->clk->now() - req.updated_at >= settled;
  orphan_work w;
  w.request_id = request_id;
  w.version = req.version;
  for (auto& item : items) {
    if (holds(req, item)) {
      continue;
    }
    // Recorded as released (an orphan whose delete failed, a rolled back resource still
    // listed): deleted again, no new event.
    const bool known = std::any_of(req.resources.begin(), req.resources.end(), [&](const events::resource& r) {
      return r.kind == item.kind && r.id == item.id;
    });
    if (!at_rest || (!known && !settled_long_enough)) {
      ++st.totals.deferred;
      continue;
    }
    if (!known) {
      w.to_record.push_back(item);
    }
    w.to_release.push_back(std::move(item));
  }
  if (w.to_release.empty()) {
    return std::nullopt;
  }
  return w;
}

void finish_pass(self_ptr self) {
  auto& st = self->state;
  st.busy = false;
  st.clusters.clear();
  st.next_cluster = 0;
  st.cluster = nullptr;
  ++st.totals.passes;
  const auto pass = st.totals.since(st.at_pass_start);
  if (pass.orphans_found != 0 || pass.released != 0 || pass.release_failures != 0) {
    log::info("reconcile_pass", {{"orphans_found", pass.orphans_found},
                                 {"released", pass.released},
                                 {"release_failures", pass.release_failures},
                                 {"deferred", pass.deferred},
                                 {"foreign", pass.foreign}});
  }
  if (st.asked) {
    st.asked->deliver(pass);
    st.asked.reset();
  }
  if (!st.waiting.empty()) {
    auto [cluster, promise] = std::move(st.waiting.front());
    st.waiting.pop_front();
    st.asked = std::move(promise);
    start_pass(self, std::move(cluster));
  }
}

/// Starts a pass over every cluster, or only over `only`.
void start_pass(self_ptr self, std::optional<cluster_choice> only) {
  auto& st = self->state;
  st.busy = true;
  st.at_pass_start = st.totals;
  if (only) {
    st.clusters = {std::move(*only)};
    next_cluster(self);
    return;
  }
  self->request(st.ctx->registry, caf::infinite, clusters_atom::value)
      .then(
          [=](std::vector<cluster_choice>& clusters) {
            self->state.clusters = std::move(clusters);
            next_cluster(self);
          },
          [=](caf::error&) { finish_pass(self); });
}

void next_cluster(self_ptr self) {
  auto& st = self->state;
  if (st.next_cluster == st.clusters.size()) {
    finish_pass(self);
    return;
  }
  const auto& choice = st.clusters[st.next_cluster++];
  auto handle = choice.handle;
  auto id = choice.cluster_id;
  self->request(handle, call_limit(*st.ctx), inventory_atom::value)
      .then(
          [=](inventory_reply& reply) {
            if (!reply.ok) {
              ++self->state.totals.inventory_failures;
              log::warn("reconcile_inventory_failed", {{"cluster", id}, {"error", reply.err.message}});
              next_cluster(self);
              return;
            }
            std::map<std::string, std::vector<providers::inventory_item>> by_request;
            for (auto& item : reply.items) {
              by_request[item.request_id].push_back(std::move(item));
            }
            auto& s = self->state;
            s.cluster = handle;
            for (auto& group : by_request) {
              s.unplanned.emplace_back(group.first, std::move(group.second));
            }
            advance(self);
          },
          [=](caf::error& e) {
            ++self->state.totals.inventory_failures;
            log::warn("reconcile_inventory_failed", {{"cluster", id}, {"error", caf::to_string(e)}});
            next_cluster(self);
          });
}

void release_orphans(self_ptr self) {
  auto& st = self->state;
  const auto& w = *st.current;
  st.releasing = w.to_release.size();
  for (const auto& item : w.to_release) {
    // A key per pass: a delete that failed is a new call the next time.
    providers::release_call call{w.request_id, as_resource(item),
                                 w.request_id + "/orphan/" + item.id + "/" + std::to_string(st.totals.passes + 1)};
    const auto answered = [=](bool ok, const std::string& error) {
      auto& s = self->state;
      const auto& request = s.current->request_id;
      if (ok) {
        ++s.totals.released;
        log::info("orphan_released", {{"request", request}, {"kind", item.kind}, {"resource", item.id}});
      } else {
        ++s.totals.release_failures;
        log::warn("orphan_release_failed",
                  {{"request", request}, {"kind", item.kind}, {"resource", item.id}, {"error", error}});
      }
      if (--s.releasing == 0) {
        s.current.reset();
        advance(self);
      }
    };
    self->request(st.cluster, call_limit(*st.ctx), release_atom::value, std::move(call))
        .then([=](const providers::release_outcome& out) { answered(out.ok, out.error.code + ": " + out.error.message); },
              [=](caf::error& e) { answered(false, caf::to_string(e)); });
  }
}

/// Records the current request's new orphans (then `on_appended` releases them).
void record_orphans(self_ptr self) {
  auto& st = self->state;
  const auto& w = *st.current;
  std::vector<events::event_record> records;
  records.reserve(w.to_record.size());
  for (const auto& item : w.to_record) {
    records.push_back(events::to_record(
        events::orphan_found{item.step, item.kind, item.id, item.name, item.idempotency_key}));
  }
  std::vector<events::stream_append> appends;
  appends.push_back(events::stream_append{events::request_stream(w.request_id), w.version, std::move(records)});
  auto handle = caf::actor_cast<reconciler_actor>(self);
  st.ctx->journal->append(std::move(appends), [handle](result<events::append_receipt> r) {
    caf::anon_send(handle, appended_atom::value, append_outcome::of(std::move(r)));
  });
}

/// Looks at the next requests of the current cluster until one needs acting on; yields after
/// `requests_per_turn`; moves to the next cluster when none are left.
void advance(self_ptr self) {
  auto& st = self->state;
  for (std::size_t n = 0; n < requests_per_turn && !st.unplanned.empty(); ++n) {
    auto [request_id, items] = std::move(st.unplanned.front());
    st.unplanned.pop_front();
    if (auto w = plan_request(self, request_id, std::move(items))) {
      st.current = std::move(*w);
      if (st.current->to_record.empty()) {
        release_orphans(self);
      } else {
        record_orphans(self);
      }
      return;
    }
  }
  if (!st.unplanned.empty()) {
    self->send(self, resume_atom::value);
    return;
  }
  next_cluster(self);
}

void on_appended(self_ptr self, const append_outcome& out) {
  auto& st = self->state;
  if (!st.current) {
    return;
  }
  const auto& w = *st.current;
  if (!out.ok) {
    // A conflict: the request moved on since it was folded; the next pass decides again.
    log::info("reconcile_append_skipped", {{"request", w.request_id}, {"error", out.err.message}});
    st.current.reset();
    advance(self);
    return;
  }
  st.totals.orphans_found += w.to_record.size();
  for (const auto& item : w.to_record) {
    log::warn("orphan_found", {{"request", w.request_id},
                               {"kind", item.kind},
                               {"resource", item.id},
                               {"idempotency_key", item.idempotency_key}});
  }
  release_orphans(self);
}

reconciler_actor::behavior_type reconciler_impl(self_ptr self, const engine_context* ctx) {
  self->state.ctx = ctx;
  if (ctx->pipeline.reconcile.every.count() > 0) {
    self->delayed_send(self, ctx->pipeline.reconcile.every, scan_atom::value);
  }
  return {
      [=](scan_atom) {
        // The timer runs on its own: a pass asked for in between does not add a second one.
        self->delayed_send(self, ctx->pipeline.reconcile.every, scan_atom::value);
        if (!self->state.busy) {
          start_pass(self, std::nullopt);  // else the running pass looks soon enough
        }
      },
      [=](reconcile_atom, const cluster_choice& cluster) {
        auto promise = self->make_response_promise<reconcile_status>();
        auto& st = self->state;
        if (st.busy) {
          st.waiting.emplace_back(cluster, promise);
        } else {
          st.asked = promise;
          start_pass(self, cluster);
        }
        return promise;
      },
      [=](resume_atom) { advance(self); },
      [=](appended_atom, const append_outcome& out) { on_appended(self, out); },
      [=](status_atom) { return self->state.totals; },
  };
}

}  // namespace

reconciler_actor spawn_reconciler(caf::actor_system& sys, const engine_context& ctx) {
  return sys.spawn(reconciler_impl, &ctx);
}

}  // namespace prov::actors
