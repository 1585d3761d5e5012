#pragma once
/// The load side of the benchmark: who submits what, and when.
///
/// Closed loop (default): each of `connections` submitters sends its next request as soon as
/// its previous submit was answered. Open loop (`--rate R`): request i is due at start + i/R
/// and is sent by the first free submitter once due; when all submitters are busy it goes out
/// late, and `submit_feed::max_lag` says how late.
///
/// A submit is answered once the request is durable and projected (202); its pipeline then
/// runs on without the submitter, so the number of requests in their pipelines at once is not
/// bounded by `connections`.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "latency_tracker.hpp"
#include "prov/actors/engine.hpp"

namespace prov::bench {

/// Hands out request indices 0..total-1 to submitters, pacing them in open loop.
class submit_feed {
 public:
  submit_feed(std::uint64_t total, std::optional<double> rate);

  /// Sets the open-loop schedule's origin: request i is due at `origin + i / rate`.
  void start(latency_tracker::time_point origin);

  /// An index handed out, and when it is due (open loop only).
  struct ticket {
    std::uint64_t index = 0;
    std::optional<latency_tracker::time_point> due;
  };

  /// The next index to submit (waiting until it is due in open loop), or none once every
  /// index was handed out or `stop` was called.
  std::optional<ticket> next();

  /// The next index without waiting for it to be due; the caller waits, then calls `sent`.
  std::optional<ticket> take();

  /// When request `i` is due (open loop), or none (closed loop).
  std::optional<latency_tracker::time_point> due_of(std::uint64_t i) const;

  struct range {
    std::uint64_t first = 0;
    std::uint64_t count = 0;
  };
  /// Up to `n` consecutive indices, [first, first + count), without waiting (`due_of` says
  /// when each is due), or none once every index was handed out or `stop` was called.
  std::optional<range> take_range(std::uint64_t n);

  /// Records how late a ticket went out (open loop).
  void sent(const ticket& t);

  /// Makes every later `next` return none, and wakes submitters waiting for a due time.
  void stop() noexcept { _stopped.store(true); }
  bool stopped() const noexcept { return _stopped.load(); }

  /// Open loop: the largest delay between a request's due time and its hand-out.
  std::chrono::nanoseconds max_lag() const noexcept { return std::chrono::nanoseconds{_max_lag_ns.load()}; }

 private:
  std::uint64_t _total;
  std::optional<double> _rate;
  latency_tracker::time_point _origin{};
  std::atomic<std::uint64_t> _next{0};
  std::atomic<bool> _stopped{false};
  std::atomic<std::int64_t> _max_lag_ns{0};
};

/// The first failure of a run, and how many there were. Thread-safe.
class failure_log {
 public:
  void record(std::string why);
  std::uint64_t count() const noexcept { return _count.load(); }
  std::string first() const;

 private:
  mutable std::mutex _mutex;
  std::string _first;
  std::atomic<std::uint64_t> _count{0};
};

struct tenant_credentials {
  std::string id;
  std::string token;  ///< the tenant's bearer token (HTTP mode)
};

/// What every submitter sends: request i goes to tenant i % tenants.size().
struct workload {
  std::size_t connections = 32;
  /// HTTP: requests per POST. Above 1 they go to `POST /v1/requests:batch` with the admin
  /// token, each item naming its tenant (request i's is still tenant i % tenants.size()).
  std::size_t batch = 1;
  std::string admin_token;  ///< for batches
  bool idempotency_keys = false;  ///< request i carries the idempotency key "bench-<i>"
  events::service_type type = events::service_type::vps;
  std::vector<tenant_credentials> tenants;
};

/// The spec every request asks for: 1 core, 1 GiB, 10 GB (the JSON body says the same).
events::resource_spec bench_spec();

/// Submits through the gateway at 127.0.0.1:`port` over `load.connections` keep-alive
/// connections, all driven by this thread (asynchronous I/O, one POST in flight per
/// connection, carrying `load.batch` requests), until `feed` runs dry. A transport error, or
/// a request not accepted (a status other than 202, in a batch's slot too), is recorded in
/// `failures` and stops the feed. Returns when every connection is done.
void drive_http(unsigned short port, const workload& load, submit_feed& feed, latency_tracker& tracker,
                failure_log& failures);

/// Calls `engine::submit` from this thread with at most `load.connections` submits unanswered,
/// until `feed` runs dry. Returns once every submit it made was answered (or the feed was
/// stopped: then answers may still arrive, and are recorded).
void drive_inproc(actors::engine& engine, const workload& load, submit_feed& feed, latency_tracker& tracker,
                  failure_log& failures);

}  // namespace prov::bench
