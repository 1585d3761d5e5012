#include "prov/events/apply.hpp"

#include <concepts>
#include <string>
#include <type_traits>
#include <utility>

#include "prov/events/transitions.hpp"
#include "prov/events/webhook.hpp"

namespace prov::events {

namespace {

std::string name(lifecycle_state s) { return std::string{enum_name(s)}; }
std::string name(step_kind s) { return std::string{enum_name(s)}; }

error refuse(std::string message) { return make_error(errc::invalid_transition, std::move(message)); }

error bad_transition(lifecycle_state from, lifecycle_state to) {
  return refuse(name(from) + " -> " + name(to) + " is not an allowed transition");
}

template <class State>
status check_sequence(const State& s, const event_meta& m) {
  if (m.sequence != s.version + 1) {
    return make_error(errc::version_conflict, "event sequence " + std::to_string(m.sequence) +
                                                  " does not follow version " + std::to_string(s.version));
  }
  return {};
}

/// `field` of an event passed as `E&&`: moved from when the caller gave the event up (an
/// rvalue), copied otherwise. The events that carry most strings take their event this way.
template <class E, class T>
decltype(auto) give(T& field) {
  if constexpr (std::is_rvalue_reference_v<E&&> && !std::is_const_v<std::remove_reference_t<E>>) {
    return std::move(field);
  } else {
    return static_cast<const T&>(field);
  }
}

template <class E, class Event>
concept event_of = std::same_as<std::remove_cvref_t<E>, Event>;

// Each handler mutates the copy it was given; `apply` returns it only if the handler succeeded.
struct request_folder {
  request_state& s;
  const event_meta& m;

  template <event_of<request_submitted> E>
  status operator()(E&& e) {
    if (s.exists()) {
      return refuse("request " + s.id + " was already submitted");
    }
    s.id = give<E>(e.request_id);
    s.tenant = give<E>(e.tenant);
    s.type = e.type;
    s.provider = give<E>(e.provider);
    s.region = give<E>(e.region);
    s.spec = give<E>(e.spec);
    s.depends_on = give<E>(e.depends_on);
    s.idempotency_key = give<E>(e.idempotency_key);
    s.requested_cluster = give<E>(e.requested_cluster);
    s.state = lifecycle_state::queued;
    s.created_at = m.time;
    return {};
  }

  status operator()(const cluster_assigned& e) {
    if (s.state != lifecycle_state::queued) {
      return refuse("a cluster can only be assigned while queued, not " + name(s.state));
    }
    s.cluster = e.cluster;
    return {};
  }

  template <event_of<step_started> E>
  status operator()(E&& e) {
    const auto target = state_of(e.step);
    auto& step = s.step(e.step);
    if (s.state == target) {
      if (step.status != step_status::failed) {
        return refuse("step " + name(e.step) + " can only be retried after it failed");
      }
      if (!step.next_attempt_at) {
        return refuse("step " + name(e.step) + " is retried only after a retry was scheduled");
      }
    } else {
      if (!transition_allowed(s.state, target)) {
        return bad_transition(s.state, target);
      }
      if (e.step != step_kind::allocate &&
          s.step(static_cast<step_kind>(static_cast<int>(e.step) - 1)).status != step_status::succeeded) {
        return refuse("step " + name(e.step) + " cannot start before the previous step succeeded");
      }
    }
    if (e.attempt != step.attempts + 1) {
      return refuse("step " + name(e.step) + " attempt " + std::to_string(e.attempt) + " does not follow " +
                    std::to_string(step.attempts));
    }
    s.state = target;
    step.status = step_status::running;
    step.attempts = e.attempt;
    if (!step.started_at) {
      step.started_at = m.time;
    }
    step.finished_at.reset();
    step.error.clear();
    step.idempotency_key = give<E>(e.idempotency_key);
    step.next_attempt_at.reset();
    s.reason.clear();  // no longer waiting for anything
    s.reason_message.clear();
    return {};
  }

  status operator()(const retry_scheduled& e) {
    auto& step = s.step(e.step);
    if (s.state != state_of(e.step) || step.status != step_status::failed) {
      return refuse("a retry of " + name(e.step) + " is scheduled only after it failed (state " + name(s.state) + ")");
    }
    if (e.attempt != step.attempts + 1) {
      return refuse("retry attempt " + std::to_string(e.attempt) + " does not follow " + std::to_string(step.attempts));
    }
    step.next_attempt_at = e.due;
    return {};
  }

  status operator()(const request_waiting& e) {
    if (s.state != lifecycle_state::queued) {
      return refuse("only a queued request waits, not " + name(s.state));
    }
    s.reason = e.reason;
    s.reason_message.clear();
    return {};
  }

  status check_running(step_kind k, std::uint32_t attempt) {
    const auto& step = s.step(k);
    if (s.state != state_of(k) || step.status != step_status::running) {
      return refuse("step " + name(k) + " is not running (state " + name(s.state) + ")");
    }
    if (attempt != step.attempts) {
      return refuse("step " + name(k) + " outcome for attempt " + std::to_string(attempt) +
                    " but the current attempt is " + std::to_string(step.attempts));
    }
    return {};
  }

  template <event_of<step_succeeded> E>
  status operator()(E&& e) {
    if (auto st = check_running(e.step, e.attempt); !st) {
      return st;
    }
    auto& step = s.step(e.step);
    step.status = step_status::succeeded;
    step.finished_at = m.time;
    for (auto& [k, v] : e.endpoints) {
      s.endpoints.insert_or_assign(k, give<E>(v));
    }
    return {};
  }

  status operator()(const step_failed& e) {
    if (auto st = check_running(e.step, e.attempt); !st) {
      return st;
    }
    auto& step = s.step(e.step);
    step.status = step_status::failed;
    step.finished_at = m.time;
    step.error = e.message.empty() ? e.code : e.message;
    return {};
  }

  resource* find(std::string_view kind, std::string_view id) {
    for (auto& r : s.resources) {
      if (r.kind == kind && r.id == id) {
        return &r;
      }
    }
    return nullptr;
  }

  template <event_of<resource_allocated> E>
  status operator()(E&& e) {
    if (s.state != state_of(e.step)) {
      return refuse("a resource of step " + name(e.step) + " cannot be allocated in state " + name(s.state));
    }
    if (find(e.kind, e.resource_id) != nullptr) {
      return refuse("resource " + e.kind + " " + e.resource_id + " is already recorded");
    }
    s.resources.push_back(resource{give<E>(e.kind), give<E>(e.resource_id), give<E>(e.name), e.step,
                                   give<E>(e.idempotency_key), false});
    return {};
  }

  status operator()(const resource_released& e) {
    if (s.state != lifecycle_state::rolling_back) {
      return refuse("resources are released only while rolling_back, not " + name(s.state));
    }
    if (auto* r = find(e.kind, e.resource_id)) {
      if (r->released) {
        return refuse("resource " + e.kind + " " + e.resource_id + " was already released");
      }
      r->released = true;
    } else {
      // Found at the provider by the request's tag but never recorded (e.g. created just
      // before a crash): kept in the history as released.
      s.resources.push_back(resource{e.kind, e.resource_id, "", step_kind::allocate, "", true});
    }
    return {};
  }

  template <event_of<orphan_found> E>
  status operator()(E&& e) {
    if (!is_at_rest(s.state)) {
      return refuse("orphans are reclaimed only from a request at rest, not " + name(s.state));
    }
    if (find(e.kind, e.resource_id) != nullptr) {
      // Held (never an orphan), or already recorded: the reconciler only retries its release.
      return refuse("resource " + e.kind + " " + e.resource_id + " is already recorded");
    }
    s.resources.push_back(resource{give<E>(e.kind), give<E>(e.resource_id), give<E>(e.name), e.step,
                                   give<E>(e.idempotency_key), true});
    return {};
  }

  status operator()(const request_completed&) {
    if (!transition_allowed(s.state, lifecycle_state::completed)) {
      return bad_transition(s.state, lifecycle_state::completed);
    }
    if (s.state == lifecycle_state::verifying && s.step(step_kind::verify).status != step_status::succeeded) {
      return refuse("cannot complete before verify succeeded");
    }
    s.state = lifecycle_state::completed;
    return {};
  }

  status operator()(const request_failed& e) {
    if (!transition_allowed(s.state, lifecycle_state::failed)) {
      return bad_transition(s.state, lifecycle_state::failed);
    }
    fail_running_step(e.message.empty() ? e.code : e.message);
    s.state = lifecycle_state::failed;
    s.reason = e.code;
    s.reason_message = e.message;
    return {};
  }

  status operator()(const approval_required& e) {
    if (s.state != lifecycle_state::queued) {
      return bad_transition(s.state, lifecycle_state::pending_approval);
    }
    s.state = lifecycle_state::pending_approval;
    s.approval_rule = e.rule_id;
    s.approval_rule_name = e.rule_name;
    s.reason = "approval_required";
    s.reason_message = "waiting for approval (rule " + e.rule_name + ")";
    return {};
  }

  status operator()(const request_approved&) {
    if (s.state != lifecycle_state::pending_approval) {
      return refuse("only a request pending approval can be approved, not one " + name(s.state));
    }
    s.state = lifecycle_state::queued;
    s.reason.clear();
    s.reason_message.clear();
    return {};
  }

  status operator()(const request_rejected& e) {
    if (s.state != lifecycle_state::pending_approval) {
      return refuse("only a request pending approval can be rejected, not one " + name(s.state));
    }
    s.state = lifecycle_state::failed;
    s.reason = "rejected";
    s.reason_message = e.reason;
    return {};
  }

  void fail_running_step(const std::string& why) {
    if (auto k = step_of(s.state)) {
      auto& step = s.step(*k);
      if (step.status == step_status::running || step.status == step_status::awaiting_input) {
        step.status = step_status::failed;
        step.finished_at = m.time;
        step.error = why;
      }
      step.next_attempt_at.reset();
    }
  }

  status operator()(const request_cancelled& e) {
    if (!transition_allowed(s.state, lifecycle_state::failed)) {
      return refuse("a " + name(s.state) + " request cannot be cancelled");
    }
    fail_running_step("cancelled");
    s.state = lifecycle_state::failed;
    s.reason = "cancelled";
    s.reason_message = e.reason;
    return {};
  }

  status operator()(const action_requested& e) {
    const bool ok = (e.action == service_action::suspend && s.state == lifecycle_state::completed) ||
                    (e.action == service_action::reactivate && s.state == lifecycle_state::suspended);
    if (!ok) {
      return refuse("cannot " + std::string{enum_name(e.action)} + " a " + name(s.state) + " request");
    }
    if (s.pending_action != 0) {
      return refuse("another action is in progress");
    }
    s.pending_action = static_cast<std::uint8_t>(e.action);
    s.action_reason = e.reason;
    s.action_error.clear();
    return {};
  }

  status operator()(const request_suspended&) {
    if (s.state != lifecycle_state::completed || s.pending_action != static_cast<std::uint8_t>(service_action::suspend)) {
      return refuse("suspended without a pending suspend (state " + name(s.state) + ")");
    }
    s.state = lifecycle_state::suspended;
    s.pending_action = 0;
    s.reason = "suspended";
    s.reason_message = s.action_reason;
    return {};
  }

  status operator()(const request_reactivated&) {
    if (s.state != lifecycle_state::suspended ||
        s.pending_action != static_cast<std::uint8_t>(service_action::reactivate)) {
      return refuse("reactivated without a pending reactivate (state " + name(s.state) + ")");
    }
    s.state = lifecycle_state::completed;
    s.pending_action = 0;
    s.reason.clear();
    s.reason_message.clear();
    return {};
  }

  status operator()(const action_failed& e) {
    if (s.pending_action != static_cast<std::uint8_t>(e.action)) {
      return refuse("no pending " + std::string{enum_name(e.action)} + " to fail");
    }
    s.pending_action = 0;
    s.action_error = e.code + ": " + e.message;
    return {};
  }

  template <event_of<credentials_delivered> E>
  status operator()(E&& e) {
    if (s.state == lifecycle_state::rolled_back) {
      return refuse("credentials for a rolled back request");
    }
    s.credentials_sealed = give<E>(e.sealed);
    s.credential_fields = give<E>(e.fields_present);
    return {};
  }

  status operator()(const input_requested& e) {
    auto& step = s.step(e.step);
    if (s.state != state_of(e.step) || step.status != step_status::running) {
      return refuse("input can be awaited only by the running step, not in " + name(s.state));
    }
    step.status = step_status::awaiting_input;
    return {};
  }

  status operator()(const input_provided& e) {
    auto& step = s.step(e.step);
    if (s.state != state_of(e.step) || step.status != step_status::awaiting_input) {
      return make_error(errc::conflict, "the request is not awaiting manual input");
    }
    step.status = step_status::succeeded;
    step.finished_at = m.time;
    for (const auto& [k, v] : e.endpoints) {
      s.endpoints.insert_or_assign(k, v);
    }
    return {};
  }

  status operator()(const rollback_started& e) {
    if (!transition_allowed(s.state, lifecycle_state::rolling_back)) {
      return bad_transition(s.state, lifecycle_state::rolling_back);
    }
    s.pending_action = 0;
    if (s.state != lifecycle_state::failed) {
      s.reason = e.reason;
      s.reason_message.clear();
    }
    s.state = lifecycle_state::rolling_back;
    return {};
  }

  status operator()(const request_rolled_back&) {
    if (!transition_allowed(s.state, lifecycle_state::rolled_back)) {
      return bad_transition(s.state, lifecycle_state::rolled_back);
    }
    for (const auto& r : s.resources) {
      if (!r.released) {
        return refuse("cannot finish rollback: " + r.kind + " " + r.id + " is not released");
      }
    }
    s.state = lifecycle_state::rolled_back;
    return {};
  }
};

struct cluster_folder {
  cluster_state& s;
  const event_meta& m;

  status operator()(const cluster_registered& e) {
    if (s.exists()) {
      return make_error(errc::conflict, "cluster " + s.id + " is already registered");
    }
    s.id = e.cluster_id;
    s.name = e.name;
    s.type = e.type;
    s.region = e.region;
    s.endpoint = e.endpoint;
    s.capacity = e.capacity;
    s.simulation = e.simulation;
    s.enabled = e.enabled;
    s.is_default = e.is_default;
    s.health = e.health;
    s.settings_json = e.settings_json;
    s.credentials_sealed = e.credentials_sealed;
    s.created_at = m.time;
    return {};
  }

  status operator()(const cluster_updated& e) {
    if (!s.exists()) {
      return make_error(errc::not_found, "cluster update before registration");
    }
    if (e.name) s.name = *e.name;
    if (e.endpoint) s.endpoint = *e.endpoint;
    if (e.capacity) s.capacity = *e.capacity;
    if (e.simulation) s.simulation = *e.simulation;
    if (e.enabled) s.enabled = *e.enabled;
    if (e.is_default) s.is_default = *e.is_default;
    if (e.health) s.health = *e.health;
    if (e.settings_json) s.settings_json = *e.settings_json;
    if (e.credentials_sealed) s.credentials_sealed = *e.credentials_sealed;
    return {};
  }

  status operator()(const cluster_tested& e) {
    s.last_test = e;
    s.last_tested_at = m.time;
    return {};
  }
};

struct rule_folder {
  rule_state& s;
  const event_meta& m;

  status operator()(const rule_created& e) {
    if (s.exists()) {
      return make_error(errc::conflict, "rule " + s.id + " already exists");
    }
    s.id = e.rule_id;
    s.name = e.name;
    s.tenant = e.tenant;
    s.priority = e.priority;
    s.conditions = e.conditions;
    s.created_at = m.time;
    return {};
  }

  status operator()(const rule_deleted&) {
    if (s.deleted) {
      return make_error(errc::conflict, "rule " + s.id + " is already deleted");
    }
    s.deleted = true;
    return {};
  }
};

struct tenant_folder {
  tenant_state& s;
  const event_meta& m;

  status operator()(const tenant_created& e) {
    if (s.exists()) {
      return make_error(errc::conflict, "tenant " + s.id + " already exists");
    }
    s.id = e.tenant_id;
    s.name = e.name;
    s.token_sha256 = e.token_sha256;
    s.quota = e.quota;
    s.created_at = m.time;
    return {};
  }

  status operator()(const tenant_quota_set& e) {
    if (!s.exists()) {
      return make_error(errc::not_found, "quota set before the tenant was created");
    }
    s.quota = e.quota;
    return {};
  }

  status operator()(const tenant_token_rotated& e) {
    if (!s.exists()) {
      return make_error(errc::not_found, "token rotated before the tenant was created");
    }
    s.token_sha256 = e.token_sha256;
    return {};
  }
};

template <class Folder, class State, class Event>
status fold_in_place(State& state, Event&& event, const event_meta& meta) {
  if (auto st = check_sequence(state, meta); !st) {
    return st;
  }
  using variant = std::remove_cvref_t<Event>;
  if (!std::holds_alternative<std::variant_alternative_t<0, variant>>(event) && !state.exists()) {
    return make_error(errc::not_found, "event before the aggregate was created");
  }
  // Every handler checks all its preconditions before it changes anything.
  Folder folder{state, meta};
  if (auto st = std::visit(folder, std::forward<Event>(event)); !st) {
    return st;
  }
  state.version = meta.sequence;
  state.updated_at = meta.time;
  return {};
}

template <class State, class Event>
result<State> fold_copy(State state, const Event& event, const event_meta& meta) {
  if (auto st = apply_to(state, event, meta); !st) {
    return std::move(st).err();
  }
  return state;
}

template <class State, class Event, auto Narrow>
result<State> fold_all(std::span<const stored_event> events, State state = {}) {
  for (const auto& stored : events) {
    auto any = decode(stored);
    if (!any) {
      return std::move(any).err();
    }
    auto narrowed = Narrow(std::move(*any));
    if (!narrowed) {
      return make_error(errc::corrupt, "event " + std::string{type_name(stored.type_id)} + " in stream " +
                                           stored.stream + " belongs to another aggregate");
    }
    if (auto st = apply_to(state, std::move(*narrowed), event_meta{stored.sequence, stored.time}); !st) {
      return std::move(st).err();
    }
  }
  return state;
}

}  // namespace

status apply_to(request_state& state, const request_event& event, const event_meta& meta) {
  return fold_in_place<request_folder>(state, event, meta);
}

status apply_to(request_state& state, request_event&& event, const event_meta& meta) {
  return fold_in_place<request_folder>(state, std::move(event), meta);
}

void restamp(request_state& state, timestamp from, timestamp to) noexcept {
  const auto fix = [&](timestamp& t) {
    if (t == from) {
      t = to;
    }
  };
  fix(state.created_at);
  fix(state.updated_at);
  for (auto& step : state.steps) {
    if (step.started_at) {
      fix(*step.started_at);
    }
    if (step.finished_at) {
      fix(*step.finished_at);
    }
  }
}

status apply_to(cluster_state& state, const cluster_event& event, const event_meta& meta) {
  return fold_in_place<cluster_folder>(state, event, meta);
}

status apply_to(tenant_state& state, const tenant_event& event, const event_meta& meta) {
  return fold_in_place<tenant_folder>(state, event, meta);
}

status apply_to(rule_state& state, const rule_event& event, const event_meta& meta) {
  return fold_in_place<rule_folder>(state, event, meta);
}

result<request_state> apply(request_state state, const request_event& event, const event_meta& meta) {
  return fold_copy(std::move(state), event, meta);
}

result<cluster_state> apply(cluster_state state, const cluster_event& event, const event_meta& meta) {
  return fold_copy(std::move(state), event, meta);
}

result<tenant_state> apply(tenant_state state, const tenant_event& event, const event_meta& meta) {
  return fold_copy(std::move(state), event, meta);
}

result<request_state> fold_request(std::span<const stored_event> events) {
  return fold_all<request_state, request_event, as_request_event>(events);
}

result<cluster_state> fold_cluster(std::span<const stored_event> events) {
  return fold_all<cluster_state, cluster_event, as_cluster_event>(events);
}

result<tenant_state> fold_tenant(std::span<const stored_event> events) {
  return fold_all<tenant_state, tenant_event, as_tenant_event>(events);
}

result<rule_state> fold_rule(std::span<const stored_event> events) {
  return fold_all<rule_state, rule_event, as_rule_event>(events);
}

result<webhook_state> fold_webhook(std::span<const stored_event> events) {
  return fold_all<webhook_state, webhook_event, as_webhook_event>(events);
}

result<webhook_state> fold_webhook(webhook_state snapshot, std::span<const stored_event> tail) {
  if (!tail.empty() && tail.front().sequence != snapshot.version + 1) {
    return make_error(errc::corrupt, "stream " + tail.front().stream + ": a snapshot at version " +
                                         std::to_string(snapshot.version) + " goes on at sequence " +
                                         std::to_string(snapshot.version + 1) + ", not " +
                                         std::to_string(tail.front().sequence));
  }
  return fold_all<webhook_state, webhook_event, as_webhook_event>(tail, std::move(snapshot));
}

}  // namespace prov::events
