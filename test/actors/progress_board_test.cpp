#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "prov/actors/progress_board.hpp"

using prov::timestamp;
using prov::actors::clock_reading;
using prov::actors::progress_board;
using prov::events::lifecycle_state;
using namespace std::chrono_literals;

namespace {

struct report {
  std::string id;
  lifecycle_state state;
  std::chrono::microseconds idle;
};

/// A clock whose wall time was never set: both readings equal.
clock_reading at(timestamp t) { return {t, t.time_since_epoch()}; }

std::vector<report> scan(progress_board& b, clock_reading now, std::chrono::microseconds limit) {
  std::vector<report> out;
  b.scan(now.elapsed, limit, [&](const std::string& id, lifecycle_state s, std::chrono::microseconds idle) {
    out.push_back({id, s, idle});
  });
  return out;
}
std::vector<report> scan(progress_board& b, timestamp now, std::chrono::microseconds limit) {
  return scan(b, at(now), limit);
}

/// A change noted as it is committed: its event's time is the wall clock's now.
void note_now(progress_board& b, std::string_view id, lifecycle_state s, timestamp t, bool waits = false) {
  b.note(id, s, t, waits, at(t));
}

}  // namespace

TEST_CASE("progress board: only active requests and rollbacks are watched", "[actors][watchdog]") {
  progress_board b;
  const timestamp t0{std::chrono::seconds{1000}};
  note_now(b, "queued", lifecycle_state::queued, t0, false);
  note_now(b, "allocating", lifecycle_state::allocating, t0, false);
  note_now(b, "rolling", lifecycle_state::rolling_back, t0, false);
  note_now(b, "manual", lifecycle_state::configuring, t0, true);  // waits for a person
  note_now(b, "done", lifecycle_state::completed, t0, false);
  CHECK(b.size() == 2);
  // Leaving the watched states forgets the request.
  note_now(b, "allocating", lifecycle_state::completed, t0 + 1s, false);
  CHECK(b.size() == 1);
  // Waiting for a person forgets it too (manual input is not "stuck").
  note_now(b, "rolling", lifecycle_state::rolling_back, t0 + 1s, true);
  CHECK(b.size() == 0);
}

TEST_CASE("progress board: a request without progress is reported once per period", "[actors][watchdog]") {
  progress_board b;
  const timestamp t0{std::chrono::seconds{1000}};
  const auto limit = std::chrono::microseconds{30min};
  note_now(b, "slow", lifecycle_state::configuring, t0, false);
  note_now(b, "busy", lifecycle_state::activating, t0, false);

  CHECK(scan(b, t0 + 30min, limit).empty());  // not longer than the limit yet
  note_now(b, "busy", lifecycle_state::verifying, t0 + 20min, false);

  auto first = scan(b, t0 + 31min, limit);
  REQUIRE(first.size() == 1);
  CHECK(first[0].id == "slow");
  CHECK(first[0].state == lifecycle_state::configuring);
  CHECK(first[0].idle == std::chrono::microseconds{31min});

  // Reported: not again within the next period, again after it.
  CHECK(scan(b, t0 + 45min, limit).empty());
  auto second = scan(b, t0 + 62min, limit);
  REQUIRE(second.size() == 2);  // and "busy", 42 minutes after its last progress
  CHECK(second[0].id != second[1].id);

  // An older time never moves progress back (a late note of an earlier change).
  note_now(b, "late", lifecycle_state::allocating, t0 + 50min, false);
  b.note("late", lifecycle_state::allocating, t0 + 40min, false, at(t0 + 50min));
  CHECK(scan(b, t0 + 75min, limit).empty());  // 25 minutes since its progress, not 35
}

TEST_CASE("progress board: a wall clock set forward or back does not change how long a request waited",
          "[actors][watchdog]") {
  progress_board b;
  const timestamp t0{std::chrono::seconds{1'800'000'000}};
  const std::chrono::microseconds e0{5min};  // the elapsed reading: its start is arbitrary
  const auto limit = std::chrono::microseconds{30min};
  b.note("a", lifecycle_state::configuring, t0, false, {t0, e0});

  // The wall clock jumps two hours ahead (an NTP step), one real minute later: not stuck.
  CHECK(scan(b, clock_reading{t0 + 2h + 1min, e0 + 1min}, limit).empty());
  // A change noted after the step: its age by the (stepped) wall clock is what it is.
  b.note("b", lifecycle_state::activating, t0 + 2h + 1min, false, {t0 + 2h + 1min, e0 + 1min});
  CHECK(scan(b, clock_reading{t0 + 2h + 30min, e0 + 30min}, limit).empty());
  auto reports = scan(b, clock_reading{t0 + 2h + 31min, e0 + 31min}, limit);
  REQUIRE(reports.size() == 1);
  CHECK(reports[0].id == "a");
  CHECK(reports[0].idle == std::chrono::microseconds{31min});

  // The wall clock set back by an hour: an event "from the future" is progress now.
  progress_board back;
  back.note("c", lifecycle_state::verifying, t0 + 2h, false, {t0 + 1h, e0 + 40min});
  CHECK(scan(back, clock_reading{t0 + 1h + 30min, e0 + 70min}, limit).empty());
  CHECK(scan(back, clock_reading{t0 + 1h + 31min, e0 + 71min}, limit).size() == 1);
}

TEST_CASE("progress board: a change already old when noted counts its age (a request resumed after a restart)",
          "[actors][watchdog]") {
  progress_board b;
  const timestamp t0{std::chrono::seconds{1'800'000'000}};
  const std::chrono::microseconds e0{1s};  // a process just started
  const auto limit = std::chrono::microseconds{30min};
  // Its last event is 40 minutes old when the restarted engine resumes it.
  b.note("resumed", lifecycle_state::allocating, t0, false, {t0 + 40min, e0});
  auto reports = scan(b, clock_reading{t0 + 40min, e0}, limit);
  REQUIRE(reports.size() == 1);
  CHECK(reports[0].idle == std::chrono::microseconds{40min});
  // What the request's actor checks before it fails the request: the same measure.
  CHECK(b.idle("resumed", e0 + 1min) == std::chrono::microseconds{41min});
  CHECK_FALSE(b.idle("never noted", e0).has_value());
  // One 10 minutes old has 20 more to go.
  b.note("recent", lifecycle_state::allocating, t0 + 30min, false, {t0 + 40min, e0});
  CHECK(scan(b, clock_reading{t0 + 59min, e0 + 19min}, limit).empty());
  CHECK(scan(b, clock_reading{t0 + 61min, e0 + 21min}, limit).size() == 1);
}
