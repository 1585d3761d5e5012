#pragma once
// Kafka end-to-end tests: the dev broker as a subprocess (loopback only), a plain consumer
// that reads whole topics, a producer of commands, and the journal of a stopped provisiond as
// the oracle of which lifecycle events must have been published. Every wait is bounded.

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <set>

#include <librdkafka/rdkafka.h>

#include "e2e/server_fixture.hpp"
#include "prov/core/clock.hpp"
#include "prov/events/apply.hpp"
#include "prov/events/lifecycle.hpp"
#include "prov/events/rocks_journal.hpp"
#include "prov/events/rocks_store.hpp"
#include "prov/kafka/topics.hpp"

namespace prov::test {

/// kafka-dev-broker as a subprocess, with its control port.
class dev_broker {
 public:
  /// `event_prefix`: the lifecycle topics it creates have it (as `--kafka-topic-prefix` says).
  explicit dev_broker(const std::filesystem::path& dir, int brokers = 3, int partitions = 6,
                      const std::string& event_prefix = {})
      : _partitions(partitions) {
    std::vector<std::string> argv{KAFKA_DEV_BROKER_BINARY, "--brokers", std::to_string(brokers), "--partitions",
                                  std::to_string(partitions), "--control-port", "0"};
    if (!event_prefix.empty()) {
      argv.insert(argv.end(), {"--event-topic-prefix", event_prefix});
    }
    _proc = std::make_unique<child_process>(argv, (dir / "broker.log").string());
    const auto bootstrap = _proc->read_line(std::chrono::seconds{20});
    REQUIRE(bootstrap.has_value());
    REQUIRE(bootstrap->rfind("127.0.0.1:", 0) == 0);
    _bootstrap = *bootstrap;
    const auto control = _proc->read_line(std::chrono::seconds{20});
    REQUIRE(control.has_value());
    REQUIRE(control->rfind("control 127.0.0.1:", 0) == 0);
    _control_port = std::stoi(control->substr(control->rfind(':') + 1));
  }
  ~dev_broker() {
    if (_proc && _proc->running()) {
      _proc->signal(SIGTERM);
      if (!_proc->wait(std::chrono::seconds{10})) {
        _proc->signal(SIGKILL);
        _proc->wait(std::chrono::seconds{10});
      }
    }
  }

  const std::string& bootstrap() const { return _bootstrap; }
  int partitions() const { return _partitions; }

  /// Sends one control command ("down all", "up 2", ...) and returns the answer line.
  std::string control(const std::string& command) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(_control_port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    const auto line = command + "\n";
    REQUIRE(::send(fd, line.data(), line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(line.size()));
    std::string reply;
    char c = 0;
    while (::recv(fd, &c, 1, 0) == 1 && c != '\n') {
      reply += c;
    }
    ::close(fd);
    return reply;
  }

 private:
  std::unique_ptr<child_process> _proc;
  std::string _bootstrap;
  int _control_port = 0;
  int _partitions = 0;
};

struct record {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::string key;
  std::string value;
};

inline rd_kafka_conf_t* client_conf(const std::string& bootstrap) {
  char err[512];
  rd_kafka_conf_t* c = rd_kafka_conf_new();
  REQUIRE(rd_kafka_conf_set(c, "bootstrap.servers", bootstrap.c_str(), err, sizeof err) == RD_KAFKA_CONF_OK);
  REQUIRE(rd_kafka_conf_set(c, "log_level", "2", err, sizeof err) == RD_KAFKA_CONF_OK);
  return c;
}

/// Reads topics from their beginning, every partition, without a consumer group.
class topic_reader {
 public:
  topic_reader(const std::string& bootstrap, const std::vector<std::string>& topics, int partitions) {
    char err[512];
    auto* c = client_conf(bootstrap);
    REQUIRE(rd_kafka_conf_set(c, "group.id", "test-reader", err, sizeof err) == RD_KAFKA_CONF_OK);
    REQUIRE(rd_kafka_conf_set(c, "enable.auto.commit", "false", err, sizeof err) == RD_KAFKA_CONF_OK);
    _rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
    REQUIRE(_rk != nullptr);
    rd_kafka_poll_set_consumer(_rk);
    auto* list = rd_kafka_topic_partition_list_new(static_cast<int>(topics.size()) * partitions);
    for (const auto& t : topics) {
      for (int p = 0; p < partitions; ++p) {
        rd_kafka_topic_partition_list_add(list, t.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
      }
    }
    REQUIRE(rd_kafka_assign(_rk, list) == RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(list);
  }
  ~topic_reader() {
    rd_kafka_consumer_close(_rk);
    rd_kafka_destroy(_rk);
  }

  /// Reads until `done(records)` holds or `timeout` passes; returns whether it held.
  bool until(const std::function<bool(const std::vector<record>&)>& done,
             std::chrono::seconds timeout = std::chrono::seconds{60}) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done(_records)) {
      if (std::chrono::steady_clock::now() > deadline) {
        return false;
      }
      if (rd_kafka_message_t* m = rd_kafka_consumer_poll(_rk, 50)) {
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
          _records.push_back(record{rd_kafka_topic_name(m->rkt), m->partition, m->offset,
                                    std::string{static_cast<const char*>(m->key), m->key_len},
                                    std::string{static_cast<const char*>(m->payload), m->len}});
        }
        rd_kafka_message_destroy(m);
      }
    }
    return true;
  }

  /// Reads whatever arrives within `d`.
  void drain_for(std::chrono::milliseconds d) {
    const auto until_time = std::chrono::steady_clock::now() + d;
    until([&](const auto&) { return std::chrono::steady_clock::now() >= until_time; }, std::chrono::seconds{600});
  }

  const std::vector<record>& records() const { return _records; }

 private:
  rd_kafka_t* _rk = nullptr;
  std::vector<record> _records;
};

/// Produces (key, value) pairs to `topic` and waits for every delivery report.
inline void produce_all(const std::string& bootstrap, const std::string& topic,
                        const std::vector<std::pair<std::string, std::string>>& messages) {
  char err[512];
  auto* c = client_conf(bootstrap);
  REQUIRE(rd_kafka_conf_set(c, "enable.idempotence", "true", err, sizeof err) == RD_KAFKA_CONF_OK);
  REQUIRE(rd_kafka_conf_set(c, "partitioner", "murmur2_random", err, sizeof err) == RD_KAFKA_CONF_OK);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
  REQUIRE(rk != nullptr);
  for (const auto& [key, value] : messages) {
    const auto e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(key.data(), key.size()),
                                     RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                                     RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    REQUIRE(e == RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  CHECK(rd_kafka_flush(rk, 30'000) == RD_KAFKA_RESP_ERR_NO_ERROR);
  CHECK(rd_kafka_outq_len(rk) == 0);
  rd_kafka_destroy(rk);
}

/// Every lifecycle topic (no prefix).
inline std::vector<std::string> lifecycle_topics() {
  std::vector<std::string> out;
  for (auto t : events::lifecycle_types) {
    out.emplace_back(t);
  }
  return out;
}

/// A lifecycle event as read from Kafka.
struct published_event {
  std::string id;
  std::string type;
  std::string request;
  std::uint64_t sequence = 0;
  const record* from = nullptr;
};

inline std::vector<published_event> published_events(const std::vector<record>& records) {
  std::vector<published_event> out;
  for (const auto& r : records) {
    const auto j = nlohmann::json::parse(r.value);
    out.push_back(published_event{j.at("id").get<std::string>(), j.at("type").get<std::string>(),
                                  j.at("subject").get<std::string>(), j.at("sequence").get<std::uint64_t>(), &r});
  }
  return out;
}

/// The lifecycle events the journal of a *stopped* provisiond stands for: id -> (type, request).
inline std::map<std::string, std::pair<std::string, std::string>> journal_lifecycle(const std::filesystem::path& data_dir) {
  events::rocks_store_options o;
  o.path = (data_dir / "db").string();
  auto store = events::rocks_store::open(o);
  REQUIRE(store.ok());
  system_clock_source clk;
  auto journal = events::make_rocks_journal(**store, clk);
  REQUIRE(journal.ok());
  std::map<std::string, events::request_state> states;
  std::map<std::string, std::pair<std::string, std::string>> out;
  auto read = (*journal)->read_all(1, std::numeric_limits<std::size_t>::max(), [&](const events::stored_event& e) {
    if (events::stream_category(e.stream) != "request") {
      return;
    }
    auto any = events::decode(e);
    REQUIRE(any.ok());
    auto ev = events::as_request_event(*any);
    if (!ev) {
      return;
    }
    auto& s = states[std::string{events::stream_key(e.stream)}];
    REQUIRE(events::apply_to(s, *ev, events::event_meta{e.sequence, e.time}).ok());
    for (const auto& le : events::to_lifecycle(e, *any, s)) {
      out.emplace(le.cloudevent.at("id").get<std::string>(), std::make_pair(le.type, le.request));
    }
  });
  REQUIRE(read.ok());
  return out;
}

/// Per topic and request: the key is the request, one partition, and sequences never go back.
inline void check_order_per_request(const std::vector<published_event>& events) {
  std::map<std::pair<std::string, std::string>, std::pair<std::int32_t, std::uint64_t>> last;
  for (const auto& e : events) {
    CHECK(e.from->key == e.request);
    const auto k = std::make_pair(e.from->topic, e.request);
    auto it = last.find(k);
    if (it == last.end()) {
      last.emplace(k, std::make_pair(e.from->partition, e.sequence));
      continue;
    }
    CHECK(it->second.first == e.from->partition);
    if (e.sequence < it->second.second) {
      FAIL_CHECK("request " << e.request << " on " << e.from->topic << ": sequence " << e.sequence << " after "
                            << it->second.second);
    }
    it->second.second = e.sequence;
  }
}

}  // namespace prov::test
