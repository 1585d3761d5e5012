// Keeps at most one actor per live request. Spawns on demand (a submit, a resume at start-up,
// a stuck report, later a command), monitors each, and forgets it when it stops
// (passivation). Draining (graceful shutdown) asks every actor to finish what it has in
// flight, and spawns nothing new.

#include <optional>
#include <unordered_map>
#include <unordered_set>

#include <caf/all.hpp>

#include "prov/actors/spawn.hpp"
#include "prov/core/log.hpp"

namespace prov::actors {

namespace {

struct request_supervisor_state {
  static inline const char* name = "request_supervisor";
  std::unordered_map<std::string, request_actor> live;
  std::unordered_map<caf::actor_addr, std::string> ids;
  /// Requests told to resume while their actor was live: if that actor was already on its way
  /// out (passivating), the resume died with it, so the request gets a fresh actor.
  std::unordered_set<std::string> resumed;
  bool draining = false;
};

using self_ptr = request_supervisor_actor::stateful_pointer<request_supervisor_state>;

request_actor ensure(self_ptr self, const engine_context* ctx, const std::string& id, bool& spawned) {
  auto& st = self->state;
  spawned = false;
  if (auto it = st.live.find(id); it != st.live.end()) {
    return it->second;
  }
  auto actor = spawn_request_actor(self->system(), *ctx, id);
  self->monitor(actor);
  st.ids.emplace(actor.address(), id);
  st.live.emplace(id, actor);
  spawned = true;
  return actor;
}

// Starts (or resumes) the actor of `id`. A fresh actor of a request just submitted takes
// `initial`, the state its submission committed; any other reads its stream.
void start(self_ptr self, const engine_context* ctx, const std::string& id,
           std::optional<events::request_state> initial) {
  if (self->state.draining) {
    return;
  }
  bool spawned = false;
  auto actor = ensure(self, ctx, id, spawned);
  if (!spawned) {
    self->state.resumed.insert(id);
  }
  if (spawned && initial) {
    self->send(actor, resume_atom::value, std::move(*initial));
  } else {
    self->send(actor, resume_atom::value);
  }
}

request_supervisor_actor::behavior_type request_supervisor_impl(self_ptr self, const engine_context* ctx) {
  self->set_down_handler([=](const caf::down_msg& down) {
    auto it = self->state.ids.find(down.source);
    if (it == self->state.ids.end()) {
      return;
    }
    if (down.reason && down.reason != caf::exit_reason::normal) {
      log::error("request_actor_stopped", {{"request", it->second}, {"reason", caf::to_string(down.reason)}});
    }
    const auto id = it->second;
    self->state.live.erase(id);
    self->state.ids.erase(it);
    if (self->state.resumed.erase(id) != 0 && !self->state.draining) {
      bool spawned = false;
      auto actor = ensure(self, ctx, id, spawned);
      self->send(actor, resume_atom::value);
    }
  });
  // Stopping the supervisor stops every request actor first, without letting them act on
  // the errors their pending calls would now see: what was in flight resumes on the next start.
  self->set_exit_handler([=](const caf::exit_msg& msg) {
    for (const auto& [id, actor] : self->state.live) {
      self->send_exit(actor, msg.reason);
    }
    self->state.live.clear();
    self->state.ids.clear();
    self->quit(msg.reason);
  });
  return {
      [=](start_atom, const std::string& id) { start(self, ctx, id, std::nullopt); },
      [=](start_atom, const std::string& id, events::request_state& initial) {
        start(self, ctx, id, std::move(initial));
      },
      [=](stuck_atom, const std::string& id) {
        if (self->state.draining) {
          return;
        }
        bool spawned = false;
        auto actor = ensure(self, ctx, id, spawned);
        if (spawned) {
          self->send(actor, resume_atom::value);
        }
        self->send(actor, stuck_atom::value);
      },
      [=](count_atom) { return self->state.live.size(); },
      [=](drain_atom) -> caf::result<std::size_t> {
        auto& st = self->state;
        st.draining = true;
        if (st.live.empty()) {
          return std::size_t{0};
        }
        auto promise = self->make_response_promise<std::size_t>();
        auto left = std::make_shared<std::size_t>(st.live.size());
        const auto total = st.live.size();
        auto one_done = [promise, left, total]() mutable {
          if (--*left == 0) {
            promise.deliver(total);
          }
        };
        for (const auto& [id, actor] : st.live) {
          self->request(actor, caf::infinite, drain_atom::value).then([one_done](bool) mutable { one_done(); },
                                                                      [one_done](caf::error&) mutable { one_done(); });
        }
        return promise;
      },
  };
}

}  // namespace

request_supervisor_actor spawn_request_supervisor(caf::actor_system& sys, const engine_context& ctx) {
  return sys.spawn(request_supervisor_impl, &ctx);
}

}  // namespace prov::actors
