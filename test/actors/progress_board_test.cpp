#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "prov/actors/progress_board.hpp"

using prov::timestamp;
using prov::actors::progress_board;
using prov::events::lifecycle_state;
using namespace std::chrono_literals;

namespace {

struct report {
  std::string id;
  lifecycle_state state;
  std::chrono::microseconds idle;
};

std::vector<report> scan(progress_board& b, timestamp now, std::chrono::microseconds limit) {
  std::vector<report> out;
  b.scan(now, limit, [&](const std::string& id, lifecycle_state s, std::chrono::microseconds idle) {
    out.push_back({id, s, idle});
  });
  return out;
}

}  // namespace

TEST_CASE("progress board: only active requests and rollbacks are watched", "[actors][watchdog]") {
  progress_board b;
  const timestamp t0{std::chrono::seconds{1000}};
  b.note("queued", lifecycle_state::queued, t0, false);
  b.note("allocating", lifecycle_state::allocating, t0, false);
  b.note("rolling", lifecycle_state::rolling_back, t0, false);
  b.note("manual", lifecycle_state::configuring, t0, true);  // waits for a person
  b.note("done", lifecycle_state::completed, t0, false);
  CHECK(b.size() == 2);
  // Leaving the watched states forgets the request.
  b.note("allocating", lifecycle_state::completed, t0 + 1s, false);
  CHECK(b.size() == 1);
  // Waiting for a person forgets it too (manual input is not "stuck").
  b.note("rolling", lifecycle_state::rolling_back, t0 + 1s, true);
  CHECK(b.size() == 0);
}

TEST_CASE("progress board: a request without progress is reported once per period", "[actors][watchdog]") {
  progress_board b;
  const timestamp t0{std::chrono::seconds{1000}};
  const auto limit = std::chrono::microseconds{30min};
  b.note("slow", lifecycle_state::configuring, t0, false);
  b.note("busy", lifecycle_state::activating, t0, false);

  CHECK(scan(b, t0 + 30min, limit).empty());  // not longer than the limit yet
  b.note("busy", lifecycle_state::verifying, t0 + 20min, false);

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
  b.note("late", lifecycle_state::allocating, t0 + 50min, false);
  b.note("late", lifecycle_state::allocating, t0 + 40min, false);
  CHECK(scan(b, t0 + 75min, limit).empty());  // 25 minutes since its progress, not 35
}
