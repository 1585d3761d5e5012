// Stuck detection. Request actors report every change (state and the time of their
// last event); a periodic scan finds requests in an active state or rolling back whose last
// event is older than `stuck_after` and reports them to the supervisor, which has the
// request's actor (respawned if it died) fail it with reason `stuck`, or retry its rollback.
// A request is reported again only after another `stuck_after` without progress.

#include <unordered_map>

#include <caf/all.hpp>

#include "prov/actors/spawn.hpp"
#include "prov/core/log.hpp"
#include "prov/events/codec.hpp"

namespace prov::actors {

namespace {

struct watched_request {
  events::lifecycle_state state = events::lifecycle_state::queued;
  timestamp last_progress{};
  timestamp reported{};
};

struct watchdog_state {
  static inline const char* name = "watchdog";
  const engine_context* ctx = nullptr;
  std::unordered_map<std::string, watched_request> requests;
  std::uint64_t reports = 0;
};

using self_ptr = watchdog_actor::stateful_pointer<watchdog_state>;

bool watched(events::lifecycle_state s) {
  return events::step_of(s).has_value() || s == events::lifecycle_state::rolling_back;
}

void scan(self_ptr self) {
  auto& st = self->state;
  const auto now = st.ctx->clk->now();
  const auto limit = std::chrono::duration_cast<std::chrono::microseconds>(st.ctx->pipeline.watchdog.stuck_after);
  for (auto& [id, r] : st.requests) {
    if (now - r.last_progress > limit && now - std::max(r.reported, r.last_progress) > limit) {
      r.reported = now;
      ++st.reports;
      log::warn("request_stuck", {{"request", id},
                                  {"state", events::enum_name(r.state)},
                                  {"no_progress_s", std::chrono::duration_cast<std::chrono::seconds>(now - r.last_progress).count()}});
      self->send(st.ctx->supervisor, stuck_atom::value, id);
    }
  }
  self->delayed_send(self, st.ctx->pipeline.watchdog.scan_every, scan_atom::value);
}

watchdog_actor::behavior_type watchdog_impl(self_ptr self, const engine_context* ctx) {
  self->state.ctx = ctx;
  self->delayed_send(self, ctx->pipeline.watchdog.scan_every, scan_atom::value);
  return {
      [=](progress_atom, const std::string& id, events::lifecycle_state state, timestamp at, bool person) {
        auto& requests = self->state.requests;
        if (!watched(state) || person) {
          requests.erase(id);
          return;
        }
        auto& r = requests[id];
        r.state = state;
        r.last_progress = std::max(r.last_progress, at);
      },
      [=](scan_atom) { scan(self); },
      [=](status_atom) { return self->state.reports; },
  };
}

}  // namespace

watchdog_actor spawn_watchdog(caf::actor_system& sys, const engine_context& ctx) {
  return sys.spawn(watchdog_impl, &ctx);
}

}  // namespace prov::actors
