// Stuck detection. Request actors note every change (state and the time of their
// last event) on the context's progress board; a periodic scan finds requests in an active
// state or rolling back whose last event is older than `stuck_after` and reports them to the
// supervisor, which has the request's actor (respawned if it died) fail it with reason
// `stuck`, or retry its rollback. A request is reported again only after another
// `stuck_after` without progress.

#include <caf/all.hpp>

#include "prov/actors/spawn.hpp"
#include "prov/core/log.hpp"
#include "prov/events/codec.hpp"

namespace prov::actors {

namespace {

struct watchdog_state {
  static inline const char* name = "watchdog";
  const engine_context* ctx = nullptr;
  std::uint64_t reports = 0;
};

using self_ptr = watchdog_actor::stateful_pointer<watchdog_state>;

void scan(self_ptr self) {
  auto& st = self->state;
  const auto limit = std::chrono::duration_cast<std::chrono::microseconds>(st.ctx->pipeline.watchdog.stuck_after);
  st.ctx->progress->scan(st.ctx->clk->elapsed(), limit,
                         [&](const std::string& id, events::lifecycle_state state, std::chrono::microseconds idle) {
                           ++st.reports;
                           log::warn("request_stuck",
                                     {{"request", id},
                                      {"state", events::enum_name(state)},
                                      {"no_progress_s", std::chrono::duration_cast<std::chrono::seconds>(idle).count()}});
                           self->send(st.ctx->supervisor, stuck_atom::value, id);
                         });
  self->delayed_send(self, st.ctx->pipeline.watchdog.scan_every, scan_atom::value);
}

watchdog_actor::behavior_type watchdog_impl(self_ptr self, const engine_context* ctx) {
  self->state.ctx = ctx;
  self->delayed_send(self, ctx->pipeline.watchdog.scan_every, scan_atom::value);
  return {
      [=](scan_atom) { scan(self); },
      [=](status_atom) { return self->state.reports; },
  };
}

}  // namespace

watchdog_actor spawn_watchdog(caf::actor_system& sys, const engine_context& ctx) {
  return sys.spawn(watchdog_impl, &ctx);
}

}  // namespace prov::actors
