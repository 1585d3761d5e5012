// One actor per cluster: the single path to its provider, with the protections of.
//
// - Bulkhead: at most `max_concurrent` provider calls run at once; up to `max_queued` wait
//   in FIFO order; beyond that a call fails fast (retryable "bulkhead_full").
// - Timeout: a call not answered inline is answered with a retryable "timeout" after
//   `call_timeout` (one answered inline arms no timer). The slot stays taken until a
//   blocking call really returns, so a dead API cannot get more threads.
// - Circuit breaker: closed -> open after N consecutive failures or a failure ratio over the
//   last calls; while open, calls fail fast (retryable "circuit_open") so requests wait on
//   their backoff instead of piling onto a dead cluster; after the cool-down one probe call
//   goes through (half-open) and its outcome closes or re-opens the breaker.
//
// Only provider-side trouble counts as a failure: a retryable error or a timeout. A permanent
// error (bad spec) means the cluster answered, so it counts as a success for the breaker.

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <caf/all.hpp>

#include "prov/actors/spawn.hpp"
#include "prov/core/log.hpp"
#include "prov/core/thread_name.hpp"

namespace prov::actors {

namespace {

using caf_time = caf::actor_clock::time_point;

// Worker threads for blocking providers. Detached on purpose: a provider call stuck in the
// network must not block the actor system's shutdown; the threads finish their current job
// and exit once `stopping` is set.
struct worker_pool {
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::function<void()>> jobs;
  bool stopping = false;

  static std::shared_ptr<worker_pool> start(std::size_t threads) {
    auto pool = std::make_shared<worker_pool>();
    for (std::size_t i = 0; i < threads; ++i) {
      std::thread{[pool] {
        name_this_thread("prov.provider");
        pool->run();
      }}.detach();
    }
    return pool;
  }

  void run() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock{mutex};
        wake.wait(lock, [&] { return stopping || !jobs.empty(); });
        if (jobs.empty()) {
          return;
        }
        job = std::move(jobs.front());
        jobs.pop_front();
      }
      job();
    }
  }

  void post(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> guard{mutex};
      jobs.push_back(std::move(job));
    }
    wake.notify_one();
  }

  void stop() {
    {
      std::lock_guard<std::mutex> guard{mutex};
      stopping = true;
    }
    wake.notify_all();
  }
};

enum class breaker_state { closed, open, half_open };

struct call {
  bool counts = true;                        ///< subject to the breaker
  std::function<void()> run;                 ///< starts the provider call
  std::function<void()> finish;              ///< delivers the stored outcome
  std::function<void(std::string, std::string)> fail;  ///< delivers an error instead (code, message)
  std::function<bool()> failed;              ///< provider-side failure, for the breaker
  bool started = false;
  bool answered = false;                     ///< the requester got its reply (outcome or error)
  bool probe = false;                        ///< the half-open probe
};

struct cluster_actor_state {
  static inline const char* name = "cluster";
  const engine_context* ctx = nullptr;
  events::cluster_state cluster;
  std::shared_ptr<providers::provider> provider;
  std::shared_ptr<worker_pool> workers;

  std::uint64_t next_id = 0;
  std::unordered_map<std::uint64_t, call> calls;
  std::deque<std::uint64_t> queue;
  std::size_t in_flight = 0;

  breaker_state breaker = breaker_state::closed;
  caf_time opened_at{};
  bool probe_in_flight = false;
  std::uint32_t consecutive_failures = 0;
  std::deque<bool> window;  ///< recent outcomes, true = failure

  cluster_runtime counters;

  ~cluster_actor_state() {
    if (workers) {
      workers->stop();
    }
  }
};

using self_ptr = cluster_actor::stateful_pointer<cluster_actor_state>;

const breaker_policy& breaker_of(self_ptr self) { return self->state.ctx->pipeline.calls.breaker; }

void open_breaker(self_ptr self, std::string_view why) {
  auto& st = self->state;
  st.breaker = breaker_state::open;
  st.opened_at = self->clock().now();
  ++st.counters.breaker_opened;
  log::warn("circuit_opened", {{"cluster", st.cluster.id},
                               {"why", why},
                               {"consecutive_failures", st.consecutive_failures},
                               {"cooldown_ms", breaker_of(self).cooldown.count()}});
}

void record(self_ptr self, bool failure) {
  auto& st = self->state;
  const auto& policy = breaker_of(self);
  st.consecutive_failures = failure ? st.consecutive_failures + 1 : 0;
  st.window.push_back(failure);
  while (st.window.size() > policy.window) {
    st.window.pop_front();
  }
  if (failure) {
    ++st.counters.failures;
  }
  if (st.breaker == breaker_state::half_open) {
    return;  // the probe's outcome is handled by its own completion
  }
  if (st.breaker == breaker_state::closed && failure) {
    std::size_t failures = 0;
    for (bool f : st.window) {
      failures += f ? 1 : 0;
    }
    if (st.consecutive_failures >= policy.consecutive_failures) {
      open_breaker(self, "consecutive failures");
    } else if (st.window.size() >= policy.min_calls &&
               static_cast<double>(failures) >= policy.failure_ratio * static_cast<double>(st.window.size())) {
      open_breaker(self, "failure ratio");
    }
  }
}

// Whether a new call may go to the provider now; moves open -> half_open after the cool-down.
bool breaker_admits(self_ptr self, call& c) {
  auto& st = self->state;
  if (!c.counts || st.breaker == breaker_state::closed) {
    return true;
  }
  if (st.breaker == breaker_state::open && self->clock().now() - st.opened_at >= breaker_of(self).cooldown) {
    st.breaker = breaker_state::half_open;
    log::info("circuit_half_open", {{"cluster", st.cluster.id}});
  }
  if (st.breaker == breaker_state::half_open && !st.probe_in_flight) {
    st.probe_in_flight = true;
    c.probe = true;
    return true;
  }
  return false;
}

void pump(self_ptr self);
void arm_timeout(self_ptr self, std::uint64_t id);

// The call's provider work is over (outcome delivered now, or never coming): free its slot.
void complete(self_ptr self, std::uint64_t id) {
  auto& st = self->state;
  auto it = st.calls.find(id);
  if (it == st.calls.end()) {
    return;
  }
  auto& c = it->second;
  if (!c.answered) {
    c.answered = true;
    if (c.counts) {
      const bool failure = c.failed();
      record(self, failure);
      if (c.probe) {
        st.probe_in_flight = false;
        if (failure) {
          open_breaker(self, "probe failed");
        } else {
          st.breaker = breaker_state::closed;
          st.window.clear();
          log::info("circuit_closed", {{"cluster", st.cluster.id}});
        }
      }
    }
    c.finish();
  }
  if (c.started) {
    --st.in_flight;
  }
  st.calls.erase(it);
  pump(self);
}

void on_timeout(self_ptr self, std::uint64_t id) {
  auto& st = self->state;
  auto it = st.calls.find(id);
  if (it == st.calls.end() || it->second.answered) {
    return;
  }
  auto& c = it->second;
  c.answered = true;
  ++st.counters.timeouts;
  if (c.counts) {
    record(self, true);
    if (c.probe) {
      st.probe_in_flight = false;
      open_breaker(self, "probe timed out");
    }
  }
  const auto timeout = st.ctx->pipeline.calls.call_timeout;
  c.fail("timeout", "provider call to cluster " + st.cluster.id + " took longer than " +
                        std::to_string(timeout.count()) + " ms");
  if (!st.provider->blocking()) {
    // Nothing runs on a thread: the slot is free now; a late simulated answer is dropped.
    --st.in_flight;
    st.calls.erase(it);
    pump(self);
  }
}

void pump(self_ptr self) {
  auto& st = self->state;
  const auto& policy = st.ctx->pipeline.calls;
  while (!st.queue.empty() && st.in_flight < policy.max_concurrent) {
    const auto id = st.queue.front();
    st.queue.pop_front();
    auto it = st.calls.find(id);
    if (it == st.calls.end()) {
      continue;
    }
    auto& c = it->second;
    if (!breaker_admits(self, c)) {
      ++st.counters.rejected;
      c.answered = true;
      c.fail("circuit_open", "circuit breaker of cluster " + st.cluster.id + " is open");
      st.calls.erase(it);
      continue;
    }
    c.started = true;
    ++st.in_flight;
    ++st.counters.calls;
    c.run();  // may answer inline (and erase the call): `c` is not used after this
    arm_timeout(self, id);
  }
}

// Only a call still outstanding needs its timeout. A delayed message cannot be taken back, so
// arming one for a call answered inline would keep it in the actor clock for the whole
// `call_timeout` (5 min by default): millions of dead timers at a few thousand calls per second.
void arm_timeout(self_ptr self, std::uint64_t id) {
  auto& st = self->state;
  const auto timeout = st.ctx->pipeline.calls.call_timeout;
  if (timeout.count() > 0 && st.calls.count(id) != 0) {
    self->delayed_send(self, timeout, timeout_atom::value, id);
  }
}

// How `submit` reads and makes a call's outcome. The step and service outcomes have ok, error
// (a provider_error) and delay (when a simulated call answers); the inventory and the
// connectivity test say a failure their own way, and a simulated test answers after its latency.
template <class Out>
Out failure_of(const std::string& code, std::string message) {
  Out out;
  out.error = providers::provider_error{code, std::move(message), true};
  return out;
}
template <>
inventory_reply failure_of<inventory_reply>(const std::string& code, std::string message) {
  return inventory_reply{false, make_error(code == "timeout" ? errc::timeout : errc::unavailable, std::move(message)), {}};
}
template <>
providers::connectivity_report failure_of<providers::connectivity_report>(const std::string& code, std::string message) {
  providers::connectivity_report out;
  out.message = code + ": " + std::move(message);
  return out;
}

template <class Out>
std::chrono::milliseconds delay_of(const Out& out) {
  return out.delay;
}
template <>
std::chrono::milliseconds delay_of<inventory_reply>(const inventory_reply&) {
  return std::chrono::milliseconds{0};
}
template <>
std::chrono::milliseconds delay_of<providers::connectivity_report>(const providers::connectivity_report& out) {
  return out.latency;
}

template <class Out>
bool retryable_failure(const Out& out) {
  return !out.ok && out.error.retryable;
}
template <>
bool retryable_failure<inventory_reply>(const inventory_reply&) {
  return false;  // never counted by the breaker
}
template <>
bool retryable_failure<providers::connectivity_report>(const providers::connectivity_report&) {
  return false;
}

// Tracks a call whose provider work is still to run (`run` set) or whose outcome comes later
// (`result` already holds it and `delay` says when it is delivered): its slot, its timeout and
// its answer through a response promise.
template <class Out>
caf::result<Out> track(self_ptr self, std::function<Out(providers::provider&)> work, bool counts,
                       std::shared_ptr<Out> result, std::chrono::milliseconds delay) {
  auto& st = self->state;
  auto promise = self->make_response_promise<Out>();
  const auto id = ++st.next_id;
  call c;
  c.counts = counts;
  c.finish = [promise, result]() mutable { promise.deliver(std::move(*result)); };
  c.fail = [promise](std::string code, std::string message) mutable {
    promise.deliver(failure_of<Out>(code, std::move(message)));
  };
  c.failed = [result] { return retryable_failure(*result); };
  if (!work) {
    // Ran inline already (`submit`); only its delivery is outstanding.
    c.started = true;
    ++st.in_flight;
    st.calls.emplace(id, std::move(c));
    if (delay != providers::never_answers) {
      self->delayed_send(self, delay, deliver_atom::value, id);
    }
    arm_timeout(self, id);
    return promise;
  }
  auto provider = st.provider;
  c.run = [self, id, provider, work = std::move(work), result]() {
    if (provider->blocking()) {
      auto& st = self->state;
      if (!st.workers) {
        st.workers = worker_pool::start(st.ctx->pipeline.calls.max_concurrent);
      }
      auto handle = caf::actor_cast<cluster_actor>(self);
      st.workers->post([handle, id, provider, work, result] {
        *result = work(*provider);
        caf::anon_send(handle, deliver_atom::value, id);
      });
      return;
    }
    *result = work(*provider);
    const auto delay = delay_of(*result);
    if (delay == providers::never_answers) {
      return;  // only the timeout (or the watchdog) will end this call
    }
    if (delay.count() <= 0) {
      complete(self, id);
    } else {
      self->delayed_send(self, delay, deliver_atom::value, id);
    }
  };
  st.calls.emplace(id, std::move(c));
  st.queue.push_back(id);
  pump(self);
  return promise;
}

// Queues a provider call whose outcome type is `Out`. `work` runs on a worker thread for
// blocking providers, inline otherwise. `counts`: the call passes (and feeds) the breaker.
//
// The common case takes a shorter way: a provider that does not block, nothing waiting, a free
// slot and a closed breaker (or a call the breaker does not count). The work runs here and,
// when its outcome is due at once (a zero-delay simulation), it is the reply: no promise, no
// entry in `calls`, no timer. The breaker records it as `complete` would.
template <class Out, class F>
caf::result<Out> submit(self_ptr self, F&& work, bool counts = true) {
  auto& st = self->state;
  const auto& policy = st.ctx->pipeline.calls;
  const bool inline_ready = !st.provider->blocking() && st.queue.empty() && st.in_flight < policy.max_concurrent &&
                            (!counts || st.breaker == breaker_state::closed);
  if (inline_ready) {
    ++st.counters.calls;
    Out out = work(*st.provider);
    const auto delay = delay_of(out);
    if (delay.count() <= 0) {
      if (counts) {
        record(self, retryable_failure(out));
      }
      return out;
    }
    return track<Out>(self, {}, counts, std::make_shared<Out>(std::move(out)), delay);
  }
  if (st.queue.size() >= policy.max_queued) {
    ++st.counters.rejected;
    return failure_of<Out>("bulkhead_full", "too many calls waiting for cluster " + st.cluster.id);
  }
  return track<Out>(self, std::function<Out(providers::provider&)>{std::forward<F>(work)}, counts,
                    std::make_shared<Out>(), std::chrono::milliseconds{0});
}

cluster_runtime runtime_of(self_ptr self) {
  auto& st = self->state;
  auto r = st.counters;
  r.cluster = st.cluster.id;
  // Report an elapsed cool-down as half-open even before the next call moves it there.
  auto state = st.breaker;
  if (state == breaker_state::open && self->clock().now() - st.opened_at >= breaker_of(self).cooldown) {
    state = breaker_state::half_open;
  }
  r.breaker = state == breaker_state::closed ? "closed" : state == breaker_state::open ? "open" : "half_open";
  r.consecutive_failures = st.consecutive_failures;
  r.window_calls = static_cast<std::uint32_t>(st.window.size());
  r.window_failures = 0;
  for (bool f : st.window) {
    r.window_failures += f ? 1 : 0;
  }
  r.open_for_ms = st.breaker == breaker_state::closed
                      ? 0
                      : std::chrono::duration_cast<std::chrono::milliseconds>(self->clock().now() - st.opened_at).count();
  r.in_flight = st.in_flight;
  r.queued = st.queue.size();
  return r;
}

cluster_actor::behavior_type cluster_actor_impl(self_ptr self, const engine_context* ctx,
                                                events::cluster_state cluster) {
  self->state.ctx = ctx;
  self->state.provider = providers::make_provider(cluster, ctx->providers);
  self->state.cluster = std::move(cluster);
  return {
      [=](run_step_atom, providers::step_call& c) {
        // Moved out of the message: a call carries the request's spec and resources.
        return submit<providers::step_outcome>(self,
                                               [c = std::move(c)](providers::provider& p) { return p.run_step(c); });
      },
      [=](release_atom, const providers::release_call& c) {
        return submit<providers::release_outcome>(self, [c](providers::provider& p) { return p.release(c); });
      },
      [=](sweep_atom, const std::string& request_id) {
        return submit<providers::sweep_outcome>(self, [request_id](providers::provider& p) { return p.sweep(request_id); });
      },
      [=](suspend_atom, const providers::service_call& c) {
        return submit<providers::action_outcome>(self, [c](providers::provider& p) { return p.suspend(c); });
      },
      [=](reactivate_atom, const providers::service_call& c) {
        return submit<providers::action_outcome>(self, [c](providers::provider& p) { return p.reactivate(c); });
      },
      [=](metrics_atom, const providers::service_call& c) {
        // Reading metrics says little about the cluster's ability to provision: no breaker.
        return submit<providers::metrics_sample>(self, [c](providers::provider& p) { return p.metrics(c); }, false);
      },
      // The inventory and the connectivity test take a bulkhead slot and have the call timeout
      // like any call, so neither can hold a worker thread that a step's call then waits for
      // with its own timeout running. The breaker lets them through (an operator tests a
      // cluster whose breaker is open) and does not count them.
      [=](inventory_atom) {
        return submit<inventory_reply>(
            self,
            [](providers::provider& p) {
              auto items = p.inventory();
              if (!items) {
                return inventory_reply{false, items.err(), {}};
              }
              return inventory_reply{true, {}, std::move(*items)};
            },
            false);
      },
      [=](test_atom) {
        return submit<providers::connectivity_report>(
            self, [](providers::provider& p) { return p.test_connectivity(); }, false);
      },
      [=](status_atom) { return runtime_of(self); },
      [=](update_atom, const events::cluster_state& updated) {
        self->state.provider = providers::make_provider(updated, self->state.ctx->providers);
        self->state.cluster = updated;
      },
      [=](deliver_atom, std::uint64_t id) { complete(self, id); },
      [=](timeout_atom, std::uint64_t id) { on_timeout(self, id); },
  };
}

}  // namespace

cluster_actor spawn_cluster_actor(caf::actor_system& sys, const engine_context& ctx, events::cluster_state cluster) {
  return sys.spawn(cluster_actor_impl, &ctx, std::move(cluster));
}

}  // namespace prov::actors
