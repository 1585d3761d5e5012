// provisiond: the provisioning engine, embedded mode (RocksDB journal in --data-dir, HTTP
// gateway on --listen). SIGTERM/SIGINT stop it cleanly: the gateway stops taking requests,
// in-flight work is left in the journal to resume on the next start, and the journal is flushed.

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sys/stat.h>

#include <boost/program_options.hpp>

#include "prov/actors/engine.hpp"
#include "prov/core/ids.hpp"
#include "prov/core/log.hpp"
#include "prov/gateway/api.hpp"
#include "prov/gateway/http_server.hpp"

namespace po = boost::program_options;

namespace {

constexpr int exit_usage = 2;

struct settings {
  std::string data_dir = "./data";
  std::string listen = "127.0.0.1:8080";
  std::string admin_token;
  std::string kafka_brokers;
  unsigned http_threads = 2;
  std::size_t scheduler_threads = 0;
  bool rebuild_projections = false;
  std::string log_level = "info";
};

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "provisiond: " << message << "\n(see provisiond --help)\n";
  std::exit(exit_usage);
}

settings parse_args(int argc, char** argv) {
  settings s;
  std::string config_file;
  po::options_description opts{"provisiond options (each also settable as `name = value` in --config)"};
  opts.add_options()
      ("help,h", "show this help and exit")
      ("config", po::value(&config_file), "read options from FILE (command-line flags win)")
      ("data-dir", po::value(&s.data_dir)->default_value(s.data_dir), "directory of the journal, projections and simulated cloud")
      ("listen", po::value(&s.listen)->default_value(s.listen), "HOST:PORT of the HTTP gateway (port 0 = any free port)")
      ("admin-token", po::value(&s.admin_token),
       "admin bearer token (else env PROVISIOND_ADMIN_TOKEN, else <data-dir>/admin.token, generated on first start)")
      ("kafka-brokers", po::value(&s.kafka_brokers), "HOST:PORT[,...] of a Kafka cluster: distributed mode")
      ("http-threads", po::value(&s.http_threads)->default_value(s.http_threads), "HTTP I/O threads (1-64)")
      ("scheduler-threads", po::value(&s.scheduler_threads)->default_value(s.scheduler_threads),
       "actor scheduler threads (0 = number of cores)")
      ("rebuild-projections", po::bool_switch(&s.rebuild_projections), "rebuild every read model from the journal at start")
      ("log-level", po::value(&s.log_level)->default_value(s.log_level), "debug, info, warn or error");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    if (vm.count("help") != 0) {
      std::cout << "Usage: provisiond [options]\n\n" << opts << "\n";
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
  if (s.http_threads < 1 || s.http_threads > 64) {
    usage_error("--http-threads must be from 1 to 64");
  }
  if (s.scheduler_threads > 256) {
    usage_error("--scheduler-threads must be from 0 to 256");
  }
  if (s.log_level != "debug" && s.log_level != "info" && s.log_level != "warn" && s.log_level != "error") {
    usage_error("--log-level must be debug, info, warn or error");
  }
  if (s.data_dir.empty()) {
    usage_error("--data-dir must not be empty");
  }
  if (!s.kafka_brokers.empty()) {
    usage_error("--kafka-brokers: distributed mode (Kafka log and command topics) is not available in this build; "
                "run without it for the embedded RocksDB journal");
  }
  return s;
}

prov::gateway::http_server_options parse_listen(const std::string& listen, unsigned threads) {
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
  o.threads = threads;
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

}  // namespace

int main(int argc, char** argv) {
  const auto s = parse_args(argc, argv);
  prov::log::set_level(level_of(s.log_level));
  const auto listen = parse_listen(s.listen, s.http_threads);

  // Signals are taken synchronously by this thread; every other thread inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  const auto token = admin_token(s);
  prov::system_clock_source clk;
  prov::actors::engine_options options;
  options.data_dir = s.data_dir;
  options.scheduler_threads = s.scheduler_threads;
  options.rebuild_projections = s.rebuild_projections;
  auto engine = prov::actors::engine::open(options, clk);
  if (!engine) {
    prov::log::error("startup_failed", {{"error", engine.err().message}, {"code", prov::to_string(engine.err().code)}});
    return 1;
  }
  prov::gateway::api api{**engine, prov::gateway::api_options{token}};
  prov::gateway::http_server server{listen, [&api](prov::gateway::http_request&& req, prov::gateway::responder r) {
                                      api.handle(std::move(req), std::move(r));
                                    }};
  auto port = server.start();
  if (!port) {
    prov::log::error("listen_failed", {{"error", port.err().message}, {"listen", s.listen}});
    (*engine)->shutdown();
    return 1;
  }
  prov::log::info("listening", {{"host", listen.host}, {"port", *port}});
  std::cout << "provisiond listening on http://" << listen.host << ":" << *port << std::endl;

  int sig = 0;
  sigwait(&stop_signals, &sig);
  prov::log::info("stopping", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  server.stop();
  (*engine)->shutdown();
  return 0;
}
