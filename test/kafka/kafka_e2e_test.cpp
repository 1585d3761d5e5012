// provisiond with --kafka-brokers against kafka-dev-broker (both subprocesses, loopback only):
// commands in, answers and lifecycle events out (R-6.1, R-6.2).

#include "kafka/kafka_fixture.hpp"

using namespace prov::test;
using nlohmann::json;

namespace {

json vps() {
  return json{{"type", "vps"},
              {"provider", "simulation"},
              {"region", "local"},
              {"spec", {{"cpu", 1}, {"memoryGb", 1}, {"storageGb", 10}, {"image", "debian-12"}}}};
}

std::string create(const std::string& correlation, const std::string& tenant, const std::string& key) {
  return json{{"type", "create"}, {"correlationId", correlation}, {"idempotencyKey", key}, {"tenant", tenant}, {"request", vps()}}
      .dump();
}

std::vector<std::string> kafka_flags(const dev_broker& b) {
  return {"--kafka-brokers", b.bootstrap(), "--tenant-max-active", "100", "--max-active", "1000", "--log-level", "warn"};
}

// Answers by correlation id (the last one read wins; all of one id must agree, see callers).
std::map<std::string, json> answers(const std::vector<record>& records) {
  std::map<std::string, json> out;
  for (const auto& r : records) {
    auto j = json::parse(r.value);
    out[j.at("correlationId").get<std::string>()] = j;
  }
  return out;
}

std::size_t count_type(const std::vector<record>& records, const std::string& topic) {
  return static_cast<std::size_t>(std::count_if(records.begin(), records.end(), [&](const record& r) { return r.topic == topic; }));
}

// Published ids must be exactly the journal's; `once`: none twice (one publisher lifetime).
void check_against_journal(const std::vector<published_event>& got, const std::filesystem::path& data, bool once) {
  const auto expected = journal_lifecycle(data);
  REQUIRE_FALSE(expected.empty());
  std::map<std::string, int> seen;
  for (const auto& e : got) {
    ++seen[e.id];
    const auto it = expected.find(e.id);
    if (it == expected.end()) {
      FAIL_CHECK("published " << e.id << " is not in the journal");
      continue;
    }
    CHECK(it->second.first == e.type);
    CHECK(it->second.second == e.request);
  }
  std::size_t missing = 0;
  std::size_t twice = 0;
  for (const auto& [id, what] : expected) {
    missing += seen.count(id) == 0 ? 1 : 0;
  }
  for (const auto& [id, n] : seen) {
    twice += n > 1 ? 1 : 0;
  }
  INFO("expected " << expected.size() << " events, read " << got.size());
  CHECK(missing == 0);
  if (once) {
    CHECK(twice == 0);
  }
}

// After the server stopped (its outbox flushed): reads until every lifecycle event of its
// journal has arrived, at most the reader's timeout. Partitions reach the reader at their own
// pace: after an outage, a broker still in its reconnect backoff delivers its partitions
// later than the one carrying `provisioning.completed`.
void await_journal(topic_reader& events, const std::filesystem::path& data) {
  std::set<std::string> missing;
  for (const auto& [id, what] : journal_lifecycle(data)) {
    missing.insert(id);
  }
  std::size_t read = 0;
  events.until([&](const std::vector<record>& records) {
    for (; read < records.size(); ++read) {
      for (const auto& e : published_events({records[read]})) {
        missing.erase(e.id);
      }
    }
    return missing.empty();
  });
}

/// Makes `tenants` tenants ("t0"...) over HTTP, then sends `requests` create commands
/// ("c<i>", key "k<i>", round-robin over the tenants) to the command topic.
template <class Client>
void send_creates(Client& c, server& s, dev_broker& broker, int tenants, int requests) {
  for (int t = 0; t < tenants; ++t) {
    make_tenant(c, s.admin(), "t" + std::to_string(t));
  }
  std::vector<std::pair<std::string, std::string>> commands;
  for (int i = 0; i < requests; ++i) {
    const auto tenant = "t" + std::to_string(i % tenants);
    commands.emplace_back(tenant, create("c" + std::to_string(i), tenant, "k" + std::to_string(i)));
  }
  produce_all(broker.bootstrap(), std::string{prov::kafka::command_topic}, commands);
}

}  // namespace

TEST_CASE("kafka commands in and lifecycle events out in order per request over several partitions", "[e2e][kafka]") {
  const auto dir = fresh_dir("kafka-flow");
  dev_broker broker{dir};
  server s{dir};
  // Properties for one kind of client reach only that kind: librdkafka would log a CONFWARN
  // line for each client that ignores one.
  auto flags = kafka_flags(broker);
  flags.insert(flags.end(), {"--kafka-consumer-property", "session.timeout.ms=10000", "--kafka-consumer-property",
                             "fetch.wait.max.ms=100", "--kafka-producer-property", "linger.ms=1"});
  s.start(flags);
  auto c = s.client();
  constexpr int tenants = 12;
  constexpr int requests = 240;
  send_creates(c, s, broker, tenants, requests);

  topic_reader results{broker.bootstrap(), {std::string{prov::kafka::command_result_topic}}, broker.partitions()};
  REQUIRE(results.until([&](const auto& r) { return answers(r).size() == requests; }));
  std::set<std::string> ids;
  std::set<std::int32_t> partitions;
  for (const auto& [correlation, a] : answers(results.records())) {
    INFO(a.dump());
    CHECK(a["status"] == "accepted");
    CHECK(a["type"] == "create");
    CHECK_FALSE(a.contains("replayed"));
    ids.insert(a["requestId"].get<std::string>());
  }
  for (const auto& r : results.records()) {
    partitions.insert(r.partition);
  }
  CHECK(ids.size() == requests);
  CHECK(partitions.size() > 1);  // tenants spread over the command topic's partitions

  topic_reader events{broker.bootstrap(), lifecycle_topics(), broker.partitions()};
  REQUIRE(events.until([&](const auto& r) { return count_type(r, "provisioning.completed") >= requests; }));
  s.stop();
  // Topics are read at their own pace: a request's step-completed may reach the reader after
  // its completed did. Read until every lifecycle event of the journal is in.
  await_journal(events, s.dir() / "data");

  const auto got = published_events(events.records());
  check_order_per_request(got);
  std::map<std::string, std::map<std::string, int>> by_request;
  std::set<std::int32_t> event_partitions;
  for (const auto& e : got) {
    ++by_request[e.request][e.type];
    if (e.type == "provisioning.started") {
      event_partitions.insert(e.from->partition);
    }
  }
  CHECK(by_request.size() == requests);
  for (const auto& id : ids) {
    INFO(id);
    CHECK(by_request[id]["provisioning.started"] == 1);
    CHECK(by_request[id]["provisioning.step-completed"] == 4);
    CHECK(by_request[id]["service.activated"] == 1);
    CHECK(by_request[id]["provisioning.completed"] == 1);
  }
  CHECK(event_partitions.size() > 1);
  check_against_journal(got, s.dir() / "data", true);
  // No secret reaches Kafka.
  for (const auto& r : events.records()) {
    CHECK(r.value.find("password") == std::string::npos);
  }
  CHECK(s.log().find("CONFWARN") == std::string::npos);
}

TEST_CASE("kafka duplicate and malformed commands are answered and never stop consumption", "[e2e][kafka]") {
  const auto dir = fresh_dir("kafka-bad");
  dev_broker broker{dir};
  server s{dir};
  s.start(kafka_flags(broker));
  auto c = s.client();
  make_tenant(c, s.admin(), "acme");
  make_tenant(c, s.admin(), "globex");
  const std::string topic{prov::kafka::command_topic};
  const std::string big(70 * 1024, 'x');
  // One key: one partition, so the valid command after the bad ones proves consumption went on.
  produce_all(broker.bootstrap(), topic,
              {{"acme", create("first", "acme", "dup")},
               {"acme", create("again", "acme", "dup")},  // the same idempotency key
               {"acme", "this is not json"},
               {"acme", "[1,2,3]"},
               {"acme", big},
               {"acme", R"({"type":"explode","correlationId":"unknown-type"})"},
               {"acme", R"({"type":"approve","requestId":"r-1"})"},
               {"acme", R"({"type":"approve","correlationId":"no-such","requestId":"nothing-here"})"},
               {"acme", create("wrong-tenant", "globex", "k2")},
               {"acme", R"({"type":"reject","correlationId":"no-reason","requestId":"nothing-here"})"},
               {"acme", create("after", "acme", "k3")}});

  topic_reader results{broker.bootstrap(), {std::string{prov::kafka::command_result_topic}}, broker.partitions()};
  REQUIRE(results.until([&](const auto& r) { return r.size() >= 11; }));
  const auto a = answers(results.records());
  CHECK(results.records().size() == 11);
  REQUIRE(a.count("first") == 1);
  REQUIRE(a.count("again") == 1);
  CHECK(a.at("first")["status"] == "accepted");
  CHECK(a.at("again")["status"] == "accepted");
  CHECK(a.at("again")["replayed"] == true);
  CHECK(a.at("again")["requestId"] == a.at("first")["requestId"]);
  CHECK(a.at("unknown-type")["status"] == "rejected");
  CHECK(a.at("unknown-type")["error"]["code"] == "invalid_argument");
  CHECK(a.at("no-such")["error"]["code"] == "not_found");
  CHECK(a.at("wrong-tenant")["error"]["code"] == "forbidden");
  CHECK(a.at("no-reason")["error"]["code"] == "invalid_argument");
  CHECK(a.at("after")["status"] == "accepted");
  int unknown = 0;
  for (const auto& r : results.records()) {
    CHECK(r.key == "acme");
    auto j = json::parse(r.value);
    if (j["correlationId"] == "unknown") {
      ++unknown;
      CHECK(j["status"] == "rejected");
    }
  }
  CHECK(unknown == 4);  // not JSON, an array, too large, no correlationId
  // The answers came in the order of the commands (one partition, one after another).
  CHECK(json::parse(results.records().front().value)["correlationId"] == "first");
  CHECK(json::parse(results.records().back().value)["correlationId"] == "after");

  // A lifecycle command on a finished request, twice: the second is a conflict.
  const auto id = a.at("first")["requestId"].get<std::string>();
  REQUIRE(eventually([&] { return c.get("/v1/requests/" + id, s.admin()).json()["state"] == "completed"; }));
  produce_all(broker.bootstrap(), topic,
              {{"acme", json{{"type", "suspend"}, {"correlationId", "s1"}, {"requestId", id}}.dump()},
               {"acme", json{{"type", "suspend"}, {"correlationId", "s2"}, {"requestId", id}}.dump()},
               {"globex", json{{"type", "suspend"}, {"correlationId", "s3"}, {"requestId", id}}.dump()}});
  REQUIRE(results.until([&](const auto& r) { return r.size() >= 14; }));
  const auto b = answers(results.records());
  CHECK(b.at("s1")["status"] == "accepted");
  CHECK(b.at("s2")["status"] == "rejected");
  CHECK(b.at("s2")["error"]["code"] == "conflict");
  CHECK(b.at("s3")["error"]["code"] == "not_found");  // another tenant's request

  // The duplicate created one request: one provisioning.started for it.
  topic_reader events{broker.bootstrap(), lifecycle_topics(), broker.partitions()};
  REQUIRE(events.until([&](const auto& r) {
    auto has = [&](const std::string& topic) {
      return std::any_of(r.begin(), r.end(), [&](const record& x) { return x.topic == topic && x.key == id; });
    };
    return has("service.suspended") && has("provisioning.started") && has("provisioning.completed");
  }));
  events.drain_for(std::chrono::milliseconds{500});
  std::size_t started = 0;
  for (const auto& e : published_events(events.records())) {
    started += e.type == "provisioning.started" && e.request == id ? 1 : 0;
  }
  CHECK(started == 1);
  const auto metrics = c.get("/metrics").body;
  CHECK(metrics.find("provisiond_kafka_commands_poison_total 3\n") != std::string::npos);  // not JSON, array, too large
  CHECK(metrics.find("provisiond_kafka_commands_received_total 14\n") != std::string::npos);
  CHECK(metrics.find("provisiond_kafka_outbox_published_total ") != std::string::npos);
  s.stop();
  CHECK(s.log().find("kafka_command_poison") != std::string::npos);
}

TEST_CASE("kafka broker outage delays lifecycle events and loses none", "[e2e][kafka]") {
  const auto dir = fresh_dir("kafka-outage");
  dev_broker broker{dir};
  server s{dir};
  s.start(kafka_flags(broker));
  auto c = s.client();
  const auto token = make_tenant(c, s.admin(), "acme");
  topic_reader events{broker.bootstrap(), lifecycle_topics(), broker.partitions()};
  auto submit = [&](int n) {
    for (int i = 0; i < n; ++i) {
      REQUIRE(c.post("/v1/requests", vps(), token).status == 202);
    }
  };
  submit(20);
  REQUIRE(events.until([](const auto& r) { return !r.empty(); }));

  REQUIRE(broker.control("down all") == "ok");
  submit(40);
  // The engine goes on without Kafka: every request completes while the brokers are down.
  REQUIRE(eventually([&] {
    const auto all = all_requests(c, s.admin());
    return all.size() == 60 && std::all_of(all.begin(), all.end(), [](const json& r) { return r["state"] == "completed"; });
  }));
  const auto during = events.records().size();
  REQUIRE(broker.control("up all") == "ok");

  REQUIRE(events.until([&](const auto& r) { return count_type(r, "provisioning.completed") >= 60; }));
  events.drain_for(std::chrono::milliseconds{300});
  CHECK(events.records().size() > during);
  s.stop();
  await_journal(events, s.dir() / "data");
  const auto got = published_events(events.records());
  check_order_per_request(got);
  check_against_journal(got, s.dir() / "data", true);
}

TEST_CASE("kafka kill -9 of provisiond mid-way then restart leaves every event published and no duplicate request",
          "[e2e][kafka]") {
  const auto dir = fresh_dir("kafka-kill");
  dev_broker broker{dir};
  server s{dir};
  s.start(kafka_flags(broker));
  auto c = s.client();
  constexpr int tenants = 6;
  constexpr int requests = 120;
  send_creates(c, s, broker, tenants, requests);

  topic_reader events{broker.bootstrap(), lifecycle_topics(), broker.partitions()};
  REQUIRE(events.until([&](const auto& r) { return count_type(r, "provisioning.completed") >= 5; }));
  s.kill9();
  CHECK(count_type(events.records(), "provisioning.completed") < requests);  // in the middle
  s.start(kafka_flags(broker));
  auto c2 = s.client();  // a new port

  topic_reader results{broker.bootstrap(), {std::string{prov::kafka::command_result_topic}}, broker.partitions()};
  REQUIRE(results.until([&](const auto& r) { return answers(r).size() == requests; }));
  std::map<std::string, std::set<std::string>> ids_of;  // correlation -> request ids answered
  for (const auto& r : results.records()) {
    const auto j = json::parse(r.value);
    CHECK(j["status"] == "accepted");
    ids_of[j["correlationId"].get<std::string>()].insert(j["requestId"].get<std::string>());
  }
  for (const auto& [correlation, ids] : ids_of) {
    INFO(correlation);
    CHECK(ids.size() == 1);  // an answer given again after the crash names the same request
  }
  REQUIRE(eventually([&] {
    const auto all = all_requests(c2, s.admin());
    return all.size() >= requests &&
           std::all_of(all.begin(), all.end(), [](const json& r) { return r["state"] == "completed"; });
  }));
  CHECK(all_requests(c2, s.admin()).size() == requests);  // replayed commands created nothing
  REQUIRE(events.until([&](const auto& r) {
    std::set<std::string> completed;
    for (const auto& x : r) {
      if (x.topic == "provisioning.completed") {
        completed.insert(x.key);
      }
    }
    return completed.size() == requests;
  }));
  events.drain_for(std::chrono::milliseconds{300});
  s.stop();
  await_journal(events, s.dir() / "data");
  check_against_journal(published_events(events.records()), s.dir() / "data", false);
}

TEST_CASE("kafka approve, reject and manual-input commands act as the HTTP routes do", "[e2e][kafka]") {
  const auto dir = fresh_dir("kafka-admin");
  dev_broker broker{dir};
  server s{dir};
  s.start(kafka_flags(broker));
  auto c = s.client();
  const auto token = make_tenant(c, s.admin(), "acme");
  REQUIRE(c.post("/v1/approval-rules", json{{"name", "big"}, {"priority", 10}, {"conditions", {{"minCpu", 4}}}}, s.admin())
              .status == 201);
  REQUIRE(c.post("/v1/clusters", json{{"id", "vendor"}, {"type", "manual"}, {"region", "local"}}, s.admin()).status == 201);
  auto big = json::parse(create("big-a", "acme", "ka"));
  big["request"]["spec"]["cpu"] = 4;
  auto big_b = big;
  big_b["correlationId"] = "big-b";
  big_b["idempotencyKey"] = "kb";
  const json manual{{"type", "create"}, {"correlationId", "man"}, {"idempotencyKey", "km"}, {"tenant", "acme"},
                    {"request", {{"type", "managed"}, {"provider", "manual"}, {"spec", {{"cpu", 1}, {"memoryGb", 1}}}}}};
  const std::string topic{prov::kafka::command_topic};
  produce_all(broker.bootstrap(), topic, {{"acme", big.dump()}, {"acme", big_b.dump()}, {"acme", manual.dump()}});

  topic_reader results{broker.bootstrap(), {std::string{prov::kafka::command_result_topic}}, broker.partitions()};
  REQUIRE(results.until([&](const auto& r) { return r.size() >= 3; }));
  auto a = answers(results.records());
  CHECK(a.at("big-a")["state"] == "pending_approval");
  CHECK(a.at("big-b")["state"] == "pending_approval");
  REQUIRE(a.at("man")["status"] == "accepted");
  const auto ida = a.at("big-a")["requestId"].get<std::string>();
  const auto idb = a.at("big-b")["requestId"].get<std::string>();
  const auto idm = a.at("man")["requestId"].get<std::string>();
  REQUIRE(eventually([&] { return c.get("/v1/requests/" + idm, token).json().value("statusText", "") == "Awaiting Manual Input"; }));

  const json input{{"endpoints", {{"url", "https://db.vendor.example"}}}, {"credentials", {{"password", "vendor-pass-123"}}}};
  produce_all(broker.bootstrap(), topic,
              {{"acme", json{{"type", "approve"}, {"correlationId", "ok-a"}, {"requestId", ida}}.dump()},
               {"acme", json{{"type", "reject"}, {"correlationId", "no-reason"}, {"requestId", idb}}.dump()},
               {"acme", json{{"type", "reject"}, {"correlationId", "rej-b"}, {"requestId", idb}, {"reason", "too big"}}.dump()},
               {"acme", json{{"type", "manual-input"}, {"correlationId", "empty"}, {"requestId", idm},
                             {"input", {{"endpoints", json::object()}}}}.dump()},
               {"acme", json{{"type", "manual-input"}, {"correlationId", "in-m"}, {"requestId", idm}, {"input", input}}.dump()}});
  REQUIRE(results.until([&](const auto& r) { return r.size() >= 8; }));
  a = answers(results.records());
  CHECK(a.at("ok-a")["status"] == "accepted");
  CHECK(a.at("no-reason")["error"]["code"] == "invalid_argument");
  CHECK(a.at("rej-b")["status"] == "accepted");
  CHECK(a.at("empty")["error"]["code"] == "invalid_argument");
  CHECK(a.at("in-m")["status"] == "accepted");

  topic_reader events{broker.bootstrap(), lifecycle_topics(), broker.partitions()};
  REQUIRE(events.until([&](const auto& r) {
    std::set<std::string> done;
    for (const auto& x : r) {
      if (x.topic == "provisioning.completed" || x.topic == "provisioning.failed") {
        done.insert(x.topic + "/" + x.key);
      }
    }
    return done.count("provisioning.completed/" + ida) == 1 && done.count("provisioning.completed/" + idm) == 1 &&
           done.count("provisioning.failed/" + idb) == 1;
  }));
  for (const auto& r : events.records()) {
    CHECK(r.value.find("vendor-pass-123") == std::string::npos);  // credentials never reach Kafka
  }
  CHECK(c.get("/v1/requests/" + idm + "/credentials", token).json()["credentials"]["password"] == "vendor-pass-123");
  s.stop();
}

TEST_CASE("kafka a full command buffer pauses the partitions and every command is still answered once",
          "[e2e][kafka]") {
  const auto dir = fresh_dir("kafka-pause");
  dev_broker broker{dir};
  server s{dir};
  auto flags = kafka_flags(broker);
  flags.back() = "info";  // the pause and resume are logged at info
  flags.insert(flags.end(), {"--kafka-max-buffered", "16"});
  s.start(flags);
  auto c = s.client();
  constexpr int tenants = 6;
  constexpr int requests = 120;
  send_creates(c, s, broker, tenants, requests);

  topic_reader results{broker.bootstrap(), {std::string{prov::kafka::command_result_topic}}, broker.partitions()};
  REQUIRE(results.until([&](const auto& r) { return answers(r).size() == requests; }));
  results.drain_for(std::chrono::milliseconds{300});
  std::set<std::string> ids;
  for (const auto& [correlation, a] : answers(results.records())) {
    INFO(a.dump());
    CHECK(a["status"] == "accepted");
    ids.insert(a["requestId"].get<std::string>());
  }
  CHECK(ids.size() == requests);
  CHECK(results.records().size() == requests);  // none answered twice: nothing was consumed again
  s.stop();
  const auto log = s.log();
  CHECK(log.find("kafka_commands_paused") != std::string::npos);
  CHECK(log.find("kafka_commands_resumed") != std::string::npos);
}

TEST_CASE("kafka creates of one partition run together, any other command alone, and the answers keep the commands' order",
          "[e2e][kafka]") {
  // One tenant, one key, one partition: a backlog of creates. They are handed to the engine
  // together (a create waits for nothing before it), a command naming a request waits for the
  // ones before it, and the answers still come out in the partition's order.
  const auto dir = fresh_dir("kafka-pipeline");
  dev_broker broker{dir};
  server s{dir};
  s.start(kafka_flags(broker));
  auto c = s.client();
  make_tenant(c, s.admin(), "acme");
  constexpr int creates = 200;
  std::vector<std::string> expected;  // correlation ids in offset order
  std::vector<std::pair<std::string, std::string>> commands;
  for (int i = 0; i < creates; ++i) {
    if (i == creates / 2) {
      commands.emplace_back("acme", R"({"type":"approve","correlationId":"middle","requestId":"nothing-here"})");
      expected.emplace_back("middle");
    }
    commands.emplace_back("acme", create("p" + std::to_string(i), "acme", "pk" + std::to_string(i)));
    expected.push_back("p" + std::to_string(i));
  }
  commands.emplace_back("acme", "not json");  // answered by the consumer itself, still in its turn
  expected.emplace_back("unknown");
  produce_all(broker.bootstrap(), std::string{prov::kafka::command_topic}, commands);

  topic_reader results{broker.bootstrap(), {std::string{prov::kafka::command_result_topic}}, broker.partitions()};
  REQUIRE(results.until([&](const auto& r) { return r.size() >= expected.size(); }));
  std::vector<std::string> got;
  for (const auto& r : results.records()) {
    const auto j = json::parse(r.value);
    got.push_back(j["correlationId"].get<std::string>());
    const auto& id = got.back();
    if (id == "middle") {
      CHECK(j["error"]["code"] == "not_found");
    } else if (id != "unknown") {
      CHECK(j["status"] == "accepted");
    }
  }
  CHECK(got == expected);  // one partition of answers (keyed by tenant): the commands' order
  const auto metrics = c.get("/metrics").body;
  CHECK(metrics.find("provisiond_kafka_commands_most_with_engine 1\n") == std::string::npos);
  CHECK(metrics.find("provisiond_kafka_commands_most_with_engine ") != std::string::npos);
  s.stop();

  // One at a time when asked.
  s.start([&] {
    auto flags = kafka_flags(broker);
    flags.insert(flags.end(), {"--kafka-creates-in-flight", "1"});
    return flags;
  }());
  std::vector<std::pair<std::string, std::string>> more;
  for (int i = 0; i < 20; ++i) {
    more.emplace_back("acme", create("q" + std::to_string(i), "acme", "qk" + std::to_string(i)));
  }
  produce_all(broker.bootstrap(), std::string{prov::kafka::command_topic}, more);
  REQUIRE(results.until([&](const auto& r) { return r.size() >= expected.size() + more.size(); }));
  c = s.client();
  CHECK(c.get("/metrics").body.find("provisiond_kafka_commands_most_with_engine 1\n") != std::string::npos);
  s.stop();
}

TEST_CASE("kafka a member joining and leaving provisiond's group moves partitions away and back, and every command is answered",
          "[e2e][kafka][rebalance]") {
  // Another member of the group (a deploy's second instance, a misconfigured tool) takes part
  // of the command topic's partitions in a rebalance, consumes from them without answering or
  // committing, and leaves: provisiond gets them back and goes on from its committed offsets.
  const auto dir = fresh_dir("kafka-rebalance");
  dev_broker broker{dir};
  server s{dir};
  auto flags = kafka_flags(broker);
  flags.back() = "info";  // assignments and revocations are logged at info
  s.start(flags);
  auto c = s.client();
  constexpr int tenants = 6;
  constexpr int first = 60;
  send_creates(c, s, broker, tenants, first);
  topic_reader results{broker.bootstrap(), {std::string{prov::kafka::command_result_topic}}, broker.partitions()};
  REQUIRE(results.until([&](const auto& r) { return answers(r).size() >= 10; }));

  char err[512];
  auto* conf = client_conf(broker.bootstrap());
  REQUIRE(rd_kafka_conf_set(conf, "group.id", "provisiond", err, sizeof err) == RD_KAFKA_CONF_OK);
  REQUIRE(rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err) == RD_KAFKA_CONF_OK);
  REQUIRE(rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof err) == RD_KAFKA_CONF_OK);
  rd_kafka_t* other = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  REQUIRE(other != nullptr);
  rd_kafka_poll_set_consumer(other);
  auto* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, std::string{prov::kafka::command_topic}.c_str(), RD_KAFKA_PARTITION_UA);
  REQUIRE(rd_kafka_subscribe(other, topics) == RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(topics);
  // More commands while the other member holds part of the topic; some land on its partitions.
  std::vector<std::pair<std::string, std::string>> more;
  for (int i = first; i < 2 * first; ++i) {
    const auto tenant = "t" + std::to_string(i % tenants);
    more.emplace_back(tenant, create("c" + std::to_string(i), tenant, "k" + std::to_string(i)));
  }
  std::size_t taken = 0;  // commands the other member consumed (and never answered)
  bool sent = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{60};
  // The poll that delivers the assignment can also return a message from the first batch (not yet
  // committed by provisiond), so the loop runs until both happened, not until the first message.
  while ((!sent || taken == 0) && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_topic_partition_list_t* assigned = nullptr;
    if (!sent && rd_kafka_assignment(other, &assigned) == RD_KAFKA_RESP_ERR_NO_ERROR && assigned->cnt > 0) {
      produce_all(broker.bootstrap(), std::string{prov::kafka::command_topic}, more);
      sent = true;
    }
    if (assigned != nullptr) {
      rd_kafka_topic_partition_list_destroy(assigned);
    }
    if (rd_kafka_message_t* m = rd_kafka_consumer_poll(other, 50)) {
      taken += m->err == RD_KAFKA_RESP_ERR_NO_ERROR ? 1 : 0;
      rd_kafka_message_destroy(m);
    }
  }
  CHECK(sent);
  CHECK(taken > 0);
  rd_kafka_consumer_close(other);  // leaves the group, commits nothing
  rd_kafka_destroy(other);
  if (!sent) {
    produce_all(broker.bootstrap(), std::string{prov::kafka::command_topic}, more);
  }

  REQUIRE(results.until([&](const auto& r) { return answers(r).size() == 2 * first; }, std::chrono::seconds{90}));
  std::map<std::string, std::set<std::string>> ids_of;  // correlation -> request ids answered
  for (const auto& r : results.records()) {
    const auto j = json::parse(r.value);
    INFO(j.dump());
    CHECK(j["status"] == "accepted");
    ids_of[j["correlationId"].get<std::string>()].insert(j["requestId"].get<std::string>());
  }
  std::set<std::string> ids;
  for (const auto& [correlation, answered] : ids_of) {
    INFO(correlation);
    CHECK(answered.size() == 1);  // a command consumed again is answered with the same request
    ids.insert(answered.begin(), answered.end());
  }
  CHECK(ids.size() == 2 * first);
  REQUIRE(eventually([&] { return all_requests(c, s.admin()).size() >= 2 * first; }));
  CHECK(all_requests(c, s.admin()).size() == 2 * first);  // nothing created twice
  s.stop();
  const auto log = s.log();
  CHECK(log.find("kafka_commands_revoked") != std::string::npos);
}

TEST_CASE("kafka provisiond refuses to start when one of its topics is missing, and names it", "[e2e][kafka]") {
  const auto dir = fresh_dir("kafka-topics");
  dev_broker broker{dir, 1, 1, "staging."};  // the lifecycle topics are "staging.provisioning.started", ...
  prov::kafka::client_settings client;
  client.brokers = broker.bootstrap();
  // The check lists topics and creates none: asked twice, the same nine are missing.
  for (int i = 0; i < 2; ++i) {
    const auto missing = prov::kafka::missing_topics(client, "", std::chrono::seconds{20});
    REQUIRE(missing.ok());
    REQUIRE(missing->size() == std::size(prov::events::lifecycle_types));
    CHECK(missing->front() == "provisioning.started");
    CHECK(missing->back() == "provisioning.rolled-back");
  }
  CHECK(prov::kafka::missing_topics(client, "staging.", std::chrono::seconds{20})->empty());
  auto nobody = client;
  nobody.brokers = "127.0.0.1:1";
  CHECK(prov::kafka::missing_topics(nobody, "", std::chrono::seconds{2}).err().code == prov::errc::unavailable);

  {
    child_process refused{{PROVISIOND_BINARY, "--data-dir", (dir / "data").string(), "--listen", "127.0.0.1:0",
                           "--kafka-brokers", broker.bootstrap()},
                          (dir / "provisiond.log").string()};
    const auto code = refused.wait(std::chrono::seconds{60});
    REQUIRE(code.has_value());
    CHECK(*code == 1);
  }
  {
    // A property librdkafka refuses stops the start too, before anything is opened.
    const auto bad = dir / "bad-property";
    std::filesystem::create_directories(bad);
    child_process refused{{PROVISIOND_BINARY, "--data-dir", (bad / "data").string(), "--listen", "127.0.0.1:0",
                           "--kafka-brokers", broker.bootstrap(), "--kafka-property", "no.such.property=1"},
                          (bad / "provisiond.log").string()};
    const auto code = refused.wait(std::chrono::seconds{60});
    REQUIRE(code.has_value());
    CHECK(*code == 1);
    CHECK_FALSE(std::filesystem::exists(bad / "data"));
    CHECK(server{bad}.log().find("kafka_client_failed") != std::string::npos);
  }
  {
    // So does one for the consumer only, with the topic check off; its value is not logged.
    const auto bad = dir / "bad-consumer-property";
    std::filesystem::create_directories(bad);
    child_process refused{{PROVISIOND_BINARY, "--data-dir", (bad / "data").string(), "--listen", "127.0.0.1:0",
                           "--kafka-brokers", broker.bootstrap(), "--kafka-topic-check", "0",
                           "--kafka-consumer-property", "session.timeout.ms=secret-not-a-number"},
                          (bad / "provisiond.log").string()};
    const auto code = refused.wait(std::chrono::seconds{60});
    REQUIRE(code.has_value());
    CHECK(*code == 1);
    CHECK_FALSE(std::filesystem::exists(bad / "data"));
    const auto log = server{bad}.log();
    CHECK(log.find("kafka_client_failed") != std::string::npos);
    CHECK(log.find("session.timeout.ms") != std::string::npos);
    CHECK(log.find("secret-not-a-number") == std::string::npos);
  }
  server s{dir};
  const auto log = s.log();
  CHECK(log.find("kafka_topics_missing") != std::string::npos);
  CHECK(log.find("provisioning.completed") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir / "data"));  // refused before it touched anything
  // With the prefix the topics have, it starts.
  s.start({"--kafka-brokers", broker.bootstrap(), "--kafka-topic-prefix", "staging.", "--log-level", "warn"});
  CHECK(s.stop() == 0);
}
