// The webhook dispatcher: see `webhooks.hpp` for what it guarantees.
//
// Per webhook a small state machine, driven by messages carrying a token (stale replies and
// timers of an earlier phase are ignored):
//
//   idle --pump--> posting --reply or timeout--> recording --appended--> idle (next event)
//                                                    |                  waiting --timer--> idle (retry)
//                                                    +-- append failed --> timer --> recording again
//
// The journal tail, the request folds and every decision run on the dispatcher's own thread;
// the POSTs run on the transport's threads and come back as messages through the gate.

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include <caf/all.hpp>

#include "prov/actors/webhook_signature.hpp"
#include "prov/actors/webhooks.hpp"
#include "prov/core/log.hpp"
#include "prov/events/apply.hpp"
#include "prov/events/catalog.hpp"
#include "prov/events/lifecycle.hpp"

namespace prov::actors {

std::chrono::milliseconds webhook_retry_policy::delay(std::uint32_t failed_attempt) const {
  auto d = base;
  for (std::uint32_t i = 1; i < failed_attempt && d < cap; ++i) {
    d *= 2;
  }
  return std::min(d, cap);
}

/// What the journal's writer and the transport's threads use to reach the dispatcher.
struct webhook_dispatcher::gate {
  std::mutex mutex;
  bool open = true;
  webhook_dispatcher_actor actor;
  std::atomic<bool> wake_pending{false};

  template <class... Ts>
  void send(Ts&&... xs) {
    std::lock_guard<std::mutex> guard{mutex};
    if (open && actor) {
      caf::anon_send(actor, std::forward<Ts>(xs)...);
    }
  }

  /// The journal grew: one wake-up at a time is enough (the dispatcher reads all there is).
  void wake() {
    if (!wake_pending.exchange(true)) {
      send(webhook_tail_atom::value);
    }
  }

  void close() {
    std::lock_guard<std::mutex> guard{mutex};
    open = false;
    actor = nullptr;
  }
};

namespace {

/// The stream category of webhooks ("webhook/<id>").
constexpr std::string_view webhook_category = "webhook";

struct delivery {
  std::uint64_t position = 0;  ///< of the journal event it stands for
  std::string event_id;
  std::string type;
  std::string request_id;
  std::string body;
  std::uint32_t attempts = 0;
};

enum class phase { idle, posting, recording, waiting };

struct hook {
  events::webhook_state state;
  std::uint64_t from_position = 0;  ///< deliver only events after this position ((re)activation)
  std::deque<delivery> queue;       ///< front = the delivery being worked on
  phase at = phase::idle;
  std::uint64_t token = 0;
  std::uint32_t failures_in_row = 0;
  bool deactivated_here = false;  ///< deactivation appended, not yet read back
  std::optional<events::webhook_delivery_attempted> unrecorded;
  bool deactivate_with_record = false;
  timestamp attempt_started{};
  std::optional<std::string> secret;            ///< opened lazily, in memory only
  std::unordered_set<std::string> finals;       ///< recovery: event ids already settled
  /// Recovery: attempts recorded for event ids not settled before the restart; a delivery of
  /// one goes on counting from there (its attempt header, the attempt limit, the backoff).
  std::unordered_map<std::string, std::uint32_t> tried;

  bool deliverable() const { return state.active && !state.deleted && !deactivated_here; }
};

struct dispatcher_state {
  static inline const char* name = "webhook_dispatcher";
  webhook_dispatcher_context ctx;
  std::shared_ptr<webhook_dispatcher::gate> gate;
  std::uint64_t cursor = 0;        ///< last journal position read
  std::uint64_t recover_until = 0;  ///< head at start
  std::uint64_t stored = 0;
  timestamp stored_at{};  ///< when `stored` was saved
  bool save_armed = false;  ///< a deferred save is due (`webhook_save_atom`)
  std::map<std::string, hook> hooks;
  std::multiset<std::uint64_t> pending;  ///< source positions of unfinished deliveries
  std::unordered_map<std::string, events::request_state> requests;
  webhook_dispatcher_status counters;
  bool read_retry_armed = false;
};

using self_ptr = webhook_dispatcher_actor::stateful_pointer<dispatcher_state>;

void pump(self_ptr self, const std::string& id, hook& h);

void release(dispatcher_state& st, std::uint64_t position) {
  if (auto it = st.pending.find(position); it != st.pending.end()) {
    st.pending.erase(it);
  }
}

/// Stores the position below which everything is settled, if it moved: at once, or at the
/// end of `position_save_interval` from the last save (`now`: the deferred save's timer).
void save_low_water(self_ptr self, bool now = false) {
  auto& st = self->state;
  auto low = st.cursor;
  if (!st.pending.empty()) {
    low = std::min(low, *st.pending.begin() - 1);
  }
  if (low == st.stored) {
    return;
  }
  const auto at = st.ctx.clk->now();
  const auto interval = st.ctx.options.position_save_interval;
  if (!now && interval.count() > 0 && at - st.stored_at < interval) {
    if (!st.save_armed) {
      st.save_armed = true;
      const auto left = interval - std::chrono::duration_cast<std::chrono::milliseconds>(at - st.stored_at);
      self->delayed_send(self, std::max(left, std::chrono::milliseconds{1}), webhook_save_atom::value);
    }
    return;
  }
  st.stored = low;
  st.stored_at = at;
  if (st.ctx.save_position) {
    st.ctx.save_position(low);
  }
}

/// Forgets every queued delivery (deletion, deactivation): nothing of it will be delivered.
void drop_queue(dispatcher_state& st, hook& h) {
  for (const auto& d : h.queue) {
    release(st, d.position);
  }
  h.queue.clear();
  h.unrecorded.reset();
  h.at = phase::idle;
  ++h.token;
}

void append_record(self_ptr self, const std::string& id, hook& h) {
  std::vector<events::event_record> records{events::to_record(*h.unrecorded)};
  if (h.deactivate_with_record) {
    records.push_back(events::to_record(events::webhook_deactivated{
        std::to_string(h.failures_in_row) + " consecutive failed deliveries", h.failures_in_row}));
  }
  std::vector<events::stream_append> batch;
  batch.push_back(events::stream_append{events::webhook_stream(id), events::any_version, std::move(records)});
  auto g = self->state.gate;
  const auto token = h.token;
  self->state.ctx.journal->append(std::move(batch), [g, id, token](result<events::append_receipt> r) {
    g->send(webhook_recorded_atom::value, id, token, append_outcome::of(std::move(r)));
  });
}

/// A POST ended (reply, transport error or the dispatcher's own deadline): record it.
void on_reply(self_ptr self, const std::string& id, hook& h, const webhook_reply& reply) {
  auto& st = self->state;
  auto& d = h.queue.front();
  const bool delivered = reply.delivered();
  ++st.counters.attempts;
  if (delivered) {
    ++st.counters.delivered;
    h.failures_in_row = 0;
  } else {
    ++st.counters.failed;
    ++h.failures_in_row;
  }
  const bool deactivate = !delivered && h.failures_in_row >= st.ctx.options.deactivate_after;
  events::webhook_delivery_attempted rec;
  rec.event_id = d.event_id;
  rec.event_type = d.type;
  rec.request_id = d.request_id;
  rec.position = d.position;
  rec.attempt = d.attempts;
  rec.outcome = delivered ? events::delivery_outcome::delivered : events::delivery_outcome::failed;
  rec.final = delivered || deactivate || d.attempts >= st.ctx.options.retry.max_attempts;
  rec.status_code = reply.status;
  rec.latency_ms = reply.latency_ms;
  if (!delivered) {
    rec.error = reply.error.empty() ? "HTTP " + std::to_string(reply.status) : reply.error;
  }
  rec.attempted_at = h.attempt_started;
  if (!delivered) {
    log::warn("webhook_delivery_failed", {{"webhook", id},
                                          {"event", d.event_id},
                                          {"attempt", d.attempts},
                                          {"status", reply.status},
                                          {"error", rec.error},
                                          {"final", rec.final}});
  }
  h.unrecorded = std::move(rec);
  h.deactivate_with_record = deactivate;
  h.at = phase::recording;
  ++h.token;
  append_record(self, id, h);
}

void on_recorded(self_ptr self, const std::string& id, hook& h, const append_outcome& out) {
  auto& st = self->state;
  if (!out.ok) {
    log::warn("webhook_record_failed", {{"webhook", id}, {"error", out.err.message}});
    ++h.token;
    self->delayed_send(self, st.ctx.options.record_retry, webhook_timer_atom::value, id, h.token);
    return;
  }
  const auto rec = std::move(*h.unrecorded);
  h.unrecorded.reset();
  if (rec.final) {
    release(st, h.queue.front().position);
    h.queue.pop_front();
  }
  if (h.deactivate_with_record) {
    log::warn("webhook_deactivated", {{"webhook", id}, {"tenant", h.state.tenant}, {"failures", h.failures_in_row}});
    h.deactivated_here = true;
    h.deactivate_with_record = false;
    drop_queue(st, h);
  } else if (!rec.final) {
    h.at = phase::waiting;
    ++h.token;
    self->delayed_send(self, st.ctx.options.retry.delay(rec.attempt), webhook_timer_atom::value, id, h.token);
  } else {
    h.at = phase::idle;
    pump(self, id, h);
  }
  save_low_water(self);
}

void pump(self_ptr self, const std::string& id, hook& h) {
  auto& st = self->state;
  if (h.at != phase::idle || h.queue.empty() || !h.deliverable()) {
    return;
  }
  auto& d = h.queue.front();
  ++d.attempts;
  h.at = phase::posting;
  ++h.token;
  h.attempt_started = st.ctx.clk->now();
  if (!h.secret) {
    auto opened = st.ctx.secrets->open(h.state.secret_sealed);
    if (!opened) {
      on_reply(self, id, h, webhook_reply{0, 0, "the webhook's secret cannot be opened: " + opened.err().message});
      return;
    }
    h.secret = std::move(*opened);
  }
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(h.attempt_started.time_since_epoch()).count();
  webhook_post post;
  post.webhook_id = id;
  post.tenant = h.state.tenant;
  post.url = h.state.url;
  post.body = d.body;
  post.headers = {{"Content-Type", "application/cloudevents+json"},
                  {"User-Agent", st.ctx.options.user_agent},
                  {"X-Webhook-Id", d.event_id},
                  {"X-Webhook-Event", d.type},
                  {"X-Webhook-Attempt", std::to_string(d.attempts)},
                  {"X-Webhook-Timestamp", std::to_string(seconds)},
                  {"X-Signature-256", webhook_signature(*h.secret, seconds, d.body)}};
  auto g = st.gate;
  const auto token = h.token;
  // The dispatcher's own deadline: a transport that never answers does not hold the webhook.
  self->delayed_send(self, st.ctx.options.timeout + std::chrono::seconds{1}, webhook_timer_atom::value, id, token);
  st.ctx.transport->post(std::move(post), [g, id, token](webhook_reply reply) {
    g->send(webhook_posted_atom::value, id, token, std::move(reply));
  });
}

/// Hands a lifecycle event to every webhook that wants it.
void dispatch(self_ptr self, const events::stored_event& stored, const events::lifecycle_event& le) {
  auto& st = self->state;
  for (auto& [id, h] : st.hooks) {
    if (!h.deliverable() || h.state.tenant != le.tenant || stored.position <= h.from_position ||
        !h.state.subscribes(le.type)) {
      continue;
    }
    const auto event_id = le.cloudevent.value("id", std::string{});
    if (h.finals.count(event_id) > 0) {
      continue;  // settled before the restart
    }
    if (h.queue.size() >= st.ctx.options.queue_limit) {
      ++st.counters.dropped;
      events::webhook_delivery_attempted rec;
      rec.event_id = event_id;
      rec.event_type = le.type;
      rec.request_id = le.request;
      rec.position = stored.position;
      rec.outcome = events::delivery_outcome::dropped;
      rec.final = true;
      rec.error = "queue full (" + std::to_string(st.ctx.options.queue_limit) + " pending deliveries)";
      rec.attempted_at = st.ctx.clk->now();
      st.pending.insert(stored.position);
      std::vector<events::stream_append> batch;
      batch.push_back(events::stream_append{events::webhook_stream(id), events::any_version, {events::to_record(rec)}});
      auto g = st.gate;
      const auto position = stored.position;
      st.ctx.journal->append(std::move(batch), [g, position](result<events::append_receipt>) {
        g->send(webhook_dropped_atom::value, position);
      });
      continue;
    }
    std::uint32_t attempts = 0;
    if (auto tried = h.tried.find(event_id); tried != h.tried.end()) {
      attempts = tried->second;
      h.tried.erase(tried);
    }
    h.queue.push_back(delivery{stored.position, event_id, le.type, le.request, le.cloudevent.dump(), attempts});
    st.pending.insert(stored.position);
    pump(self, id, h);
  }
}

bool any_deliverable(const dispatcher_state& st) {
  for (const auto& [id, h] : st.hooks) {
    if (h.deliverable()) {
      return true;
    }
  }
  return false;
}

/// The request's state after `stored`: from the cache when it is just one event behind, else
/// folded from the journal up to that event.
const events::request_state* request_after(dispatcher_state& st, const events::stored_event& stored,
                                           const events::request_event& event) {
  const std::string id{events::stream_key(stored.stream)};
  auto it = st.requests.find(id);
  if (it != st.requests.end() && it->second.version + 1 == stored.sequence &&
      events::apply_to(it->second, event, events::event_meta{stored.sequence, stored.time})) {
    return &it->second;
  }
  auto events_so_far = st.ctx.journal->read_stream(stored.stream, 1, stored.sequence);
  if (!events_so_far) {
    return nullptr;
  }
  auto folded = events::fold_request(*events_so_far);
  if (!folded) {
    return nullptr;
  }
  if (st.requests.size() >= st.ctx.options.request_cache && it == st.requests.end()) {
    st.requests.erase(st.requests.begin());
  }
  auto& slot = st.requests[id];
  slot = std::move(*folded);
  return &slot;
}

void on_request_event(self_ptr self, const events::stored_event& stored) {
  auto& st = self->state;
  if (!any_deliverable(st)) {
    return;  // nothing to deliver to; a later fold reads what it needs from the journal
  }
  auto any = events::decode(stored);
  if (!any) {
    return;
  }
  auto event = events::as_request_event(*any);
  if (!event) {
    return;
  }
  const auto* state = request_after(st, stored, *event);
  if (state == nullptr) {
    log::warn("webhook_request_unreadable", {{"stream", stored.stream}, {"sequence", stored.sequence}});
    return;
  }
  for (const auto& le : events::to_lifecycle(stored, *any, *state)) {
    dispatch(self, stored, le);
  }
}

void on_webhook_event(self_ptr self, const events::stored_event& stored) {
  auto& st = self->state;
  const std::string id{events::stream_key(stored.stream)};
  auto& h = st.hooks[id];
  if (stored.sequence <= h.state.version) {
    return;  // folded at start
  }
  auto any = events::decode(stored);
  if (!any) {
    return;
  }
  auto event = events::as_webhook_event(*any);
  if (!event) {
    return;
  }
  if (!events::apply_to(h.state, *event, events::event_meta{stored.sequence, stored.time})) {
    auto all = st.ctx.journal->read_stream(stored.stream, 1, stored.sequence);
    if (!all) {
      return;
    }
    auto folded = events::fold_webhook(*all);
    if (!folded) {
      log::warn("webhook_unfoldable", {{"webhook", id}, {"error", folded.err().message}});
      return;
    }
    h.state = std::move(*folded);
  }
  if (std::holds_alternative<events::webhook_registered>(*event) ||
      std::holds_alternative<events::webhook_reactivated>(*event)) {
    h.from_position = stored.position;
    h.failures_in_row = 0;
    h.deactivated_here = false;
    h.secret.reset();
    pump(self, id, h);
  } else if (std::holds_alternative<events::webhook_deleted>(*event)) {
    drop_queue(st, h);
    h.secret.reset();
  } else if (std::holds_alternative<events::webhook_deactivated>(*event)) {
    drop_queue(st, h);
  }
}

/// After the cursor moved: ends the recovery once past its start's head, and stores the
/// position below which everything is settled.
void advanced(self_ptr self) {
  auto& st = self->state;
  if (st.counters.recovering && st.cursor >= st.recover_until) {
    st.counters.recovering = false;
    for (auto& [id, h] : st.hooks) {
      h.finals.clear();
      h.tried.clear();
    }
  }
  save_low_water(self);
}

void read_tail(self_ptr self) {
  auto& st = self->state;
  st.gate->wake_pending.store(false);
  if (!any_deliverable(st)) {
    // Nothing to deliver to, so only webhook events matter: with none after the cursor, the
    // tail up to the head is passed over unread (most of the log). The head is read first:
    // the journal's bound then covers every event up to it.
    const auto head = st.ctx.journal->head();
    if (st.ctx.journal->last_position_in(webhook_category) <= st.cursor) {
      if (head > st.cursor) {
        st.cursor = head;
        advanced(self);
      }
      return;
    }
  }
  std::vector<events::stored_event> batch;
  // With no webhook to deliver to, request events are skipped without a copy (most of the
  // log); from a webhook event on, everything is kept in order, as it may make one deliverable.
  bool keep = any_deliverable(st);
  std::uint64_t last_read = st.cursor;
  auto read = st.ctx.journal->read_all(st.cursor + 1, st.ctx.options.read_batch, [&](const events::stored_event& e) {
    last_read = e.position;
    if (!keep && events::stream_category(e.stream) != webhook_category) {
      return;
    }
    keep = true;
    batch.push_back(e);
  });
  if (!read) {
    log::warn("webhook_tail_failed", {{"error", read.err().message}});
    if (!st.read_retry_armed) {
      st.read_retry_armed = true;
      self->delayed_send(self, st.ctx.options.record_retry, webhook_tail_atom::value);
    }
    return;
  }
  st.read_retry_armed = false;
  for (const auto& e : batch) {
    const auto category = events::stream_category(e.stream);
    if (category == "request") {
      on_request_event(self, e);
    } else if (category == webhook_category) {
      on_webhook_event(self, e);
    }
    st.cursor = e.position;
  }
  st.cursor = std::max(st.cursor, last_read);
  if (*read == st.ctx.options.read_batch) {
    self->send(self, webhook_tail_atom::value);  // more to read: let other messages in first
  }
  advanced(self);
}

/// The first sequence of `stream` (1..version) whose event lies after `position`, or
/// version + 1: a binary search over the stream index, so start-up does not read a webhook's
/// whole history of attempts.
std::uint64_t first_after(const events::journal& journal, const std::string& stream, std::uint64_t version,
                          std::uint64_t position) {
  std::uint64_t lo = 1;
  std::uint64_t hi = version + 1;
  while (lo < hi) {
    const auto mid = lo + (hi - lo) / 2;
    auto one = journal.read_stream(stream, mid, 1);
    if (!one || one->empty()) {
      return 1;  // unreadable: fall back to reading everything
    }
    if (one->front().position > position) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}

/// Takes the known webhooks (projected states), catches each up with its stream, and notes
/// what was settled after the start position (so a restart does not deliver it twice) and how
/// often each unsettled event was tried (so its attempts go on counting). Reads
/// only the events after the start position, plus the (re)activating event.
void load(dispatcher_state& st) {
  if (!st.ctx.load_webhooks) {
    return;
  }
  auto known = st.ctx.load_webhooks();
  if (!known) {
    log::warn("webhook_load_failed", {{"error", known.err().message}});
    return;
  }
  for (const auto& w : *known) {
    const auto stream = events::webhook_stream(w.id);
    hook h;
    h.state = w;
    // The projected state is the fold of a prefix of the stream (it may lag the journal):
    // fold on from its version; read from the first event after the start position for the
    // settled deliveries. A state without a version (ids only) is folded from scratch.
    auto from = first_after(*st.ctx.journal, stream, w.version, st.cursor);
    if (w.version == 0) {
      h.state = events::webhook_state{};
      from = 1;
    }
    auto tail = st.ctx.journal->read_stream(stream, std::min(from, w.version + 1));
    if (!tail) {
      continue;
    }
    bool ok = true;
    for (const auto& e : *tail) {
      auto any = events::decode(e);
      auto event = any ? events::as_webhook_event(*any) : std::nullopt;
      if (!event) {
        ok = false;
        break;
      }
      if (e.sequence > h.state.version && !events::apply_to(h.state, *event, events::event_meta{e.sequence, e.time})) {
        ok = false;
        break;
      }
      if (const auto* rec = std::get_if<events::webhook_delivery_attempted>(&*event);
          rec != nullptr && rec->position > st.cursor) {
        if (rec->final) {
          h.finals.insert(rec->event_id);
          h.tried.erase(rec->event_id);
        } else {
          auto& n = h.tried[rec->event_id];
          n = std::max(n, rec->attempt);
        }
      }
    }
    if (!ok || !h.state.exists()) {
      log::warn("webhook_unfoldable", {{"webhook", w.id}});
      continue;
    }
    if (h.state.active_since > 0) {
      auto activating = st.ctx.journal->read_stream(stream, h.state.active_since, 1);
      if (activating && !activating->empty()) {
        h.from_position = activating->front().position;
      }
    }
    h.failures_in_row = h.state.consecutive_failures;
    st.hooks.emplace(w.id, std::move(h));
  }
}

webhook_dispatcher_actor::behavior_type dispatcher_impl(self_ptr self, webhook_dispatcher_context ctx,
                                                        std::shared_ptr<webhook_dispatcher::gate> g) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.gate = std::move(g);
  st.cursor = st.ctx.start_position;
  st.stored = st.cursor;
  st.recover_until = st.ctx.journal->head();
  st.counters.recovering = st.cursor < st.recover_until;
  load(st);
  return {
      [=](webhook_tail_atom) { read_tail(self); },
      [=](webhook_posted_atom, const std::string& id, std::uint64_t token, const webhook_reply& reply) {
        auto it = self->state.hooks.find(id);
        if (it == self->state.hooks.end() || it->second.token != token || it->second.at != phase::posting) {
          return;  // late: the attempt timed out or the webhook changed meanwhile
        }
        on_reply(self, id, it->second, reply);
      },
      [=](webhook_recorded_atom, const std::string& id, std::uint64_t token, const append_outcome& out) {
        auto it = self->state.hooks.find(id);
        if (it == self->state.hooks.end() || it->second.token != token || it->second.at != phase::recording) {
          return;
        }
        on_recorded(self, id, it->second, out);
      },
      [=](webhook_timer_atom, const std::string& id, std::uint64_t token) {
        auto it = self->state.hooks.find(id);
        if (it == self->state.hooks.end() || it->second.token != token) {
          return;
        }
        auto& h = it->second;
        const auto timeout_ms = std::chrono::duration_cast<std::chrono::milliseconds>(self->state.ctx.options.timeout);
        switch (h.at) {
          case phase::posting:
            on_reply(self, id, h, webhook_reply{0, timeout_ms.count(), "no answer within " + std::to_string(timeout_ms.count()) + "ms"});
            break;
          case phase::recording:
            append_record(self, id, h);
            break;
          case phase::waiting:
            h.at = phase::idle;
            pump(self, id, h);
            break;
          case phase::idle:
            break;
        }
      },
      [=](webhook_dropped_atom, std::uint64_t position) {
        release(self->state, position);
        save_low_water(self);
      },
      [=](webhook_save_atom) {
        self->state.save_armed = false;
        save_low_water(self, true);
      },
      [=](status_atom) {
        auto& s = self->state;
        auto out = s.counters;
        out.position = s.cursor;
        out.stored_position = s.stored;
        out.pending = s.pending.size();
        out.webhooks = 0;
        for (const auto& [id, h] : s.hooks) {
          out.webhooks += h.state.exists() && !h.state.deleted ? 1 : 0;
        }
        return out;
      },
  };
}

}  // namespace

webhook_dispatcher::webhook_dispatcher(caf::actor_system& sys, webhook_dispatcher_actor actor, std::shared_ptr<gate> g)
    : _sys(&sys), _actor(std::move(actor)), _gate(std::move(g)) {}

webhook_dispatcher::~webhook_dispatcher() { stop(false); }

std::unique_ptr<webhook_dispatcher> webhook_dispatcher::start(caf::actor_system& sys, webhook_dispatcher_context ctx) {
  auto g = std::make_shared<gate>();
  auto* journal = ctx.journal;
  auto actor = sys.spawn(dispatcher_impl, std::move(ctx), g);
  {
    std::lock_guard<std::mutex> guard{g->mutex};
    g->actor = actor;
  }
  journal->on_commit([g](std::uint64_t) { g->wake(); });
  g->wake();  // read what is there already
  return std::unique_ptr<webhook_dispatcher>{new webhook_dispatcher(sys, std::move(actor), std::move(g))};
}

void webhook_dispatcher::stop(bool wait) {
  if (_stopped) {
    return;
  }
  _stopped = true;
  _gate->close();
  caf::anon_send_exit(_actor, caf::exit_reason::user_shutdown);
  if (wait) {
    caf::scoped_actor self{*_sys};
    self->wait_for(_actor);
  }
}

}  // namespace prov::actors
