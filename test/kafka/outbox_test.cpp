// The outbox publisher in process, over a RocksDB journal and librdkafka's mock cluster (also
// in process, loopback): the stored position moves only after delivery reports, a full outage
// loses nothing, and a restart publishes only what was not acknowledged.

#include <future>

#include "kafka/kafka_fixture.hpp"  // includes rdkafka.h, which rdkafka_mock.h needs first

#include <librdkafka/rdkafka_mock.h>
#include "prov/kafka/outbox_publisher.hpp"

using namespace prov;
using namespace prov::events;
using namespace prov::test;

namespace {

// A request's journal history up to completion.
std::vector<request_event> history(const std::string& id) {
  return {
      request_submitted{id, "acme", service_type::vps, provider_type::simulation, "local", {1000, 1024, 10, ""}, {}, "", ""},
      cluster_assigned{"sim"},
      step_started{step_kind::allocate, 1, "k1"},
      resource_allocated{step_kind::allocate, "server", "srv-" + id, "vm", "k1"},
      step_succeeded{step_kind::allocate, 1, {}},
      step_started{step_kind::configure, 1, "k2"},
      step_succeeded{step_kind::configure, 1, {{"ssh", "ssh://x"}}},
      step_started{step_kind::activate, 1, "k3"},
      credentials_delivered{"v1:SEALED-SECRET", {"password"}},
      step_succeeded{step_kind::activate, 1, {}},
      step_started{step_kind::verify, 1, "k4"},
      step_succeeded{step_kind::verify, 1, {}},
      request_completed{},
  };
}

// How many lifecycle events a history stands for.
std::uint64_t lifecycle_count(const std::vector<request_event>& events) {
  request_state s;
  std::uint64_t n = 0;
  std::uint64_t seq = 0;
  for (const auto& e : events) {
    ++seq;
    const auto rec = std::visit([](const auto& x) { return to_record(x); }, e);
    const stored_event stored{seq, "request/x", seq, timestamp{}, rec.type_id, rec.version, rec.payload};
    REQUIRE(apply_to(s, e, event_meta{seq, stored.time}).ok());
    n += to_lifecycle(stored, *decode(stored), s).size();
  }
  return n;
}

void append(journal& j, const std::string& stream, std::uint64_t expected, const request_event& e) {
  std::promise<result<append_receipt>> done;
  const auto rec = std::visit([](const auto& x) { return to_record(x); }, e);
  j.append({stream_append{stream, expected, {rec}}}, [&](result<append_receipt> r) { done.set_value(std::move(r)); });
  REQUIRE(done.get_future().get().ok());
}

struct mock_cluster {
  rd_kafka_t* rk = nullptr;
  rd_kafka_mock_cluster_t* cluster = nullptr;

  mock_cluster() {
    char err[512];
    rd_kafka_conf_t* c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "log_level", "2", err, sizeof err);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    REQUIRE(rk != nullptr);
    cluster = rd_kafka_mock_cluster_new(rk, 3);
    REQUIRE(cluster != nullptr);
    for (const auto& t : kafka::project_topics(4)) {
      REQUIRE(rd_kafka_mock_topic_create(cluster, t.name.c_str(), t.partitions, 3) == RD_KAFKA_RESP_ERR_NO_ERROR);
    }
  }
  ~mock_cluster() {
    rd_kafka_mock_cluster_destroy(cluster);
    rd_kafka_destroy(rk);
  }
  std::string bootstrap() const { return rd_kafka_mock_cluster_bootstraps(cluster); }
  void all(bool up) {
    for (int id = 1; id <= 3; ++id) {
      REQUIRE((up ? rd_kafka_mock_broker_set_up(cluster, id) : rd_kafka_mock_broker_set_down(cluster, id)) ==
              RD_KAFKA_RESP_ERR_NO_ERROR);
    }
  }
};

}  // namespace

TEST_CASE("kafka outbox position moves only after delivery reports and an outage loses nothing", "[e2e][kafka][outbox]") {
  const auto dir = fresh_dir("outbox");
  system_clock_source clk;
  auto store = rocks_store::open(rocks_store_options{(dir / "db").string()});
  REQUIRE(store.ok());
  rocks_journal_options unsynced;
  unsynced.sync = false;
  auto journal = make_rocks_journal(**store, clk, unsynced);
  REQUIRE(journal.ok());
  auto& j = **journal;

  // 12 requests, their events interleaved in the log.
  constexpr int requests = 12;
  const auto h = history("x");
  for (std::size_t k = 0; k < h.size(); ++k) {
    for (int r = 0; r < requests; ++r) {
      const auto id = "r" + std::to_string(r);
      append(j, "request/" + id, k, history(id)[k]);
    }
  }
  const auto head = j.head();
  const auto per_request = lifecycle_count(h);
  REQUIRE(per_request >= 8);  // started, resource.allocated, 4 step-completed, service.activated, completed

  mock_cluster kafka;
  kafka.all(false);  // every broker down before the publisher starts
  kafka::outbox_options options;
  options.client.brokers = kafka.bootstrap();
  options.client.properties = {{"log_level", "2"}};
  auto publisher = kafka::outbox_publisher::start(j, **store, options);
  REQUIRE(publisher.ok());
  auto& p = **publisher;

  // Everything is produced and waits; nothing is acknowledged, so nothing is recorded.
  REQUIRE(eventually([&] { return p.stats().in_flight == requests * per_request; }, std::chrono::seconds{20}));
  CHECK(p.stats().position == 0);
  CHECK(p.stats().published == 0);
  CHECK(*kafka::outbox_publisher::stored_position(**store) == 0);

  kafka.all(true);
  REQUIRE(eventually([&] { return p.stats().position == head; }, std::chrono::seconds{30}));
  CHECK(p.stats().published == requests * per_request);
  CHECK(p.stats().in_flight == 0);
  CHECK(p.stats().failed == 0);
  CHECK(*kafka::outbox_publisher::stored_position(**store) == head);

  topic_reader events{kafka.bootstrap(), lifecycle_topics(), 4};
  REQUIRE(events.until([&](const auto& r) { return r.size() >= requests * per_request; }, std::chrono::seconds{30}));
  const auto got = published_events(events.records());
  check_order_per_request(got);
  std::set<std::string> ids;
  for (const auto& e : got) {
    ids.insert(e.id);
    CHECK(e.from->value.find("SEALED") == std::string::npos);
  }
  CHECK(ids.size() == requests * per_request);  // none twice

  // A new publisher resumes after the stored position: only a new event goes out.
  p.stop();
  auto again = kafka::outbox_publisher::start(j, **store, options);
  REQUIRE(again.ok());
  CHECK((*again)->stats().position == head);
  append(j, "request/r0", h.size(), action_requested{service_action::suspend, "", "admin"});
  append(j, "request/r0", h.size() + 1, request_suspended{});
  REQUIRE(eventually([&] { return (*again)->stats().position == head + 2; }, std::chrono::seconds{30}));
  CHECK((*again)->stats().published == 1);  // service.suspended, nothing republished
  (*again)->stop();
}
