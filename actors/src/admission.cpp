// Admission into the active steps: at most `tenant_max_active` requests of a tenant
// and `max_active` in total run the pipeline at once. Waiting requests queue FIFO per tenant;
// when a slot frees, tenants take turns (round-robin over the tenants that have waiters), so
// one tenant's long queue delays another tenant's first request by at most one slot.

#include <deque>
#include <unordered_map>
#include <unordered_set>

#include <caf/all.hpp>

#include "prov/actors/spawn.hpp"
#include "prov/core/log.hpp"

namespace prov::actors {

namespace {

struct waiter {
  std::string request;
  request_actor actor;
};

struct lane {
  std::size_t active = 0;
  std::deque<waiter> waiting;
  bool in_ring = false;
};

struct admission_state {
  static inline const char* name = "admission";
  const engine_context* ctx = nullptr;
  std::unordered_map<std::string, lane> lanes;              ///< by tenant
  std::unordered_map<std::string, std::string> active;      ///< request -> tenant
  std::unordered_map<std::string, std::string> waiting;     ///< request -> tenant
  std::unordered_map<caf::actor_addr, std::string> watched; ///< request actor -> request
  std::deque<std::string> ring;                             ///< tenants with waiters, in turn order
  std::size_t total_active = 0;
  bool draining = false;
};

using self_ptr = admission_actor::stateful_pointer<admission_state>;

void watch(self_ptr self, const request_actor& actor, const std::string& request) {
  if (self->state.watched.emplace(actor.address(), request).second) {
    self->monitor(actor);
  }
}

void occupy(self_ptr self, const std::string& tenant, const std::string& request) {
  auto& st = self->state;
  if (st.active.emplace(request, tenant).second) {
    ++st.lanes[tenant].active;
    ++st.total_active;
  }
}

// Hands free slots to waiters, one tenant at a time in ring order.
void dispatch(self_ptr self) {
  auto& st = self->state;
  const auto& policy = st.ctx->pipeline.admission;
  if (st.draining) {
    return;
  }
  std::size_t idle_turns = 0;
  while (st.total_active < policy.max_active && !st.ring.empty() && idle_turns < st.ring.size()) {
    const auto tenant = st.ring.front();
    st.ring.pop_front();
    auto& l = st.lanes[tenant];
    // Forget waiters whose request is no longer waiting (its actor stopped).
    while (!l.waiting.empty() && st.waiting.count(l.waiting.front().request) == 0) {
      l.waiting.pop_front();
    }
    if (l.waiting.empty()) {
      l.in_ring = false;
      continue;
    }
    if (l.active >= policy.tenant_max_active) {
      st.ring.push_back(tenant);
      ++idle_turns;
      continue;
    }
    auto next = std::move(l.waiting.front());
    l.waiting.pop_front();
    st.waiting.erase(next.request);
    occupy(self, tenant, next.request);
    self->send(next.actor, admitted_atom::value);
    idle_turns = 0;
    if (!l.waiting.empty()) {
      st.ring.push_back(tenant);
    } else {
      l.in_ring = false;
    }
  }
}

void leave(self_ptr self, const std::string& request) {
  auto& st = self->state;
  st.waiting.erase(request);
  auto it = st.active.find(request);
  if (it == st.active.end()) {
    return;
  }
  auto& l = st.lanes[it->second];
  --l.active;
  --st.total_active;
  st.active.erase(it);
  dispatch(self);
}

admission_actor::behavior_type admission_impl(self_ptr self, const engine_context* ctx) {
  self->state.ctx = ctx;
  self->set_down_handler([=](const caf::down_msg& down) {
    auto it = self->state.watched.find(down.source);
    if (it != self->state.watched.end()) {
      const auto request = it->second;
      self->state.watched.erase(it);
      leave(self, request);
    }
  });
  return {
      [=](admit_atom, const std::string& tenant, const std::string& request, bool already_active,
          const request_actor& actor) -> bool {
        auto& st = self->state;
        const auto& policy = st.ctx->pipeline.admission;
        watch(self, actor, request);
        if (st.active.count(request) != 0) {
          return true;
        }
        auto& l = st.lanes[tenant];
        // Requests already past admission (resumed after a restart) keep their place.
        const bool free = l.waiting.empty() && l.active < policy.tenant_max_active && st.total_active < policy.max_active;
        if (already_active || (free && !st.draining)) {
          occupy(self, tenant, request);
          return true;
        }
        if (st.waiting.emplace(request, tenant).second) {
          l.waiting.push_back(waiter{request, actor});
          if (!l.in_ring) {
            l.in_ring = true;
            st.ring.push_back(tenant);
          }
        }
        return false;
      },
      [=](leave_atom, const std::string& request) { leave(self, request); },
      [=](drain_atom) { self->state.draining = true; },
      [=](status_atom) {
        auto& st = self->state;
        std::size_t tenants = 0;
        for (const auto& [tenant, l] : st.lanes) {
          tenants += l.waiting.empty() ? 0 : 1;
        }
        return admission_status{st.total_active, st.waiting.size(), tenants};
      },
  };
}

}  // namespace

admission_actor spawn_admission(caf::actor_system& sys, const engine_context& ctx) {
  return sys.spawn(admission_impl, &ctx);
}

}  // namespace prov::actors
