#include "prov/events/webhook.hpp"

#include <algorithm>

#include "prov/events/catalog.hpp"

namespace prov::events {

namespace {

error refuse(errc code, std::string message) { return make_error(code, std::move(message)); }

// Each handler checks every precondition before it changes a field.
struct webhook_folder {
  webhook_state& s;
  const event_meta& m;

  status operator()(const webhook_registered& e) {
    if (s.exists()) {
      return refuse(errc::conflict, "webhook " + s.id + " already exists");
    }
    s.id = e.webhook_id;
    s.tenant = e.tenant;
    s.url = e.url;
    s.events = e.events;
    s.secret_sealed = e.secret_sealed;
    s.active = true;
    s.active_since = m.sequence;
    s.created_at = m.time;
    return {};
  }

  status operator()(const webhook_deactivated& e) {
    if (s.deleted || !s.active) {
      return {};  // a fact recorded without an expected version: nothing left to change
    }
    s.active = false;
    s.deactivation_reason = e.reason;
    s.deactivated_at = m.time;
    return {};
  }

  status operator()(const webhook_reactivated&) {
    if (s.deleted) {
      return refuse(errc::not_found, "webhook " + s.id + " is deleted");
    }
    if (s.active) {
      return refuse(errc::conflict, "webhook " + s.id + " is active");
    }
    s.active = true;
    s.active_since = m.sequence;
    s.consecutive_failures = 0;
    s.deactivation_reason.clear();
    s.deactivated_at.reset();
    return {};
  }

  status operator()(const webhook_deleted&) {
    if (s.deleted) {
      return refuse(errc::not_found, "webhook " + s.id + " is already deleted");
    }
    s.deleted = true;
    s.active = false;
    return {};
  }

  status operator()(const webhook_delivery_attempted& e) {
    ++s.attempts;
    switch (e.outcome) {
      case delivery_outcome::delivered:
        ++s.delivered;
        s.consecutive_failures = 0;
        break;
      case delivery_outcome::failed:
        ++s.failed;
        ++s.consecutive_failures;
        break;
      case delivery_outcome::dropped:
        ++s.dropped;
        break;
    }
    s.last_attempt_at = e.attempted_at;
    return {};
  }
};

}  // namespace

bool webhook_state::subscribes(std::string_view type) const noexcept {
  return std::any_of(events.begin(), events.end(), [&](const std::string& t) { return t == "*" || t == type; });
}

std::string webhook_stream(std::string_view webhook_id) { return "webhook/" + std::string{webhook_id}; }

status apply_to(webhook_state& state, const webhook_event& event, const event_meta& meta) {
  if (meta.sequence != state.version + 1) {
    return make_error(errc::version_conflict, "event sequence " + std::to_string(meta.sequence) +
                                                  " does not follow version " + std::to_string(state.version));
  }
  if (!std::holds_alternative<webhook_registered>(event) && !state.exists()) {
    return make_error(errc::not_found, "event before the webhook was registered");
  }
  webhook_folder folder{state, meta};
  if (auto st = std::visit(folder, event); !st) {
    return st;
  }
  state.version = meta.sequence;
  state.updated_at = meta.time;
  return {};
}

}  // namespace prov::events
