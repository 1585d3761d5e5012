// Admission into the active steps: at most `tenant_max_active` requests of a tenant
// and `max_active` in total run the pipeline at once. Waiting requests queue FIFO per tenant;
// when a slot frees, tenants take turns (round-robin over the tenants that have waiters and
// room under their own limit), so one tenant's long queue delays another tenant's first
// request by at most one slot. A tenant with waiters at its own limit is out of the turn
// order until one of its requests leaves (then it rejoins at the back): a freed slot costs
// the same whether 10 or 10 000 tenants wait at their limits.

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
  /// Lanes with waiters and room under their own limit, in turn order. Lanes are never removed
  /// and an unordered_map's elements never move, so it holds pointers.
  std::deque<lane*> ring;
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

// Puts `l` at the back of the turn order if it has waiters and room under its own limit.
void enqueue(self_ptr self, lane& l) {
  auto& st = self->state;
  if (!l.in_ring && !l.waiting.empty() && l.active < st.ctx->pipeline.admission.tenant_max_active) {
    l.in_ring = true;
    st.ring.push_back(&l);
  }
}

// Hands free slots to waiters, one tenant at a time in ring order.
void dispatch(self_ptr self) {
  auto& st = self->state;
  const auto& policy = st.ctx->pipeline.admission;
  if (st.draining) {
    return;
  }
  while (st.total_active < policy.max_active && !st.ring.empty()) {
    auto& l = *st.ring.front();
    st.ring.pop_front();
    l.in_ring = false;
    // Forget waiters whose request is no longer waiting (its actor stopped).
    while (!l.waiting.empty() && st.waiting.count(l.waiting.front().request) == 0) {
      l.waiting.pop_front();
    }
    if (l.waiting.empty() || l.active >= policy.tenant_max_active) {
      continue;  // a lane at its limit rejoins when one of its requests leaves
    }
    auto next = std::move(l.waiting.front());
    l.waiting.pop_front();
    const auto tenant = st.waiting.extract(next.request);
    occupy(self, tenant.mapped(), next.request);
    self->send(next.actor, admitted_atom::value);
    enqueue(self, l);
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
  enqueue(self, l);
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
          enqueue(self, l);
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
