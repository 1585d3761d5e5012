#pragma once
/// Command-line options of bench_pipeline (see bench/README.md for what each one measures).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "prov/actors/engine.hpp"
#include "prov/events/request.hpp"

namespace prov::bench {

/// How submissions reach the engine.
enum class submit_mode : std::uint8_t {
  http,    ///< POST /v1/requests through the real gateway on 127.0.0.1, keep-alive connections
  inproc,  ///< engine::submit called directly: no HTTP, JSON or authentication on the path
};

struct bench_options {
  std::uint64_t requests = 100'000;
  std::size_t tenants = 100;
  submit_mode mode = submit_mode::http;
  std::size_t connections = 32;  ///< HTTP client threads, or in-flight submits for inproc
  std::size_t batch = 1;         ///< http: requests per POST (more than 1: POST /v1/requests:batch)
  bool idempotency_keys = false; ///< every request carries its own idempotency key
  std::string data_dir;          ///< "" = a fresh temporary directory
  bool keep = false;             ///< keep the data directory after the run
  bool fsync = true;             ///< engine_options::journal_sync
  events::service_type type = events::service_type::vps;
  std::optional<double> rate;    ///< open-loop submissions per second; none = closed loop
  unsigned http_threads = 2;     ///< the gateway's I/O threads (provisiond's default)
  std::size_t scheduler_threads = 0;  ///< CAF workers; 0 = number of cores
  actors::scheduler_policy scheduler = actors::scheduler_policy::sharing;
  std::optional<double> timeout_s;    ///< overall bound on the measured run; none = derived from N
  double stall_s = 60;                ///< fail if nothing progresses for this long
};

std::string_view to_string(submit_mode m) noexcept;

/// Parses argv; prints usage and exits (0 for --help, 2 for a bad option) instead of returning
/// when the command line is not a run.
bench_options parse_options(int argc, char** argv);

}  // namespace prov::bench
