// The webhooks' read model: the folded state under "wh/<id>" and the newest 100
// delivery records under "wd/<id>\0<n>", the same after a rebuild whatever the batch size.

#include <catch2/catch.hpp>

#include "projections/projection_fixture.hpp"

using namespace projection_test;

namespace {

webhook_delivery_attempted attempt(const std::string& request, std::uint32_t n, delivery_outcome outcome) {
  webhook_delivery_attempted d;
  d.event_id = "request/" + request + "/1#0";
  d.event_type = "provisioning.started";
  d.request_id = request;
  d.position = n;
  d.attempt = n;
  d.outcome = outcome;
  d.final = outcome != delivery_outcome::failed;
  d.status_code = outcome == delivery_outcome::delivered ? 200 : 500;
  d.error = outcome == delivery_outcome::delivered ? "" : "HTTP 500";
  d.attempted_at = timestamp{std::chrono::seconds{1'800'000'000 + n}};
  return d;
}

void history(world& w) {
  w.append(webhook_stream("wh-a"), {to_record(webhook_registered{"wh-a", "acme", "https://a.example/", {"*"}, "sealed-a", "acme"})});
  w.append(webhook_stream("wh-b"), {to_record(webhook_registered{"wh-b", "globex", "https://b.example/", {"provisioning.completed"}, "sealed-b", "globex"})});
  for (std::uint32_t n = 1; n <= 130; ++n) {
    w.append(webhook_stream("wh-a"), {to_record(attempt("r" + std::to_string(n), n, n % 3 == 0 ? delivery_outcome::failed : delivery_outcome::delivered))});
  }
  // Several records in one append, then a deactivation with the last of them.
  w.append(webhook_stream("wh-b"), {to_record(attempt("x", 1, delivery_outcome::failed)), to_record(attempt("x", 2, delivery_outcome::failed)),
                                    to_record(webhook_deactivated{"2 consecutive failed deliveries", 2})});
  w.append(webhook_stream("wh-c"), {to_record(webhook_registered{"wh-c", "acme", "https://c.example/", {"*"}, "sealed-c", "acme"}),
                                    to_record(attempt("y", 1, delivery_outcome::delivered)),
                                    to_record(webhook_deleted{"acme"})});
}

}  // namespace

TEST_CASE("webhook projections: state, the newest 100 deliveries, deletion", "[webhooks][projections]") {
  world w;
  history(w);
  projector p{w.store(), w.j(), projector_options{16}};
  REQUIRE_OK(p.catch_up());
  const views v{w.store()};

  const auto a = must(v.webhook("wh-a"));
  REQUIRE(a.has_value());
  CHECK(a->active);
  CHECK(a->attempts == 130);
  CHECK(a->failed == 43);
  CHECK(a->delivered == 87);
  CHECK(a->consecutive_failures == 0);  // r130 was delivered
  const auto deliveries = must(v.webhook_deliveries("wh-a"));
  REQUIRE(deliveries.size() == 100);
  CHECK(deliveries.front().request_id == "r130");  // newest first
  CHECK(deliveries.back().request_id == "r31");
  CHECK(must(v.webhook_deliveries("wh-a", 5)).size() == 5);

  const auto b = must(v.webhook("wh-b"));
  REQUIRE(b.has_value());
  CHECK_FALSE(b->active);
  CHECK(b->consecutive_failures == 2);
  CHECK(b->deactivation_reason == "2 consecutive failed deliveries");
  CHECK(must(v.webhook_deliveries("wh-b")).size() == 2);

  // Deleted: not listed, no delivery records left.
  CHECK(must(v.webhook("wh-c"))->deleted);
  CHECK(must(v.webhook_deliveries("wh-c")).empty());
  const auto all = must(v.webhooks());
  REQUIRE(all.size() == 2);
  CHECK(all[0].id == "wh-a");
  CHECK(all[1].id == "wh-b");
  CHECK(must(v.webhooks(std::string{"globex"})).size() == 1);

  // Exactly 100 "wd/" keys for wh-a, whatever the batches were.
  const auto dump = dump_projections(w.store());
  std::size_t records = 0;
  for (const auto& [k, val] : dump) {
    if (k.rfind("wd/wh-a", 0) == 0) {
      ++records;
    }
    CHECK(k.rfind("wd/wh-c", 0) != 0);
  }
  CHECK(records == 100);
  for (std::size_t batch : {1, 7, 100000}) {
    projector again{w.store(), w.j(), projector_options{batch}};
    REQUIRE_OK(again.rebuild());
    INFO("batch " << batch);
    CHECK(dump_projections(w.store()) == dump);
  }
}

TEST_CASE("webhook projections are snapshots: the projected state with the stream's tail folds to the fold from scratch",
          "[webhooks][projections]") {
  world w;
  history(w);
  for (const auto& id : {"wh-a", "wh-b"}) {
    const auto stored = must(w.j().read_stream(webhook_stream(id)));
    const auto from_scratch = must(fold_webhook(stored));
    // The projection at every version of the stream is a snapshot of it.
    for (std::size_t at = 0; at <= stored.size(); ++at) {
      webhook_state snapshot;
      if (at > 0) {
        snapshot = must(fold_webhook(std::span{stored}.first(at)));
      }
      CHECK(must(fold_webhook(snapshot, std::span{stored}.subspan(at))) == from_scratch);
    }
  }
  projector p{w.store(), w.j(), projector_options{16}};
  REQUIRE_OK(p.catch_up());
  const views v{w.store()};
  // What the projection has not seen yet: a reactivation and a delivery.
  w.append(webhook_stream("wh-b"), {to_record(webhook_reactivated{"admin"}), to_record(attempt("z", 3, delivery_outcome::delivered))});
  const auto projected = must(v.webhook("wh-b"));
  REQUIRE(projected.has_value());
  const auto tail = must(w.j().read_stream(webhook_stream("wh-b"), projected->version + 1));
  REQUIRE(tail.size() == 2);
  const auto now = must(fold_webhook(*projected, tail));
  CHECK(now == must(fold_webhook(must(w.j().read_stream(webhook_stream("wh-b"))))));
  CHECK(now.active);

  // A tail that does not go on from the snapshot is refused, not folded.
  const auto gap = fold_webhook(*projected, std::span{tail}.subspan(1));
  REQUIRE_FALSE(gap.ok());
  CHECK(gap.err().code == errc::corrupt);
}
