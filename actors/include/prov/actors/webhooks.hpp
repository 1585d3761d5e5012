#pragma once
/// Webhook deliveries: the dispatcher actor that turns journal events into signed
/// HTTP POSTs, and the transport that makes them.
///
/// The dispatcher tails the journal from a stored position, keeps the webhooks as the fold of
/// their streams, folds request streams (a bounded cache) to map request events to lifecycle
/// events (`events/lifecycle.hpp`), and hands each lifecycle event to the queue of every active
/// webhook of its tenant that subscribed to its type. Each webhook has its own bounded queue and
/// at most one POST in flight, so a slow or hanging endpoint only delays itself; POSTs run on
/// the transport's threads, never on the dispatcher's, and the pipeline never waits for them.
///
/// Per webhook, events are delivered one at a time in journal order. A failed attempt (no 2xx in
/// time) is retried after `retry.delay(n)` (exponential, capped) up to `retry.max_attempts`;
/// after `deactivate_after` failed attempts in a row (over one event's retries or across
/// events) the webhook is deactivated and its queue dropped; deliveries resume, for later
/// events, once it is reactivated. Every attempt, and every delivery dropped on a full queue,
/// is appended to the webhook's stream (`webhook.delivery_attempted`) before the next one.
///
/// Guarantee: at least once, per webhook in journal order. The stored position is the low-water
/// mark of unfinished deliveries (every event up to it was delivered, given up on or dropped,
/// and that outcome is durable). After a crash the dispatcher reads on from there, and skips the
/// deliveries whose final outcome it finds in the journal; a delivery that was in flight is made
/// again (with the same `X-Webhook-Id`, so receivers can drop duplicates). Timers are CAF
/// `delayed_send`s and times come from the injected clock: tests run it in virtual time.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "prov/actors/messages.hpp"
#include "prov/actors/webhook_guard.hpp"
#include "prov/core/clock.hpp"
#include "prov/core/error.hpp"
#include "prov/core/secret_box.hpp"
#include "prov/events/journal.hpp"
#include "prov/events/webhook.hpp"

namespace prov::actors {

/// Retries of a failed delivery: after failed attempt n (1-based) the next comes after
/// `min(base * 2^(n-1), cap)`; at most `max_attempts` attempts per event.
struct webhook_retry_policy {
  std::uint32_t max_attempts = 5;
  std::chrono::milliseconds base{5'000};
  std::chrono::milliseconds cap{300'000};

  std::chrono::milliseconds delay(std::uint32_t failed_attempt) const;
};

struct webhook_options {
  bool enabled = true;  ///< run the dispatcher (the API works either way)
  webhook_retry_policy retry;
  std::uint32_t deactivate_after = 5;  ///< failed attempts in a row that deactivate a webhook
  webhook_address_policy addresses;    ///< the SSRF guard (`webhook_guard.hpp`)
  std::size_t queue_limit = 1000;      ///< pending deliveries per webhook; beyond, dropped (recorded)
  std::size_t max_concurrent = 16;     ///< POSTs in flight at once, all webhooks (transport threads)
  /// POSTs in flight at once for one tenant's webhooks, so one tenant's hanging receivers can
  /// never hold every transport thread (0 = a quarter of `max_concurrent`, at least 1).
  std::size_t max_concurrent_per_tenant = 0;
  std::chrono::milliseconds timeout{10'000};  ///< per attempt: connect, send, answer
  std::string ca_bundle;               ///< PEM file of CAs for HTTPS receivers ("" = system store)
  std::size_t max_per_tenant = 100;    ///< webhooks a tenant may have
  std::size_t request_cache = 4096;    ///< request states kept to render lifecycle events
  std::size_t read_batch = 256;        ///< journal events read per dispatcher turn
  std::chrono::milliseconds record_retry{1'000};  ///< after a failed append of an attempt record
  /// The dispatcher stores its position (below which every delivery is settled) at most this
  /// often: a write per commit otherwise. A restart reads on from the stored position, which
  /// may lag by up to this much of the log; what was settled after it is not delivered again
  /// (the attempt records say so). 0: on every move.
  std::chrono::milliseconds position_save_interval{1'000};
  std::string user_agent = "provisiond-webhooks/0.1";
};

/// One POST the dispatcher wants made.
struct webhook_post {
  std::string webhook_id;
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string tenant;  ///< whose webhook: the transport shares its threads fairly by tenant
};

/// How a POST went: the receiver's status (0 = no answer) or why there was none.
struct webhook_reply {
  unsigned status = 0;
  std::int64_t latency_ms = 0;
  std::string error;  ///< "" when the receiver answered

  bool delivered() const noexcept { return status >= 200 && status < 300; }
};

/// Makes the POSTs. `post` must not block: the call runs elsewhere and `done` is called exactly
/// once, from any thread (or inline).
class webhook_transport {
 public:
  virtual ~webhook_transport() = default;
  virtual void post(webhook_post request, std::function<void(webhook_reply)> done) = 0;
};

/// Resolves a host name to IP address literals (blocking).
using webhook_resolver = std::function<result<std::vector<std::string>>(const std::string& host, const std::string& port)>;

/// The system resolver (getaddrinfo).
result<std::vector<std::string>> resolve_host(const std::string& host, const std::string& port);

/// The production transport: `max_concurrent` threads POSTing through the shared HTTP(S)
/// client (certificate verification on; `ca_bundle` if given), each URL checked by the address
/// guard after resolution; plain-HTTP POSTs go to the checked address. Redirects are not
/// followed (a 3xx is a failure).
std::shared_ptr<webhook_transport> make_http_webhook_transport(const webhook_options& options,
                                                               webhook_resolver resolver = resolve_host);

/// Counters of the dispatcher, for tests and metrics.
struct webhook_dispatcher_status {
  std::uint64_t position = 0;         ///< last journal event read
  std::uint64_t stored_position = 0;  ///< the low-water mark last stored
  bool recovering = false;            ///< still re-reading what was unfinished at start
  std::size_t webhooks = 0;           ///< known, not deleted
  std::size_t pending = 0;            ///< deliveries queued or in flight
  std::uint64_t attempts = 0;         ///< POSTs made since start
  std::uint64_t delivered = 0;
  std::uint64_t failed = 0;
  std::uint64_t dropped = 0;
};

using webhook_tail_atom = caf::atom_constant<caf::atom("whtail")>;
using webhook_posted_atom = caf::atom_constant<caf::atom("whposted")>;
using webhook_recorded_atom = caf::atom_constant<caf::atom("whrecord")>;
using webhook_timer_atom = caf::atom_constant<caf::atom("whtimer")>;
using webhook_dropped_atom = caf::atom_constant<caf::atom("whdropped")>;
using webhook_save_atom = caf::atom_constant<caf::atom("whsave")>;

/// The dispatcher's protocol. `tail`: the journal grew. The others are its own replies and
/// timers (webhook id, generation): a POST's reply, an attempt record's append, a backoff or
/// re-record timer, a drop record's append (its source position), the timer of a deferred
/// save of the position.
using webhook_dispatcher_actor = caf::typed_actor<
    caf::reacts_to<webhook_tail_atom>,
    caf::reacts_to<webhook_posted_atom, std::string, std::uint64_t, webhook_reply>,
    caf::reacts_to<webhook_recorded_atom, std::string, std::uint64_t, append_outcome>,
    caf::reacts_to<webhook_timer_atom, std::string, std::uint64_t>,
    caf::reacts_to<webhook_dropped_atom, std::uint64_t>,
    caf::reacts_to<webhook_save_atom>,
    caf::replies_to<status_atom>::with<webhook_dispatcher_status>>;

/// What the dispatcher works with. Everything it points to must outlive it.
struct webhook_dispatcher_context {
  events::journal* journal = nullptr;
  const clock* clk = nullptr;
  const secret_box* secrets = nullptr;  ///< opens the webhooks' sealed secrets
  std::shared_ptr<webhook_transport> transport;
  webhook_options options;
  /// The stored position (0 = read the journal from its start).
  std::uint64_t start_position = 0;
  /// Stores a new position; called on the dispatcher's thread, must be quick.
  std::function<void(std::uint64_t)> save_position;
  /// Webhooks as known at start (from the projections: each the fold of a prefix of its
  /// stream, caught up from the journal; a state with version 0 is folded from scratch). Only
  /// the events after `start_position` (and the activating one) are read at start.
  std::function<result<std::vector<events::webhook_state>>()> load_webhooks;
};

/// A running dispatcher: the actor plus the gate through which the journal's writer and the
/// transport's threads reach it (closed by `stop`, so nothing is sent to it afterwards).
class webhook_dispatcher {
 public:
  /// Spawns the dispatcher in `sys` and registers its wake-up with `ctx.journal`. `sys` must
  /// outlive this object or `stop` must be called before it goes.
  static std::unique_ptr<webhook_dispatcher> start(caf::actor_system& sys, webhook_dispatcher_context ctx);

  ~webhook_dispatcher();
  webhook_dispatcher(const webhook_dispatcher&) = delete;
  webhook_dispatcher& operator=(const webhook_dispatcher&) = delete;

  webhook_dispatcher_actor actor() const noexcept { return _actor; }

  /// Closes the gate and stops the actor (waiting for it unless `wait` is false, as tests on
  /// the test coordinator need). Deliveries in flight are made again on the next start.
  /// Idempotent.
  void stop(bool wait = true);

  struct gate;

 private:
  webhook_dispatcher(caf::actor_system& sys, webhook_dispatcher_actor actor, std::shared_ptr<gate> g);

  caf::actor_system* _sys;
  webhook_dispatcher_actor _actor;
  std::shared_ptr<gate> _gate;
  bool _stopped = false;
};

}  // namespace prov::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::actors::webhook_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::actors::webhook_dispatcher_status)
