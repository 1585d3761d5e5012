// provisiond: the provisioning engine, embedded mode (RocksDB journal in --data-dir, HTTP
// gateway on --listen). SIGTERM/SIGINT stop it cleanly: the gateway stops taking requests,
// in-flight work is left in the journal to resume on the next start, and the journal is flushed.

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/program_options.hpp>

#include "stop_signals.hpp"
#include "prov/actors/engine.hpp"
#include "prov/core/duration.hpp"
#include "prov/core/ids.hpp"
#include "prov/core/log.hpp"
#include "prov/gateway/api.hpp"
#include "prov/gateway/metrics_text.hpp"
#include "prov/gateway/http_server.hpp"
#include "prov/kafka/command_consumer.hpp"
#include "prov/kafka/outbox_publisher.hpp"
#include "prov/kafka/topics.hpp"

namespace po = boost::program_options;

namespace {

constexpr int exit_usage = 2;
/// The journal failed a WAL write or sync: provisiond stopped so that a restart (systemd's
/// `Restart=on-failure`, an orchestrator) recovers it.
constexpr int exit_journal_failed = 3;

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "provisiond: " << message << "\n(see provisiond --help)\n";
  std::exit(exit_usage);
}

struct settings {
  std::string data_dir = "./data";
  std::string backup_dir;
  std::string listen = "127.0.0.1:8080";
  std::string admin_token;
  std::string kafka_brokers;
  std::string kafka_topic_prefix;
  std::string kafka_group = "provisiond";
  std::vector<std::string> kafka_properties;           ///< NAME=VALUE librdkafka properties, every client
  std::vector<std::string> kafka_consumer_properties;  ///< ... the command consumer only
  std::vector<std::string> kafka_producer_properties;  ///< ... the producers only
  std::size_t kafka_max_buffered = 1'000;
  std::size_t kafka_creates_in_flight = 64;
  std::chrono::milliseconds kafka_topic_check{10'000};  ///< 0: no check of the topics at start
  unsigned http_threads = 2;
  std::string tls_cert;  ///< PEM certificate chain of the gateway: HTTPS (with tls_key)
  std::string tls_key;   ///< PEM private key of that certificate
  std::string tls_min_version = "1.2";  ///< the oldest TLS version clients may negotiate
  std::size_t scheduler_threads = 0;
  std::string scheduler_policy = "sharing";
  bool rebuild_projections = false;
  bool exit_on_journal_failure = true;  ///< --journal-failure exit (default) or serve
  std::string log_level = "info";
  prov::actors::pipeline_options pipeline;
  std::chrono::milliseconds shutdown_grace{30'000};
  std::size_t max_pending = 50'000;
  prov::actors::webhook_options webhooks;
};

// A duration flag: "250ms", "5s", "30m", "1h" or seconds; zero only where it means "off".
std::chrono::milliseconds duration_flag(const po::variables_map& vm, const char* name, std::chrono::milliseconds fallback,
                                        bool zero_means_off = false) {
  if (vm.count(name) == 0) {
    return fallback;
  }
  const auto text = vm[name].as<std::string>();
  const auto d = prov::parse_duration(text);
  if (!d) {
    usage_error(std::string{"--"} + name + " must be a duration like 250ms, 5s, 30m or 1h, got '" + text + "'");
  }
  if (d->count() == 0 && !zero_means_off) {
    usage_error(std::string{"--"} + name + " must be greater than zero");
  }
  return *d;
}

template <class T>
T positive_flag(const po::variables_map& vm, const char* name, T fallback, T max) {
  if (vm.count(name) == 0) {
    return fallback;
  }
  const auto v = vm[name].as<long long>();
  if (v < 1 || static_cast<unsigned long long>(v) > static_cast<unsigned long long>(max)) {
    usage_error(std::string{"--"} + name + " must be from 1 to " + std::to_string(max) + ", got " + std::to_string(v));
  }
  return static_cast<T>(v);
}

settings parse_args(int argc, char** argv) {
  settings s;
  std::string config_file;
  po::options_description opts{"provisiond options (each also settable as `name = value` in --config)"};
  opts.add_options()
      ("help,h", "show this help and exit")
      ("version", "print the version and exit")
      ("config", po::value(&config_file), "read options from FILE (command-line flags win)")
      ("data-dir", po::value(&s.data_dir)->default_value(s.data_dir), "directory of the journal, projections and simulated cloud")
      ("backup-dir", po::value(&s.backup_dir),
       "where POST /v1/backups writes (default <data-dir>/backups: on the same filesystem a backup is hard links)")
      ("listen", po::value(&s.listen)->default_value(s.listen), "HOST:PORT of the HTTP gateway (port 0 = any free port)")
      ("admin-token", po::value(&s.admin_token),
       "admin bearer token (else env PROVISIOND_ADMIN_TOKEN, else <data-dir>/admin.token, generated on first start)")
      ("kafka-brokers", po::value(&s.kafka_brokers),
       "HOST:PORT[,...] of a Kafka cluster: publish lifecycle events (outbox) and take commands (see docs/KAFKA.md)")
      ("kafka-topic-prefix", po::value(&s.kafka_topic_prefix), "prefix of the lifecycle event topics (e.g. \"staging.\")")
      ("kafka-group", po::value(&s.kafka_group)->default_value(s.kafka_group), "consumer group of the command topic")
      ("kafka-property", po::value(&s.kafka_properties)->composing(),
       "NAME=VALUE librdkafka property for every Kafka client (TLS, SASL, timeouts); repeatable")
      ("kafka-consumer-property", po::value(&s.kafka_consumer_properties)->composing(),
       "NAME=VALUE librdkafka property for the command consumer only (e.g. group.instance.id); repeatable")
      ("kafka-producer-property", po::value(&s.kafka_producer_properties)->composing(),
       "NAME=VALUE librdkafka property for the producers only (outbox, command answers); repeatable")
      ("kafka-max-buffered", po::value(&s.kafka_max_buffered)->default_value(s.kafka_max_buffered),
       "commands consumed and not yet answered before the command partitions are paused (1-1000000)")
      ("kafka-creates-in-flight", po::value(&s.kafka_creates_in_flight)->default_value(s.kafka_creates_in_flight),
       "create commands of one partition with the engine at once; other commands run alone, in order (1-10000)")
      ("kafka-topic-check", po::value<std::string>(),
       "at start, wait this long for Kafka to list its topics and refuse to start if one of ours is missing "
       "(default 10s; unreachable: start anyway; 0 = no check)")
      ("http-threads", po::value(&s.http_threads)->default_value(s.http_threads), "HTTP I/O threads (1-64)")
      ("tls-cert", po::value(&s.tls_cert),
       "serve HTTPS: PEM file of the gateway's certificate chain (its certificate first; needs --tls-key)")
      ("tls-key", po::value(&s.tls_key), "PEM file of the private key of --tls-cert")
      ("tls-min-version", po::value(&s.tls_min_version)->default_value(s.tls_min_version),
       "with --tls-cert: the oldest TLS version a client may use, 1.2 or 1.3")
      ("scheduler-threads", po::value(&s.scheduler_threads)->default_value(s.scheduler_threads),
       "actor scheduler threads (0 = number of cores)")
      ("scheduler-policy", po::value(&s.scheduler_policy)->default_value(s.scheduler_policy),
       "sharing (one queue, idle threads sleep: cheaper on few cores) or stealing (per-thread queues, idle threads poll)")
      ("rebuild-projections", po::bool_switch(&s.rebuild_projections), "rebuild every read model from the journal at start")
      ("journal-failure", po::value<std::string>()->default_value("exit"),
       "when a journal write cannot be made durable (a failed write or fsync, a full disk): exit (stop gracefully, "
       "exit code 3, for a restart to recover) or serve (stay up for reads, refuse writes, /healthz 503)")
      ("log-level", po::value(&s.log_level)->default_value(s.log_level), "debug, info, warn or error");
  po::options_description worker{"worker resilience (durations: 250ms, 5s, 30m, 1h)"};
  worker.add_options()
      ("tenant-max-active", po::value<long long>(), "requests of one tenant in the active steps at once (default 5)")
      ("max-active", po::value<long long>(), "requests in the active steps at once, all tenants (default 1000)")
      ("retry-max", po::value<long long>(), "retries of a failed step (default 3; 0 = none)")
      ("retry-base", po::value<std::string>(), "first retry delay, doubling each time (default 5s)")
      ("retry-cap", po::value<std::string>(), "longest retry delay (default 5m)")
      ("retry-jitter", po::bool_switch(&s.pipeline.retry.jitter), "scale each retry delay by a factor in [0.5, 1]")
      ("stuck-timeout", po::value<std::string>(), "fail a request with no progress for this long (default 30m)")
      ("stuck-scan-interval", po::value<std::string>(), "how often to look for stuck requests (default 1m)")
      ("orphan-scan-interval", po::value<std::string>(), "how often to look for orphaned resources at the providers (default 10m; 0 = never)")
      ("orphan-grace", po::value<std::string>(), "how long a request must be at rest before its orphans are deleted (default 5m)")
      ("call-timeout", po::value<std::string>(), "per provider call (default 5m; 0 = none)")
      ("max-concurrent-calls", po::value<long long>(), "provider calls at once per cluster: the bulkhead (default 16)")
      ("max-queued-calls", po::value<long long>(), "calls waiting per cluster before failing fast (default 10000)")
      ("breaker-failures", po::value<long long>(), "consecutive failures that open a cluster's breaker (default 5)")
      ("breaker-failure-ratio", po::value<double>(), "failure ratio over recent calls that opens it (default 0.5)")
      ("breaker-window", po::value<long long>(), "recent calls the ratio looks at (default 20)")
      ("breaker-min-calls", po::value<long long>(), "calls needed before the ratio counts (default 10)")
      ("breaker-cooldown", po::value<std::string>(), "open time before a probe call (default 30s)")
      ("shutdown-grace", po::value<std::string>(), "on SIGTERM, time for in-flight calls to finish (default 30s)")
      ("max-pending", po::value<long long>(), "unfinished requests before submissions get 429 (default 50000)");
  opts.add(worker);
  po::options_description hooks{"webhooks (R-6.3; see docs/WEBHOOKS.md)"};
  hooks.add_options()
      ("webhook-allow-loopback", po::bool_switch(&s.webhooks.addresses.allow_loopback),
       "let webhooks target loopback addresses (127.0.0.0/8, ::1)")
      ("webhook-allow-private", po::bool_switch(&s.webhooks.addresses.allow_private),
       "let webhooks target private addresses (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7)")
      ("webhook-allow-link-local", po::bool_switch(&s.webhooks.addresses.allow_link_local),
       "let webhooks target link-local and metadata addresses (169.254/16, fe80::/10): never where a metadata service answers")
      ("webhook-ca-bundle", po::value(&s.webhooks.ca_bundle), "PEM file of CAs for HTTPS receivers (default: system store)")
      ("webhook-timeout", po::value<std::string>(), "per delivery attempt (default 10s)")
      ("webhook-max-attempts", po::value<long long>(), "attempts per event (default 5)")
      ("webhook-retry-base", po::value<std::string>(), "first retry delay, doubling each time (default 5s)")
      ("webhook-retry-cap", po::value<std::string>(), "longest retry delay (default 5m)");
  opts.add(hooks);
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    if (vm.count("help") != 0) {
      std::cout << "Usage: provisiond [options]\n\n" << opts << "\n";
      std::exit(0);
    }
    if (vm.count("version") != 0) {
      std::cout << "provisiond " << PROVISIOND_VERSION << "\n";
      std::exit(0);
    }
    if (vm.count("config") != 0) {
      const auto path = vm["config"].as<std::string>();
      std::ifstream in{path};
      if (!in) {
        usage_error("cannot read config file " + path);
      }
      po::store(po::parse_config_file(in, opts), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    usage_error(e.what());
  }
  auto& p = s.pipeline;
  p.admission.tenant_max_active = positive_flag<std::size_t>(vm, "tenant-max-active", p.admission.tenant_max_active, 1'000'000);
  p.admission.max_active = positive_flag<std::size_t>(vm, "max-active", p.admission.max_active, 10'000'000);
  if (p.admission.tenant_max_active > p.admission.max_active) {
    usage_error("--tenant-max-active must not exceed --max-active");
  }
  if (vm.count("retry-max") != 0) {
    const auto v = vm["retry-max"].as<long long>();
    if (v < 0 || v > 100) {
      usage_error("--retry-max must be from 0 to 100");
    }
    p.retry.max_retries = static_cast<std::uint32_t>(v);
  }
  p.retry.base = duration_flag(vm, "retry-base", p.retry.base);
  p.retry.cap = duration_flag(vm, "retry-cap", p.retry.cap);
  if (p.retry.cap < p.retry.base) {
    usage_error("--retry-cap must not be shorter than --retry-base");
  }
  p.watchdog.stuck_after = duration_flag(vm, "stuck-timeout", p.watchdog.stuck_after);
  p.watchdog.scan_every = duration_flag(vm, "stuck-scan-interval", p.watchdog.scan_every);
  p.reconcile.every = duration_flag(vm, "orphan-scan-interval", p.reconcile.every, true);
  p.reconcile.settled_for = duration_flag(vm, "orphan-grace", p.reconcile.settled_for, true);
  p.calls.call_timeout = duration_flag(vm, "call-timeout", p.calls.call_timeout, true);
  p.calls.max_concurrent = positive_flag<std::size_t>(vm, "max-concurrent-calls", p.calls.max_concurrent, 4096);
  p.calls.max_queued = positive_flag<std::size_t>(vm, "max-queued-calls", p.calls.max_queued, 10'000'000);
  p.calls.breaker.consecutive_failures = positive_flag<std::uint32_t>(vm, "breaker-failures", p.calls.breaker.consecutive_failures, 1'000'000);
  p.calls.breaker.window = positive_flag<std::uint32_t>(vm, "breaker-window", p.calls.breaker.window, 100'000);
  p.calls.breaker.min_calls = positive_flag<std::uint32_t>(vm, "breaker-min-calls", p.calls.breaker.min_calls, 100'000);
  if (vm.count("breaker-failure-ratio") != 0) {
    const auto r = vm["breaker-failure-ratio"].as<double>();
    if (!(r > 0 && r <= 1)) {
      usage_error("--breaker-failure-ratio must be in (0, 1]");
    }
    p.calls.breaker.failure_ratio = r;
  }
  p.calls.breaker.cooldown = duration_flag(vm, "breaker-cooldown", p.calls.breaker.cooldown);
  s.shutdown_grace = duration_flag(vm, "shutdown-grace", s.shutdown_grace);
  s.max_pending = positive_flag<std::size_t>(vm, "max-pending", s.max_pending, 100'000'000);
  auto& w = s.webhooks;
  w.timeout = duration_flag(vm, "webhook-timeout", w.timeout);
  w.retry.max_attempts = positive_flag<std::uint32_t>(vm, "webhook-max-attempts", w.retry.max_attempts, 100);
  w.retry.base = duration_flag(vm, "webhook-retry-base", w.retry.base);
  w.retry.cap = duration_flag(vm, "webhook-retry-cap", w.retry.cap);
  if (w.retry.cap < w.retry.base) {
    usage_error("--webhook-retry-cap must not be shorter than --webhook-retry-base");
  }
  if (s.tls_cert.empty() != s.tls_key.empty()) {
    usage_error("--tls-cert and --tls-key go together");
  }
  if (!prov::gateway::parse_tls_version(s.tls_min_version)) {
    usage_error("--tls-min-version must be 1.2 or 1.3, got '" + s.tls_min_version + "'");
  }
  if (s.http_threads < 1 || s.http_threads > 64) {
    usage_error("--http-threads must be from 1 to 64");
  }
  if (s.scheduler_threads > 256) {
    usage_error("--scheduler-threads must be from 0 to 256");
  }
  if (!prov::actors::parse_scheduler_policy(s.scheduler_policy)) {
    usage_error("--scheduler-policy must be sharing or stealing");
  }
  if (s.log_level != "debug" && s.log_level != "info" && s.log_level != "warn" && s.log_level != "error") {
    usage_error("--log-level must be debug, info, warn or error");
  }
  if (const auto mode = vm["journal-failure"].as<std::string>(); mode == "serve") {
    s.exit_on_journal_failure = false;
  } else if (mode != "exit") {
    usage_error("--journal-failure must be exit or serve, got '" + mode + "'");
  }
  if (s.data_dir.empty()) {
    usage_error("--data-dir must not be empty");
  }
  const std::pair<const char*, const std::vector<std::string>*> property_flags[] = {
      {"--kafka-property", &s.kafka_properties},
      {"--kafka-consumer-property", &s.kafka_consumer_properties},
      {"--kafka-producer-property", &s.kafka_producer_properties}};
  for (const auto& [flag, values] : property_flags) {
    if (!values->empty() && s.kafka_brokers.empty()) {
      usage_error(std::string{flag} + " needs --kafka-brokers");
    }
    for (const auto& p : *values) {
      if (p.find('=') == std::string::npos || p.front() == '=') {
        usage_error(std::string{flag} + " must be NAME=VALUE (the value is not shown: it may be a secret)");
      }
    }
  }
  if (!s.kafka_topic_prefix.empty() && s.kafka_brokers.empty()) {
    usage_error("--kafka-topic-prefix needs --kafka-brokers");
  }
  if (s.kafka_group.empty()) {
    usage_error("--kafka-group must not be empty");
  }
  if (s.kafka_max_buffered == 0 || s.kafka_max_buffered > 1'000'000) {
    usage_error("--kafka-max-buffered must be 1-1000000");
  }
  if (s.kafka_creates_in_flight == 0 || s.kafka_creates_in_flight > 10'000) {
    usage_error("--kafka-creates-in-flight must be 1-10000");
  }
  s.kafka_topic_check = duration_flag(vm, "kafka-topic-check", s.kafka_topic_check, true);
  return s;
}

prov::gateway::http_server_options parse_listen(const std::string& listen, const settings& s) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == listen.size()) {
    usage_error("--listen must be HOST:PORT, got '" + listen + "'");
  }
  const auto port_text = listen.substr(colon + 1);
  if (port_text.find_first_not_of("0123456789") != std::string::npos || port_text.size() > 5 ||
      std::stoul(port_text) > 65535) {
    usage_error("--listen port must be a number from 0 to 65535, got '" + port_text + "'");
  }
  prov::gateway::http_server_options o;
  o.host = listen.substr(0, colon);
  if (o.host.size() > 2 && o.host.front() == '[' && o.host.back() == ']') {
    o.host = o.host.substr(1, o.host.size() - 2);
  }
  o.port = static_cast<unsigned short>(std::stoul(port_text));
  o.threads = s.http_threads;
  o.tls_cert_file = s.tls_cert;
  o.tls_key_file = s.tls_key;
  o.tls_min_version = *prov::gateway::parse_tls_version(s.tls_min_version);  // checked with the flags
  return o;
}

// --admin-token, else PROVISIOND_ADMIN_TOKEN, else <data-dir>/admin.token (created 0600).
std::string admin_token(const settings& s) {
  if (!s.admin_token.empty()) {
    return s.admin_token;
  }
  if (const char* env = std::getenv("PROVISIOND_ADMIN_TOKEN"); env != nullptr && *env != '\0') {
    return env;
  }
  const auto path = std::filesystem::path{s.data_dir} / "admin.token";
  std::error_code ec;
  std::filesystem::create_directories(s.data_dir, ec);
  if (std::filesystem::exists(path)) {
    std::ifstream in{path};
    std::string token;
    std::getline(in, token);
    if (!token.empty()) {
      std::cerr << "provisiond: admin token read from " << path.string() << "\n";
      return token;
    }
  }
  const auto token = "adm_" + prov::random_hex(24);
  const auto old_mask = ::umask(077);
  {
    std::ofstream out{path, std::ios::trunc};
    out << token << "\n";
    if (!out) {
      std::cerr << "provisiond: cannot write " << path.string() << "\n";
      std::exit(1);
    }
  }
  ::umask(old_mask);
  std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::replace, ec);
  std::cerr << "provisiond: generated an admin token in " << path.string() << " (mode 0600)\n";
  return token;
}

prov::log::level level_of(const std::string& name) {
  if (name == "debug") return prov::log::level::debug;
  if (name == "warn") return prov::log::level::warn;
  if (name == "error") return prov::log::level::error;
  return prov::log::level::info;
}

// The Kafka components' counters in Prometheus text.
std::string kafka_metrics(const prov::kafka::outbox_publisher* outbox, const prov::kafka::command_consumer* commands) {
  prov::gateway::metrics_text m;
  if (outbox != nullptr) {
    const auto st = outbox->stats();
    m.single("provisiond_kafka_outbox_position", "gauge", "Journal position whose lifecycle events Kafka acknowledged.", st.position);
    m.single("provisiond_kafka_outbox_in_flight", "gauge", "Lifecycle events produced and not yet acknowledged.", st.in_flight);
    m.single("provisiond_kafka_outbox_published_total", "counter", "Lifecycle events acknowledged by Kafka.", st.published);
    m.single("provisiond_kafka_outbox_failed_total", "counter", "Lifecycle events whose delivery failed (published again).", st.failed);
    m.single("provisiond_kafka_outbox_skipped_total", "counter", "Journal events that could not be decoded or folded.", st.skipped);
  }
  if (commands != nullptr) {
    const auto st = commands->stats();
    m.single("provisiond_kafka_commands_received_total", "counter", "Messages consumed from the command topic.", st.received);
    m.single("provisiond_kafka_commands_accepted_total", "counter", "Commands answered accepted.", st.accepted);
    m.single("provisiond_kafka_commands_rejected_total", "counter", "Commands answered rejected (poison included).", st.rejected);
    m.single("provisiond_kafka_commands_poison_total", "counter", "Messages that were not a JSON object or too large.", st.poison);
    m.single("provisiond_kafka_commands_answer_failures_total", "counter", "Answers whose delivery failed.", st.answer_failures);
    m.single("provisiond_kafka_commands_most_with_engine", "gauge",
             "The most commands of one partition with the engine at once since start.", st.most_with_engine);
  }
  return m.take();
}

prov::kafka::client_settings kafka_client(const settings& s) {
  const auto split = [](const std::vector<std::string>& flags) {
    std::vector<prov::kafka::kafka_property> out;
    for (const auto& p : flags) {
      const auto eq = p.find('=');
      out.emplace_back(p.substr(0, eq), p.substr(eq + 1));
    }
    return out;
  };
  prov::kafka::client_settings client;
  client.brokers = s.kafka_brokers;
  client.properties = split(s.kafka_properties);
  client.consumer_properties = split(s.kafka_consumer_properties);
  client.producer_properties = split(s.kafka_producer_properties);
  return client;
}

// Whether provisiond may start on this Kafka cluster: no when librdkafka refuses one of the
// properties it was given, or when the cluster lists its topics and one of ours is not among
// them (a command topic that is not there would be waited on forever, and on a cluster that
// creates topics on first use, lifecycle events would land on topics with its defaults). A
// cluster that does not answer in time is not a reason to refuse: the outbox and the command
// consumer wait for it.
bool kafka_topics_ready(const settings& s) {
  if (s.kafka_brokers.empty()) {
    return true;
  }
  // A property librdkafka refuses (for either kind of client) stops the start here, whether or
  // not the topics are checked.
  const auto client = kafka_client(s);
  if (const auto checked = prov::kafka::check_properties(client); !checked) {
    prov::log::error("kafka_client_failed", {{"error", checked.err().message}});
    return false;
  }
  if (s.kafka_topic_check.count() == 0) {
    return true;
  }
  const auto missing = prov::kafka::missing_topics(client, s.kafka_topic_prefix, s.kafka_topic_check);
  if (!missing && missing.err().code != prov::errc::unavailable) {
    prov::log::error("kafka_client_failed", {{"error", missing.err().message}});
    return false;
  }
  if (!missing) {
    prov::log::warn("kafka_topics_unchecked", {{"error", missing.err().message}});
    return true;
  }
  if (missing->empty()) {
    return true;
  }
  prov::log::error("kafka_topics_missing",
                   {{"brokers", s.kafka_brokers},
                    {"missing", *missing},
                    {"hint", "create them (docs/KAFKA.md lists the topics), set --kafka-topic-prefix if the lifecycle "
                             "topics have one, or give this client access to them"}});
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  const auto s = parse_args(argc, argv);
  prov::log::set_level(level_of(s.log_level));
  const auto listen = parse_listen(s.listen, s);
  // Certificate and key are loaded before anything is opened: a bad file stops the start.
  if (const auto tls = prov::gateway::check_tls(listen); !tls) {
    prov::log::error("tls_failed", {{"error", tls.err().message}});
    return 1;
  }

  // Signals are taken synchronously by this thread; every other thread inherits the mask.
  // SIGHUP (`systemctl reload`) reloads the TLS certificate rather than ending the process.
  // SIGUSR1 is how the journal's syncer wakes this thread when the journal failed.
  sigset_t signals = prov::app::block_stop_signals();
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  if (!kafka_topics_ready(s)) {
    return 1;
  }
  const auto token = admin_token(s);
  prov::system_clock_source clk;
  prov::actors::engine_options options;
  options.data_dir = s.data_dir;
  options.backup_dir = s.backup_dir;
  options.scheduler_threads = s.scheduler_threads;
  options.scheduler = *prov::actors::parse_scheduler_policy(s.scheduler_policy);
  options.rebuild_projections = s.rebuild_projections;
  options.pipeline = s.pipeline;
  options.shutdown_grace = s.shutdown_grace;
  options.max_pending = s.max_pending;
  options.webhooks = s.webhooks;
  // Once a WAL write or sync failed nothing more can be written until a restart (what the
  // failed sync covered may or may not be on disk): the main thread is woken to stop.
  static std::atomic<bool> journal_failed{false};
  options.on_journal_failure = [](const prov::error&) {
    journal_failed.store(true);
    ::kill(::getpid(), SIGUSR1);
  };
  auto engine = prov::actors::engine::open(options, clk);
  if (!engine) {
    prov::log::error("startup_failed", {{"error", engine.err().message}, {"code", prov::to_string(engine.err().code)}});
    return 1;
  }
  // Kafka: the outbox publishes the journal's lifecycle events; the command
  // consumer feeds the command topic to the engine. Both stop before the engine does.
  std::unique_ptr<prov::kafka::outbox_publisher> outbox;
  std::unique_ptr<prov::kafka::command_consumer> commands;
  if (!s.kafka_brokers.empty()) {
    const auto client = kafka_client(s);
    auto storage = (*engine)->storage();
    prov::kafka::outbox_options outbox_options;
    outbox_options.client = client;
    outbox_options.topic_prefix = s.kafka_topic_prefix;
    auto started = prov::kafka::outbox_publisher::start(storage.journal, storage.store, std::move(outbox_options));
    if (!started) {
      prov::log::error("kafka_outbox_failed", {{"error", started.err().message}});
      (*engine)->shutdown();
      return 1;
    }
    outbox = std::move(*started);
    prov::kafka::command_consumer_options consumer_options;
    consumer_options.client = client;
    consumer_options.group_id = s.kafka_group;
    consumer_options.max_buffered = s.kafka_max_buffered;
    consumer_options.max_creates_in_flight = s.kafka_creates_in_flight;
    auto consumer = prov::kafka::command_consumer::start(**engine, std::move(consumer_options));
    if (!consumer) {
      prov::log::error("kafka_commands_failed", {{"error", consumer.err().message}});
      outbox->stop();
      (*engine)->shutdown();
      return 1;
    }
    commands = std::move(*consumer);
  }
  auto stop_kafka = [&] {
    if (commands) {
      commands->stop();
    }
    if (outbox) {
      outbox->stop();
    }
  };

  prov::gateway::api_options api_settings{token};
  if (outbox || commands) {
    api_settings.extra_metrics = [&outbox, &commands] { return kafka_metrics(outbox.get(), commands.get()); };
  }
  prov::gateway::api api{**engine, std::move(api_settings)};
  prov::gateway::http_server server{listen, [&api](prov::gateway::http_request&& req, prov::gateway::responder r) {
                                      api.handle(std::move(req), std::move(r));
                                    }};
  auto port = server.start();
  if (!port) {
    prov::log::error("listen_failed", {{"error", port.err().message}, {"listen", s.listen}});
    stop_kafka();
    (*engine)->shutdown();
    return 1;
  }
  prov::log::info("listening", {{"host", listen.host}, {"port", *port}});
  std::cout << "provisiond listening on " << (listen.tls_cert_file.empty() ? "http" : "https") << "://" << listen.host
            << ":" << *port << std::endl;

  int sig = 0;
  while (sigwait(&signals, &sig) == 0) {
    if (sig == SIGHUP) {
      if (listen.tls_cert_file.empty()) {
        prov::log::info("sighup_ignored", {{"reason", "no TLS certificate to reload"}});
      } else if (const auto reloaded = server.reload_tls(); !reloaded) {
        prov::log::error("tls_reload_failed",
                         {{"error", reloaded.err().message}, {"hint", "the previous certificate stays"}});
      } else {
        prov::log::info("tls_reloaded", {{"cert", listen.tls_cert_file}});
      }
    } else if (sig == SIGUSR1) {
      if (!journal_failed.load()) {
        prov::log::info("sigusr1_ignored");
      } else if (s.exit_on_journal_failure) {
        break;
      } else {
        prov::log::error("journal_failed_serving",
                         {{"hint", "writes are refused and /healthz answers 503 until provisiond is restarted"}});
      }
    } else {
      break;
    }
  }
  const bool failed = journal_failed.load();
  if (sig == SIGUSR1) {
    prov::log::error("stopping", {{"reason", "journal_failed"},
                                  {"exit_code", exit_journal_failed},
                                  {"hint", "a restart recovers what reached the disk"}});
  } else {
    prov::log::info("stopping", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  }
  server.stop();
  stop_kafka();
  (*engine)->shutdown();
  return failed ? exit_journal_failed : 0;
}
