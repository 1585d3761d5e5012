// engine::runtime: a snapshot of what the engine's actors report about themselves, gathered
// without a blocking wait, so `/metrics` and the cluster views hold no I/O thread while an
// actor works through a long mailbox.

#include <memory>

#include "detail/engine_impl.hpp"

namespace prov::actors {

namespace {

// The round's answers so far; the last reply (or timeout) in hands them over.
struct gathering {
  engine_runtime out;
  int pending = 0;
  std::function<void(engine_runtime)> done;
};

}  // namespace

void engine::impl::probe(bool everything, std::function<void(engine_runtime)> done) {
  if (stopping.load()) {
    done(engine_runtime{});
    return;
  }
  auto g = std::make_shared<gathering>();
  g->done = std::move(done);
  const auto registry = ctx.registry;
  const auto sup = supervisor;
  const auto adm = ctx.admission;
  const auto dog = ctx.watchdog;
  const auto rec = reconciler;
  const auto hooks = webhooks ? webhooks->actor() : webhook_dispatcher_actor{};
  sys->spawn([=](caf::event_based_actor* self) {
    auto settle = [self, g] {
      if (--g->pending == 0) {
        auto answer = std::move(g->done);
        answer(std::move(g->out));
        self->quit();
      }
    };
    // Asks `target`, when it runs, and stores the reply with `keep`; a missing or late reply
    // leaves its part empty.
    auto ask = [&](const auto& target, auto keep, auto... xs) {
      if (!target) {
        return;
      }
      ++g->pending;
      self->request(target, runtime_timeout, xs...).then(keep, [settle](caf::error&) { settle(); });
    };
    ++g->pending;  // held while the asks go out, so an early reply cannot end the round
    if (everything) {
      ask(sup, [g, settle](std::size_t n) { g->out.live_requests = n; settle(); }, count_atom::value);
      ask(adm, [g, settle](const admission_status& s) { g->out.admission = s; settle(); }, status_atom::value);
      ask(dog, [g, settle](std::uint64_t n) { g->out.stuck_reports = n; settle(); }, status_atom::value);
      ask(rec, [g, settle](const reconcile_status& s) { g->out.reconciler = s; settle(); }, status_atom::value);
      ask(hooks, [g, settle](const webhook_dispatcher_status& s) { g->out.webhooks = s; settle(); }, status_atom::value);
    }
    ask(registry,
        [self, g, settle](const std::vector<cluster_choice>& running) {
          for (const auto& c : running) {
            if (!c.ok || !c.handle) {
              continue;
            }
            ++g->pending;
            self->request(c.handle, runtime_timeout, status_atom::value)
                .then([g, settle, id = c.cluster_id](const cluster_runtime& r) {
                        g->out.clusters[id] = r;
                        settle();
                      },
                      [settle](caf::error&) { settle(); });
          }
          settle();
        },
        clusters_atom::value);
    settle();
  });
}

void engine::runtime(std::function<void(engine_runtime)> done) { _impl->probe(true, std::move(done)); }

void engine::cluster_runtimes(std::function<void(std::map<std::string, cluster_runtime>)> done) {
  _impl->probe(false, [done = std::move(done)](engine_runtime r) { done(std::move(r.clusters)); });
}

}  // namespace prov::actors
