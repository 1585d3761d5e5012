#include "prov/kafka/command_consumer.hpp"

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "detail/rdkafka.hpp"
#include "prov/core/log.hpp"
#include "prov/core/thread_name.hpp"
#include "prov/kafka/offset_tracker.hpp"
#include "prov/kafka/topics.hpp"

namespace prov::kafka {

namespace {

// A consumed message waiting its turn in its partition.
struct queued {
  std::int64_t offset = 0;
  std::string key;
  parsed_command parsed;
  std::chrono::steady_clock::time_point not_before{};
  int attempts = 0;  ///< times the engine could not take it (overloaded)
  bool ordered = false;  ///< its offset is in its lane's answer order
};

// An answer the engine gave, for the consumer's thread to produce.
struct completion {
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::string key;
  std::optional<command_result> answer;  ///< nullopt: the engine could not take it now (retry or leave)
  std::optional<queued> retry;           ///< set with `answer` empty when the command should run again
};

// Filled by engine callbacks on any thread, drained by the consumer's thread. Shared: an engine
// callback may run after the consumer is gone.
struct completions {
  std::mutex m;
  std::vector<completion> items;

  void push(completion c) {
    std::lock_guard lock{m};
    items.push_back(std::move(c));
  }
  std::vector<completion> take() {
    std::lock_guard lock{m};
    return std::exchange(items, {});
  }
};

// An answer produced and waiting for its delivery report (the message opaque).
struct answer_in_flight {
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::string key;
  std::string payload;
};

actors::lifecycle_command lifecycle_of(command_type t) {
  switch (t) {
    case command_type::approve: return actors::lifecycle_command::approve;
    case command_type::reject: return actors::lifecycle_command::reject;
    case command_type::suspend: return actors::lifecycle_command::suspend;
    case command_type::reactivate: return actors::lifecycle_command::reactivate;
    case command_type::deprovision: return actors::lifecycle_command::deprovision;
    case command_type::cancel: return actors::lifecycle_command::cancel;
    default: return actors::lifecycle_command::approve;
  }
}

}  // namespace

struct command_consumer::impl {
  static constexpr int max_attempts = 120;  ///< 500 ms apart: a minute of overload, then the error is the answer

  actors::engine& engine;
  command_consumer_options options;
  std::shared_ptr<completions> done = std::make_shared<completions>();

  detail::handle consumer;
  detail::handle producer;

  // Owned by the consumer's thread.
  struct ready_answer {
    std::string key;
    command_result result;
  };
  struct lane {
    std::deque<queued> waiting;
    std::size_t with_engine = 0;  ///< commands of this partition the engine has not answered
    bool alone = false;           ///< the one with the engine is not a create: nothing joins it
    /// Answers go out in offset order: the offsets taken from `waiting` and not yet answered,
    /// and the answers that wait for one before them.
    std::deque<std::int64_t> order;
    std::map<std::int64_t, ready_answer> ready;
  };
  std::map<std::int32_t, lane> lanes;
  offset_tracker offsets;
  std::size_t buffered = 0;          ///< queued in lanes or with the engine
  bool paused = false;               ///< the assigned partitions are paused (buffer full)
  std::size_t answers_in_flight = 0;
  std::vector<answer_in_flight*> to_resend;
  bool producer_fatal = false;  ///< the answer producer hit a fatal error: rebuild it
  bool rebuilding = false;
  std::chrono::steady_clock::time_point rebuild_after{};
  bool draining = false;             ///< stopping: start nothing new

  std::atomic<bool> stopping{false};
  std::thread thread;
  std::chrono::milliseconds drain_timeout{10'000};
  std::mutex stop_mutex;
  bool stopped = false;

  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> rejected{0};
  std::atomic<std::uint64_t> poison{0};
  std::atomic<std::uint64_t> answer_failures{0};
  std::atomic<std::uint64_t> commits{0};
  std::atomic<std::uint64_t> most_with_engine{0};

  impl(actors::engine& e, command_consumer_options o) : engine(e), options(std::move(o)) {}

  // -- clients ---------------------------------------------------------------------------------

  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* self = static_cast<impl*>(opaque);
    auto* a = static_cast<answer_in_flight*>(m->_private);
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      --self->answers_in_flight;
      self->offsets.finish(a->partition, a->offset);
      --self->buffered;
      delete a;
      return;
    }
    const bool purged = m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT;
    if (purged && !self->rebuilding) {
      --self->answers_in_flight;  // stopping: the command is consumed and answered again after the restart
      --self->buffered;
      delete a;
      return;
    }
    if (purged || m->err == RD_KAFKA_RESP_ERR__FATAL) {
      --self->answers_in_flight;  // the producer is being rebuilt: sent again by the new one
      self->to_resend.push_back(a);
      return;
    }
    self->answer_failures.fetch_add(1);
    log::error("kafka_answer_failed", {{"partition", a->partition}, {"offset", a->offset}, {"error", detail::error_text(m->err)}});
    --self->answers_in_flight;
    self->to_resend.push_back(a);
  }

  static void on_producer_error(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
    auto* self = static_cast<impl*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
      char text[512];
      const auto fatal = rd_kafka_fatal_error(rk, text, sizeof text);
      log::error("kafka_answer_producer_fatal", {{"error", detail::error_text(fatal)}, {"reason", text}});
      self->producer_fatal = true;
    } else {
      log::warn("kafka_answer_producer_error",
                {{"error", detail::error_text(static_cast<rd_kafka_resp_err_t>(err))}, {"reason", reason}});
    }
  }

  // After a fatal producer error (idempotence state lost): every unanswered answer goes to a
  // new producer. Answers are idempotent for consumers (correlationId), so one sent twice is harmless.
  void rebuild_producer() {
    if (std::chrono::steady_clock::now() < rebuild_after) {
      return;
    }
    rebuild_after = std::chrono::steady_clock::now() + std::chrono::seconds{1};
    if (producer) {
      rebuilding = true;
      rd_kafka_purge(producer.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{5};
      while (answers_in_flight > 0 && std::chrono::steady_clock::now() < deadline) {
        rd_kafka_poll(producer.get(), 50);
      }
      rebuilding = false;
      producer.reset();
    }
    auto p = make_producer();
    if (!p) {
      log::error("kafka_answer_producer_failed", {{"error", p.err().message}});
      return;  // tried again in a second; answers wait in `to_resend`
    }
    producer = std::move(*p);
    producer_fatal = false;
    log::warn("kafka_answer_producer_rebuilt", {{"resending", to_resend.size()}});
  }

  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts, void* opaque) {
    auto* self = static_cast<impl*>(opaque);
    // Eager (the default) or cooperative (`partition.assignment.strategy=cooperative-sticky`).
    const bool cooperative = std::string_view{rd_kafka_rebalance_protocol(rk)} == "COOPERATIVE";
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      log::info("kafka_commands_assigned", {{"partitions", parts->cnt}});
      if (cooperative) {
        if (auto* e = rd_kafka_incremental_assign(rk, parts)) {
          log::error("kafka_assign_failed", {{"error", rd_kafka_error_string(e)}});
          rd_kafka_error_destroy(e);
        }
      } else {
        rd_kafka_assign(rk, parts);
      }
      return;
    }
    // Revoked: commit what is finished; what is queued will be consumed by the next owner.
    self->commit(false);
    for (int i = 0; i < parts->cnt; ++i) {
      const auto p = parts->elems[i].partition;
      if (auto it = self->lanes.find(p); it != self->lanes.end()) {
        auto& l = it->second;
        self->buffered -= l.waiting.size();
        l.waiting.clear();
        // What is answered goes out now; what is still with the engine, when it is done.
        for (auto& [offset, ready] : l.ready) {
          self->answer(p, offset, ready.key, ready.result);
        }
        l.ready.clear();
        l.order.clear();
      }
      self->offsets.forget(p);
    }
    log::info("kafka_commands_revoked", {{"partitions", parts->cnt}});
    if (cooperative) {
      if (auto* e = rd_kafka_incremental_unassign(rk, parts)) {
        rd_kafka_error_destroy(e);
      }
    } else {
      rd_kafka_assign(rk, nullptr);
    }
  }

  result<detail::handle> make_producer() {
    auto c = detail::make_conf(options.client, client_role::producer,
                               {{"linger.ms", "2"}, {"reconnect.backoff.max.ms", "1000"}},
                               {{"enable.idempotence", "true"}, {"acks", "all"}, {"message.timeout.ms", "0"},
                                {"partitioner", "murmur2_random"}});
    if (!c) {
      return std::move(c).err();
    }
    rd_kafka_conf_set_dr_msg_cb(c->get(), &impl::on_delivery);
    rd_kafka_conf_set_error_cb(c->get(), &impl::on_producer_error);
    rd_kafka_conf_set_opaque(c->get(), this);
    return detail::make_client(RD_KAFKA_PRODUCER, std::move(*c));
  }

  result<detail::handle> make_consumer() {
    auto c = detail::make_conf(options.client, client_role::consumer,
                               {{"auto.offset.reset", "earliest"}, {"session.timeout.ms", "10000"},
                                {"reconnect.backoff.max.ms", "1000"}},
                               {{"group.id", options.group_id},
                                {"enable.auto.commit", "false"},
                                {"enable.auto.offset.store", "false"},
                                {"enable.partition.eof", "false"}});
    if (!c) {
      return std::move(c).err();
    }
    rd_kafka_conf_set_rebalance_cb(c->get(), &impl::on_rebalance);
    rd_kafka_conf_set_opaque(c->get(), this);
    auto h = detail::make_client(RD_KAFKA_CONSUMER, std::move(*c));
    if (!h) {
      return h;
    }
    rd_kafka_poll_set_consumer(h->get());
    detail::partition_list topics{rd_kafka_topic_partition_list_new(1)};
    rd_kafka_topic_partition_list_add(topics.get(), std::string{command_topic}.c_str(), RD_KAFKA_PARTITION_UA);
    if (const auto err = rd_kafka_subscribe(h->get(), topics.get()); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return make_error(errc::invalid_argument, "kafka subscribe: " + detail::error_text(err));
    }
    return h;
  }

  // -- answers and commits ---------------------------------------------------------------------

  void produce(answer_in_flight* a) {
    if (producer_fatal || !producer) {
      to_resend.push_back(a);  // after the rebuild
      return;
    }
    for (;;) {
      const auto err = rd_kafka_producev(
          producer.get(), RD_KAFKA_V_TOPIC(std::string{command_result_topic}.c_str()),
          RD_KAFKA_V_KEY(a->key.data(), a->key.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(a->payload.data()), a->payload.size()),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(a), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        ++answers_in_flight;
        return;
      }
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(producer.get(), 100);
        continue;
      }
      if (err == RD_KAFKA_RESP_ERR__FATAL) {
        producer_fatal = true;
        to_resend.push_back(a);
        return;
      }
      // Not retriable here (e.g. an invalid message): leave the offset unfinished, so the command
      // is consumed and answered again after a restart.
      answer_failures.fetch_add(1);
      log::error("kafka_answer_refused", {{"partition", a->partition}, {"offset", a->offset}, {"error", detail::error_text(err)}});
      --buffered;
      delete a;
      return;
    }
  }

  void answer(std::int32_t partition, std::int64_t offset, const std::string& key, const command_result& r) {
    (r.accepted() ? accepted : rejected).fetch_add(1);
    produce(new answer_in_flight{partition, offset, key, to_json(r).dump()});
  }

  /// Answers the command at `offset` once every one before it in its partition is answered
  /// (at once if it is not in the lane's order: its partition was revoked meanwhile).
  void settle(std::int32_t partition, std::int64_t offset, std::string key, command_result r) {
    auto& l = lanes[partition];
    if (std::find(l.order.begin(), l.order.end(), offset) == l.order.end()) {
      answer(partition, offset, key, r);
      return;
    }
    l.ready.insert_or_assign(offset, ready_answer{std::move(key), std::move(r)});
    send_ready(partition, l);
  }

  /// Answers the ready answers at the front of the lane's order.
  void send_ready(std::int32_t partition, lane& l) {
    while (!l.order.empty()) {
      const auto it = l.ready.find(l.order.front());
      if (it == l.ready.end()) {
        return;
      }
      answer(partition, it->first, it->second.key, it->second.result);
      l.ready.erase(it);
      l.order.pop_front();
    }
  }

  void commit(bool async) {
    const auto points = offsets.take_commits();
    if (points.empty()) {
      return;
    }
    detail::partition_list list{rd_kafka_topic_partition_list_new(static_cast<int>(points.size()))};
    const std::string topic{command_topic};
    for (const auto& [p, o] : points) {
      rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = o;
    }
    if (const auto err = rd_kafka_commit(consumer.get(), list.get(), async ? 1 : 0); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      log::warn("kafka_commit_failed", {{"error", detail::error_text(err)}});
      return;
    }
    commits.fetch_add(1);
  }

  // -- commands --------------------------------------------------------------------------------

  void take(const rd_kafka_message_t* m) {
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        log::warn("kafka_consume_error", {{"error", detail::error_text(m->err)}});
      }
      return;
    }
    received.fetch_add(1);
    std::string key = m->key == nullptr ? std::string{} : std::string{static_cast<const char*>(m->key), m->key_len};
    const std::string_view payload{m->payload == nullptr ? "" : static_cast<const char*>(m->payload), m->len};
    queued q{m->offset, key, parse_command(payload, key, options.limits), {}};
    if (const auto* r = std::get_if<rejected_command>(&q.parsed); r != nullptr && r->poison) {
      poison.fetch_add(1);
      log::warn("kafka_command_poison", {{"partition", m->partition}, {"offset", m->offset}, {"bytes", m->len},
                                          {"error", r->err.message}});
    }
    offsets.begin(m->partition, m->offset);
    lanes[m->partition].waiting.push_back(std::move(q));
    ++buffered;
  }

  void dispatch() {
    const auto now = std::chrono::steady_clock::now();
    for (auto& [partition, l] : lanes) {
      // In offset order, never past the front: creates join the ones with the engine (up to
      // the limit); any other command waits for the lane to empty, then runs alone.
      while (!draining && !l.alone && !l.waiting.empty() && l.waiting.front().not_before <= now) {
        const auto* cmd = std::get_if<command>(&l.waiting.front().parsed);
        const bool create = cmd != nullptr && cmd->type == command_type::create;
        if (cmd != nullptr && (create ? l.with_engine >= options.max_creates_in_flight : l.with_engine > 0)) {
          break;
        }
        auto q = std::move(l.waiting.front());
        l.waiting.pop_front();
        if (!q.ordered) {
          l.order.push_back(q.offset);
          q.ordered = true;
        }
        if (const auto* r = std::get_if<rejected_command>(&q.parsed)) {
          settle(partition, q.offset, q.key, result_of(*r));
          continue;
        }
        ++l.with_engine;
        l.alone = !create;
        most_with_engine.store(std::max<std::uint64_t>(most_with_engine.load(), l.with_engine));
        run(partition, std::move(q));
      }
    }
  }

  // Hands a valid command to the engine; the answer comes back through `done`.
  void run(std::int32_t partition, queued q) {
    const auto& cmd = std::get<command>(q.parsed);
    command_result base;
    base.correlation_id = cmd.correlation_id;
    base.type = std::string{command_type_name(cmd.type)};
    base.request_id = cmd.request_id;
    auto sink = done;
    auto finish = [sink, partition, q](command_result r, const std::optional<error>& err) mutable {
      completion c{partition, q.offset, q.key, std::nullopt, std::nullopt};
      // Not the command's fault: run it again later, or after a restart (a bounded number of
      // times, so one command cannot hold its partition forever).
      if (err && (err->code == errc::overloaded || err->code == errc::unavailable) && ++q.attempts < max_attempts) {
        q.not_before = std::chrono::steady_clock::now() + std::chrono::milliseconds{500};
        c.retry = std::move(q);
      } else {
        r.err = err;
        c.answer = std::move(r);
      }
      sink->push(std::move(c));
    };
    if (cmd.type == command_type::create) {
      engine.submit(cmd.submit, [base, finish](result<actors::submit_reply> r) mutable {
        if (!r) {
          finish(base, r.err());
          return;
        }
        base.request_id = r->id;
        base.state = r->state;
        base.replayed = r->replayed;
        finish(base, std::nullopt);
      });
      return;
    }
    // A command names a tenant (key or field): the request must be that tenant's.
    if (!cmd.tenant.empty()) {
      auto view = engine.views().request(cmd.request_id);
      if (!view || !*view || (*view)->tenant != cmd.tenant) {
        finish(base, view ? make_error(errc::not_found, "request " + cmd.request_id + " not found") : view.err());
        return;
      }
    }
    auto on_state = [base, finish](result<events::request_state> r) mutable {
      if (!r) {
        finish(base, r.err());
        return;
      }
      base.state = r->state;
      finish(base, std::nullopt);
    };
    const std::string by = cmd.tenant.empty() ? std::string{"kafka"} : "kafka:" + cmd.tenant;
    if (cmd.type == command_type::manual_input) {
      auto input = cmd.input;
      input.by = by;
      engine.provide_input(cmd.request_id, std::move(input), std::move(on_state));
      return;
    }
    engine.command(cmd.request_id, lifecycle_of(cmd.type), actors::command_input{cmd.reason, by}, std::move(on_state));
  }

  // Answers what the engine finished; puts back what it could not take.
  std::size_t collect() {
    auto items = done->take();
    for (auto& c : items) {
      auto& l = lanes[c.partition];
      --l.with_engine;
      l.alone = false;
      if (c.answer) {
        settle(c.partition, c.offset, c.key, std::move(*c.answer));
      } else if (c.retry && !draining) {
        l.waiting.push_front(std::move(*c.retry));  // keeps its place in the answer order
      } else {
        --buffered;  // stopping: left unfinished, consumed again after the restart
        std::erase(l.order, c.offset);
        send_ready(c.partition, l);
      }
    }
    return items.size();
  }

  /// Commands with the engine, over all partitions.
  std::size_t with_engine() const {
    std::size_t n = 0;
    for (const auto& [p, l] : lanes) {
      n += l.with_engine;
    }
    return n;
  }

  /// Pauses (or resumes) fetching from every assigned partition. Pausing drops what was
  /// prefetched; a resume fetches again from the next message not yet handed to us.
  void set_paused(bool pause) {
    rd_kafka_topic_partition_list_t* parts = nullptr;
    if (rd_kafka_assignment(consumer.get(), &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || parts == nullptr) {
      return;
    }
    if (pause) {
      rd_kafka_pause_partitions(consumer.get(), parts);
    } else {
      rd_kafka_resume_partitions(consumer.get(), parts);
    }
    const auto count = parts->cnt;
    rd_kafka_topic_partition_list_destroy(parts);
    if (paused != pause) {
      log::info(pause ? "kafka_commands_paused" : "kafka_commands_resumed",
                {{"buffered", buffered}, {"partitions", count}});
    }
    paused = pause;
  }

  void run_loop() {
    while (!stopping.load()) {
      // A full buffer pauses the partitions instead of not polling: the consumer keeps polling
      // (and so its group membership) however long the engine takes. Partitions assigned while
      // paused are paused on the next turn; fetching resumes once half the buffer is free.
      if (buffered >= options.max_buffered) {
        set_paused(true);
      } else if (paused && buffered <= options.max_buffered / 2) {
        set_paused(false);
      }
      if (rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer.get(), 10)) {
        take(m);
        rd_kafka_message_destroy(m);
      }
      collect();
      dispatch();
      if (producer) {
        rd_kafka_poll(producer.get(), 0);
      }
      if (producer_fatal || !producer) {
        rebuild_producer();
      }
      for (auto* a : std::exchange(to_resend, {})) {
        produce(a);
      }
      commit(true);
    }
    // Stopping: start nothing new; let the engine finish what it has and the answers land.
    draining = true;
    for (auto& [p, l] : lanes) {
      buffered -= l.waiting.size();
      for (const auto& q : l.waiting) {
        std::erase(l.order, q.offset);  // a retry waiting its turn: no answer holds for it
      }
      l.waiting.clear();
      send_ready(p, l);
    }
    const auto deadline = std::chrono::steady_clock::now() + drain_timeout;
    while ((with_engine() > 0 || answers_in_flight > 0 || !to_resend.empty()) && std::chrono::steady_clock::now() < deadline) {
      collect();
      if (producer_fatal || !producer) {
        rebuild_producer();
      }
      if (producer) {
        rd_kafka_poll(producer.get(), 10);
      }
      for (auto* a : std::exchange(to_resend, {})) {
        produce(a);
      }
      if (!producer) {
        break;  // cannot answer: leave them for the next start
      }
    }
    commit(false);
    if (with_engine() > 0 || answers_in_flight > 0) {
      log::warn("kafka_commands_stopped_unanswered", {{"with_engine", with_engine()}, {"answers", answers_in_flight}});
    }
    rd_kafka_consumer_close(consumer.get());
    consumer.reset();
    // Answers still without a delivery report: dropped; their commands are consumed again.
    if (producer) {
      rd_kafka_purge(producer.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      rd_kafka_poll(producer.get(), 0);
    }
    for (auto* a : std::exchange(to_resend, {})) {
      delete a;
    }
    producer.reset();
  }
};

command_consumer::command_consumer(std::unique_ptr<impl> i) : _impl(std::move(i)) {}

command_consumer::~command_consumer() { stop(); }

result<std::unique_ptr<command_consumer>> command_consumer::start(actors::engine& engine, command_consumer_options options) {
  auto i = std::make_unique<impl>(engine, std::move(options));
  auto p = i->make_producer();
  if (!p) {
    return std::move(p).err();
  }
  i->producer = std::move(*p);
  auto c = i->make_consumer();
  if (!c) {
    return std::move(c).err();
  }
  i->consumer = std::move(*c);
  auto* raw = i.get();
  i->thread = std::thread{[raw] {
    name_this_thread("prov.commands");
    raw->run_loop();
  }};
  log::info("kafka_commands_started", {{"topic", command_topic}, {"group", raw->options.group_id}});
  return std::unique_ptr<command_consumer>{new command_consumer{std::move(i)}};
}

void command_consumer::stop(std::chrono::milliseconds drain_timeout) {
  std::lock_guard lock{_impl->stop_mutex};
  if (_impl->stopped) {
    return;
  }
  _impl->stopped = true;
  _impl->drain_timeout = drain_timeout;
  _impl->stopping.store(true);
  if (_impl->thread.joinable()) {
    _impl->thread.join();
  }
  log::info("kafka_commands_stopped", {{"received", _impl->received.load()}});
}

command_consumer_stats command_consumer::stats() const {
  const auto& i = *_impl;
  return command_consumer_stats{i.received.load(), i.accepted.load(), i.rejected.load(),
                                i.poison.load(), i.answer_failures.load(), i.commits.load(),
                                i.most_with_engine.load()};
}

}  // namespace prov::kafka
