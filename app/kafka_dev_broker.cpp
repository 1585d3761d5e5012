// kafka-dev-broker: a local Kafka for development and tests, built on librdkafka's mock
// cluster (`rdkafka_mock.h`). Debian ships no Kafka broker; this starts N brokers on loopback,
// creates the project's topics, prints the bootstrap address as the FIRST line of stdout and
// runs until SIGTERM/SIGINT. Any Kafka client (provisiond, kcat) can use it.
//
// Control (for outage tests): `--control-port PORT` (0 = any free port; the address is printed
// as the second stdout line, "control 127.0.0.1:PORT") and/or `--stdin-control` accept one
// command per line and answer "ok" or "error: ...":
//   down <broker-id|all>        disconnect a broker and refuse new connections
//   up <broker-id|all>          accept connections again
//   rtt <broker-id|all> <ms>    add round-trip delay
//   leader <topic> <partition> <broker-id>   move a partition's leadership
// The mock cluster keeps everything in memory: it is not durable and not a production broker.

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "stop_signals.hpp"
#include "prov/kafka/topics.hpp"

namespace po = boost::program_options;

namespace {

struct settings {
  int brokers = 3;
  int partitions = 6;
  int replication = 0;  ///< 0 = min(3, brokers)
  int control_port = -1;
  bool stdin_control = false;
  std::string event_prefix;
};

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "kafka-dev-broker: " << message << "\n(see kafka-dev-broker --help)\n";
  std::exit(2);
}

settings parse_args(int argc, char** argv) {
  settings s;
  po::options_description opts{"kafka-dev-broker options"};
  opts.add_options()
      ("help,h", "show this help and exit")
      ("brokers", po::value(&s.brokers)->default_value(s.brokers), "number of mock brokers (1-16)")
      ("partitions", po::value(&s.partitions)->default_value(s.partitions), "partitions per project topic (1-256)")
      ("replication", po::value(&s.replication)->default_value(s.replication), "replication factor (0 = min(3, brokers))")
      ("event-topic-prefix", po::value(&s.event_prefix), "prefix of the lifecycle event topics (as provisiond's)")
      ("control-port", po::value(&s.control_port), "TCP port on 127.0.0.1 for control commands (0 = any free)")
      ("stdin-control", po::bool_switch(&s.stdin_control), "read control commands from stdin");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    if (vm.count("help") != 0) {
      std::cout << "Usage: kafka-dev-broker [options]\n\n" << opts
                << "\nControl commands (one per line): down <id|all>, up <id|all>, rtt <id|all> <ms>,\n"
                   "leader <topic> <partition> <id>. Broker ids are 1..N.\n";
      std::exit(0);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    usage_error(e.what());
  }
  if (s.brokers < 1 || s.brokers > 16) {
    usage_error("--brokers must be from 1 to 16");
  }
  if (s.partitions < 1 || s.partitions > 256) {
    usage_error("--partitions must be from 1 to 256");
  }
  if (s.replication == 0) {
    s.replication = std::min(3, s.brokers);
  }
  if (s.replication < 1 || s.replication > s.brokers) {
    usage_error("--replication must be from 1 to the number of brokers");
  }
  if (s.control_port > 65535) {
    usage_error("--control-port must be from 0 to 65535");
  }
  return s;
}

// One control command -> "ok" or "error: ...".
std::string run_command(rd_kafka_mock_cluster_t* cluster, int brokers, const std::string& line) {
  std::istringstream in{line};
  std::string verb;
  std::string target;
  in >> verb >> target;
  auto broker_id = [&](const std::string& t, std::int32_t& id) {
    if (t == "all") {
      id = -1;
      return true;
    }
    try {
      std::size_t used = 0;
      const int v = std::stoi(t, &used);
      if (used != t.size() || v < 1 || v > brokers) {
        return false;
      }
      id = v;
      return true;
    } catch (const std::exception&) {
      return false;
    }
  };
  auto answer = [](rd_kafka_resp_err_t err) {
    return err == RD_KAFKA_RESP_ERR_NO_ERROR ? std::string{"ok"} : std::string{"error: "} + rd_kafka_err2str(err);
  };
  std::int32_t id = 0;
  if (verb == "down" || verb == "up") {
    if (!broker_id(target, id)) {
      return "error: broker id must be 1.." + std::to_string(brokers) + " or all";
    }
    const auto err = verb == "down" ? rd_kafka_mock_broker_set_down(cluster, id) : rd_kafka_mock_broker_set_up(cluster, id);
    std::cerr << "kafka-dev-broker: broker " << target << " " << verb << "\n";
    return answer(err);
  }
  if (verb == "rtt") {
    int ms = -1;
    in >> ms;
    if (!broker_id(target, id) || ms < 0) {
      return "error: usage: rtt <id|all> <ms>";
    }
    return answer(rd_kafka_mock_broker_set_rtt(cluster, id, ms));
  }
  if (verb == "leader") {
    int partition = -1;
    std::string leader;
    in >> partition >> leader;
    if (target.empty() || partition < 0 || !broker_id(leader, id) || id < 0) {
      return "error: usage: leader <topic> <partition> <id>";
    }
    return answer(rd_kafka_mock_partition_set_leader(cluster, target.c_str(), partition, id));
  }
  return "error: unknown command '" + verb + "' (down, up, rtt, leader)";
}

// Serves control commands from a TCP listener and/or stdin until `stop` is set.
void serve_control(rd_kafka_mock_cluster_t* cluster, int brokers, int listener, bool use_stdin, const std::atomic<bool>& stop) {
  struct client {
    int fd;
    std::string buffer;
  };
  std::vector<client> clients;
  std::string stdin_buffer;
  bool stdin_open = use_stdin;
  while (!stop.load()) {
    std::vector<pollfd> fds;
    if (listener >= 0) {
      fds.push_back(pollfd{listener, POLLIN, 0});
    }
    if (stdin_open) {
      fds.push_back(pollfd{STDIN_FILENO, POLLIN, 0});
    }
    for (const auto& c : clients) {
      fds.push_back(pollfd{c.fd, POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), 200) <= 0) {
      continue;
    }
    std::size_t i = 0;
    if (listener >= 0) {
      if ((fds[i].revents & POLLIN) != 0) {
        const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
          clients.push_back(client{fd, {}});
        }
      }
      ++i;
    }
    char buf[1024];
    if (stdin_open) {
      if ((fds[i].revents & (POLLIN | POLLHUP)) != 0) {
        const auto n = ::read(STDIN_FILENO, buf, sizeof buf);
        if (n <= 0) {
          stdin_open = false;
        } else {
          stdin_buffer.append(buf, static_cast<std::size_t>(n));
          for (auto nl = stdin_buffer.find('\n'); nl != std::string::npos; nl = stdin_buffer.find('\n')) {
            const auto line = stdin_buffer.substr(0, nl);
            stdin_buffer.erase(0, nl + 1);
            if (!line.empty()) {
              std::cerr << run_command(cluster, brokers, line) << "\n";
            }
          }
        }
      }
      ++i;
    }
    // Clients: read lines, answer each; drop closed ones. (fds beyond i map to clients in order.)
    std::vector<client> still_open;
    for (std::size_t c = 0; c < clients.size(); ++c, ++i) {
      auto& cl = clients[c];
      bool open = true;
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        const auto n = ::read(cl.fd, buf, sizeof buf);
        if (n <= 0) {
          open = false;
        } else {
          cl.buffer.append(buf, static_cast<std::size_t>(n));
          for (auto nl = cl.buffer.find('\n'); nl != std::string::npos; nl = cl.buffer.find('\n')) {
            auto line = cl.buffer.substr(0, nl);
            cl.buffer.erase(0, nl + 1);
            if (!line.empty() && line.back() == '\r') {
              line.pop_back();
            }
            const auto reply = run_command(cluster, brokers, line) + "\n";
            if (::send(cl.fd, reply.data(), reply.size(), MSG_NOSIGNAL) < 0) {
              open = false;
              break;
            }
          }
          if (cl.buffer.size() > 4096) {
            open = false;  // not a line protocol client
          }
        }
      }
      if (open) {
        still_open.push_back(std::move(cl));
      } else {
        ::close(cl.fd);
      }
    }
    clients = std::move(still_open);
  }
  for (const auto& c : clients) {
    ::close(c.fd);
  }
}

// A listening socket on 127.0.0.1:port; returns the fd and the bound port, or -1.
int listen_loopback(int port, int& bound) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 16) != 0) {
    ::close(fd);
    return -1;
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  bound = ntohs(addr.sin_port);
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  const auto s = parse_args(argc, argv);

  // Signals are taken synchronously by this thread; librdkafka's threads inherit the mask.
  const sigset_t stop_signals = prov::app::block_stop_signals();

  // The mock cluster lives inside a client handle; the handle itself is otherwise unused.
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "client.id", "kafka-dev-broker", errstr, sizeof errstr);
  rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (rk == nullptr) {
    std::cerr << "kafka-dev-broker: " << errstr << "\n";
    return 1;
  }
  rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(rk, s.brokers);
  if (cluster == nullptr) {
    std::cerr << "kafka-dev-broker: cannot create the mock cluster\n";
    rd_kafka_destroy(rk);
    return 1;
  }
  for (const auto& t : prov::kafka::project_topics(s.partitions, s.event_prefix)) {
    if (const auto err = rd_kafka_mock_topic_create(cluster, t.name.c_str(), t.partitions, s.replication); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::cerr << "kafka-dev-broker: cannot create topic " << t.name << ": " << rd_kafka_err2str(err) << "\n";
      rd_kafka_mock_cluster_destroy(cluster);
      rd_kafka_destroy(rk);
      return 1;
    }
  }

  int listener = -1;
  int control_port = 0;
  if (s.control_port >= 0) {
    listener = listen_loopback(s.control_port, control_port);
    if (listener < 0) {
      std::cerr << "kafka-dev-broker: cannot listen on 127.0.0.1:" << s.control_port << ": " << std::strerror(errno) << "\n";
      rd_kafka_mock_cluster_destroy(cluster);
      rd_kafka_destroy(rk);
      return 1;
    }
  }

  std::cout << rd_kafka_mock_cluster_bootstraps(cluster) << std::endl;
  if (listener >= 0) {
    std::cout << "control 127.0.0.1:" << control_port << std::endl;
  }
  std::cerr << "kafka-dev-broker: " << s.brokers << " brokers at " << rd_kafka_mock_cluster_bootstraps(cluster) << ", "
            << prov::kafka::project_topics(s.partitions, s.event_prefix).size() << " topics\n";

  std::atomic<bool> stop{false};
  std::thread control;
  if (listener >= 0 || s.stdin_control) {
    control = std::thread{[&] { serve_control(cluster, s.brokers, listener, s.stdin_control, stop); }};
  }

  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::cerr << "kafka-dev-broker: stopping (" << (sig == SIGTERM ? "SIGTERM" : "SIGINT") << ")\n";
  stop.store(true);
  if (control.joinable()) {
    control.join();
  }
  if (listener >= 0) {
    ::close(listener);
  }
  rd_kafka_mock_cluster_destroy(cluster);
  rd_kafka_destroy(rk);
  return 0;
}
