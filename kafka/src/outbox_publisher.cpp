#include "prov/kafka/outbox_publisher.hpp"

#include <atomic>
#include <condition_variable>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include <rocksdb/db.h>

#include "detail/rdkafka.hpp"
#include "prov/core/be64.hpp"
#include "prov/core/log.hpp"
#include "prov/core/thread_name.hpp"
#include "prov/events/apply.hpp"
#include "prov/events/lifecycle.hpp"
#include "prov/events/rocks_store.hpp"
#include "prov/kafka/position_tracker.hpp"
#include "prov/kafka/topics.hpp"

namespace prov::kafka {

namespace {

// Wakes the publisher's thread. Shared with the journal's commit listener, which cannot be
// unregistered: it outlives the publisher and then wakes nobody.
struct waker {
  std::mutex m;
  std::condition_variable cv;
  bool signalled = false;

  void notify() {
    {
      std::lock_guard lock{m};
      signalled = true;
    }
    cv.notify_one();
  }
  void wait_for(std::chrono::milliseconds d) {
    std::unique_lock lock{m};
    cv.wait_for(lock, d, [&] { return signalled; });
    signalled = false;
  }
};

// Request states after the last event seen, most recently used first.
class state_cache {
 public:
  explicit state_cache(std::size_t capacity) : _capacity(std::max<std::size_t>(capacity, 1)) {}

  struct entry {
    events::request_state state;
    std::uint64_t sequence = 0;
  };

  entry* find(const std::string& request) {
    const auto it = _index.find(request);
    if (it == _index.end()) {
      return nullptr;
    }
    _order.splice(_order.begin(), _order, it->second);
    return &it->second->second;
  }

  void put(const std::string& request, entry e) {
    if (auto* found = find(request)) {
      *found = std::move(e);
      return;
    }
    _order.emplace_front(request, std::move(e));
    _index[request] = _order.begin();
    if (_order.size() > _capacity) {
      _index.erase(_order.back().first);
      _order.pop_back();
    }
  }

  void clear() {
    _order.clear();
    _index.clear();
  }

 private:
  std::size_t _capacity;
  std::list<std::pair<std::string, entry>> _order;
  std::unordered_map<std::string, std::list<std::pair<std::string, entry>>::iterator> _index;
};

}  // namespace

struct outbox_publisher::impl {
  events::journal& journal;
  events::rocks_store& store;
  outbox_options options;
  std::shared_ptr<waker> wake = std::make_shared<waker>();

  // Owned by the publisher's thread while it runs.
  detail::handle producer;
  position_tracker tracker;
  state_cache states;
  std::uint64_t next_read = 1;     ///< next journal position to read
  std::uint64_t stored = 0;        ///< position last written to the store
  bool rebuild = false;            ///< a message failed for good: rebuild the producer
  std::chrono::steady_clock::time_point rebuild_after{};

  std::atomic<bool> stopping{false};
  std::thread thread;
  std::chrono::milliseconds flush_timeout{10'000};
  std::mutex stop_mutex;
  bool stopped = false;

  std::atomic<std::uint64_t> published{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> position{0};
  std::atomic<std::uint64_t> in_flight{0};
  std::atomic<std::uint64_t> skipped{0};
  std::atomic<std::uint64_t> rebuilds{0};

  impl(events::journal& j, events::rocks_store& s, outbox_options o)
      : journal(j), store(s), options(std::move(o)), states(options.state_cache) {}

  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* self = static_cast<impl*>(opaque);
    const auto pos = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(m->_private));
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      self->tracker.ack(pos);
      self->published.fetch_add(1);
    } else if (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
      // We purged it (stopping, or rebuilding): it will be read from the journal again.
    } else {
      self->failed.fetch_add(1);
      if (!self->rebuild) {
        log::error("outbox_delivery_failed", {{"position", pos}, {"error", detail::error_text(m->err)},
                                              {"topic", rd_kafka_topic_name(m->rkt)}});
      }
      self->rebuild = true;
    }
  }

  static void on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
    auto* self = static_cast<impl*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
      char text[512];
      const auto fatal = rd_kafka_fatal_error(rk, text, sizeof text);
      log::error("outbox_producer_fatal", {{"error", detail::error_text(fatal)}, {"reason", text}});
      self->rebuild = true;
    } else {
      // Transient (a broker down, all brokers down): librdkafka retries by itself.
      log::warn("outbox_producer_error", {{"error", detail::error_text(static_cast<rd_kafka_resp_err_t>(err))},
                                          {"reason", reason}});
    }
  }

  result<detail::handle> make_producer() {
    auto c = detail::make_conf(options.client, client_role::producer,
                               {{"linger.ms", "5"}, {"queue.buffering.max.messages", "1000000"},
                                {"compression.codec", "lz4"},
                                {"reconnect.backoff.max.ms", "1000"}},  // back within a second after an outage
                               {{"enable.idempotence", "true"},
                                {"acks", "all"},
                                {"max.in.flight.requests.per.connection", "5"},
                                {"message.timeout.ms", "0"},  // never expire locally: wait out outages
                                {"partitioner", "murmur2_random"}});  // Java clients' choice: same key, same partition
    if (!c) {
      return std::move(c).err();
    }
    rd_kafka_conf_set_dr_msg_cb(c->get(), &impl::on_delivery);
    rd_kafka_conf_set_error_cb(c->get(), &impl::on_error);
    rd_kafka_conf_set_opaque(c->get(), this);
    return detail::make_client(RD_KAFKA_PRODUCER, std::move(*c));
  }

  status store_position(std::uint64_t p) {
    const auto value = be64(p);
    if (auto st = store.put_meta(outbox_position_key, value); !st) {
      return make_error(st.err().code, "outbox position: " + st.err().message);
    }
    stored = p;
    position.store(p);
    return {};
  }

  void save_progress() {
    const auto done = tracker.done_through();
    in_flight.store(tracker.in_flight());
    if (done > stored) {
      if (auto st = store_position(done); !st) {
        log::error("outbox_store_failed", {{"error", st.err().message}});
      }
    }
  }

  // The request's state after `e`, or nullopt if it cannot be known (logged, counted).
  const events::request_state* state_after(const events::stored_event& e, const events::request_event& ev) {
    const std::string request{events::stream_key(e.stream)};
    auto* cached = states.find(request);
    if (cached != nullptr && cached->sequence + 1 == e.sequence) {
      if (auto st = events::apply_to(cached->state, ev, events::event_meta{e.sequence, e.time}); st) {
        cached->sequence = e.sequence;
        return &cached->state;
      }
    }
    auto history = journal.read_stream(e.stream, 1, e.sequence);
    if (!history) {
      log::error("outbox_read_failed", {{"stream", e.stream}, {"error", history.err().message}});
      return nullptr;
    }
    auto folded = events::fold_request(*history);
    if (!folded) {
      log::error("outbox_fold_failed", {{"stream", e.stream}, {"sequence", e.sequence}, {"error", folded.err().message}});
      return nullptr;
    }
    states.put(request, state_cache::entry{std::move(*folded), e.sequence});
    return &states.find(request)->state;
  }

  // Produces one lifecycle event; false if the producer refused it (it is rebuilt then).
  bool produce(const events::lifecycle_event& le, std::uint64_t pos) {
    const auto topic = event_topic(options.topic_prefix, le.type);
    const auto body = le.cloudevent.dump();
    rd_kafka_headers_t* headers = nullptr;
    if (options.cloudevents_headers) {
      headers = rd_kafka_headers_new(6);
      auto add = [&](const char* name, const std::string& v) { rd_kafka_header_add(headers, name, -1, v.data(), static_cast<ssize_t>(v.size())); };
      add("content-type", "application/cloudevents+json");
      add("ce_specversion", "1.0");
      add("ce_type", le.type);
      add("ce_id", le.cloudevent.value("id", std::string{}));
      add("ce_source", le.cloudevent.value("source", std::string{}));
      add("ce_subject", le.request);
    }
    for (;;) {
      const auto err = rd_kafka_producev(
          producer.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(le.request.data(), le.request.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(body.data()), body.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<std::uintptr_t>(pos))),
          RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        return true;  // the producer owns the headers now
      }
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && !stopping.load()) {
        rd_kafka_poll(producer.get(), 100);
        continue;
      }
      if (headers != nullptr) {
        rd_kafka_headers_destroy(headers);
      }
      log::error("outbox_produce_failed", {{"position", pos}, {"topic", topic}, {"error", detail::error_text(err)}});
      failed.fetch_add(1);
      rebuild = true;
      return false;
    }
  }

  // Reads and produces up to one batch; returns how many journal events were read.
  std::size_t read_batch() {
    const auto room = options.max_in_flight > tracker.in_flight() ? options.max_in_flight - tracker.in_flight() : 0;
    if (room == 0 || next_read > journal.head()) {
      return 0;
    }
    std::vector<events::stored_event> batch;
    auto read = journal.read_all(next_read, std::min(options.read_batch, room),
                                 [&](const events::stored_event& e) { batch.push_back(e); });
    if (!read) {
      log::error("outbox_read_failed", {{"position", next_read}, {"error", read.err().message}});
      return 0;
    }
    for (const auto& e : batch) {
      if (rebuild) {
        break;
      }
      if (events::stream_category(e.stream) == "request") {
        publish(e);
      } else {
        tracker.add(e.position, 0);
      }
      if (!rebuild) {
        next_read = e.position + 1;
      }
    }
    return batch.size();
  }

  std::size_t publish(const events::stored_event& e) {
    auto any = events::decode(e);
    if (!any) {
      skipped.fetch_add(1);
      log::error("outbox_decode_failed", {{"position", e.position}, {"error", any.err().message}});
      tracker.add(e.position, 0);
      return 0;
    }
    auto ev = events::as_request_event(*any);
    if (!ev) {
      tracker.add(e.position, 0);  // e.g. an idempotency claim: nothing to publish
      return 0;
    }
    const events::request_state* state = state_after(e, *ev);
    if (state == nullptr) {
      skipped.fetch_add(1);
      tracker.add(e.position, 0);
      return 0;
    }
    const auto lifecycle = events::to_lifecycle(e, *any, *state);
    tracker.add(e.position, lifecycle.size());
    std::size_t produced = 0;
    for (const auto& le : lifecycle) {
      if (!produce(le, e.position)) {
        break;
      }
      ++produced;
    }
    return produced;
  }

  // After a permanent failure: drop what is in flight and start again from the stored position.
  void rebuild_producer() {
    if (std::chrono::steady_clock::now() < rebuild_after) {
      return;
    }
    rebuilds.fetch_add(1);
    if (producer) {
      rd_kafka_purge(producer.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      rd_kafka_poll(producer.get(), 0);
      producer.reset();
    }
    save_progress();
    tracker.reset(stored);
    states.clear();
    next_read = stored + 1;
    rebuild = false;
    auto p = make_producer();
    if (!p) {
      log::error("outbox_producer_failed", {{"error", p.err().message}});
      rebuild = true;
    } else {
      producer = std::move(*p);
    }
    rebuild_after = std::chrono::steady_clock::now() + std::chrono::seconds{1};
    log::warn("outbox_restarted", {{"from_position", next_read}});
  }

  void run() {
    const auto wake_ref = wake;
    while (!stopping.load()) {
      if (rebuild) {
        rebuild_producer();
        if (rebuild) {
          wake_ref->wait_for(std::chrono::milliseconds{200});
          continue;
        }
      }
      const auto read = read_batch();
      rd_kafka_poll(producer.get(), 0);
      save_progress();
      if (read > 0) {
        continue;
      }
      if (tracker.in_flight() > 0) {
        rd_kafka_poll(producer.get(), 10);  // serves delivery reports as they come
        if (next_read > journal.head() || tracker.in_flight() >= options.max_in_flight) {
          continue;
        }
      } else {
        wake_ref->wait_for(options.idle_check);
      }
    }
    // Stopping: let what is in flight be acknowledged, then record how far it got.
    if (producer && !rebuild) {
      const auto deadline = std::chrono::steady_clock::now() + flush_timeout;
      while (tracker.in_flight() > 0 && std::chrono::steady_clock::now() < deadline) {
        rd_kafka_poll(producer.get(), 50);
      }
      save_progress();
      if (tracker.in_flight() > 0) {
        log::warn("outbox_stopped_unacknowledged", {{"messages", tracker.in_flight()}, {"position", stored}});
      }
      rd_kafka_purge(producer.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      rd_kafka_poll(producer.get(), 0);
    }
    producer.reset();
  }
};

outbox_publisher::outbox_publisher(std::unique_ptr<impl> i) : _impl(std::move(i)) {}

outbox_publisher::~outbox_publisher() { stop(); }

result<std::uint64_t> outbox_publisher::stored_position(events::rocks_store& store) {
  std::string value;
  const auto st = store.db()->Get(rocksdb::ReadOptions{}, store.meta_cf(),
                                  rocksdb::Slice{outbox_position_key.data(), outbox_position_key.size()}, &value);
  if (st.IsNotFound()) {
    return std::uint64_t{0};
  }
  if (!st.ok()) {
    return make_error(errc::io_error, "outbox position: " + st.ToString());
  }
  const auto p = decode_be64(value);
  if (!p) {
    return make_error(errc::corrupt, "outbox position: expected 8 bytes, found " + std::to_string(value.size()));
  }
  return *p;
}

result<std::unique_ptr<outbox_publisher>> outbox_publisher::start(events::journal& journal, events::rocks_store& store,
                                                                  outbox_options options) {
  auto from = stored_position(store);
  if (!from) {
    return std::move(from).err();
  }
  auto i = std::make_unique<impl>(journal, store, std::move(options));
  auto p = i->make_producer();
  if (!p) {
    return std::move(p).err();
  }
  i->producer = std::move(*p);
  i->stored = *from;
  i->position.store(*from);
  i->tracker.reset(*from);
  i->next_read = *from + 1;
  journal.on_commit([w = i->wake](std::uint64_t) { w->notify(); });
  auto* raw = i.get();
  i->thread = std::thread{[raw] {
    name_this_thread("prov.outbox");
    raw->run();
  }};
  log::info("outbox_started", {{"from_position", *from + 1}, {"head", journal.head()}});
  return std::unique_ptr<outbox_publisher>{new outbox_publisher{std::move(i)}};
}

void outbox_publisher::stop(std::chrono::milliseconds flush_timeout) {
  std::lock_guard lock{_impl->stop_mutex};
  if (_impl->stopped) {
    return;
  }
  _impl->stopped = true;
  _impl->flush_timeout = flush_timeout;
  _impl->stopping.store(true);
  _impl->wake->notify();
  if (_impl->thread.joinable()) {
    _impl->thread.join();
  }
  log::info("outbox_stopped", {{"position", _impl->stored}, {"published", _impl->published.load()}});
}

outbox_stats outbox_publisher::stats() const {
  const auto& i = *_impl;
  return outbox_stats{i.published.load(), i.failed.load(), i.position.load(),
                      i.in_flight.load(), i.skipped.load(), i.rebuilds.load()};
}

}  // namespace prov::kafka
