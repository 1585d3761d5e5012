#include "load_driver.hpp"

#include <algorithm>
#include <memory>
#include <semaphore>
#include <thread>

#include <nlohmann/json.hpp>

#include "http_client.hpp"
#include "prov/events/codec.hpp"

namespace prov::bench {

namespace {

using steady = latency_tracker::clock_type;

constexpr auto http_timeout = std::chrono::seconds{60};
constexpr auto poll_step = std::chrono::milliseconds{100};

/// The body of every HTTP submit; the tenant comes from the bearer token.
std::string submit_body(events::service_type type) {
  const nlohmann::json body{{"type", events::enum_name(type)},
                            {"provider", "simulation"},
                            {"spec", {{"cpu", 1}, {"memoryGb", 1}, {"storageGb", 10}}}};
  return body.dump();
}

/// The request id of a 202 reply: from `Location: /v1/requests/<id>`, else the JSON body.
std::string request_id_of(const test::http_client::reply& r) {
  constexpr std::string_view prefix = "/v1/requests/";
  const auto location = r.header("location");
  if (location.size() > prefix.size() && location.compare(0, prefix.size(), prefix) == 0) {
    return location.substr(prefix.size());
  }
  try {
    return r.json().value("id", std::string{});
  } catch (const nlohmann::json::exception&) {
    return {};
  }
}

}  // namespace

submit_feed::submit_feed(std::uint64_t total, std::optional<double> rate) : _total(total), _rate(rate) {}

void submit_feed::start(latency_tracker::time_point origin) {
  _origin = origin;
}

std::optional<std::uint64_t> submit_feed::next() {
  if (stopped()) {
    return std::nullopt;
  }
  const auto i = _next.fetch_add(1);
  if (i >= _total) {
    return std::nullopt;
  }
  if (_rate) {
    const auto due = _origin + std::chrono::duration_cast<steady::duration>(
                                   std::chrono::duration<double>{static_cast<double>(i) / *_rate});
    for (auto now = steady::now(); now < due; now = steady::now()) {
      if (stopped()) {
        return std::nullopt;
      }
      std::this_thread::sleep_until(std::min(due, now + poll_step));
    }
    const auto lag = std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now() - due).count();
    auto seen = _max_lag_ns.load();
    while (lag > seen && !_max_lag_ns.compare_exchange_weak(seen, lag)) {
    }
  }
  return i;
}

void failure_log::record(std::string why) {
  if (_count.fetch_add(1) == 0) {
    std::lock_guard<std::mutex> guard{_mutex};
    _first = std::move(why);
  }
}

std::string failure_log::first() const {
  std::lock_guard<std::mutex> guard{_mutex};
  return _first;
}

events::resource_spec bench_spec() {
  events::resource_spec spec;
  spec.cpu_millis = 1000;
  spec.memory_mb = 1024;
  spec.storage_gb = 10;
  return spec;
}

void drive_http(unsigned short port, const workload& load, submit_feed& feed, latency_tracker& tracker,
                failure_log& failures) {
  const auto body = submit_body(load.type);
  std::vector<std::vector<std::pair<std::string, std::string>>> headers;
  headers.reserve(load.tenants.size());
  for (const auto& t : load.tenants) {
    headers.push_back({{"Content-Type", "application/json"}, {"Authorization", "Bearer " + t.token}});
  }
  std::vector<std::thread> clients;
  clients.reserve(load.connections);
  for (std::size_t c = 0; c < load.connections; ++c) {
    clients.emplace_back([&] {
      test::http_client client{"127.0.0.1", port, http_timeout};
      while (const auto i = feed.next()) {
        const auto& tenant_headers = headers[*i % headers.size()];
        const auto sent = steady::now();
        auto r = client.request("POST", "/v1/requests", body, tenant_headers);
        const auto replied = steady::now();
        if (r.status != 202) {
          failures.record("submit " + std::to_string(*i) + " failed: " +
                          (r.status == 0 ? "transport: " : "HTTP " + std::to_string(r.status) + ": ") + r.body);
          feed.stop();
          return;
        }
        auto id = request_id_of(r);
        if (id.empty()) {
          failures.record("submit " + std::to_string(*i) + ": 202 without a request id: " + r.body);
          feed.stop();
          return;
        }
        tracker.on_submitted(id, sent, replied);
      }
    });
  }
  for (auto& t : clients) {
    t.join();
  }
}

void drive_inproc(actors::engine& engine, const workload& load, submit_feed& feed, latency_tracker& tracker,
                  failure_log& failures) {
  // Shared with the callbacks, which may outlive this function once the feed is stopped.
  auto slots = std::make_shared<std::counting_semaphore<>>(static_cast<std::ptrdiff_t>(load.connections));
  auto acquire = [&]() -> bool {
    while (!slots->try_acquire_for(poll_step)) {
      if (feed.stopped()) {
        return false;
      }
    }
    return true;
  };
  actors::submit_command base;
  base.type = load.type;
  base.provider = events::provider_type::simulation;
  base.spec = bench_spec();
  while (const auto i = feed.next()) {
    if (!acquire()) {
      return;
    }
    auto cmd = base;
    cmd.tenant = load.tenants[*i % load.tenants.size()].id;
    const auto index = *i;
    const auto sent = steady::now();
    engine.submit(std::move(cmd), [slots, &tracker, &failures, &feed, sent, index](result<actors::submit_reply> r) {
      const auto replied = steady::now();
      if (r) {
        tracker.on_submitted(r->id, sent, replied);
      } else {
        failures.record("submit " + std::to_string(index) + " failed: " + std::string{to_string(r.err().code)} +
                        ": " + r.err().message);
        feed.stop();
      }
      slots->release();
    });
  }
  // Every submit is answered once all the slots are free again.
  for (std::size_t n = 0; n < load.connections; ++n) {
    if (!acquire()) {
      return;
    }
  }
  slots->release(static_cast<std::ptrdiff_t>(load.connections));
}

}  // namespace prov::bench
