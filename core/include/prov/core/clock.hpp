#pragma once
/// Time as the engine sees it. Every timestamp written to an event comes from an injected
/// `clock`, never from the wall clock directly, so tests run in virtual time.

#include <atomic>
#include <chrono>

namespace prov {

/// Wall-clock time with microsecond resolution (what events record).
using timestamp = std::chrono::time_point<std::chrono::system_clock, std::chrono::microseconds>;

/// Source of "now". Implementations must be thread-safe.
class clock {
 public:
  virtual ~clock() = default;
  /// The wall clock: what events record. It can be set, and so jump either way (an NTP step,
  /// an operator, a virtual machine resumed from a snapshot).
  virtual timestamp now() const = 0;
  /// Time since an arbitrary start, at the wall clock's rate but never set: the measure of
  /// how long something has taken, which a step of the wall clock does not move.
  virtual std::chrono::microseconds elapsed() const = 0;
};

/// The real wall clock.
class system_clock_source final : public clock {
 public:
  timestamp now() const override {
    return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
  }
  std::chrono::microseconds elapsed() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch());
  }
};

/// A clock that only moves when told to: for tests. `advance` is time passing (both readings
/// move); `set` sets the wall clock only, as an operator or NTP would.
class manual_clock final : public clock {
 public:
  explicit manual_clock(timestamp start = timestamp{std::chrono::seconds{1'800'000'000}})
      : _us(start.time_since_epoch().count()) {}

  timestamp now() const override { return timestamp{std::chrono::microseconds{_us.load()}}; }
  std::chrono::microseconds elapsed() const override { return std::chrono::microseconds{_elapsed_us.load()}; }
  void advance(std::chrono::microseconds d) {
    _us.fetch_add(d.count());
    _elapsed_us.fetch_add(d.count());
  }
  void set(timestamp t) { _us.store(t.time_since_epoch().count()); }

 private:
  std::atomic<long long> _us;
  std::atomic<long long> _elapsed_us{0};
};

}  // namespace prov
