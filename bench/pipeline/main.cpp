// bench_pipeline: end-to-end throughput and submit-to-completed latency of the engine, in one
// process. It opens an engine on a fresh data directory with one zero-delay, zero-failure
// simulation cluster, creates tenants, submits N requests through the HTTP gateway (or
// engine::submit directly) and times each request from just before its submit is sent to the
// moment the projector sees it completed. One JSON line of results goes to stdout; everything
// else to stderr. See bench/README.md.

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>
#include <iostream>
#include <memory>
#include <thread>

#include <nlohmann/json.hpp>

#include "allocation_count.hpp"
#include "bench_options.hpp"
#include "host_probe.hpp"
#include "latency_tracker.hpp"
#include "load_driver.hpp"
#include "prov/actors/engine.hpp"
#include "prov/core/ids.hpp"
#include "prov/core/log.hpp"
#include "prov/core/thread_name.hpp"
#include "prov/events/codec.hpp"
#include "prov/gateway/api.hpp"
#include "prov/gateway/http_server.hpp"

namespace prov::bench {

namespace {

using steady = latency_tracker::clock_type;
using nlohmann::ordered_json;

constexpr auto setup_timeout = std::chrono::seconds{60};
constexpr auto progress_every = std::chrono::seconds{5};
constexpr auto poll_every = std::chrono::milliseconds{20};

void say(const std::string& line) {
  std::cerr << "bench_pipeline: " << line << std::endl;
}

/// The run's data directory: the one asked for (it must be empty or absent, so that removing
/// it afterwards removes only what the run wrote), else a fresh one under the temp directory.
result<std::string> prepare_data_dir(const std::string& requested) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (requested.empty()) {
    auto pattern = (fs::temp_directory_path(ec) / "bench-pipeline-XXXXXX").string();
    if (ec) {
      return make_error(errc::io_error, "no temp directory: " + ec.message());
    }
    if (::mkdtemp(pattern.data()) == nullptr) {
      return make_error(errc::io_error, "mkdtemp " + pattern + ": " + std::strerror(errno));
    }
    return pattern;
  }
  if (fs::exists(requested, ec)) {
    if (!fs::is_directory(requested, ec)) {
      return make_error(errc::invalid_argument, "--data-dir " + requested + " is not a directory");
    }
    if (!fs::is_empty(requested, ec)) {
      return make_error(errc::invalid_argument,
                        "--data-dir " + requested + " is not empty (the bench needs a fresh journal)");
    }
  }
  fs::create_directories(requested, ec);
  if (ec) {
    return make_error(errc::io_error, "cannot create " + requested + ": " + ec.message());
  }
  return requested;
}

/// Runs an engine command and waits (bounded) for its answer.
template <class T, class Start>
result<T> await(Start start, const std::string& what) {
  auto promise = std::make_shared<std::promise<result<T>>>();
  auto answer = promise->get_future();
  start([promise](result<T> r) { promise->set_value(std::move(r)); });
  if (answer.wait_for(setup_timeout) != std::future_status::ready) {
    return make_error(errc::timeout, what + ": no answer within " + std::to_string(setup_timeout.count()) + "s");
  }
  return answer.get();
}

events::cluster_registered bench_cluster() {
  events::cluster_registered c;
  c.cluster_id = "bench";
  c.name = "Benchmark simulation cluster (no delays, no failures)";
  c.type = events::provider_type::simulation;
  c.region = "local";
  c.is_default = true;
  c.simulation = events::simulation_settings{};  // every failure rate and delay 0
  return c;
}

/// Creates `count` tenants concurrently and returns their tokens.
result<std::vector<tenant_credentials>> create_tenants(actors::engine& engine, std::size_t count) {
  std::vector<std::future<result<actors::tenant_reply>>> answers;
  answers.reserve(count);
  for (std::size_t t = 0; t < count; ++t) {
    auto promise = std::make_shared<std::promise<result<actors::tenant_reply>>>();
    answers.push_back(promise->get_future());
    actors::tenant_command cmd;
    cmd.id = "bench-t" + std::to_string(t);
    cmd.name = "Benchmark tenant " + std::to_string(t);
    engine.create_tenant(std::move(cmd), [promise](result<actors::tenant_reply> r) { promise->set_value(std::move(r)); });
  }
  std::vector<tenant_credentials> out;
  out.reserve(count);
  const auto deadline = steady::now() + setup_timeout;
  for (auto& a : answers) {
    if (a.wait_until(deadline) != std::future_status::ready) {
      return make_error(errc::timeout, "tenant creation: no answer within " + std::to_string(setup_timeout.count()) + "s");
    }
    auto r = a.get();
    if (!r) {
      return std::move(r).err();
    }
    out.push_back(tenant_credentials{r->id, r->token});
  }
  return out;
}

/// Nearest-rank percentile of sorted samples, in milliseconds.
double percentile_ms(const std::vector<std::int64_t>& sorted, double p) {
  if (sorted.empty()) {
    return 0;
  }
  auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return static_cast<double>(sorted[rank - 1]) / 1e6;
}

double round3(double x) {
  return std::round(x * 1000) / 1000;
}

/// A latency percentile for the JSON line: null when nothing completed.
ordered_json latency_ms(const std::vector<std::int64_t>& sorted, double p) {
  return sorted.empty() ? ordered_json(nullptr) : ordered_json(round3(percentile_ms(sorted, p)));
}

/// `x` printed with `format` (one double conversion), for messages.
std::string format_number(const char* format, double x) {
  std::array<char, 64> text{};
  std::snprintf(text.data(), text.size(), format, x);
  return text.data();
}

std::string format_seconds(double s) {
  return format_number("%.1fs", s);
}

double seconds_between(steady::time_point from, steady::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

/// What the kernel counts for this whole process (engine, gateway and the bench's clients).
rusage process_usage() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return usage;
}

/// Peak resident set of this whole process.
double peak_rss_mb() {
  return static_cast<double>(process_usage().ru_maxrss) / 1024.0;  // Linux reports KiB
}

/// CPU time (user and system) this whole process has used so far, in seconds. Steadier than
/// requests/s on a shared machine: a neighbour's load slows us down but costs us no CPU.
double process_cpu_s() {
  const auto usage = process_usage();
  const auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

/// Voluntary context switches of this whole process so far (a thread gave up its core: it
/// blocked on a futex, a condition variable, I/O): a count of hand-offs between threads that
/// the host's load moves little, unlike time.
std::uint64_t process_voluntary_switches() {
  return static_cast<std::uint64_t>(process_usage().ru_nvcsw);
}

/// Resident set of this process now, from /proc/self/statm (0 if unreadable).
double current_rss_mb() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) {
    return 0;
  }
  unsigned long size = 0;
  unsigned long resident = 0;
  const int read = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  if (read != 2) {
    return 0;
  }
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

/// Up to ten requests that were accepted but never finished, with their projected state.
std::string describe_unfinished(actors::engine& engine, const latency_tracker& tracker) {
  std::string out;
  for (const auto& id : tracker.unfinished(10)) {
    out += "\n  " + id + ": ";
    auto r = engine.views().request(id);
    if (!r) {
      out += "cannot read projection: " + r.err().message;
    } else if (!*r) {
      out += "not in the projections";
    } else {
      const auto& req = **r;
      out += std::string{events::enum_name(req.state)} + " (version " + std::to_string(req.version) +
             ", cluster '" + req.cluster + "'";
      if (const auto step = events::step_of(req.state)) {
        out += ", step " + std::string{events::enum_name(*step)} + " " +
               std::string{events::enum_name(req.step(*step).status)};
      }
      if (!req.reason.empty()) {
        out += ", reason " + req.reason + ": " + req.reason_message;
      }
      out += ")";
    }
  }
  return out;
}

int run(const bench_options& o) {
  log::set_level(log::level::warn);
  std::signal(SIGPIPE, SIG_IGN);

  auto data_dir = prepare_data_dir(o.data_dir);
  if (!data_dir) {
    say(data_dir.err().message);
    return 1;
  }
  // Before anything else runs: its memory is freed before the engine's peak.
  const auto probe_before_ms = host_probe_ms();
  const bool http = o.mode == submit_mode::http;
  say("data dir " + *data_dir + (o.keep ? " (kept)" : " (removed at the end)"));
  if (!http) {
    say("mode inproc: engine::submit is called directly; no HTTP, JSON parsing or authentication on the path");
  }
  if (!o.fsync) {
    say("durability none: the journal does not fsync (journal_sync=false); not a durable configuration");
  }

  // Declared before the engine: the engine's listener and callbacks use them until it is gone.
  latency_tracker tracker;
  submit_feed feed{o.requests, o.rate};
  failure_log failures;

  prov::system_clock_source clk;
  actors::engine_options options;
  options.data_dir = *data_dir;
  options.journal_sync = o.fsync;
  options.scheduler_threads = o.scheduler_threads;
  options.scheduler = o.scheduler;
  options.default_cluster = false;
  options.on_request_change = [&tracker](const projections::request_before& before, const events::request_state& after) {
    if (after.state == before.state) {
      return;
    }
    if (after.state == events::lifecycle_state::completed) {
      tracker.on_terminal(after.id, latency_tracker::outcome::completed, steady::now());
    } else if (after.state == events::lifecycle_state::rolled_back) {
      tracker.on_terminal(after.id, latency_tracker::outcome::rolled_back, steady::now());
    }
  };
  auto opened = actors::engine::open(options, clk);
  if (!opened) {
    say("engine did not open: " + std::string{to_string(opened.err().code)} + ": " + opened.err().message);
    say("data dir kept: " + *data_dir);
    return 1;
  }
  auto engine = std::move(*opened);

  std::unique_ptr<gateway::api> api;
  std::unique_ptr<gateway::http_server> server;

  // Whatever happens from here, the gateway and the engine are gone before the data
  // directory is touched: only closing RocksDB ends its background work (a compaction that
  // deletes files while the directory is removed left it half removed).
  bool ok = false;
  auto finish = [&](int code) {
    server.reset();  // stops it
    api.reset();
    engine->shutdown();
    engine.reset();
    namespace fs = std::filesystem;
    if (o.keep || !ok) {
      say("data dir kept: " + *data_dir);
    } else {
      std::error_code ec;
      fs::remove_all(*data_dir, ec);
      if (ec) {
        say("cannot remove " + *data_dir + ": " + ec.message());
      }
    }
    return code;
  };

  auto cluster = await<events::cluster_state>(
      [&](actors::callback<events::cluster_state> done) { engine->register_cluster(bench_cluster(), {}, done); },
      "cluster registration");
  if (!cluster) {
    say("cannot register the bench cluster: " + cluster.err().message);
    return finish(1);
  }
  auto tenants = create_tenants(*engine, o.tenants);
  if (!tenants) {
    say("cannot create tenants: " + tenants.err().message);
    return finish(1);
  }

  unsigned short port = 0;
  const auto admin_token = "adm_bench_" + random_hex(16);
  if (http) {
    api = std::make_unique<gateway::api>(*engine, gateway::api_options{admin_token});
    gateway::http_server_options server_options;
    server_options.host = "127.0.0.1";
    server_options.port = 0;
    server_options.threads = o.http_threads;
    server = std::make_unique<gateway::http_server>(
        server_options, [&api](gateway::http_request&& req, gateway::responder respond) {
          api->handle(std::move(req), std::move(respond));
        });
    auto bound = server->start();
    if (!bound) {
      say("gateway did not start: " + bound.err().message);
      return finish(1);
    }
    port = *bound;
  }
  auto stop_gateway = [&] {
    if (server) {
      server->stop();
    }
  };

  workload load;
  load.connections = o.connections;
  load.batch = o.batch;
  load.admin_token = admin_token;
  load.idempotency_keys = o.idempotency_keys;
  load.type = o.type;
  load.tenants = std::move(*tenants);

  say("submitting " + std::to_string(o.requests) + " " + std::string{events::enum_name(o.type)} + " requests over " +
      std::to_string(o.tenants) + " tenants, mode " + std::string{to_string(o.mode)} + ", " +
      std::to_string(o.connections) + (http ? " connections" : " in-flight submits") +
      (o.batch > 1 ? " of " + std::to_string(o.batch) + "-request batches" : std::string{}) + ", durability " +
      (o.fsync ? "fsync" : "none") +
      (o.rate ? ", open loop at " + format_number("%g", *o.rate) + "/s" : std::string{", closed loop"}) +
      (http ? ", gateway on 127.0.0.1:" + std::to_string(port) : std::string{}));

  const auto timeout = std::chrono::duration<double>{
      o.timeout_s.value_or(120.0 + static_cast<double>(o.requests) / 200.0)};
  const auto stall = std::chrono::duration<double>{o.stall_s};
  const auto head_before = engine->journal().head();
  std::atomic<bool> driver_done{false};
  steady::time_point submits_done{};
  const auto start = steady::now();
  feed.start(start);
  const auto cpu_before = process_cpu_s();
  const auto allocations_before = allocations_so_far();
  const auto switches_before = process_voluntary_switches();
  std::thread driver{[&] {
    name_this_thread("bench.driver");
    if (http) {
      drive_http(port, load, feed, tracker, failures);
    } else {
      drive_inproc(*engine, load, feed, tracker, failures);
    }
    submits_done = steady::now();
    driver_done.store(true);
  }};

  // Wait until every accepted request is at rest, or fail loudly.
  std::string failure;
  std::uint64_t progress_seen = 0;
  auto progress_at = start;
  auto report_at = start + progress_every;
  for (;;) {
    std::this_thread::sleep_for(poll_every);
    const auto now = steady::now();
    if (failures.count() > 0) {
      failure = failures.first() + (failures.count() > 1 ? " (and " + std::to_string(failures.count() - 1) + " more)" : "");
      break;
    }
    const auto submitted = tracker.submitted();
    const auto finished = tracker.finished();
    if (driver_done.load() && finished == submitted) {
      break;
    }
    if (submitted + finished != progress_seen) {
      progress_seen = submitted + finished;
      progress_at = now;
    }
    const auto counts = "submitted " + std::to_string(submitted) + "/" + std::to_string(o.requests) + ", finished " +
                        std::to_string(finished) + " (rolled back " + std::to_string(tracker.rolled_back()) +
                        "), journal head " + std::to_string(engine->journal().head() - head_before);
    if (now - start > timeout) {
      failure = "timeout: not done after " + format_seconds(timeout.count()) + "; " + counts +
                describe_unfinished(*engine, tracker);
      break;
    }
    if (now - progress_at > stall) {
      failure = "stalled: no submit answered and no request finished for " + format_seconds(o.stall_s) + "; " +
                counts + describe_unfinished(*engine, tracker);
      break;
    }
    if (now >= report_at) {
      report_at += progress_every;
      say("t=" + std::to_string(static_cast<long>(seconds_between(start, now))) + "s " + counts +
          ", unfinished " + std::to_string(engine->unfinished_requests()) + ", rss " +
          std::to_string(static_cast<long>(current_rss_mb())) + " MB (peak " +
          std::to_string(static_cast<long>(peak_rss_mb())) + " MB)");
    }
  }
  if (!failure.empty()) {
    feed.stop();
    stop_gateway();  // unblocks HTTP clients waiting for replies
    driver.join();
    say("FAILED: " + failure);
    return finish(1);
  }
  driver.join();

  const auto head_after = engine->journal().head();
  const auto cpu_s = process_cpu_s() - cpu_before;
  const auto switches = process_voluntary_switches() - switches_before;
  const auto allocations_after = allocations_so_far();
  const auto rss_mb = peak_rss_mb();
  auto samples = tracker.collect();
  std::sort(samples.completed_ns.begin(), samples.completed_ns.end());
  std::sort(samples.completed_from_due_ns.begin(), samples.completed_from_due_ns.end());
  std::sort(samples.submit_ns.begin(), samples.submit_ns.end());
  const auto orphans = tracker.orphan_terminals();
  stop_gateway();
  const auto probe_after_ms = host_probe_ms();  // after the peak RSS was read

  const double wall_s = seconds_between(start, samples.last_terminal);
  const double submit_wall_s = seconds_between(start, submits_done);
  const auto events_total = head_after - head_before;
  double mean_ms = 0;
  for (const auto ns : samples.completed_ns) {
    mean_ms += static_cast<double>(ns) / 1e6;
  }
  if (!samples.completed_ns.empty()) {
    mean_ms /= static_cast<double>(samples.completed_ns.size());
  }

  ordered_json out;
  out["bench"] = "pipeline";
  out["mode"] = to_string(o.mode);
  out["durability"] = o.fsync ? "fsync" : "none";
  out["type"] = events::enum_name(o.type);
  out["n"] = o.requests;
  out["tenants"] = o.tenants;
  out["connections"] = o.connections;
  out["batch"] = o.batch;
  out["idempotency_keys"] = o.idempotency_keys;
  out["rate_target"] = o.rate ? ordered_json(*o.rate) : ordered_json(nullptr);
  out["requests_per_s"] = round3(static_cast<double>(tracker.finished()) / wall_s);
  out["events_per_s"] = round3(static_cast<double>(events_total) / wall_s);
  out["p50_ms"] = latency_ms(samples.completed_ns, 0.50);
  out["p90_ms"] = latency_ms(samples.completed_ns, 0.90);
  out["p99_ms"] = latency_ms(samples.completed_ns, 0.99);
  out["p999_ms"] = latency_ms(samples.completed_ns, 0.999);
  out["max_ms"] = latency_ms(samples.completed_ns, 1.0);
  out["mean_ms"] = samples.completed_ns.empty() ? ordered_json(nullptr) : ordered_json(round3(mean_ms));
  out["submit_p50_ms"] = latency_ms(samples.submit_ns, 0.50);
  out["submit_p99_ms"] = latency_ms(samples.submit_ns, 0.99);
  out["submits_per_s"] = round3(static_cast<double>(tracker.submitted()) / submit_wall_s);
  out["max_schedule_lag_ms"] =
      o.rate ? ordered_json(round3(static_cast<double>(feed.max_lag().count()) / 1e6)) : ordered_json(nullptr);
  // Open loop: latency from each request's due time, so a submitter that fell behind its
  // schedule does not hide the wait (what the request's own clock would have seen).
  out["p50_from_due_ms"] = o.rate ? latency_ms(samples.completed_from_due_ns, 0.50) : ordered_json(nullptr);
  out["p99_from_due_ms"] = o.rate ? latency_ms(samples.completed_from_due_ns, 0.99) : ordered_json(nullptr);
  out["peak_rss_mb"] = round3(rss_mb);
  // A whole-process total over the run, per finished request (null if none finished).
  const auto per_request = [&](double total) {
    return tracker.finished() == 0 ? ordered_json(nullptr)
                                   : ordered_json(round3(total / static_cast<double>(tracker.finished())));
  };
  out["cpu_us_per_request"] = per_request(cpu_s * 1e6);
  // Every allocation of the process over the run (engine, gateway, the bench's own clients);
  // null under the system malloc.
  out["allocations_per_request"] =
      allocations_before && allocations_after
          ? per_request(static_cast<double>(*allocations_after - *allocations_before))
          : ordered_json(nullptr);
  out["voluntary_switches_per_request"] = per_request(static_cast<double>(switches));
  out["completed"] = tracker.completed();
  out["rolled_back"] = tracker.rolled_back();
  out["wall_s"] = round3(wall_s);
  out["submit_wall_s"] = round3(submit_wall_s);
  out["events_total"] = events_total;
  out["events_per_request"] = round3(static_cast<double>(events_total) / static_cast<double>(o.requests));
  out["http_threads"] = http ? ordered_json(o.http_threads) : ordered_json(nullptr);
  out["scheduler_threads"] = o.scheduler_threads == 0 ? std::thread::hardware_concurrency() : o.scheduler_threads;
  out["scheduler_policy"] = std::string{actors::to_string(o.scheduler)};
  out["cores"] = std::thread::hardware_concurrency();
  // The same fixed workload timed before and after the run (host_probe.hpp): higher means a
  // slower host, to discount figures from a busy stretch of a shared machine.
  out["host_probe_ms"] = {round3(probe_before_ms), round3(probe_after_ms)};
  out["allocator"] = PROV_ALLOCATOR;
  std::cout << out.dump() << std::endl;

  if (tracker.rolled_back() > 0) {
    say("FAILED: " + std::to_string(tracker.rolled_back()) +
        " requests were rolled back, on a cluster with no failures configured");
    return finish(1);
  }
  if (orphans > 0) {
    say("FAILED: " + std::to_string(orphans) + " requests reached a terminal state but no submit named them");
    return finish(1);
  }
  ok = true;
  return finish(0);
}

}  // namespace

}  // namespace prov::bench

int main(int argc, char** argv) {
  return prov::bench::run(prov::bench::parse_options(argc, argv));
}
