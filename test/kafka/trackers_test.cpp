#include <catch2/catch.hpp>

#include "prov/kafka/offset_tracker.hpp"
#include "prov/kafka/position_tracker.hpp"

using prov::kafka::offset_tracker;
using prov::kafka::position_tracker;

TEST_CASE("kafka outbox tracker moves only over fully acknowledged journal positions", "[kafka][outbox]") {
  position_tracker t{10};
  CHECK(t.done_through() == 10);
  t.add(11, 2);  // one event, two messages
  t.add(12, 0);  // publishes nothing
  t.add(13, 1);
  CHECK(t.in_flight() == 3);
  CHECK(t.done_through() == 10);

  t.ack(13);  // out of order across partitions: 11 still waits
  CHECK(t.done_through() == 10);
  t.ack(11);
  CHECK(t.done_through() == 10);  // one of 11's two messages is still out
  t.ack(11);
  CHECK(t.done_through() == 13);
  CHECK(t.in_flight() == 0);

  t.add(14, 0);
  CHECK(t.done_through() == 14);  // nothing to wait for
  t.ack(99);                      // unknown: ignored
  CHECK(t.done_through() == 14);
}

TEST_CASE("kafka outbox tracker reset forgets what was in flight", "[kafka][outbox]") {
  position_tracker t;
  t.add(1, 1);
  t.add(2, 1);
  t.ack(1);
  CHECK(t.done_through() == 1);
  t.reset(1);
  CHECK(t.in_flight() == 0);
  CHECK(t.last_added() == 1);
  t.ack(2);  // a late report of the old producer: ignored
  CHECK(t.done_through() == 1);
  t.add(2, 1);
  t.ack(2);
  CHECK(t.done_through() == 2);
}

TEST_CASE("kafka command consumer offsets are committed only past the longest finished prefix", "[kafka][commands]") {
  offset_tracker t;
  CHECK(t.take_commits().empty());
  CHECK_FALSE(t.commit_point(0).has_value());

  t.begin(0, 5);
  t.begin(0, 6);
  t.begin(0, 7);
  t.begin(1, 100);
  CHECK(t.unfinished() == 4);
  // The first points are the first unfinished offsets: committing them skips nothing.
  const auto first = t.take_commits();
  CHECK(first == std::map<std::int32_t, std::int64_t>{{0, 5}, {1, 100}});
  CHECK(t.commit_point(0) == 5);

  t.finish(0, 6);  // finished out of order: 5 still holds the point
  CHECK(t.take_commits().empty());
  t.finish(0, 5);
  auto commits = t.take_commits();
  REQUIRE(commits.size() == 1);
  CHECK(commits.at(0) == 7);
  t.finish(0, 7);
  t.finish(1, 100);
  commits = t.take_commits();
  CHECK(commits.at(0) == 8);
  CHECK(commits.at(1) == 101);
  CHECK(t.take_commits().empty());  // nothing moved since
  CHECK(t.unfinished() == 0);

  t.forget(1);
  CHECK_FALSE(t.commit_point(1).has_value());
  t.finish(1, 101);  // unknown: ignored
  CHECK(t.unfinished(1) == 0);
}
