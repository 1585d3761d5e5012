// One actor per live request. It owns nothing but a cache of its request's state, which is
// always the fold of what the journal holds: the actor rebuilds it from the stream when it
// starts, and applies its own events only after the journal says they are durable.
//
// The loop: look at the state, decide the next events, append them, and only once they are
// durable act on them (call the provider). Provider outcomes are recorded the same way. A
// crash at any point leaves either the events before a call (the call is repeated with the
// same idempotency key, and the provider adopts what the first try made) or the events after
// it (the next decision follows from them).

#include <caf/all.hpp>

#include "prov/actors/spawn.hpp"
#include "prov/core/log.hpp"
#include "prov/events/apply.hpp"
#include "prov/events/catalog.hpp"

namespace prov::actors {

namespace {

using events::lifecycle_state;
using events::request_event;
using events::step_kind;

struct request_actor_state {
  static inline const char* name = "request";
  const engine_context* ctx = nullptr;
  std::string id;
  std::string stream;
  events::request_state req;
  cluster_actor cluster;               ///< handle of req.cluster, once looked up
  std::vector<request_event> pending;  ///< the append in flight
  bool busy = false;                   ///< an append or a provider call is in flight
  std::uint32_t release_failures = 0;  ///< consecutive failed release/sweep calls
};

using self_ptr = request_actor::stateful_pointer<request_actor_state>;

std::string step_key(const std::string& id, step_kind step, std::uint32_t attempt) {
  return id + "/" + std::string{events::enum_name(step)} + "/" + std::to_string(attempt);
}

std::string_view state_name(lifecycle_state s) { return events::enum_name(s); }

void advance(self_ptr self);

// Appends `batch` to the request's stream, expecting the version the actor has seen. The
// events are checked against the fold first: an event the lifecycle forbids never reaches
// the journal.
void append(self_ptr self, std::vector<request_event> batch) {
  auto& st = self->state;
  auto check = st.req;
  for (const auto& e : batch) {
    if (auto ok = events::apply_to(check, e, events::event_meta{check.version + 1, st.ctx->clk->now()}); !ok) {
      log::error("refused_event", {{"request", st.id}, {"error", ok.err().message}});
      self->quit(caf::sec::invalid_argument);
      return;
    }
  }
  std::vector<events::event_record> records;
  records.reserve(batch.size());
  for (const auto& e : batch) {
    records.push_back(std::visit([](const auto& x) { return events::to_record(x); }, e));
  }
  st.pending = std::move(batch);
  st.busy = true;
  std::vector<events::stream_append> appends;
  appends.push_back(events::stream_append{st.stream, st.req.version, std::move(records)});
  auto handle = caf::actor_cast<request_actor>(self);
  st.ctx->journal->append(std::move(appends), [handle](result<events::append_receipt> r) {
    append_outcome out;
    out.ok = r.ok();
    if (r.ok()) {
      out.receipt = std::move(*r);
    } else {
      out.err = r.err();
    }
    caf::anon_send(handle, appended_atom::value, std::move(out));
  });
}

void log_transition(const request_actor_state& st, lifecycle_state from) {
  nlohmann::json fields{{"request", st.id},
                        {"tenant", st.req.tenant},
                        {"from", state_name(from)},
                        {"to", state_name(st.req.state)},
                        {"version", st.req.version}};
  if (!st.req.reason.empty() &&
      (st.req.state == lifecycle_state::failed || st.req.state == lifecycle_state::rolling_back)) {
    fields["reason"] = st.req.reason;
  }
  if (!st.req.cluster.empty()) {
    fields["cluster"] = st.req.cluster;
  }
  log::info("state_changed", fields);
}

// The journal made the pending events durable: fold them in, then decide what is next.
void on_appended(self_ptr self, const append_outcome& out) {
  auto& st = self->state;
  st.busy = false;
  if (!out.ok) {
    if (out.err.code == errc::version_conflict) {
      // Someone else extended the stream: what we decided may be stale. Start over from the log.
      log::warn("append_conflict", {{"request", st.id}, {"error", out.err.message}});
      st.pending.clear();
      self->send(self, resume_atom::value);
      return;
    }
    log::error("append_failed", {{"request", st.id}, {"error", out.err.message}});
    st.busy = true;  // keep the batch; try again later
    self->delayed_send(self, st.ctx->pipeline.append_retry, retry_atom::value);
    return;
  }
  auto seq = out.receipt.versions.empty() ? st.req.version + st.pending.size() : out.receipt.versions.front();
  seq -= st.pending.size();
  for (const auto& e : st.pending) {
    const auto from = st.req.state;
    if (auto ok = events::apply_to(st.req, e, events::event_meta{++seq, out.receipt.time}); !ok) {
      // Cannot happen: the batch was checked before it was appended.
      log::error("apply_failed", {{"request", st.id}, {"error", ok.err().message}});
      self->quit(caf::sec::invalid_argument);
      return;
    }
    if (st.req.state != from) {
      log_transition(st, from);
    }
  }
  st.pending.clear();
  advance(self);
}

// Records a provider's step outcome, and what follows from it, as one append.
void on_step_outcome(self_ptr self, step_kind step, std::uint32_t attempt, const providers::step_outcome& out) {
  auto& st = self->state;
  st.busy = false;
  if (st.req.state != events::state_of(step) || st.req.step(step).attempts != attempt) {
    advance(self);  // stale reply
    return;
  }
  std::vector<request_event> batch;
  for (const auto& r : out.resources) {
    const bool known = std::any_of(st.req.resources.begin(), st.req.resources.end(),
                                   [&](const events::resource& x) { return x.kind == r.kind && x.id == r.id; });
    if (!known) {
      batch.push_back(events::resource_allocated{step, r.kind, r.id, r.name, st.req.step(step).idempotency_key});
    }
  }
  if (out.ok) {
    batch.push_back(events::step_succeeded{step, attempt, out.endpoints});
    if (step == step_kind::verify) {
      batch.push_back(events::request_completed{});
    } else {
      const auto next = static_cast<step_kind>(static_cast<int>(step) + 1);
      batch.push_back(events::step_started{next, 1, step_key(st.id, next, 1)});
    }
  } else {
    batch.push_back(events::step_failed{step, attempt, out.error.code, out.error.message, out.error.retryable});
    const auto reason = std::string{events::enum_name(step)} + " failed: " + out.error.code + ": " + out.error.message;
    batch.push_back(events::request_failed{"provider_error", reason});
    batch.push_back(events::rollback_started{"provider_error"});
  }
  append(self, std::move(batch));
}

// Runs `then` with the handle of the request's cluster, looking it up once.
template <class F>
void with_cluster(self_ptr self, F then) {
  auto& st = self->state;
  if (st.cluster) {
    then(st.cluster);
    return;
  }
  st.busy = true;
  self->request(st.ctx->registry, caf::infinite, lookup_atom::value, st.req.cluster)
      .then(
          [=](const cluster_choice& choice) {
            self->state.busy = false;
            if (!choice.ok) {
              // The cluster vanished from the registry: nothing can be called there. Retry
              // later rather than guess; an operator sees the log line.
              log::error("cluster_unknown", {{"request", self->state.id}, {"cluster", self->state.req.cluster}});
              self->state.busy = true;
              self->delayed_send(self, self->state.ctx->pipeline.release_retry_cap, retry_atom::value);
              return;
            }
            self->state.cluster = choice.handle;
            then(choice.handle);
          },
          [=](caf::error&) {
            self->state.busy = false;
            self->delayed_send(self, self->state.ctx->pipeline.append_retry, retry_atom::value);
            self->state.busy = true;
          });
}

void run_step(self_ptr self, step_kind step) {
  const auto& req = self->state.req;
  providers::step_call call;
  call.request_id = req.id;
  call.tenant = req.tenant;
  call.type = req.type;
  call.step = step;
  call.attempt = req.step(step).attempts;
  call.idempotency_key = req.step(step).idempotency_key;
  call.region = req.region;
  call.spec = req.spec;
  call.resources = req.resources;
  with_cluster(self, [=](cluster_actor cluster) {
    self->state.busy = true;
    self->request(cluster, caf::infinite, run_step_atom::value, call)
        .then([=](const providers::step_outcome& out) { on_step_outcome(self, call.step, call.attempt, out); },
              [=](caf::error& err) {
                providers::step_outcome out;
                out.error = providers::provider_error{"cluster_unavailable", caf::to_string(err), true};
                on_step_outcome(self, call.step, call.attempt, out);
              });
  });
}

std::chrono::milliseconds release_backoff(const request_actor_state& st) {
  auto d = st.ctx->pipeline.release_retry_base;
  for (std::uint32_t i = 1; i < st.release_failures && d < st.ctx->pipeline.release_retry_cap; ++i) {
    d *= 2;
  }
  return std::min(d, st.ctx->pipeline.release_retry_cap);
}

void release_failed(self_ptr self, const providers::provider_error& err) {
  auto& st = self->state;
  ++st.release_failures;
  const auto wait = release_backoff(st);
  log::warn("release_failed", {{"request", st.id},
                               {"code", err.code},
                               {"error", err.message},
                               {"attempt", st.release_failures},
                               {"retry_in_ms", wait.count()}});
  st.busy = true;
  self->delayed_send(self, wait, retry_atom::value);
}

// Releases the newest unreleased resource; when none is left, sweeps the provider for
// anything still tagged with the request, then records rolled_back.
void roll_back(self_ptr self) {
  auto& st = self->state;
  const events::resource* next = nullptr;
  for (auto it = st.req.resources.rbegin(); it != st.req.resources.rend(); ++it) {
    if (!it->released) {
      next = &*it;
      break;
    }
  }
  if (st.req.cluster.empty()) {
    // Never reached a cluster: nothing exists anywhere.
    append(self, {events::request_rolled_back{}});
    return;
  }
  if (next != nullptr) {
    providers::release_call call;
    call.request_id = st.id;
    call.resource = *next;
    call.idempotency_key = st.id + "/release/" + next->kind + "/" + next->id + "/" + std::to_string(st.release_failures + 1);
    with_cluster(self, [=](cluster_actor cluster) {
      self->state.busy = true;
      self->request(cluster, caf::infinite, release_atom::value, call)
          .then(
              [=](const providers::release_outcome& out) {
                self->state.busy = false;
                if (!out.ok) {
                  release_failed(self, out.error);
                  return;
                }
                self->state.release_failures = 0;
                append(self, {events::resource_released{call.resource.kind, call.resource.id}});
              },
              [=](caf::error& err) {
                self->state.busy = false;
                release_failed(self, providers::provider_error{"cluster_unavailable", caf::to_string(err), true});
              });
    });
    return;
  }
  with_cluster(self, [=](cluster_actor cluster) {
    self->state.busy = true;
    self->request(cluster, caf::infinite, sweep_atom::value, self->state.id)
        .then(
            [=](const providers::sweep_outcome& out) {
              self->state.busy = false;
              if (!out.ok) {
                release_failed(self, out.error);
                return;
              }
              self->state.release_failures = 0;
              std::vector<request_event> batch;
              for (const auto& r : out.released) {
                batch.push_back(events::resource_released{r.kind, r.id});
              }
              batch.push_back(events::request_rolled_back{});
              append(self, std::move(batch));
            },
            [=](caf::error& err) {
              self->state.busy = false;
              release_failed(self, providers::provider_error{"cluster_unavailable", caf::to_string(err), true});
            });
  });
}

void select_cluster(self_ptr self) {
  auto& st = self->state;
  selection_query q;
  q.request_id = st.id;
  q.provider = st.req.provider;
  q.type = st.req.type;
  q.region = st.req.region;
  q.requested_cluster = st.req.requested_cluster;
  q.spec = st.req.spec;
  st.busy = true;
  self->request(st.ctx->registry, caf::infinite, select_atom::value, q)
      .then(
          [=](const cluster_choice& choice) {
            auto& st = self->state;
            st.busy = false;
            if (!choice.ok) {
              append(self, {events::request_failed{choice.code, choice.message},
                            events::rollback_started{choice.code}});
              return;
            }
            st.cluster = choice.handle;
            append(self, {events::cluster_assigned{choice.cluster_id},
                          events::step_started{step_kind::allocate, 1, step_key(st.id, step_kind::allocate, 1)}});
          },
          [=](caf::error&) {
            self->state.busy = false;
            self->state.busy = true;
            self->delayed_send(self, self->state.ctx->pipeline.append_retry, retry_atom::value);
          });
}

// Decides the next action from the folded state. Called whenever the actor is idle.
void advance(self_ptr self) {
  auto& st = self->state;
  if (st.busy) {
    return;
  }
  const auto& req = st.req;
  switch (req.state) {
    case lifecycle_state::queued:
      if (req.cluster.empty()) {
        select_cluster(self);
      } else {
        append(self, {events::step_started{step_kind::allocate, 1, step_key(st.id, step_kind::allocate, 1)}});
      }
      return;
    case lifecycle_state::allocating:
    case lifecycle_state::configuring:
    case lifecycle_state::activating:
    case lifecycle_state::verifying: {
      const auto step = *events::step_of(req.state);
      const auto& rec = req.step(step);
      switch (rec.status) {
        case events::step_status::running:
          // Started (possibly before a crash) and not finished: (re)issue the call with the
          // recorded key; the provider adopts whatever a previous try created.
          run_step(self, step);
          return;
        case events::step_status::succeeded:
          if (step == step_kind::verify) {
            append(self, {events::request_completed{}});
          } else {
            const auto next = static_cast<step_kind>(static_cast<int>(step) + 1);
            append(self, {events::step_started{next, 1, step_key(st.id, next, 1)}});
          }
          return;
        case events::step_status::failed:
          append(self, {events::request_failed{"provider_error", rec.error}, events::rollback_started{"provider_error"}});
          return;
        case events::step_status::pending:
        case events::step_status::awaiting_input:
          return;
      }
      return;
    }
    case lifecycle_state::failed:
      append(self, {events::rollback_started{req.reason}});
      return;
    case lifecycle_state::rolling_back:
      roll_back(self);
      return;
    case lifecycle_state::pending_approval:
    case lifecycle_state::completed:
    case lifecycle_state::suspended:
    case lifecycle_state::rolled_back:
      // Nothing to do until a command arrives: passivate. Queries read projections.
      self->quit();
      return;
  }
}

void resume(self_ptr self) {
  auto& st = self->state;
  if (st.busy) {
    return;
  }
  auto stored = st.ctx->journal->read_stream(st.stream);
  if (!stored) {
    log::error("load_failed", {{"request", st.id}, {"error", stored.err().message}});
    self->quit(caf::sec::runtime_error);
    return;
  }
  auto folded = events::fold_request(*stored);
  if (!folded) {
    log::error("fold_failed", {{"request", st.id}, {"error", folded.err().message}});
    self->quit(caf::sec::runtime_error);
    return;
  }
  if (!folded->exists()) {
    log::warn("unknown_request", {{"request", st.id}});
    self->quit();
    return;
  }
  if (folded->cluster != st.req.cluster) {
    st.cluster = cluster_actor{};
  }
  st.req = std::move(*folded);
  advance(self);
}

request_actor::behavior_type request_actor_impl(self_ptr self, const engine_context* ctx, std::string id) {
  self->state.ctx = ctx;
  self->state.stream = events::request_stream(id);
  self->state.id = std::move(id);
  return {
      [=](resume_atom) { resume(self); },
      [=](appended_atom, const append_outcome& out) { on_appended(self, out); },
      [=](retry_atom) {
        auto& st = self->state;
        st.busy = false;
        if (!st.pending.empty()) {
          auto batch = std::move(st.pending);
          st.pending.clear();
          append(self, std::move(batch));
          return;
        }
        advance(self);
      },
  };
}

}  // namespace

request_actor spawn_request_actor(caf::actor_system& sys, const engine_context& ctx, std::string request_id) {
  return sys.spawn(request_actor_impl, &ctx, std::move(request_id));
}

}  // namespace prov::actors
