// One actor per live request. It owns nothing but a cache of its request's state, which is
// the fold of what the journal holds: the actor rebuilds it from the stream when it starts.
// Its own events are folded in when it appends them (which checks them), with a placeholder
// for their commit time, and count only once the journal says they are durable: it acts on
// nothing before (a conflict reloads the state from the stream).
//
// The loop: look at the state, decide the next events, append them, and only once they are
// durable act on them (call the provider, arm a timer). Provider outcomes are recorded the
// same way. A crash at any point leaves either the events before a call (the call is repeated
// with the same idempotency key, and the provider adopts what the first try made) or the
// events after it (the next decision follows from them). Timers come from the log too: a
// retry's due time is an event, so a restart keeps the schedule; a running actor measures the
// wait on the elapsed clock once it has read it, so a step of the wall clock does not move it.
//
// At any moment the actor is in one phase: idle (deciding), appending, calling (a provider or
// the cluster registry), timer (a retry or backoff is due later) or admission (waiting for a
// tenant slot). Replies and timers carry a generation; one that is not current is stale.

#include <optional>
#include <tuple>

#include <caf/all.hpp>

#include "detail/sealed_credentials.hpp"
#include "prov/actors/spawn.hpp"
#include "prov/core/ids.hpp"
#include "prov/core/secret_box.hpp"
#include "prov/core/log.hpp"
#include "prov/events/apply.hpp"
#include "prov/events/catalog.hpp"

namespace prov::actors {

namespace {

using events::lifecycle_state;
using events::request_event;
using events::step_kind;

enum class phase { idle, appending, calling, timer, admission };

constexpr std::string_view waiting_for_slot = "waiting_for_tenant_slot";
/// The commit time a pending append is folded with until the journal stamps it.
constexpr timestamp tentative_time = timestamp::max();
constexpr std::string_view waiting_for_dependencies = "waiting_for_dependencies";

struct request_actor_state {
  static inline const char* name = "request";
  const engine_context* ctx = nullptr;
  std::string id;
  std::string stream;
  events::request_state req;
  cluster_actor cluster;               ///< handle of req.cluster, once looked up
  /// The append in flight (kept to retry an I/O error), already folded into `req` with
  /// `tentative_time` for its commit time: `req` is ahead of the log until it commits.
  std::vector<request_event> pending;
  /// The state changes the pending append makes (from, to, version), logged once committed.
  std::vector<std::tuple<lifecycle_state, lifecycle_state, std::uint64_t>> transitions;
  phase ph = phase::idle;
  std::uint64_t generation = 0;
  bool admitted = false;       ///< holds a slot of the admission controller
  bool waiting_slot = false;   ///< told to wait for a slot
  bool dependencies_met = false;  ///< every prerequisite completed (checked once, then kept)
  bool draining = false;
  caf::typed_response_promise<bool> drained;
  std::uint32_t release_failures = 0;
  /// The retry due time the actor's timer waits for (the step's `next_attempt_at`) and when
  /// it is due on the elapsed clock: measured from the wall clock once, when first armed, so
  /// that a wall clock set back while it waits does not delay the retry.
  std::optional<timestamp> retry_due;
  std::chrono::microseconds retry_due_elapsed{0};
  /// The idempotency key of a step this actor started itself (its `step_started` committed
  /// here) and has not called yet: its first call is the key's first ever.
  std::string started_here;
};

using self_ptr = request_actor::stateful_pointer<request_actor_state>;

std::string step_key(const std::string& id, step_kind step, std::uint32_t attempt) {
  return id + "/" + std::string{events::enum_name(step)} + "/" + std::to_string(attempt);
}

// Whether the request may keep a slot of the active steps: not once it left them, and not
// while it only waits for a retry's due time (a request in backoff uses no capacity, so it
// must not keep its tenant's other requests waiting).
bool holds_slot(const events::request_state& r) {
  if (r.state == lifecycle_state::queued) {
    return true;
  }
  const auto step = events::step_of(r.state);
  return step && !r.step(*step).next_attempt_at;
}

void advance(self_ptr self);

std::uint64_t begin(self_ptr self, phase p) {
  self->state.ph = p;
  return ++self->state.generation;
}

bool current(self_ptr self, std::uint64_t generation, phase p) {
  return self->state.generation == generation && self->state.ph == p;
}

void arm_timer(self_ptr self, std::chrono::milliseconds delay) {
  const auto gen = begin(self, phase::timer);
  self->delayed_send(self, std::max(delay, std::chrono::milliseconds{0}), timer_atom::value, gen);
}

// Appends `batch` to the request's stream, expecting the version the actor has seen. The
// events are folded into the state first, which checks them: an event the lifecycle forbids
// never reaches the journal. Their commit time is not known yet: they are folded with
// `tentative_time`, stamped with the journal's time once it answers (`on_appended`). Until
// then the state is ahead of the log; an append that conflicts reloads it from the log, one
// that failed is made again as it was.
void send_pending(self_ptr self);

void append(self_ptr self, std::vector<request_event> batch) {
  auto& st = self->state;
  st.transitions.clear();
  for (const auto& e : batch) {
    const auto from = st.req.state;
    if (auto ok = events::apply_to(st.req, e, events::event_meta{st.req.version + 1, tentative_time}); !ok) {
      log::error("refused_event", {{"request", st.id}, {"error", ok.err().message}});
      self->quit(caf::sec::invalid_argument);
      return;
    }
    if (st.req.state != from) {
      st.transitions.emplace_back(from, st.req.state, st.req.version);
    }
  }
  st.pending = std::move(batch);
  send_pending(self);
}

// Hands the pending append to the journal (again, after an I/O error).
void send_pending(self_ptr self) {
  auto& st = self->state;
  std::vector<events::event_record> records;
  records.reserve(st.pending.size());
  for (const auto& e : st.pending) {
    records.push_back(std::visit([](const auto& x) { return events::to_record(x); }, e));
  }
  begin(self, phase::appending);
  std::vector<events::stream_append> appends;
  appends.push_back(events::stream_append{st.stream, st.req.version - st.pending.size(), std::move(records)});
  auto handle = caf::actor_cast<request_actor>(self);
  st.ctx->journal->append(std::move(appends), [handle](result<events::append_receipt> r) {
    caf::anon_send(handle, appended_atom::value, append_outcome::of(std::move(r)));
  });
}

void log_transition(const request_actor_state& st, lifecycle_state from, lifecycle_state to, std::uint64_t version) {
  if (!log::enabled(log::level::info)) {
    return;  // the fields are not even built (six transitions per request)
  }
  nlohmann::json fields{{"request", st.id},
                        {"tenant", st.req.tenant},
                        {"from", events::enum_name(from)},
                        {"to", events::enum_name(to)},
                        {"version", version}};
  if (!st.req.reason.empty()) {
    fields["reason"] = st.req.reason;
  }
  if (!st.req.cluster.empty()) {
    fields["cluster"] = st.req.cluster;
  }
  log::info("state_changed", fields);
}

// Tells the watchdog and the admission controller where the request now stands.
bool awaits_input(const events::request_state& r) {
  const auto step = events::step_of(r.state);
  return step && r.step(*step).status == events::step_status::awaiting_input;
}

void report(self_ptr self) {
  auto& st = self->state;
  st.ctx->progress->note(st.id, st.req.state, st.req.updated_at, awaits_input(st.req), clock_reading::of(*st.ctx->clk));
  if (st.admitted && !holds_slot(st.req)) {
    st.admitted = false;
    self->send(st.ctx->admission, leave_atom::value, st.id);
  }
  if (st.req.state == lifecycle_state::completed || st.req.state == lifecycle_state::failed ||
      st.req.state == lifecycle_state::rolled_back) {
    self->send(st.ctx->dependencies, settled_atom::value, st.id);  // wakes requests waiting for it
  }
  if (st.req.state == lifecycle_state::completed) {
    self->send(st.ctx->registry, settled_atom::value, st.id);  // its reservation record can go
  }
  if (st.req.state == lifecycle_state::rolled_back) {
    // Everything is released: the cluster's capacity is free again.
    self->send(st.ctx->registry, leave_atom::value, st.id, st.req.cluster, st.req.spec, st.req.type);
  }
}

void finish_drain(self_ptr self) {
  auto& st = self->state;
  if (st.drained.pending()) {
    st.drained.deliver(true);
  }
  self->quit();
}

// The journal made the pending events durable: fold them in, then decide what is next.
void on_appended(self_ptr self, const append_outcome& out) {
  auto& st = self->state;
  if (st.ph != phase::appending) {
    return;
  }
  st.ph = phase::idle;
  if (!out.ok) {
    if (out.err.code == errc::version_conflict) {
      // Someone else extended the stream: what we decided may be stale. Start over from the log.
      log::warn("append_conflict", {{"request", st.id}, {"error", out.err.message}});
      st.pending.clear();
      self->send(self, resume_atom::value);
      return;
    }
    if (out.err.code == errc::unavailable || st.draining) {
      // The journal takes no appends until it is reopened (it stopped, or a WAL write or sync failed),
      // or the engine is stopping: nothing was acted on, so there is nothing to finish. The
      // next start decides again from the log (the events may be in it or not).
      log::error("append_failed", {{"request", st.id}, {"error", out.err.message}, {"retry", "at the next start"}});
      st.pending.clear();
      finish_drain(self);
      return;
    }
    log::error("append_failed", {{"request", st.id}, {"error", out.err.message}});
    arm_timer(self, st.ctx->pipeline.append_retry);  // the batch is kept and appended again
    return;
  }
  if (out.receipt.versions.front() != st.req.version) {
    // Cannot happen: the journal checked the version the append expected.
    log::error("append_version_mismatch", {{"request", st.id},
                                           {"expected", st.req.version},
                                           {"committed", out.receipt.versions.front()}});
    st.pending.clear();
    self->send(self, resume_atom::value);
    return;
  }
  // Folded when it was made: only the commit time is new.
  events::restamp(st.req, tentative_time, out.receipt.time);
  for (const auto& e : st.pending) {
    if (const auto* started = std::get_if<events::step_started>(&e)) {
      st.started_here = started->idempotency_key;
    }
  }
  for (const auto& [from, to, version] : st.transitions) {
    log_transition(st, from, to, version);
  }
  st.pending.clear();
  report(self);
  advance(self);
}

// Records a provider's step outcome, and what follows from it, as one append.
void on_step_outcome(self_ptr self, step_kind step, std::uint32_t attempt, const providers::step_outcome& out) {
  auto& st = self->state;
  std::vector<request_event> batch;
  const auto& key = st.req.step(step).idempotency_key;
  if (out.awaiting_input) {
    append(self, {events::input_requested{step}});
    return;
  }
  for (const auto& r : out.resources) {
    const bool known = std::any_of(st.req.resources.begin(), st.req.resources.end(),
                                   [&](const events::resource& x) { return x.kind == r.kind && x.id == r.id; });
    if (!known) {
      batch.push_back(events::resource_allocated{step, r.kind, r.id, r.name, key});
    }
  }
  if (!out.credentials.empty()) {
    batch.push_back(detail::sealed_credentials(st.ctx->providers.secrets, out.credentials));
  }
  if (out.ok) {
    batch.push_back(events::step_succeeded{step, attempt, out.endpoints});
    if (step == step_kind::verify) {
      batch.push_back(events::request_completed{});
    } else {
      const auto next = static_cast<step_kind>(static_cast<int>(step) + 1);
      batch.push_back(events::step_started{next, 1, step_key(st.id, next, 1)});
    }
    append(self, std::move(batch));
    return;
  }
  batch.push_back(events::step_failed{step, attempt, out.error.code, out.error.message, out.error.retryable});
  const auto& retry = st.ctx->pipeline.retry;
  if (out.error.retryable && attempt <= retry.max_retries && !st.draining) {
    const auto delay = retry.delay(attempt, key);
    const auto due = st.ctx->clk->now() + std::chrono::duration_cast<std::chrono::microseconds>(delay);
    batch.push_back(events::retry_scheduled{step, attempt + 1, due, delay.count()});
  } else if (out.error.retryable && st.draining) {
    // Shutting down: record the failure only; the retry is decided on the next start.
  } else {
    const auto reason = std::string{events::enum_name(step)} + " failed after " + std::to_string(attempt) +
                        (attempt == 1 ? " attempt: " : " attempts: ") + out.error.code + ": " + out.error.message;
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
  const auto gen = begin(self, phase::calling);
  self->request(st.ctx->registry, caf::infinite, lookup_atom::value, st.req.cluster)
      .then(
          [=](const cluster_choice& choice) mutable {
            if (!current(self, gen, phase::calling)) {
              return;
            }
            self->state.ph = phase::idle;
            if (!choice.ok) {
              // The cluster is not (yet) in the registry: nothing can be called there. Try
              // again later rather than guess; an operator sees the log line.
              log::error("cluster_unknown", {{"request", self->state.id}, {"cluster", self->state.req.cluster}});
              arm_timer(self, self->state.ctx->pipeline.release_retry_cap);
              return;
            }
            self->state.cluster = choice.handle;
            then(choice.handle);
          },
          [=](caf::error&) {
            if (current(self, gen, phase::calling)) {
              arm_timer(self, self->state.ctx->pipeline.append_retry);
            }
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
  call.first_try = !self->state.started_here.empty() && self->state.started_here == call.idempotency_key;
  self->state.started_here.clear();
  // The call (spec, resources) is moved into the message; the handlers keep only what they use.
  with_cluster(self, [self, call = std::move(call)](cluster_actor cluster) mutable {
    const auto gen = begin(self, phase::calling);
    const auto step = call.step;
    const auto attempt = call.attempt;
    self->request(cluster, caf::infinite, run_step_atom::value, std::move(call))
        .then(
            [=](const providers::step_outcome& out) {
              if (current(self, gen, phase::calling)) {
                self->state.ph = phase::idle;
                on_step_outcome(self, step, attempt, out);
              }
            },
            [=](caf::error& err) {
              if (current(self, gen, phase::calling)) {
                self->state.ph = phase::idle;
                providers::step_outcome out;
                out.error = providers::provider_error{"cluster_unavailable", caf::to_string(err), true};
                on_step_outcome(self, step, attempt, out);
              }
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
  arm_timer(self, wait);
}

// Calls the cluster and hands the outcome to `done` if the call is still current.
template <class Out, class Atom, class Arg, class Done>
void call_cluster(self_ptr self, Atom atom, Arg arg, Done done) {
  with_cluster(self, [=](cluster_actor cluster) {
    const auto gen = begin(self, phase::calling);
    self->request(cluster, caf::infinite, atom, arg)
        .then(
            [=](const Out& out) {
              if (current(self, gen, phase::calling)) {
                self->state.ph = phase::idle;
                done(out);
              }
            },
            [=](caf::error& err) {
              if (current(self, gen, phase::calling)) {
                self->state.ph = phase::idle;
                Out out;
                out.error = providers::provider_error{"cluster_unavailable", caf::to_string(err), true};
                done(out);
              }
            });
  });
}

// Releases the newest unreleased resource; when none is left, sweeps the provider for
// anything still tagged with the request, then records rolled_back.
void roll_back(self_ptr self) {
  auto& st = self->state;
  if (st.req.cluster.empty()) {
    // Never reached a cluster: nothing exists anywhere.
    append(self, {events::request_rolled_back{}});
    return;
  }
  const events::resource* next = nullptr;
  for (auto it = st.req.resources.rbegin(); it != st.req.resources.rend(); ++it) {
    if (!it->released) {
      next = &*it;
      break;
    }
  }
  if (next != nullptr) {
    providers::release_call call;
    call.request_id = st.id;
    call.resource = *next;
    call.idempotency_key =
        st.id + "/release/" + next->kind + "/" + next->id + "/" + std::to_string(st.release_failures + 1);
    call_cluster<providers::release_outcome>(self, release_atom::value, call, [=](const providers::release_outcome& out) {
      if (!out.ok) {
        release_failed(self, out.error);
        return;
      }
      self->state.release_failures = 0;
      append(self, {events::resource_released{call.resource.kind, call.resource.id}});
    });
    return;
  }
  call_cluster<providers::sweep_outcome>(self, sweep_atom::value, st.id, [=](const providers::sweep_outcome& out) {
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
  const auto gen = begin(self, phase::calling);
  self->request(st.ctx->registry, caf::infinite, select_atom::value, q)
      .then(
          [=](const cluster_choice& choice) {
            if (!current(self, gen, phase::calling)) {
              return;
            }
            auto& st = self->state;
            st.ph = phase::idle;
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
            if (current(self, gen, phase::calling)) {
              arm_timer(self, self->state.ctx->pipeline.append_retry);
            }
          });
}

// Asks for a slot in the active steps. Resumed requests that are already past admission
// take theirs back unconditionally.
void ask_admission(self_ptr self, bool already_active) {
  auto& st = self->state;
  auto handle = caf::actor_cast<request_actor>(self);
  if (already_active) {
    st.admitted = true;
    self->request(st.ctx->admission, caf::infinite, admit_atom::value, st.req.tenant, st.id, true, handle)
        .then([](bool) {});
    return;
  }
  const auto gen = begin(self, phase::admission);
  self->request(st.ctx->admission, caf::infinite, admit_atom::value, st.req.tenant, st.id, false, handle)
      .then([=](bool go) {
        auto& st = self->state;
        if (st.admitted) {
          return;  // an admitted_atom overtook this reply
        }
        if (go) {
          st.admitted = true;
        } else {
          st.waiting_slot = true;
        }
        if (!current(self, gen, phase::admission)) {
          return;
        }
        if (go || st.req.state == lifecycle_state::queued) {
          st.ph = phase::idle;
          advance(self);
        }
        // A retry that waits for a slot stays in the admission phase until admitted_atom.
      });
}

struct dependency_check {
  enum { ready, waiting, failed } outcome = ready;
  std::string prerequisite;
  std::string why;
};

// Where the request's prerequisites stand, read from the journal. A reference is a
// request id, or "key:<idempotency key>" of a request of the same tenant, maybe not submitted
// yet (then the request waits for it).
dependency_check check_dependencies(const request_actor_state& st) {
  dependency_check out;
  for (const auto& ref : st.req.depends_on) {
    std::string id = ref;
    if (ref.rfind("key:", 0) == 0) {
      auto claim = st.ctx->journal->read_stream(events::idempotency_stream(st.req.tenant, ref.substr(4)));
      if (!claim || claim->empty()) {
        out.outcome = dependency_check::waiting;
        continue;
      }
      auto decoded = events::decode(claim->front());
      if (!decoded || !std::holds_alternative<events::idempotency_claimed>(*decoded)) {
        out.outcome = dependency_check::waiting;
        continue;
      }
      id = std::get<events::idempotency_claimed>(*decoded).request_id;
    }
    auto stored = st.ctx->journal->read_stream(events::request_stream(id));
    auto prerequisite = stored ? events::fold_request(*stored) : result<events::request_state>{stored.err()};
    if (!prerequisite || !prerequisite->exists()) {
      return dependency_check{dependency_check::failed, id, "it cannot be read"};
    }
    const auto s = prerequisite->state;
    if (s == lifecycle_state::failed || s == lifecycle_state::rolling_back || s == lifecycle_state::rolled_back) {
      auto why = std::string{events::enum_name(s)};
      if (!prerequisite->reason.empty()) {
        why += " (" + prerequisite->reason + ")";
      }
      return dependency_check{dependency_check::failed, id, why};
    }
    if (s != lifecycle_state::completed && s != lifecycle_state::suspended) {
      out.outcome = dependency_check::waiting;
    }
  }
  return out;
}

void advance_queued(self_ptr self) {
  auto& st = self->state;
  if (!st.req.depends_on.empty() && !st.dependencies_met) {
    const auto deps = check_dependencies(st);
    if (deps.outcome == dependency_check::failed) {
      append(self, {events::request_failed{"dependency_failed", "prerequisite " + deps.prerequisite + " " + deps.why},
                    events::rollback_started{"dependency_failed"}});
      return;
    }
    if (deps.outcome == dependency_check::waiting) {
      if (st.req.reason != waiting_for_dependencies) {
        append(self, {events::request_waiting{std::string{waiting_for_dependencies}}});
      } else {
        self->quit();  // the dependency graph resumes this request when a prerequisite settles
      }
      return;
    }
    st.dependencies_met = true;
  }
  if (!st.admitted) {
    if (!st.waiting_slot) {
      ask_admission(self, false);
    } else if (st.req.reason != waiting_for_slot) {
      append(self, {events::request_waiting{std::string{waiting_for_slot}}});
    } else {
      begin(self, phase::admission);  // until admitted_atom
    }
    return;
  }
  if (st.req.cluster.empty()) {
    select_cluster(self);
  } else {
    append(self, {events::step_started{step_kind::allocate, 1, step_key(st.id, step_kind::allocate, 1)}});
  }
}

// How long until a retry due at `due` (a wall time, from the log). The wall clock is read
// once per due time; from then on the wait runs on the elapsed clock, as the timer does.
std::chrono::microseconds until_retry(self_ptr self, timestamp due) {
  auto& st = self->state;
  const auto now = clock_reading::of(*st.ctx->clk);
  if (st.retry_due != due) {
    st.retry_due = due;
    st.retry_due_elapsed = std::max(now.elapsed_at(due), now.elapsed);  // not before now
  }
  return st.retry_due_elapsed - now.elapsed;
}

void advance_step(self_ptr self) {
  auto& st = self->state;
  const auto step = *events::step_of(st.req.state);
  const auto& rec = st.req.step(step);
  if (!st.admitted && !rec.next_attempt_at) {
    // Resumed mid-pipeline (after a restart): it was admitted before, and takes its slot back.
    ask_admission(self, true);
  }
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
    case events::step_status::failed: {
      if (!rec.next_attempt_at) {
        // Failed for good (or the failure was recorded while shutting down): decide now.
        const auto& retry = st.ctx->pipeline.retry;
        if (rec.attempts <= retry.max_retries && !st.draining) {
          const auto delay = retry.delay(rec.attempts, rec.idempotency_key);
          const auto due = st.ctx->clk->now() + std::chrono::duration_cast<std::chrono::microseconds>(delay);
          append(self, {events::retry_scheduled{step, rec.attempts + 1, due, delay.count()}});
        } else {
          append(self, {events::request_failed{"provider_error", rec.error}, events::rollback_started{"provider_error"}});
        }
        return;
      }
      const auto wait = until_retry(self, *rec.next_attempt_at);
      if (wait.count() > 0) {
        arm_timer(self, std::chrono::ceil<std::chrono::milliseconds>(wait));
      } else if (!st.admitted) {
        ask_admission(self, false);  // due: queue for a slot again, behind nobody's back
      } else {
        append(self, {events::step_started{step, rec.attempts + 1, step_key(st.id, step, rec.attempts + 1)}});
      }
      return;
    }
    case events::step_status::awaiting_input:
      // A person has to act (manual input): nothing to do until then. The engine resumes the
      // request when the input arrives.
      self->quit();
      return;
    case events::step_status::pending:
      return;
  }
}

// Carries out a suspend or reactivate that was recorded: the provider acts, then the
// outcome is recorded. Repeating the call after a crash is harmless (both are idempotent).
void run_action(self_ptr self) {
  auto& st = self->state;
  const auto action = static_cast<events::service_action>(st.req.pending_action);
  providers::service_call call;
  call.request_id = st.id;
  call.tenant = st.req.tenant;
  call.type = st.req.type;
  call.idempotency_key = st.id + "/" + std::string{events::enum_name(action)} + "/" + std::to_string(st.req.version);
  call.spec = st.req.spec;
  call.endpoints = st.req.endpoints;
  for (const auto& r : st.req.resources) {
    if (!r.released) {
      call.resources.push_back(r);
    }
  }
  auto done = [=](const providers::action_outcome& out) {
    if (out.ok) {
      append(self, {action == events::service_action::suspend ? events::request_event{events::request_suspended{}}
                                                               : events::request_event{events::request_reactivated{}}});
    } else {
      append(self, {events::action_failed{action, out.error.code, out.error.message}});
    }
  };
  if (action == events::service_action::suspend) {
    call_cluster<providers::action_outcome>(self, suspend_atom::value, call, done);
  } else {
    call_cluster<providers::action_outcome>(self, reactivate_atom::value, call, done);
  }
}

// Decides the next action from the folded state. Called whenever the actor is idle.
void advance(self_ptr self) {
  auto& st = self->state;
  if (st.ph != phase::idle) {
    return;
  }
  if (st.draining) {
    finish_drain(self);
    return;
  }
  switch (st.req.state) {
    case lifecycle_state::queued:
      advance_queued(self);
      return;
    case lifecycle_state::allocating:
    case lifecycle_state::configuring:
    case lifecycle_state::activating:
    case lifecycle_state::verifying:
      advance_step(self);
      return;
    case lifecycle_state::failed:
      append(self, {events::rollback_started{st.req.reason}});
      return;
    case lifecycle_state::rolling_back:
      roll_back(self);
      return;
    case lifecycle_state::completed:
    case lifecycle_state::suspended:
      if (st.req.pending_action != 0) {
        run_action(self);
        return;
      }
      self->quit();
      return;
    case lifecycle_state::pending_approval:
    case lifecycle_state::rolled_back:
      // Nothing to do until a command arrives: passivate. Queries read projections.
      self->quit();
      return;
  }
}

// Takes `s` as the request's state (folded from its stream) and decides what is next.
void adopt(self_ptr self, events::request_state s) {
  auto& st = self->state;
  if (!s.exists()) {
    log::warn("unknown_request", {{"request", st.id}});
    self->quit();
    return;
  }
  if (s.cluster != st.req.cluster) {
    st.cluster = cluster_actor{};
  }
  st.req = std::move(s);
  report(self);
  advance(self);
}

void resume(self_ptr self) {
  auto& st = self->state;
  if (st.ph != phase::idle) {
    return;
  }
  st.started_here.clear();  // the log decides again
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
  adopt(self, std::move(*folded));
}

// A new actor of a request just submitted: starts from the state its submission committed.
// A command appended since (a cancel) makes the first append conflict, and the actor then
// re-reads the log like any other.
void start_from(self_ptr self, events::request_state initial) {
  auto& st = self->state;
  if (st.ph != phase::idle || st.req.exists()) {
    resume(self);
    return;
  }
  adopt(self, std::move(initial));
}

// The watchdog saw no progress for too long.
void on_stuck(self_ptr self) {
  auto& st = self->state;
  if (st.ph == phase::appending || !st.pending.empty()) {
    return;  // progress is being recorded right now (or made again after an I/O error)
  }
  const auto limit = std::chrono::duration_cast<std::chrono::microseconds>(st.ctx->pipeline.watchdog.stuck_after);
  // Measured as the watchdog measures it (the board, on the elapsed clock), not from the
  // last event's wall time: a wall clock set back must not hold a stuck request alive.
  const auto idle_for = st.ctx->progress->idle(st.id, st.ctx->clk->elapsed());
  if (!idle_for || *idle_for <= limit) {
    return;  // progress happened after the report (or it is no longer watched)
  }
  const auto minutes = std::chrono::duration_cast<std::chrono::minutes>(*idle_for).count();
  if (events::step_of(st.req.state)) {
    begin(self, phase::idle);  // abandon the call: its late reply is stale
    const auto message =
        "no progress for " + std::to_string(minutes) + " min in " + std::string{events::enum_name(st.req.state)};
    append(self, {events::request_failed{"stuck", message}, events::rollback_started{"stuck"}});
  } else if (st.req.state == lifecycle_state::rolling_back) {
    log::warn("rollback_stuck_retry", {{"request", st.id}, {"no_progress_min", minutes}});
    begin(self, phase::idle);
    st.release_failures = 0;
    advance(self);
  }
}

request_actor::behavior_type request_actor_impl(self_ptr self, const engine_context* ctx, std::string id) {
  self->state.ctx = ctx;
  self->state.stream = events::request_stream(id);
  self->state.id = std::move(id);
  return {
      [=](resume_atom) { resume(self); },
      [=](resume_atom, events::request_state& initial) { start_from(self, std::move(initial)); },
      [=](appended_atom, const append_outcome& out) { on_appended(self, out); },
      [=](timer_atom, std::uint64_t gen) {
        auto& st = self->state;
        if (!current(self, gen, phase::timer)) {
          return;
        }
        st.ph = phase::idle;
        if (!st.pending.empty()) {
          send_pending(self);  // already folded: the same events, expecting the same version
          return;
        }
        advance(self);
      },
      [=](admitted_atom) {
        auto& st = self->state;
        st.admitted = true;
        st.waiting_slot = false;
        if (st.ph == phase::admission) {
          st.ph = phase::idle;
          advance(self);
        }
      },
      [=](stuck_atom) { on_stuck(self); },
      [=](drain_atom) -> caf::result<bool> {
        auto& st = self->state;
        st.draining = true;
        if (st.ph == phase::appending || st.ph == phase::calling) {
          st.drained = self->make_response_promise<bool>();
          return st.drained;
        }
        self->quit();
        return true;
      },
  };
}

}  // namespace

std::chrono::milliseconds retry_policy::delay(std::uint32_t n, const std::string& key) const {
  auto d = base;
  for (std::uint32_t i = 1; i < n && d < cap; ++i) {
    d *= 2;
  }
  d = std::min(d, cap);
  if (jitter) {
    // A factor in [0.5, 1], fixed for the key: a restart that decides again decides the same.
    const double u = static_cast<double>(stable_hash64(key + "#jitter") >> 11) * 0x1.0p-53;
    d = std::chrono::milliseconds{static_cast<std::int64_t>(static_cast<double>(d.count()) * (0.5 + 0.5 * u))};
  }
  return d;
}

request_actor spawn_request_actor(caf::actor_system& sys, const engine_context& ctx, std::string request_id) {
  return sys.spawn(request_actor_impl, &ctx, std::move(request_id));
}

}  // namespace prov::actors
