// The webhook dispatcher in virtual time on CAF's test coordinator, over an in-memory
// journal and a fake transport: signatures checked with OpenSSL's HMAC directly, retries with
// exponential backoff, deactivation after 5 failures in a row and re-activation, a hanging
// receiver that holds up nobody else, a bounded queue, filters, and a restart that does not
// deliver again what was settled.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "actors/harness.hpp"
#include "independent_hmac.hpp"
#include "prov/actors/webhooks.hpp"

using prov::test::independent_hmac_hex;

using namespace prov;
using namespace prov::events;
using prov::testing::node;
using prov::testing::virtual_clock;

namespace {

/// Records every POST; `respond` decides the answer (nullopt = the receiver hangs).
class fake_transport final : public actors::webhook_transport {
 public:
  struct call {
    actors::webhook_post post;
    timestamp at;
    std::function<void(actors::webhook_reply)> done;
  };

  explicit fake_transport(const prov::clock& clk) : _clk(clk) {}

  std::function<std::optional<actors::webhook_reply>(const actors::webhook_post&)> respond =
      [](const actors::webhook_post&) { return actors::webhook_reply{200, 3, {}}; };

  void post(actors::webhook_post request, std::function<void(actors::webhook_reply)> done) override {
    auto answer = respond(request);
    calls.push_back(call{request, _clk.now(), done});
    if (answer) {
      done(*answer);
    }
  }

  std::vector<call> to(const std::string& webhook) const {
    std::vector<call> out;
    for (const auto& c : calls) {
      if (c.post.webhook_id == webhook) {
        out.push_back(c);
      }
    }
    return out;
  }

  std::vector<call> calls;

 private:
  const prov::clock& _clk;
};

std::string header(const actors::webhook_post& p, std::string_view name) {
  for (const auto& [k, v] : p.headers) {
    if (k == name) {
      return v;
    }
  }
  return {};
}

void append(journal& j, const std::string& stream, std::uint64_t expected, std::vector<event_record> records) {
  std::vector<stream_append> batch;
  batch.push_back(stream_append{stream, expected, std::move(records)});
  bool ok = false;
  j.append(std::move(batch), [&](result<append_receipt> r) { ok = r.ok(); });
  REQUIRE(ok);
}

/// A journal that counts the events `read_all` shows, and forwards everything.
class counting_journal final : public events::journal {
 public:
  explicit counting_journal(events::journal& inner) : _inner(inner) {}

  void append(std::vector<stream_append> batch, append_handler done) override {
    _inner.append(std::move(batch), std::move(done));
  }
  result<std::vector<stored_event>> read_stream(std::string_view stream, std::uint64_t from_sequence,
                                                std::uint64_t max) const override {
    return _inner.read_stream(stream, from_sequence, max);
  }
  result<std::uint64_t> stream_version(std::string_view stream) const override { return _inner.stream_version(stream); }
  result<std::size_t> read_all(std::uint64_t from_position, std::size_t max,
                               const std::function<void(const stored_event&)>& visit) const override {
    return _inner.read_all(from_position, max, [&](const stored_event& e) {
      ++visited;
      visit(e);
    });
  }
  std::uint64_t head() const override { return _inner.head(); }
  std::uint64_t last_position_in(std::string_view category) const override {
    return _inner.last_position_in(category);
  }
  void on_commit(commit_listener listener) override { _inner.on_commit(std::move(listener)); }
  void drain() override { _inner.drain(); }

  mutable std::size_t visited = 0;

 private:
  events::journal& _inner;
};

struct world {
  virtual_clock clk;
  memory_journal mem{clk};
  counting_journal counted{mem};
  events::journal& journal = counted;
  std::unique_ptr<providers::inventory_store> cloud = providers::make_memory_inventory_store();
  std::unique_ptr<node> n = std::make_unique<node>(journal, clk, *cloud, std::vector<cluster_state>{});
  std::shared_ptr<fake_transport> transport = std::make_shared<fake_transport>(clk);
  std::unique_ptr<actors::webhook_dispatcher> dispatcher;
  std::uint64_t saved_position = 0;
  bool fold_projected = true;  ///< load_webhooks gives folded states (else ids only)

  explicit world(actors::webhook_options o = options(), std::uint64_t start = 0) { start_dispatcher(o, start); }

  ~world() {
    stop_dispatcher();
    n.reset();
  }

  static actors::webhook_options options() {
    actors::webhook_options o;
    o.retry.base = std::chrono::seconds{5};
    o.retry.cap = std::chrono::minutes{5};
    o.retry.max_attempts = 5;
    o.timeout = std::chrono::seconds{10};
    return o;
  }

  void start_dispatcher(actors::webhook_options o, std::uint64_t start) {
    actors::webhook_dispatcher_context ctx;
    ctx.journal = &journal;
    ctx.clk = &clk;
    ctx.secrets = &prov::testing::test_secrets();
    ctx.transport = transport;
    ctx.options = o;
    ctx.start_position = start;
    ctx.save_position = [this](std::uint64_t p) { saved_position = p; };
    ctx.load_webhooks = [this]() -> result<std::vector<webhook_state>> {
      // What the projections would hold: every webhook stream, folded.
      std::vector<webhook_state> out;
      std::set<std::string> seen;
      (void)journal.read_all(1, 1'000'000, [&](const stored_event& e) {
        if (stream_category(e.stream) == "webhook" && seen.insert(e.stream).second) {
          webhook_state s;
          s.id = std::string{stream_key(e.stream)};
          if (fold_projected) {
            s = *fold_webhook(*journal.read_stream(e.stream));
          }
          out.push_back(s);
        }
      });
      return out;
    };
    dispatcher = actors::webhook_dispatcher::start(*n->sys, std::move(ctx));
    n->run_jobs();
  }

  void stop_dispatcher() {
    if (dispatcher) {
      dispatcher->stop(false);
      n->run_jobs();
      dispatcher.reset();
    }
  }

  void register_hook(const std::string& id, const std::string& tenant, std::vector<std::string> types,
                     const std::string& secret = "s3cret") {
    webhook_registered e{id, tenant, "https://hooks.example/" + id, std::move(types),
                         prov::testing::test_secrets().seal(secret), tenant};
    append(journal, webhook_stream(id), 0, {to_record(e)});
    n->run_jobs();
  }

  void submit(const std::string& request, const std::string& tenant = "acme") {
    auto r = prov::testing::vps_request(request);
    r.tenant = tenant;
    prov::testing::submit(journal, r);
    n->run_jobs();
  }

  webhook_state hook_state(const std::string& id) {
    auto stored = journal.read_stream(webhook_stream(id));
    REQUIRE(stored);
    auto s = fold_webhook(*stored);
    REQUIRE(s);
    return *s;
  }

  std::vector<webhook_delivery_attempted> records(const std::string& id) {
    std::vector<webhook_delivery_attempted> out;
    auto stored = journal.read_stream(webhook_stream(id));
    for (const auto& e : *stored) {
      auto any = decode(e);
      if (any && std::holds_alternative<webhook_delivery_attempted>(*any)) {
        out.push_back(std::get<webhook_delivery_attempted>(*any));
      }
    }
    return out;
  }

  std::vector<std::string> types_of(const std::string& id) {
    std::vector<std::string> out;
    for (const auto& e : *journal.read_stream(webhook_stream(id))) {
      out.emplace_back(type_name(e.type_id));
    }
    return out;
  }

  /// The position stored once a deferred save is due: virtual time runs on until the stored
  /// position is the head, for at most a save interval (the default options').
  std::uint64_t saved_once_due() {
    n->run_until([&] { return saved_position == journal.head(); }, options().position_save_interval);
    return saved_position;
  }

  actors::webhook_dispatcher_status status() {
    auto out = std::make_shared<actors::webhook_dispatcher_status>();
    auto target = dispatcher->actor();
    n->sys->spawn([out, target](caf::event_based_actor* self) {
      self->request(target, caf::infinite, actors::status_atom::value).then([out](const actors::webhook_dispatcher_status& s) {
        *out = s;
      });
    });
    n->run_jobs();
    return *out;
  }
};

std::string render(const std::vector<webhook_delivery_attempted>& rs) {
  std::string out;
  for (const auto& r : rs) {
    out += r.request_id + ":" + std::to_string(r.attempt) + ":" + std::string{enum_names(r.outcome)[static_cast<int>(r.outcome)]} +
           (r.final ? ":final" : "") + " ";
  }
  return out;
}

}  // namespace

TEST_CASE("webhook: a delivery is a signed CloudEvent that an independent HMAC verifies", "[webhooks][dispatcher]") {
  world w;
  w.register_hook("wh1", "acme", {"provisioning.started"}, "top-secret");
  w.submit("r1");
  REQUIRE(w.transport->calls.size() == 1);
  const auto& post = w.transport->calls.front().post;
  CHECK(post.url == "https://hooks.example/wh1");
  const auto ts = header(post, "X-Webhook-Timestamp");
  REQUIRE_FALSE(ts.empty());
  const auto expected = "sha256=" + independent_hmac_hex("top-secret", ts + "." + post.body);
  CHECK(header(post, "X-Signature-256") == expected);
  CHECK(header(post, "X-Webhook-Id") == "request/r1/1#0");
  CHECK(header(post, "Content-Type") == "application/cloudevents+json");
  const auto body = nlohmann::json::parse(post.body);
  CHECK(body["specversion"] == "1.0");
  CHECK(body["type"] == "provisioning.started");
  CHECK(body["subject"] == "r1");
  CHECK(body["tenant"] == "acme");
  CHECK(post.body.find("top-secret") == std::string::npos);
  // A tampered body or another secret does not verify.
  CHECK(header(post, "X-Signature-256") != "sha256=" + independent_hmac_hex("top-secret", ts + "." + post.body + " "));
  CHECK(header(post, "X-Signature-256") != "sha256=" + independent_hmac_hex("other", ts + "." + post.body));

  const auto recs = w.records("wh1");
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].outcome == delivery_outcome::delivered);
  CHECK(recs[0].final);
  CHECK(recs[0].status_code == 200);
  CHECK(recs[0].attempt == 1);
  CHECK(w.hook_state("wh1").delivered == 1);
  // The sealed secret is all the journal holds.
  for (const auto& e : *w.journal.read_stream(webhook_stream("wh1"))) {
    CHECK(e.payload.find("top-secret") == std::string::npos);
  }
  CHECK(w.saved_once_due() == w.journal.head());
}

TEST_CASE("webhook: with no webhook to deliver to, the log's tail is passed over unread",
          "[webhooks][dispatcher]") {
  world w;
  w.counted.visited = 0;
  w.submit("r1");
  w.submit("r2");
  const auto head = w.journal.head();
  REQUIRE(head > 0);
  CHECK(w.status().position == head);
  CHECK(w.counted.visited == 0);
  CHECK(w.saved_once_due() == head);

  // A registration is a webhook event: it is read, and deliveries follow from it on.
  w.register_hook("h1", "acme", {"*"});
  CHECK(w.counted.visited > 0);
  w.submit("r3");
  CHECK(w.transport->to("h1").size() == 1);
  CHECK(w.status().position == w.journal.head());
}

TEST_CASE("webhook: the position is stored at most once per save interval, and the last move once it ends",
          "[webhooks][dispatcher]") {
  world w;
  const auto interval = world::options().position_save_interval;
  REQUIRE(interval.count() > 0);
  w.submit("r1");
  const auto first = w.journal.head();
  CHECK(w.saved_position == first);  // the first move is stored at once
  const auto first_at = w.clk.now();

  // Moves within the interval wait for its end; the position read goes on meanwhile.
  w.submit("r2");
  w.submit("r3");
  CHECK(w.status().position == w.journal.head());
  CHECK(w.saved_position == first);
  CHECK(w.status().stored_position == first);

  // At the end of the interval the last position is stored (once: nothing is left to store).
  CHECK(w.saved_once_due() == w.journal.head());
  CHECK(w.clk.now() - first_at >= interval);
  CHECK(w.status().stored_position == w.journal.head());
}

TEST_CASE("webhook: with no save interval every move of the position is stored at once", "[webhooks][dispatcher]") {
  auto o = world::options();
  o.position_save_interval = std::chrono::milliseconds{0};
  world w(o);
  for (const auto* r : {"r1", "r2", "r3"}) {
    w.submit(r);
    CHECK(w.saved_position == w.journal.head());
  }
}

TEST_CASE("webhook: only the owner tenant's events of subscribed types are delivered", "[webhooks][dispatcher]") {
  world w;
  w.register_hook("mine", "acme", {"*"});
  w.register_hook("completed-only", "acme", {"provisioning.completed"});
  w.register_hook("theirs", "globex", {"*"});
  w.submit("r1", "acme");
  CHECK(w.transport->to("mine").size() == 1);
  CHECK(w.transport->to("completed-only").empty());
  CHECK(w.transport->to("theirs").empty());
  w.submit("r2", "globex");
  CHECK(w.transport->to("theirs").size() == 1);
  CHECK(w.transport->to("mine").size() == 1);
}

TEST_CASE("webhook: a failed delivery is retried with exponential backoff in virtual time", "[webhooks][dispatcher]") {
  world w;
  int answered = 0;
  w.transport->respond = [&](const actors::webhook_post&) {
    ++answered;
    return answered <= 3 ? actors::webhook_reply{503, 1, {}} : actors::webhook_reply{204, 1, {}};
  };
  w.register_hook("wh1", "acme", {"*"});
  w.submit("r1");
  REQUIRE(w.n->run_until([&] { return w.records("wh1").size() == 4; }));
  const auto calls = w.transport->to("wh1");
  REQUIRE(calls.size() == 4);
  using std::chrono::seconds;
  CHECK(calls[1].at - calls[0].at == seconds{5});
  CHECK(calls[2].at - calls[1].at == seconds{10});
  CHECK(calls[3].at - calls[2].at == seconds{20});
  CHECK(header(calls[3].post, "X-Webhook-Attempt") == "4");
  CHECK(header(calls[3].post, "X-Webhook-Id") == header(calls[0].post, "X-Webhook-Id"));
  const auto recs = w.records("wh1");
  CHECK(render(recs) == "r1:1:failed r1:2:failed r1:3:failed r1:4:delivered:final ");
  CHECK(recs[0].status_code == 503);
  CHECK(recs[0].error == "HTTP 503");
  const auto s = w.hook_state("wh1");
  CHECK(s.active);
  CHECK(s.consecutive_failures == 0);
  CHECK(s.failed == 3);
  CHECK(s.delivered == 1);
}

TEST_CASE("webhook: the backoff doubles up to its cap", "[webhooks][dispatcher]") {
  actors::webhook_retry_policy p;
  p.base = std::chrono::seconds{5};
  p.cap = std::chrono::seconds{60};
  CHECK(p.delay(1) == std::chrono::seconds{5});
  CHECK(p.delay(2) == std::chrono::seconds{10});
  CHECK(p.delay(4) == std::chrono::seconds{40});
  CHECK(p.delay(5) == std::chrono::seconds{60});
  CHECK(p.delay(40) == std::chrono::seconds{60});
}

TEST_CASE("webhook: five failures in a row deactivate it and a reactivation resumes deliveries", "[webhooks][dispatcher]") {
  world w;
  bool healthy = false;
  w.transport->respond = [&](const actors::webhook_post&) {
    return healthy ? actors::webhook_reply{200, 1, {}} : actors::webhook_reply{0, 1, "connection refused"};
  };
  w.register_hook("wh1", "acme", {"*"});
  w.submit("r1");
  REQUIRE(w.n->run_until([&] { return !w.hook_state("wh1").active; }));
  CHECK(w.transport->to("wh1").size() == 5);
  const auto types = w.types_of("wh1");
  CHECK(types.back() == "webhook.deactivated");
  const auto s = w.hook_state("wh1");
  CHECK_FALSE(s.active);
  CHECK(s.consecutive_failures == 5);
  CHECK(s.deactivation_reason == "5 consecutive failed deliveries");
  CHECK(render(w.records("wh1")) == "r1:1:failed r1:2:failed r1:3:failed r1:4:failed r1:5:failed:final ");
  CHECK(w.records("wh1").back().error == "connection refused");

  // Deactivated: later events are not delivered, even much later.
  healthy = true;
  w.submit("r2");
  w.n->run_for(std::chrono::hours{1});
  CHECK(w.transport->to("wh1").size() == 5);

  // Re-activated (as the API does: with the folded version): events after it are delivered.
  append(w.journal, webhook_stream("wh1"), s.version, {to_record(webhook_reactivated{"acme"})});
  w.n->run_jobs();
  w.submit("r3");
  REQUIRE(w.transport->to("wh1").size() == 6);
  CHECK(header(w.transport->to("wh1").back().post, "X-Webhook-Id") == "request/r3/1#0");
  const auto after = w.hook_state("wh1");
  CHECK(after.active);
  CHECK(after.consecutive_failures == 0);
  CHECK(after.delivered == 1);
}

TEST_CASE("webhook: failures across events count toward deactivation, a success resets the count",
          "[webhooks][dispatcher]") {
  auto o = world::options();
  o.retry.max_attempts = 2;  // two attempts per event
  world w{o};
  int n = 0;
  w.transport->respond = [&](const actors::webhook_post&) {
    ++n;
    // r1: fail, fail (2 in a row); r2: fail, ok (reset); r3..r5: fail x5 -> deactivated on the 5th
    const bool ok = n == 4;
    return ok ? actors::webhook_reply{200, 1, {}} : actors::webhook_reply{500, 1, {}};
  };
  w.register_hook("wh1", "acme", {"*"});
  w.submit("r1");
  w.submit("r2");
  w.submit("r3");
  w.submit("r4");
  w.submit("r5");
  REQUIRE(w.n->run_until([&] { return !w.hook_state("wh1").active; }));
  CHECK(render(w.records("wh1")) ==
        "r1:1:failed r1:2:failed:final r2:1:failed r2:2:delivered:final r3:1:failed r3:2:failed:final "
        "r4:1:failed r4:2:failed:final r5:1:failed:final ");
  CHECK(w.status().pending == 0);
}

TEST_CASE("webhook: a hanging receiver does not stall the other webhooks", "[webhooks][dispatcher]") {
  world w;
  w.transport->respond = [](const actors::webhook_post& p) -> std::optional<actors::webhook_reply> {
    if (p.webhook_id == "slow") {
      return std::nullopt;  // never answers
    }
    return actors::webhook_reply{200, 1, {}};
  };
  w.register_hook("slow", "acme", {"*"});
  w.register_hook("fast", "acme", {"*"});
  w.register_hook("other-tenant", "globex", {"*"});
  for (int i = 0; i < 5; ++i) {
    w.submit("a" + std::to_string(i), "acme");
    w.submit("g" + std::to_string(i), "globex");
  }
  // Without moving time at all: everyone else got everything, the slow one holds one POST.
  CHECK(w.transport->to("fast").size() == 5);
  CHECK(w.transport->to("other-tenant").size() == 5);
  CHECK(w.transport->to("slow").size() == 1);
  CHECK(w.records("fast").size() == 5);
  // The pipeline was never held up either: every event was read.
  CHECK(w.status().position == w.journal.head());
  // The hanging POST times out (the dispatcher's own deadline) and is retried.
  REQUIRE(w.n->run_until([&] { return !w.records("slow").empty(); }));
  CHECK(w.records("slow").front().error.find("no answer") != std::string::npos);
  CHECK(w.records("slow").front().status_code == 0);
}

TEST_CASE("webhook: a full queue drops deliveries and records each drop", "[webhooks][dispatcher]") {
  auto o = world::options();
  o.queue_limit = 2;
  world w{o};
  w.transport->respond = [](const actors::webhook_post&) -> std::optional<actors::webhook_reply> { return std::nullopt; };
  w.register_hook("slow", "acme", {"*"});
  for (int i = 0; i < 5; ++i) {
    w.submit("r" + std::to_string(i));
  }
  const auto recs = w.records("slow");
  REQUIRE(recs.size() == 3);
  for (const auto& r : recs) {
    CHECK(r.outcome == delivery_outcome::dropped);
    CHECK(r.final);
    CHECK(r.attempt == 0);
  }
  CHECK(render(recs) == "r2:0:dropped:final r3:0:dropped:final r4:0:dropped:final ");
  CHECK(w.hook_state("slow").dropped == 3);
  CHECK(w.hook_state("slow").consecutive_failures == 0);  // drops are no failures
  const auto st = w.status();
  CHECK(st.pending == 2);
  // The stored position stays below the first unfinished delivery.
  CHECK(w.saved_position < w.journal.head());
}

TEST_CASE("webhook: a deleted webhook gets nothing more", "[webhooks][dispatcher]") {
  world w;
  w.register_hook("wh1", "acme", {"*"});
  w.submit("r1");
  append(w.journal, webhook_stream("wh1"), w.hook_state("wh1").version, {to_record(webhook_deleted{"acme"})});
  w.n->run_jobs();
  w.submit("r2");
  CHECK(w.transport->to("wh1").size() == 1);
  CHECK(w.status().webhooks == 0);
}

TEST_CASE("webhook: a restart from the stored position does not deliver settled events again", "[webhooks][dispatcher]") {
  for (const bool projected : {true, false}) {
    INFO("load_webhooks gives " << (projected ? "folded states" : "ids only"));
    world w;
    w.fold_projected = projected;
    w.transport->respond = [](const actors::webhook_post& p) -> std::optional<actors::webhook_reply> {
      if (p.webhook_id == "slow" && header(p, "X-Webhook-Id") == "request/r2/1#0") {
        return std::nullopt;  // in flight at the "crash"
      }
      return actors::webhook_reply{200, 1, {}};
    };
    w.register_hook("slow", "acme", {"*"});
    w.register_hook("fast", "acme", {"*"});
    w.submit("r1");
    w.submit("r2");
    w.submit("r3");
    // One webhook's queue is FIFO: slow's r3 waits behind its hanging r2; fast has all three.
    CHECK(w.transport->to("slow").size() == 2);
    CHECK(w.records("fast").size() == 3);
    const auto stored = w.saved_position;
    CHECK(stored < w.journal.head());
    w.stop_dispatcher();

    w.transport->calls.clear();
    w.transport->respond = [](const actors::webhook_post&) { return actors::webhook_reply{200, 1, {}}; };
    w.start_dispatcher(world::options(), stored);
    std::vector<std::string> ids;
    for (const auto& c : w.transport->to("slow")) {
      ids.push_back(header(c.post, "X-Webhook-Id"));
    }
    CHECK(ids == std::vector<std::string>{"request/r2/1#0", "request/r3/1#0"});
    CHECK(w.transport->to("fast").empty());  // settled before the restart
    CHECK(w.saved_once_due() == w.journal.head());
    // And what comes next reaches both.
    w.submit("r4");
    CHECK(w.transport->to("slow").size() == 3);
    CHECK(w.transport->to("fast").size() == 1);
  }
}

TEST_CASE("webhook: after a restart an unsettled event's attempts go on counting from the recorded ones",
          "[webhooks][dispatcher]") {
  auto o = world::options();
  o.retry.max_attempts = 4;
  o.deactivate_after = 100;  // only the attempt limit ends the event here
  world w{o};
  w.transport->respond = [](const actors::webhook_post&) { return actors::webhook_reply{503, 1, {}}; };
  w.register_hook("wh1", "acme", {"*"});
  w.submit("r1");
  REQUIRE(w.n->run_until([&] { return w.records("wh1").size() == 2; }));
  CHECK(render(w.records("wh1")) == "r1:1:failed r1:2:failed ");
  const auto stored = w.saved_position;
  w.stop_dispatcher();  // a crash while the third attempt waits for its backoff

  w.transport->calls.clear();
  w.start_dispatcher(o, stored);
  REQUIRE(w.n->run_until([&] {
    const auto recs = w.records("wh1");
    return !recs.empty() && recs.back().final;
  }));
  // Two more attempts, numbered 3 and 4, and the fourth is the last: the limit counts the
  // attempts before the restart too.
  CHECK(render(w.records("wh1")) == "r1:1:failed r1:2:failed r1:3:failed r1:4:failed:final ");
  const auto calls = w.transport->to("wh1");
  REQUIRE(calls.size() == 2);
  CHECK(header(calls[0].post, "X-Webhook-Attempt") == "3");
  CHECK(header(calls[1].post, "X-Webhook-Attempt") == "4");
  CHECK(calls[1].at - calls[0].at == std::chrono::seconds{20});  // the backoff after attempt 3
  // Settled now: the next restart sends nothing of it again.
  const auto settled = w.saved_once_due();
  w.stop_dispatcher();
  w.transport->calls.clear();
  w.start_dispatcher(o, settled);
  w.n->run_jobs();
  CHECK(w.transport->calls.empty());
}
