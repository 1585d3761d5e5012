#pragma once
// The engine's internals, shared by engine.cpp (assembly, submit, clusters, shutdown) and
// engine_commands.cpp (lifecycle commands, policy). Private to prov::actors.

#include <atomic>
#include <cassert>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>

#include <caf/all.hpp>

#include "prov/actors/engine.hpp"
#include "prov/actors/spawn.hpp"
#include "prov/actors/webhooks.hpp"
#include "prov/core/ids.hpp"
#include "prov/core/secret_box.hpp"
#include "prov/events/apply.hpp"
#include "prov/events/rocks_store.hpp"
#include "prov/projections/projector.hpp"
#include "prov/projections/views.hpp"
#include "prov/providers/inventory_store.hpp"

namespace prov::actors {

namespace detail {

inline constexpr auto ask_timeout = std::chrono::seconds{30};

/// What a call the stopping engine no longer takes is answered with.
inline error shutting_down() { return make_error(errc::unavailable, "the engine is shutting down"); }

/// Work handed to the engine's runner actor (`engine::impl::elsewhere`).
using deferred_work = once_or_dropped<>;

/// A tenant token: 24 random bytes, hex, with a prefix that secret scanners can match.
inline std::string new_tenant_token() { return "pt_" + random_hex(24); }

// Asks an actor from outside the actor system: a short-lived actor sends the request and
// hands the reply (or the error) to `done`.
template <class Reply, class Handle, class... Ts>
inline void ask(caf::actor_system& sys, Handle target, std::function<void(result<Reply>)> done, Ts... xs) {
  sys.spawn([=](caf::event_based_actor* self) {
    self->request(target, ask_timeout, xs...)
        .then([=](const Reply& reply) { done(reply); },
              [=](caf::error& err) { done(make_error(errc::unavailable, caf::to_string(err))); });
  });
}


// The fields that make two submissions "the same request" for idempotency.
inline bool same_submission(const events::request_submitted& a, const events::request_submitted& b) {
  return a.tenant == b.tenant && a.type == b.type && a.provider == b.provider && a.region == b.region &&
         a.spec == b.spec && a.depends_on == b.depends_on && a.requested_cluster == b.requested_cluster;
}


/// What every tenant's requests hold now (used + reserved), for quota checks at submit: kept
/// in memory, taken at submission, given back when a request is rolled back. Starts from the
/// projections' usage records (a fresh replay's result).
class quota_ledger {
 public:
  void reset(std::unordered_map<std::string, projections::usage_totals> held) {
    std::lock_guard<std::mutex> guard{_mutex};
    _held = std::move(held);
  }

  /// Takes the request's spec if the quota allows it; `errc::quota_exceeded` naming the
  /// dimension and the numbers otherwise.
  status reserve(const std::string& tenant, const events::tenant_quota& quota, const events::request_state& r);
  void release(const std::string& tenant, const events::request_state& r);

 private:
  std::mutex _mutex;
  std::unordered_map<std::string, projections::usage_totals> _held;
};

/// Tenants and approval rules as the projections hold them, for submissions: read from the
/// store again only once the projector has applied a change to one of them
/// (`projector::catalog_generation`). Tenants that do not exist are not kept.
class catalog_cache {
 public:
  result<std::optional<events::tenant_state>> tenant(const projections::views& views, std::uint64_t generation,
                                                     const std::string& id);
  result<std::vector<events::rule_state>> rules(const projections::views& views, std::uint64_t generation);

 private:
  /// Drops what an older generation than `generation` kept. Called with `_mutex` held.
  void renew(std::uint64_t generation);

  std::mutex _mutex;
  std::uint64_t _generation = 0;
  std::unordered_map<std::string, events::tenant_state> _tenants;
  std::optional<std::vector<events::rule_state>> _rules;
};

}  // namespace detail

struct engine::impl {
  engine_options options;
  const clock& clk;
  std::unique_ptr<events::rocks_store> store;
  std::unique_ptr<providers::inventory_store> sim_inventory;
  std::unique_ptr<secret_box> secrets;
  std::unique_ptr<events::journal> journal;
  std::unique_ptr<projections::projector> projector;
  std::unique_ptr<projections::views> views;
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  engine_context ctx;
  request_supervisor_actor supervisor;
  reconciler_actor reconciler;
  caf::actor runner;  ///< runs `elsewhere`'s work, one item at a time
  std::atomic<bool> stopping{false};
  std::atomic<std::int64_t> unfinished{0};  ///< submitted and not yet at rest
  detail::quota_ledger ledger;
  detail::catalog_cache catalog;
  std::mutex shutdown_mutex;
  bool stopped = false;
  std::shared_ptr<webhook_transport> webhook_http;  ///< webhooks (engine_webhooks.cpp)
  std::unique_ptr<webhook_dispatcher> webhooks;

  void start_webhooks();
  void stop_webhooks();
  /// Appends what `decide` makes of a webhook's fold (again on a fresh fold, up to
  /// `attempts` times, when the append lost a race with a delivery record).
  void webhook_command(std::string id,
                       std::function<result<events::event_record>(const events::webhook_state&)> decide,
                       callback<events::webhook_state> done, int attempts);

  impl(const engine_options& o, const clock& c) : options(o), clk(c) {}

  // Appends and answers once the projections show the result.
  void append_then(std::vector<events::stream_append> batch, std::function<void(result<events::append_receipt>)> committed) {
    if (stopping.load()) {
      committed(detail::shutting_down());
      return;
    }
    journal->append(std::move(batch), std::move(committed));
  }

  /// The request's node in the dependency graph: references resolved (a submitted key to its
  /// request id); `errc::invalid_argument` for an unknown request id or another tenant's.
  result<dependency_node> dependency_node_of(const events::request_state& r) const;
  /// The dependency graph's node for a request not submitted yet: "key:<tenant>/<key>".
  static std::string key_node_of(const std::string& tenant, const std::string& key) {
    return "key:" + tenant + "/" + key;
  }

  /// Runs `work` on an actor thread (the `runner`'s), for what an append handler must not do
  /// on the journal's thread that calls it: read the journal again (a command decided anew, a
  /// replayed submission), which would hold up every group commit behind it. A message, not a
  /// spawn: after a spawn from a journal thread (joined only after the actor system is gone),
  /// CAF 0.17's actor system never finished its destructor (observed; it waits there for its
  /// logger's end, likely held by a thread-local reference of the spawning thread).
  /// `dropped` runs instead if the runner never gets to it (it stopped: the engine shuts down).
  void elsewhere(std::function<void()> work, std::function<void()> dropped) {
    caf::anon_send(runner, detail::deferred_work{std::move(work), std::move(dropped)});
  }

  /// A command on one stream: `fold` reads its state (or says why there is none), `decide`
  /// says what to append, and the append expects the fold's version; `committed` gets the
  /// append's last position. A lost race (another writer extended the stream) is decided again
  /// on a fresh fold, on the runner, up to `attempts` times; then the answer is `exhausted()`
  /// (or, without it, the version conflict itself).
  template <class State>
  void decide_and_append(std::string stream, std::function<result<State>()> fold,
                         std::function<result<std::vector<events::event_record>>(const State&)> decide,
                         std::function<error()> exhausted, std::function<void(result<std::uint64_t>)> committed,
                         int attempts) {
    assert(!events::on_journal_thread());
    auto state = fold();
    if (!state) {
      committed(std::move(state).err());
      return;
    }
    auto records = decide(*state);
    if (!records) {
      committed(std::move(records).err());
      return;
    }
    std::vector<events::stream_append> batch;
    batch.push_back(events::stream_append{stream, state->version, std::move(*records)});
    append_then(std::move(batch), [=, this](result<events::append_receipt> r) {
      if (r) {
        committed(r->last_position);
      } else if (r.err().code != errc::version_conflict) {
        committed(std::move(r).err());
      } else if (attempts <= 1) {
        committed(exhausted ? exhausted() : std::move(r).err());
      } else {
        elsewhere([=, this] { decide_and_append(stream, fold, decide, exhausted, committed, attempts - 1); },
                  [committed] { committed(detail::shutting_down()); });
      }
    });
  }

  /// Asks the actors for `engine::runtime` (all of them, or `everything` false: the clusters').
  void probe(bool everything, std::function<void(engine_runtime)> done);

  void after_projection(std::uint64_t position, std::function<void()> then) {
    projector->when_applied(position, std::move(then));
  }

  /// Appends `record` to an existing tenant's stream (`not_found` if there is none; a race
  /// with another change is `conflict`) and calls `projected` once the projections show it.
  void append_to_tenant(const std::string& tenant_id, events::event_record record,
                        std::function<void(result<void>)> projected);

  /// What a command appends to a request, decided from the request's state (or why not).
  using request_decision = std::function<result<std::vector<events::event_record>>(const events::request_state&)>;
  /// How often a command is decided again when another writer extended the request first.
  static constexpr int command_attempts = 5;

  /// Folds the request from its stream, lets `decide` say what to append, and appends it
  /// expecting that fold's version. If another writer got there first (the request's actor,
  /// another command, the orphan reconciler), decides again on a fresh fold, up to
  /// `attempts` times, so a race answers what the command makes of the new state rather than
  /// a 409 to retry. Once projected, reads the request's view, wakes its actor and answers
  /// with the view. An unknown request is `not_found`.
  void request_command(std::string request_id, request_decision decide, callback<events::request_state> done,
                       int attempts = command_attempts);

  /// The rest of a submission once it passed every check: appends it (with its approval gate,
  /// if a rule matched) and answers once projected; on a failed append, gives back its quota
  /// and, `in_graph`, its node.
  void commit_submission(events::request_submitted e, std::optional<events::approval_required> approval,
                         events::request_state as_state, bool in_graph, callback<submit_reply> done);

  void replay_submission(const events::request_submitted& wanted, callback<submit_reply> done) {
    assert(!events::on_journal_thread());
    auto claim = journal->read_stream(events::idempotency_stream(wanted.tenant, wanted.idempotency_key));
    if (!claim || claim->empty()) {
      done(make_error(errc::internal, "idempotency key claimed but its record is unreadable"));
      return;
    }
    auto decoded = events::decode(claim->front());
    if (!decoded || !std::holds_alternative<events::idempotency_claimed>(*decoded)) {
      done(make_error(errc::corrupt, "idempotency record does not decode"));
      return;
    }
    const auto id = std::get<events::idempotency_claimed>(*decoded).request_id;
    auto stored = journal->read_stream(events::request_stream(id));
    if (!stored) {
      done(std::move(stored).err());
      return;
    }
    auto state = events::fold_request(*stored);
    if (!state || stored->empty()) {
      done(make_error(errc::corrupt, "request " + id + " does not fold"));
      return;
    }
    auto first = events::decode(stored->front());
    if (!first || !std::holds_alternative<events::request_submitted>(*first) ||
        !detail::same_submission(std::get<events::request_submitted>(*first), wanted)) {
      done(make_error(errc::conflict, "idempotency key '" + wanted.idempotency_key +
                                          "' was already used for a different request (" + id + ")"));
      return;
    }
    done(submit_reply{id, state->state, true});
  }
};


}  // namespace prov::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::actors::detail::deferred_work)
