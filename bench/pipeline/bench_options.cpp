#include "bench_options.hpp"

#include <cstdlib>
#include <iostream>

#include <boost/program_options.hpp>

#include "prov/events/codec.hpp"

namespace prov::bench {

namespace {

namespace po = boost::program_options;

constexpr int exit_usage = 2;

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "bench_pipeline: " << message << "\n(see bench_pipeline --help)\n";
  std::exit(exit_usage);
}

}  // namespace

std::string_view to_string(submit_mode m) noexcept {
  return m == submit_mode::http ? "http" : "inproc";
}

bench_options parse_options(int argc, char** argv) {
  bench_options o;
  std::string mode = "http";
  std::string durability = "fsync";
  std::string type = "vps";
  std::string policy = "sharing";
  double rate = 0;
  double timeout_s = 0;
  po::options_description opts{"bench_pipeline options"};
  opts.add_options()
      ("help,h", "show this help and exit")
      ("requests", po::value(&o.requests)->default_value(o.requests), "requests to submit (N)")
      ("tenants", po::value(&o.tenants)->default_value(o.tenants), "tenants the requests are spread over, round-robin")
      ("mode", po::value(&mode)->default_value(mode),
       "http: POST through the gateway on 127.0.0.1; inproc: call engine::submit directly")
      ("connections", po::value(&o.connections)->default_value(o.connections),
       "concurrent keep-alive HTTP connections (all driven by one client thread), or in-flight submits for inproc")
      ("batch", po::value(&o.batch)->default_value(o.batch),
       "http: requests per POST; above 1 they go to POST /v1/requests:batch (1-1000)")
      ("idempotency-keys", po::bool_switch(&o.idempotency_keys),
       "every request carries its own idempotency key (as clients that retry safely send)")
      ("data-dir", po::value(&o.data_dir), "empty or absent directory for the engine (default: a fresh temp dir)")
      ("keep", po::bool_switch(&o.keep), "keep the data directory after the run")
      ("durability", po::value(&durability)->default_value(durability),
       "fsync: the journal fsyncs every group commit; none: no fsync (not durable)")
      ("type", po::value(&type)->default_value(type), "service type: vps, namespace or managed")
      ("rate", po::value(&rate), "open loop: target submissions per second (default: closed loop)")
      ("http-threads", po::value(&o.http_threads)->default_value(o.http_threads), "gateway I/O threads (1-64)")
      ("scheduler-threads", po::value(&o.scheduler_threads)->default_value(o.scheduler_threads),
       "actor scheduler threads (0 = number of cores)")
      ("scheduler-policy", po::value(&policy)->default_value(policy), "actor scheduler: sharing or stealing")
      ("timeout", po::value(&timeout_s), "seconds the measured run may take (default: 120 + N/200)")
      ("stall", po::value(&o.stall_s)->default_value(o.stall_s),
       "seconds without any progress (reply or completion) before the run fails");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    if (vm.count("help") != 0) {
      std::cout << "Usage: bench_pipeline [options]\n\nPrints one JSON line of results on stdout; "
                   "diagnostics go to stderr.\n\n"
                << opts << "\n";
      std::exit(0);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    usage_error(e.what());
  }
  if (o.requests < 1) {
    usage_error("--requests must be at least 1");
  }
  if (o.tenants < 1 || o.tenants > 100'000) {
    usage_error("--tenants must be from 1 to 100000");
  }
  if (o.connections < 1 || o.connections > 4096) {
    usage_error("--connections must be from 1 to 4096");
  }
  if (mode == "http") {
    o.mode = submit_mode::http;
  } else if (mode == "inproc") {
    o.mode = submit_mode::inproc;
  } else {
    usage_error("--mode must be http or inproc, got '" + mode + "'");
  }
  if (durability == "fsync") {
    o.fsync = true;
  } else if (durability == "none") {
    o.fsync = false;
  } else {
    usage_error("--durability must be fsync or none, got '" + durability + "'");
  }
  const auto parsed_type = events::enum_from_name<events::service_type>(type);
  if (!parsed_type) {
    usage_error("--type must be vps, namespace or managed, got '" + type + "'");
  }
  o.type = *parsed_type;
  if (o.batch < 1 || o.batch > 1000) {
    usage_error("--batch must be from 1 to 1000");
  }
  if (o.batch > 1 && o.mode != submit_mode::http) {
    usage_error("--batch above 1 needs --mode http");
  }
  if (vm.count("rate") != 0) {
    if (!(rate > 0) || rate > 10'000'000) {
      usage_error("--rate must be a number of submissions per second above 0");
    }
    o.rate = rate;
  }
  if (vm.count("timeout") != 0) {
    if (!(timeout_s > 0)) {
      usage_error("--timeout must be a number of seconds above 0");
    }
    o.timeout_s = timeout_s;
  }
  if (!(o.stall_s > 0)) {
    usage_error("--stall must be a number of seconds above 0");
  }
  if (o.http_threads < 1 || o.http_threads > 64) {
    usage_error("--http-threads must be from 1 to 64");
  }
  if (o.scheduler_threads > 256) {
    usage_error("--scheduler-threads must be from 0 to 256");
  }
  if (const auto p = actors::parse_scheduler_policy(policy)) {
    o.scheduler = *p;
  } else {
    usage_error("--scheduler-policy must be sharing or stealing");
  }
  return o;
}

}  // namespace prov::bench
