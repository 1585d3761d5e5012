#pragma once
/// CAF's scheduler with an actor clock that leaves alone the actors that never set a timeout.
///
/// CAF 0.17 tells its clock thread to drop an actor's timeouts whenever an actor terminates:
/// a command pushed through a mutex and a condition variable, which wakes the clock thread.
/// The engine ends an actor per request (it passivates once the request rests), and its
/// actors set no timeouts on the hot path (their requests wait `infinite`; delayed messages
/// are not timeouts), so that was a wake-up of a third thread and a context switch per
/// request for nothing. `lean_actor_clock` remembers which actors set a timeout (ordinary,
/// request or multi) and forwards the drop for those only; everything else is CAF's clock.

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <unordered_set>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/detail/set_thread_name.hpp>
#include <caf/detail/thread_safe_actor_clock.hpp>
#include <caf/policy/work_sharing.hpp>
#include <caf/policy/work_stealing.hpp>
#include <caf/scheduler/coordinator.hpp>

namespace prov::actors {

class lean_actor_clock final : public caf::detail::thread_safe_actor_clock {
 public:
  using super = caf::detail::thread_safe_actor_clock;

  void set_ordinary_timeout(time_point t, caf::abstract_actor* self, caf::atom_value type, std::uint64_t id) override {
    note(self);
    super::set_ordinary_timeout(t, self, type, id);
  }
  void set_request_timeout(time_point t, caf::abstract_actor* self, caf::message_id id) override {
    note(self);
    super::set_request_timeout(t, self, id);
  }
  void set_multi_timeout(time_point t, caf::abstract_actor* self, caf::atom_value type, std::uint64_t id) override {
    note(self);
    super::set_multi_timeout(t, self, type, id);
  }
  /// Called by every actor as it terminates.
  void cancel_timeouts(caf::abstract_actor* self) override {
    bool timed = false;
    {
      std::lock_guard lock(_mutex);
      timed = _timed.erase(self) != 0;
    }
    if (!timed) {
      _skipped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    _forwarded.fetch_add(1, std::memory_order_relaxed);
    super::cancel_timeouts(self);
  }

  /// Terminated actors that had set no timeout (nothing sent to the clock thread).
  std::uint64_t skipped_cancels() const noexcept { return _skipped.load(std::memory_order_relaxed); }
  /// Terminated actors whose timeouts were dropped by the clock thread.
  std::uint64_t forwarded_cancels() const noexcept { return _forwarded.load(std::memory_order_relaxed); }

 private:
  void note(caf::abstract_actor* self) {
    std::lock_guard lock(_mutex);
    _timed.insert(self);  // kept until it terminates, even once its timeouts fired
  }

  std::mutex _mutex;
  std::unordered_set<const caf::abstract_actor*> _timed;
  std::atomic<std::uint64_t> _skipped{0};
  std::atomic<std::uint64_t> _forwarded{0};
};

/// CAF's coordinator for `Policy` with a `lean_actor_clock` (run on a thread of its own, as
/// CAF runs its clock; the base class's own clock thread stays idle).
template <class Policy>
class lean_coordinator final : public caf::scheduler::coordinator<Policy> {
 public:
  using super = caf::scheduler::coordinator<Policy>;
  using super::super;

  static caf::actor_system::module* make(caf::actor_system& sys, caf::detail::type_list<>) {
    return new lean_coordinator(sys);
  }

  lean_actor_clock& clock() noexcept override { return _clock; }

 protected:
  void start() override {
    _timer = std::thread{[this] {
      caf::detail::set_thread_name("prov.clock");
      this->system().thread_started();
      _clock.run_dispatch_loop();
      this->system().thread_terminates();
    }};
    super::start();
  }
  void stop() override {
    super::stop();  // actors cleaned up while stopping still reach `_clock`
    _clock.cancel_dispatch_loop();
    _timer.join();
  }

 private:
  lean_actor_clock _clock;
  std::thread _timer;
};

/// Loads the lean coordinator for CAF's work-sharing (`sharing`) or work-stealing policy into
/// `cfg`, in place of the one `scheduler.policy` would choose.
inline void load_lean_scheduler(caf::actor_system_config& cfg, bool sharing) {
  if (sharing) {
    cfg.load<lean_coordinator<caf::policy::work_sharing>>();
  } else {
    cfg.load<lean_coordinator<caf::policy::work_stealing>>();
  }
}

}  // namespace prov::actors
