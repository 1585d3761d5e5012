// One actor per cluster: the single path to its provider. Later this is where the bulkhead
// (bounded concurrent calls), per-call timeout and circuit breaker live.

#include <functional>
#include <memory>
#include <unordered_map>

#include <caf/all.hpp>

#include "prov/actors/spawn.hpp"
#include "prov/core/log.hpp"

namespace prov::actors {

namespace {

struct cluster_actor_state {
  static inline const char* name = "cluster";
  const engine_context* ctx = nullptr;
  events::cluster_state cluster;
  std::unique_ptr<providers::provider> provider;
  std::uint64_t next_delivery = 0;
  std::unordered_map<std::uint64_t, std::function<void()>> deliveries;  ///< delayed replies
};

using self_ptr = cluster_actor::stateful_pointer<cluster_actor_state>;

// Answers now, or after the simulated duration of the call.
template <class Out>
caf::result<Out> reply_after(self_ptr self, std::chrono::milliseconds delay, Out out) {
  if (delay.count() <= 0) {
    return out;
  }
  auto promise = self->make_response_promise<Out>();
  const auto id = ++self->state.next_delivery;
  self->state.deliveries.emplace(id, [promise, out = std::move(out)]() mutable { promise.deliver(std::move(out)); });
  self->delayed_send(self, delay, deliver_atom::value, id);
  return promise;
}

cluster_actor::behavior_type cluster_actor_impl(self_ptr self, const engine_context* ctx,
                                                events::cluster_state cluster) {
  self->state.ctx = ctx;
  self->state.provider = providers::make_provider(cluster, ctx->providers);
  self->state.cluster = std::move(cluster);
  return {
      [=](run_step_atom, const providers::step_call& call) -> caf::result<providers::step_outcome> {
        auto out = self->state.provider->run_step(call);
        const auto delay = out.delay;
        return reply_after(self, delay, std::move(out));
      },
      [=](release_atom, const providers::release_call& call) -> caf::result<providers::release_outcome> {
        auto out = self->state.provider->release(call);
        const auto delay = out.delay;
        return reply_after(self, delay, std::move(out));
      },
      [=](sweep_atom, const std::string& request_id) -> caf::result<providers::sweep_outcome> {
        auto out = self->state.provider->sweep(request_id);
        const auto delay = out.delay;
        return reply_after(self, delay, std::move(out));
      },
      [=](inventory_atom) -> inventory_reply {
        auto items = self->state.provider->inventory();
        if (!items) {
          return inventory_reply{false, items.err(), {}};
        }
        return inventory_reply{true, {}, std::move(*items)};
      },
      [=](test_atom) -> caf::result<providers::connectivity_report> {
        auto report = self->state.provider->test_connectivity();
        const auto delay = report.latency;
        return reply_after(self, delay, std::move(report));
      },
      [=](update_atom, const events::cluster_state& updated) {
        self->state.provider = providers::make_provider(updated, self->state.ctx->providers);
        self->state.cluster = updated;
      },
      [=](deliver_atom, std::uint64_t id) {
        auto it = self->state.deliveries.find(id);
        if (it != self->state.deliveries.end()) {
          auto deliver = std::move(it->second);
          self->state.deliveries.erase(it);
          deliver();
        }
      },
  };
}

}  // namespace

cluster_actor spawn_cluster_actor(caf::actor_system& sys, const engine_context& ctx, events::cluster_state cluster) {
  return sys.spawn(cluster_actor_impl, &ctx, std::move(cluster));
}

}  // namespace prov::actors
