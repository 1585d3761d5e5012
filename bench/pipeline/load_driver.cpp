#include "load_driver.hpp"

#include <algorithm>
#include <memory>
#include <semaphore>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "prov/events/codec.hpp"

namespace prov::bench {

namespace {

using steady = latency_tracker::clock_type;

constexpr auto http_timeout = std::chrono::seconds{60};
constexpr auto poll_step = std::chrono::milliseconds{100};

/// Request i's idempotency key, when the workload has them.
std::string key_of(std::uint64_t i) { return "bench-" + std::to_string(i); }

/// Request i of an HTTP submit; the tenant comes from the bearer token.
nlohmann::json submit_item(const workload& load, std::uint64_t i) {
  nlohmann::json item{{"type", events::enum_name(load.type)},
                      {"provider", "simulation"},
                      {"spec", {{"cpu", 1}, {"memoryGb", 1}, {"storageGb", 10}}}};
  if (load.idempotency_keys) {
    item["idempotencyKey"] = key_of(i);
  }
  return item;
}

/// The body of a `POST /v1/requests:batch` of requests first .. first + count - 1, each naming
/// its tenant.
std::string batch_body(const workload& load, std::uint64_t first, std::uint64_t count) {
  nlohmann::json items = nlohmann::json::array();
  for (std::uint64_t i = first; i < first + count; ++i) {
    auto item = submit_item(load, i);
    item["tenant"] = load.tenants[i % load.tenants.size()].id;
    items.push_back(std::move(item));
  }
  return nlohmann::json{{"requests", std::move(items)}}.dump();
}

}  // namespace

submit_feed::submit_feed(std::uint64_t total, std::optional<double> rate) : _total(total), _rate(rate) {}

void submit_feed::start(latency_tracker::time_point origin) {
  _origin = origin;
}

std::optional<submit_feed::ticket> submit_feed::take() {
  if (stopped()) {
    return std::nullopt;
  }
  const auto i = _next.fetch_add(1);
  if (i >= _total) {
    return std::nullopt;
  }
  return ticket{i, due_of(i)};
}

std::optional<latency_tracker::time_point> submit_feed::due_of(std::uint64_t i) const {
  if (!_rate) {
    return std::nullopt;
  }
  return _origin + std::chrono::duration_cast<steady::duration>(
                       std::chrono::duration<double>{static_cast<double>(i) / *_rate});
}

std::optional<submit_feed::range> submit_feed::take_range(std::uint64_t n) {
  if (stopped()) {
    return std::nullopt;
  }
  const auto first = _next.fetch_add(n);
  if (first >= _total) {
    return std::nullopt;
  }
  return range{first, std::min(n, _total - first)};
}

void submit_feed::sent(const ticket& t) {
  if (!t.due) {
    return;
  }
  const auto lag = std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now() - *t.due).count();
  auto seen = _max_lag_ns.load();
  while (lag > seen && !_max_lag_ns.compare_exchange_weak(seen, lag)) {
  }
}

std::optional<submit_feed::ticket> submit_feed::next() {
  const auto t = take();
  if (!t) {
    return std::nullopt;
  }
  if (t->due) {
    for (auto now = steady::now(); now < *t->due; now = steady::now()) {
      if (stopped()) {
        return std::nullopt;
      }
      std::this_thread::sleep_until(std::min(*t->due, now + poll_step));
    }
    sent(*t);
  }
  return t;
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

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

/// What every connection of `drive_http` shares (all on the driver's one thread).
struct http_load {
  submit_feed& feed;
  latency_tracker& tracker;
  failure_log& failures;
  asio::ip::tcp::endpoint server;
  /// Ready to send: the request of each tenant (they differ only in the bearer token); with
  /// batches, a full batch for each first tenant.
  std::vector<http::request<http::string_body>> requests;
  const workload& load;
};

/// One keep-alive connection: takes the next index from the feed, waits until it is due
/// (open loop), posts it, reads the answer, and again until the feed runs dry.
class submit_connection : public std::enable_shared_from_this<submit_connection> {
 public:
  submit_connection(asio::io_context& io, http_load& shared) : _shared(shared), _stream(io), _timer(io) {}

  void start() {
    _stream.expires_after(http_timeout);
    _stream.async_connect(_shared.server, [self = shared_from_this()](beast::error_code ec) {
      if (ec) {
        self->fail("connect: " + ec.message());
        return;
      }
      self->next();
    });
  }

 private:
  void next() {
    if (_shared.load.batch > 1) {
      _range = _shared.feed.take_range(_shared.load.batch);
      if (!_range) {
        return;
      }
      // Open loop: a batch goes out once its last request is due (the earlier ones wait for
      // it, and that wait counts in their latency from the due time).
      const auto last = _range->first + _range->count - 1;
      _ticket = submit_feed::ticket{last, _shared.feed.due_of(last)};
    } else {
      _ticket = _shared.feed.take();
      if (!_ticket) {
        return;  // done: the connection closes with this object
      }
    }
    if (_ticket->due && steady::now() < *_ticket->due) {
      _timer.expires_at(*_ticket->due);
      _timer.async_wait([self = shared_from_this()](beast::error_code) { self->send(); });
      return;
    }
    send();
  }

  void send() {
    if (_shared.feed.stopped()) {
      return;
    }
    _shared.feed.sent(*_ticket);
    const auto first = _range ? _range->first : _ticket->index;
    const auto& prepared = _shared.requests[first % _shared.requests.size()];
    // Prepared requests carry a full batch, or one request, without keys; anything else (the
    // last, short batch, or requests with their own keys) is built for this send.
    if (!_shared.load.idempotency_keys && (!_range || _range->count == _shared.load.batch)) {
      post(prepared);
      return;
    }
    _tail = prepared;
    _tail.body() = _range ? batch_body(_shared.load, _range->first, _range->count)
                          : submit_item(_shared.load, _ticket->index).dump();
    _tail.prepare_payload();
    post(_tail);
  }

  void post(const http::request<http::string_body>& request) {
    _sent = steady::now();
    _stream.expires_after(http_timeout);
    http::async_write(_stream, request, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) {
        self->fail("transport: write: " + ec.message());
        return;
      }
      self->read();
    });
  }

  void read() {
    _response = {};
    http::async_read(_stream, _buffer, _response, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) {
        self->fail("transport: read: " + ec.message());
        return;
      }
      self->answered();
    });
  }

  void answered() {
    const auto replied = steady::now();
    if (_range) {
      answered_batch(replied);
      return;
    }
    if (_response.result_int() != 202) {
      fail("HTTP " + std::to_string(_response.result_int()) + ": " + _response.body());
      return;
    }
    auto id = request_id_of(_response);
    if (id.empty()) {
      fail("202 without a request id: " + _response.body());
      return;
    }
    const auto due = _ticket && _ticket->due ? *_ticket->due : _sent;
    _shared.tracker.on_submitted(id, due, _sent, replied);
    next();
  }

  /// Every item of a batch must have been accepted (202 in its slot).
  void answered_batch(steady::time_point replied) {
    if (_response.result_int() != 200) {
      fail("HTTP " + std::to_string(_response.result_int()) + ": " + _response.body());
      return;
    }
    nlohmann::json body;
    try {
      body = nlohmann::json::parse(_response.body());
    } catch (const nlohmann::json::exception& e) {
      fail(std::string{"batch answer is not JSON: "} + e.what());
      return;
    }
    const auto results = body.find("results");
    if (results == body.end() || !results->is_array() || results->size() != _range->count) {
      fail("batch answer without one result per request: " + _response.body());
      return;
    }
    auto index = _range->first;
    for (const auto& item : *results) {
      if (item.value("status", 0) != 202 || !item.contains("id")) {
        fail("a batch item was refused: " + item.dump());
        return;
      }
      const auto due = _shared.feed.due_of(index++).value_or(_sent);
      _shared.tracker.on_submitted(item["id"].get<std::string>(), due, _sent, replied);
    }
    next();
  }

  void fail(const std::string& why) {
    const auto which = _range ? std::to_string(_range->first) + "+" + std::to_string(_range->count)
                       : _ticket ? std::to_string(_ticket->index)
                                 : std::string{"?"};
    _shared.failures.record("submit " + which + " failed: " + why);
    _shared.feed.stop();
  }

  /// The request id of a 202 reply: from `Location: /v1/requests/<id>`, else the JSON body.
  static std::string request_id_of(const http::response<http::string_body>& r) {
    constexpr std::string_view prefix = "/v1/requests/";
    const auto field = r[http::field::location];
    const std::string_view location{field.data(), field.size()};
    if (location.size() > prefix.size() && location.substr(0, prefix.size()) == prefix) {
      return std::string{location.substr(prefix.size())};
    }
    try {
      return nlohmann::json::parse(r.body()).value("id", std::string{});
    } catch (const nlohmann::json::exception&) {
      return {};
    }
  }

  http_load& _shared;
  beast::tcp_stream _stream;
  asio::steady_timer _timer;
  beast::flat_buffer _buffer;
  http::response<http::string_body> _response;
  std::optional<submit_feed::ticket> _ticket;
  std::optional<submit_feed::range> _range;
  http::request<http::string_body> _tail;  ///< a request built for this send (short batch, own key)
  steady::time_point _sent{};
};

}  // namespace

void drive_http(unsigned short port, const workload& load, submit_feed& feed, latency_tracker& tracker,
                failure_log& failures) {
  http_load shared{feed, tracker, failures, {asio::ip::make_address("127.0.0.1"), port}, {}, load};
  const bool batches = load.batch > 1;
  const auto single = submit_item(load, 0).dump();
  shared.requests.reserve(load.tenants.size());
  for (std::size_t t = 0; t < load.tenants.size(); ++t) {
    http::request<http::string_body> r{http::verb::post, batches ? "/v1/requests:batch" : "/v1/requests", 11};
    r.set(http::field::host, "127.0.0.1:" + std::to_string(port));
    r.set(http::field::content_type, "application/json");
    r.set(http::field::authorization, "Bearer " + (batches ? load.admin_token : load.tenants[t].token));
    r.keep_alive(true);
    r.body() = batches ? batch_body(load, t, load.batch) : single;
    r.prepare_payload();
    shared.requests.push_back(std::move(r));
  }
  asio::io_context io{1};
  for (std::size_t c = 0; c < load.connections; ++c) {
    std::make_shared<submit_connection>(io, shared)->start();
  }
  io.run();
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
  while (const auto t = feed.next()) {
    if (!acquire()) {
      return;
    }
    auto cmd = base;
    cmd.tenant = load.tenants[t->index % load.tenants.size()].id;
    if (load.idempotency_keys) {
      cmd.idempotency_key = key_of(t->index);
    }
    const auto index = t->index;
    const auto sent = steady::now();
    const auto due = t->due.value_or(sent);
    engine.submit(std::move(cmd), [slots, &tracker, &failures, &feed, due, sent, index](result<actors::submit_reply> r) {
      const auto replied = steady::now();
      if (r) {
        tracker.on_submitted(r->id, due, sent, replied);
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
