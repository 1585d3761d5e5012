// The lean scheduler's clock (prov/actors/scheduler.hpp), on a real actor system: an actor
// that ends without having set a timeout is not sent to the clock thread; one that set a
// timeout is, and the clock still delivers delayed messages and timeouts.

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include <caf/all.hpp>

#include "prov/actors/scheduler.hpp"

using namespace prov;

namespace {

struct lean_system {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;

  explicit lean_system(bool sharing) {
    cfg.set("logger.console-verbosity", caf::atom("quiet"));
    cfg.set("scheduler.max-threads", 2);
    actors::load_lean_scheduler(cfg, sharing);
    sys = std::make_unique<caf::actor_system>(cfg);
  }
  actors::lean_actor_clock& clock() {
    auto* lean = dynamic_cast<actors::lean_actor_clock*>(&sys->clock());
    REQUIRE(lean != nullptr);
    return *lean;
  }
};

// An actor's end is reported to its waiters just before it tells the clock (CAF runs the
// attached functions first): waits, bounded, until `count` reaches `expected`.
template <class Count>
bool reaches(Count count, std::uint64_t expected) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
  while (count() < expected && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  return count() == expected;
}

caf::behavior quits_on_anything(caf::event_based_actor* self) {
  return {[=](caf::ok_atom) { self->quit(); }};
}

// Sets an ordinary timeout (a behaviour with `after`) and quits when told.
caf::behavior waits_with_timeout(caf::event_based_actor* self) {
  return {
      [=](caf::ok_atom) { self->quit(); },
      caf::after(std::chrono::seconds{3600}) >> [=] { self->quit(); },
  };
}

// Quits once its own timeout fires.
caf::behavior quits_on_timeout(caf::event_based_actor* self) {
  return {
      [=](caf::ok_atom) {},
      caf::after(std::chrono::milliseconds{1}) >> [=] { self->quit(); },
  };
}

}  // namespace

TEST_CASE("lean clock: an actor that set no timeout ends without the clock thread", "[actors][scheduler]") {
  const bool sharing = GENERATE(true, false);
  lean_system s{sharing};
  auto& clk = s.clock();
  const auto skipped = clk.skipped_cancels();
  const auto forwarded = clk.forwarded_cancels();
  caf::scoped_actor self{*s.sys};
  std::vector<caf::actor> plain;
  for (int i = 0; i < 10; ++i) {
    plain.push_back(s.sys->spawn(quits_on_anything));
  }
  for (auto& a : plain) {
    self->send(a, caf::ok_atom::value);
  }
  self->wait_for(plain);
  CHECK(reaches([&] { return clk.skipped_cancels(); }, skipped + 10));
  CHECK(clk.forwarded_cancels() == forwarded);

  auto timed = s.sys->spawn(waits_with_timeout);
  self->send(timed, caf::ok_atom::value);
  self->wait_for(timed);
  CHECK(reaches([&] { return clk.forwarded_cancels(); }, forwarded + 1));  // its pending timeout is dropped
  CHECK(clk.skipped_cancels() - skipped == 10);
}

TEST_CASE("lean clock: timeouts and delayed messages still arrive", "[actors][scheduler]") {
  lean_system s{true};
  auto& clk = s.clock();
  const auto forwarded = clk.forwarded_cancels();
  caf::scoped_actor self{*s.sys};
  // Ends by its own timeout: the clock thread runs and delivers it.
  auto timed = s.sys->spawn(quits_on_timeout);
  self->wait_for(timed);
  CHECK(reaches([&] { return clk.forwarded_cancels(); }, forwarded + 1));

  self->delayed_send(self, std::chrono::milliseconds{1}, caf::ok_atom::value);
  bool delivered = false;
  self->receive([&](caf::ok_atom) { delivered = true; },
                caf::after(std::chrono::seconds{30}) >> [] {});  // a bound, not a wait for a race
  CHECK(delivered);
}
