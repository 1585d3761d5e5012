#include <catch2/catch.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "prov/core/be64.hpp"

#include "projection_fixture.hpp"

using namespace projection_test;

namespace {

/// "r-07" style ids, in creation order.
std::string rid(int i) {
  std::string n = std::to_string(i);
  return "r-" + std::string(n.size() < 4 ? 4 - n.size() : 0, '0') + n;
}

std::vector<std::string> reversed(std::vector<std::string> v) {
  std::reverse(v.begin(), v.end());
  return v;
}

}  // namespace

TEST_CASE("views: a request's view is the fold of its stream", "[projections][views]") {
  world w;
  projector p{w.store(), w.j()};
  const views v{w.store()};

  submit(w, "r1", "acme");
  start_allocating(w, "r1");
  complete(w, "r1");
  submit(w, "r2", "acme");
  start_allocating(w, "r2");
  fail(w, "r2");
  start_rollback(w, "r2");
  finish_rollback(w, "r2");
  submit(w, "r3", "globex");
  // An idempotency claim has no read model, but it moves the position.
  const auto last = w.append(idempotency_stream("globex", "key-1"), {to_record(idempotency_claimed{"r3"})});

  REQUIRE_OK(p.catch_up());
  CHECK(p.position() == last.last_position);
  CHECK(must(v.position()) == last.last_position);
  CHECK(p.skipped() == 0);

  for (const std::string id : {"r1", "r2", "r3"}) {
    CAPTURE(id);
    const auto view = must(v.request(id));
    REQUIRE(view.has_value());
    CHECK(*view == folded(w, id));
  }
  CHECK(must(v.request("r1"))->state == lifecycle_state::completed);
  CHECK(must(v.request("r2"))->state == lifecycle_state::rolled_back);
  CHECK_FALSE(must(v.request("missing")).has_value());

  // Nothing but the documented prefixes.
  const auto dump = dump_projections(w.store());
  std::size_t known = 0;
  for (const std::string_view prefix :
       {"m/position", "m/layout", "r/", "x/s/", "x/u/", "c/", "t/", "k/", "ar/", "u/", "cu/"}) {
    known += count_prefix(dump, prefix);
  }
  CHECK(known == dump.size());
  CHECK(count_prefix(dump, "r/") == 3);
  CHECK(count_prefix(dump, "x/s/") == 3);
}

TEST_CASE("views: a list of all states merges the state buckets newest first, paged, for all and by tenant",
          "[projections][views]") {
  world w;
  projector p{w.store(), w.j()};
  const views v{w.store()};
  // 18 requests of two tenants spread over five buckets (queued/steps, completed, failed,
  // rolling back, rolled back), their ages interleaved across buckets, two sharing a commit time.
  std::vector<std::string> oldest_first;
  for (int i = 0; i < 16; ++i) {
    submit(w, rid(i), i % 3 == 0 ? "other" : "acme");
    oldest_first.push_back(rid(i));
  }
  submit_together(w, {rid(17), rid(16)}, "acme");
  oldest_first.push_back(rid(16));  // same time: by id
  oldest_first.push_back(rid(17));
  for (int i = 0; i < 18; ++i) {
    const auto id = rid(i);
    switch (i % 5) {
      case 0: break;  // queued
      case 1: start_allocating(w, id); complete(w, id); break;
      case 2: start_allocating(w, id); fail(w, id); break;
      case 3: start_allocating(w, id); fail(w, id); start_rollback(w, id); break;
      default: start_allocating(w, id); fail(w, id); start_rollback(w, id); finish_rollback(w, id); break;
    }
  }
  REQUIRE_OK(p.catch_up());
  // Newest first by creation time, then by id among equal times (rid(16) before rid(17)).
  std::vector<std::string> all;
  for (auto it = oldest_first.rbegin(); it != oldest_first.rend(); ++it) {
    all.push_back(*it);
  }
  std::swap(all[0], all[1]);
  std::vector<std::string> acme;
  for (const auto& id : all) {
    if (must(v.request(id))->tenant == "acme") {
      acme.push_back(id);
    }
  }
  REQUIRE(acme.size() < all.size());
  for (const std::size_t limit : {1, 2, 3, 4, 7, 17, 18, 50}) {
    CAPTURE(limit);
    request_query q;
    q.limit = limit;
    CHECK(list_all(v, q) == all);
    q.tenant = "acme";
    CHECK(list_all(v, q) == acme);
  }
}

TEST_CASE("views: requests are listed newest first and paged without gaps or duplicates", "[projections][views]") {
  world w;
  projector p{w.store(), w.j()};
  const views v{w.store()};

  // 10 apart, 5 sharing one commit time (ordered by id among themselves), 8 apart.
  std::vector<std::string> expected;
  for (int i = 0; i < 10; ++i) {
    submit(w, rid(i), "acme");
    expected.push_back(rid(i));
  }
  std::vector<std::string> together;
  for (int i = 10; i < 15; ++i) {
    together.push_back(rid(i));
  }
  submit_together(w, reversed(together), "acme");
  std::vector<std::string> newer;
  for (int i = 15; i < 23; ++i) {
    submit(w, rid(i), "acme");
    newer.push_back(rid(i));
  }
  REQUIRE_OK(p.catch_up());
  // Newest first: the last 8 newest first, then the shared-time group by id, then the first 10.
  expected = reversed(expected);
  auto newest_first = reversed(newer);
  newest_first.insert(newest_first.end(), together.begin(), together.end());
  newest_first.insert(newest_first.end(), expected.begin(), expected.end());
  REQUIRE(newest_first.size() == 23);

  for (const std::size_t limit : {1, 2, 3, 5, 7, 22, 23, 24, 50}) {
    CAPTURE(limit);
    request_query q;
    q.limit = limit;
    std::size_t pages = 0;
    CHECK(list_all(v, q, &pages) == newest_first);
    CHECK(pages == std::max<std::size_t>(1, (23 + limit - 1) / limit));
  }

  SECTION("a cursor continues exactly where its page ended") {
    request_query q;
    q.limit = 5;
    const auto first = must(v.requests(q));
    CHECK(ids_of(first.items) == std::vector<std::string>(newest_first.begin(), newest_first.begin() + 5));
    REQUIRE_FALSE(first.next_cursor.empty());
    q.cursor = first.next_cursor;
    const auto second = must(v.requests(q));
    CHECK(ids_of(second.items) == std::vector<std::string>(newest_first.begin() + 5, newest_first.begin() + 10));
    // The same cursor gives the same page.
    CHECK(ids_of(must(v.requests(q)).items) == ids_of(second.items));
  }

  SECTION("requests added while paging do not shift the pages that follow") {
    request_query q;
    q.limit = 4;
    const auto first = must(v.requests(q));
    submit(w, "r-late", "acme");
    REQUIRE_OK(p.catch_up());
    q.cursor = first.next_cursor;
    auto rest = list_all(v, q);
    auto seen = ids_of(first.items);
    seen.insert(seen.end(), rest.begin(), rest.end());
    CHECK(seen == newest_first);
    // A fresh listing starts with the new one.
    CHECK(must(v.requests(request_query{})).items.front().id == "r-late");
  }

  SECTION("an empty page has no cursor") {
    request_query q;
    q.tenant = "nobody";
    const auto page = must(v.requests(q));
    CHECK(page.items.empty());
    CHECK(page.next_cursor.empty());
  }
}

TEST_CASE("views: request lists filter by tenant, by state, and by both", "[projections][views]") {
  world w;
  projector p{w.store(), w.j()};
  const views v{w.store()};

  submit(w, "a1", "acme");  // queued
  submit(w, "a2", "acme");  // allocating
  start_allocating(w, "a2");
  submit(w, "g1", "globex");  // queued
  submit(w, "a3", "acme");    // completed
  start_allocating(w, "a3");
  complete(w, "a3");
  submit(w, "x1", "acme2");  // queued; its tenant starts with another tenant's name
  submit(w, "g2", "globex");  // allocating
  start_allocating(w, "g2");
  submit(w, "a4", "acme");  // failed
  start_allocating(w, "a4");
  fail(w, "a4");
  // The active states (queued and the four steps) share one index entry: interleave them so
  // a page of one state has requests in the others between its items.
  submit(w, "a5", "acme");  // configuring
  start_allocating(w, "a5");
  finish_step(w, "a5", step_kind::allocate);
  submit(w, "g3", "globex");  // allocating
  start_allocating(w, "g3");
  submit(w, "a6", "acme");  // verifying
  start_allocating(w, "a6");
  for (const auto step : {step_kind::allocate, step_kind::configure, step_kind::activate}) {
    finish_step(w, "a6", step);
  }
  REQUIRE_OK(p.catch_up());

  const auto list = [&](std::optional<std::string> tenant, std::optional<lifecycle_state> state) {
    request_query q;
    q.tenant = std::move(tenant);
    q.state = state;
    q.limit = 2;  // several pages for the longer lists
    return list_all(v, q);
  };
  using strings = std::vector<std::string>;
  using ls = lifecycle_state;

  CHECK(list(std::nullopt, std::nullopt) == strings{"a6", "g3", "a5", "a4", "g2", "x1", "a3", "g1", "a2", "a1"});
  CHECK(list("acme", std::nullopt) == strings{"a6", "a5", "a4", "a3", "a2", "a1"});
  CHECK(list("acme2", std::nullopt) == strings{"x1"});
  CHECK(list("globex", std::nullopt) == strings{"g3", "g2", "g1"});
  CHECK(list("nobody", std::nullopt).empty());
  CHECK(list(std::nullopt, ls::queued) == strings{"x1", "g1", "a1"});
  CHECK(list(std::nullopt, ls::allocating) == strings{"g3", "g2", "a2"});
  CHECK(list(std::nullopt, ls::configuring) == strings{"a5"});
  CHECK(list(std::nullopt, ls::activating).empty());
  CHECK(list(std::nullopt, ls::verifying) == strings{"a6"});
  CHECK(list(std::nullopt, ls::completed) == strings{"a3"});
  CHECK(list(std::nullopt, ls::failed) == strings{"a4"});
  CHECK(list("acme", ls::queued) == strings{"a1"});
  CHECK(list("acme", ls::allocating) == strings{"a2"});
  CHECK(list("acme", ls::configuring) == strings{"a5"});
  CHECK(list("acme", ls::verifying) == strings{"a6"});
  CHECK(list("globex", ls::allocating) == strings{"g3", "g2"});
  CHECK(list("globex", ls::verifying).empty());
  CHECK(list("globex", ls::completed).empty());
  CHECK(list("acme2", ls::queued) == strings{"x1"});

  // Items carry their whole state.
  request_query q;
  q.tenant = "acme";
  q.state = ls::completed;
  const auto page = must(v.requests(q));
  REQUIRE(page.items.size() == 1);
  CHECK(page.items[0] == folded(w, "a3"));
}

TEST_CASE("views: a state change moves a request between state indexes", "[projections][views]") {
  world w;
  projector p{w.store(), w.j()};
  const views v{w.store()};
  submit(w, "other", "acme");

  const auto lists_for = [&](lifecycle_state s) {
    request_query q;
    q.state = s;
    auto in_state = list_all(v, q);
    q.tenant = "acme";
    CHECK(list_all(v, q) == in_state);
    return in_state;
  };
  /// Checks that "m" is listed under `expected` and under no other state.
  const auto check_only_in = [&](lifecycle_state expected) {
    REQUIRE_OK(p.catch_up());
    for (std::size_t i = 0; i < lifecycle_state_count; ++i) {
      const auto s = static_cast<lifecycle_state>(i);
      CAPTURE(enum_name(s));
      const auto ids = lists_for(s);
      const bool listed = std::find(ids.begin(), ids.end(), "m") != ids.end();
      CHECK(listed == (s == expected));
    }
    const auto dump = dump_projections(w.store());
    CHECK(count_prefix(dump, "x/s/") == 2);
    CHECK(count_prefix(dump, "x/u/") == 2);
    CHECK(count_prefix(dump, "x/a/") == 0);  // layout 5: no index of all requests, nor by tenant
    CHECK(count_prefix(dump, "x/t/") == 0);
    CHECK(must(v.request("m"))->state == expected);
  };

  submit(w, "m", "acme");
  check_only_in(lifecycle_state::queued);
  start_allocating(w, "m");
  check_only_in(lifecycle_state::allocating);
  fail(w, "m");
  check_only_in(lifecycle_state::failed);
  start_rollback(w, "m");
  check_only_in(lifecycle_state::rolling_back);
  finish_rollback(w, "m");
  check_only_in(lifecycle_state::rolled_back);
}

TEST_CASE("views: invalid cursors are rejected and limits are clamped", "[projections][views]") {
  world w;
  projector p{w.store(), w.j()};
  const views v{w.store()};

  // 1005 requests, a few hundred per append.
  for (int start = 0; start < 1005; start += 335) {
    std::vector<stream_append> batch;
    for (int i = start; i < start + 335; ++i) {
      batch.push_back(stream_append{request_stream(rid(i)), 0, {to_record(submitted(rid(i), "acme"))}});
    }
    w.append(std::move(batch));
  }
  REQUIRE_OK(p.catch_up());

  request_query q;
  q.limit = 0;
  auto page = must(v.requests(q));
  CHECK(page.items.size() == 50);
  CHECK_FALSE(page.next_cursor.empty());

  q.limit = 5000;
  page = must(v.requests(q));
  CHECK(page.items.size() == 1000);
  REQUIRE_FALSE(page.next_cursor.empty());
  q.cursor = page.next_cursor;
  page = must(v.requests(q));
  CHECK(page.items.size() == 5);
  CHECK(page.next_cursor.empty());

  q.limit = 1;
  q.cursor.clear();
  const auto first = must(v.requests(q));
  REQUIRE(first.next_cursor.size() > 18);
  for (const std::string& bad : {std::string{"zz"}, std::string{"0"}, std::string{"00"},
                                std::string(16, '0'),  // a time but no id
                                first.next_cursor.substr(1),  // odd length
                                "g" + first.next_cursor.substr(1),  // not hex
                                std::string(5000, 'a')}) {
    CAPTURE(bad);
    q.cursor = bad;
    const auto r = v.requests(q);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().code == errc::invalid_argument);
  }

  // A well-formed cursor past the end is just an empty page.
  q.cursor = std::string(16, 'f') + "7a7a";
  page = must(v.requests(q));
  CHECK(page.items.empty());
  CHECK(page.next_cursor.empty());
}

TEST_CASE("views: live requests are exactly those not at rest, oldest first", "[projections][views]") {
  world w;
  projector p{w.store(), w.j()};
  const views v{w.store()};
  using strings = std::vector<std::string>;

  submit(w, "z-queued", "acme");
  submit(w, "b-allocating", "acme");
  start_allocating(w, "b-allocating");
  submit(w, "y-done", "acme");
  start_allocating(w, "y-done");
  complete(w, "y-done");
  submit(w, "a-failed", "globex");
  start_allocating(w, "a-failed");
  fail(w, "a-failed");
  submit(w, "c-rolled", "globex");
  start_allocating(w, "c-rolled");
  fail(w, "c-rolled");
  start_rollback(w, "c-rolled");
  REQUIRE_OK(p.catch_up());

  CHECK(must(v.live_requests()) == strings{"z-queued", "b-allocating", "a-failed", "c-rolled"});

  finish_rollback(w, "c-rolled");
  complete(w, "b-allocating");
  REQUIRE_OK(p.catch_up());
  CHECK(must(v.live_requests()) == strings{"z-queued", "a-failed"});

  // The same from a rebuild.
  REQUIRE_OK(p.rebuild());
  CHECK(must(v.live_requests()) == strings{"z-queued", "a-failed"});
}

TEST_CASE("views: clusters, tenants and the token lookup", "[projections][views]") {
  world w;
  projector p{w.store(), w.j()};
  const views v{w.store()};

  register_cluster(w, "sim-b", "Simulation B");
  register_cluster(w, "sim-a", "Simulation A");
  cluster_updated update;
  update.name = "Simulation A (renamed)";
  update.health = cluster_health::degraded;
  w.append(cluster_stream("sim-a"), {to_record(update)});
  create_tenant(w, "globex", "token-g");
  create_tenant(w, "acme", "token-a");
  tenant_quota_set quota;
  quota.quota.instances = 3;
  w.append(tenant_stream("acme"), {to_record(quota)});
  REQUIRE_OK(p.catch_up());
  CHECK(p.skipped() == 0);

  const auto clusters = must(v.clusters());
  REQUIRE(clusters.size() == 2);
  CHECK(clusters[0].id == "sim-a");
  CHECK(clusters[0].name == "Simulation A (renamed)");
  CHECK(clusters[0].health == cluster_health::degraded);
  CHECK(clusters[0].version == 2);
  CHECK(clusters[1].id == "sim-b");
  const auto a = must(v.cluster("sim-a"));
  REQUIRE(a.has_value());
  CHECK(*a == clusters[0]);
  CHECK(*a == must(fold_cluster(must(w.j().read_stream(cluster_stream("sim-a"), 1, 100)))));
  CHECK_FALSE(must(v.cluster("sim-c")).has_value());

  const auto tenants = must(v.tenants());
  REQUIRE(tenants.size() == 2);
  CHECK(tenants[0].id == "acme");
  CHECK(tenants[0].quota.instances == std::optional<std::int64_t>{3});
  CHECK(tenants[1].id == "globex");
  const auto acme = must(v.tenant("acme"));
  REQUIRE(acme.has_value());
  CHECK(*acme == must(fold_tenant(must(w.j().read_stream(tenant_stream("acme"), 1, 100)))));
  CHECK_FALSE(must(v.tenant("initech")).has_value());

  CHECK(must(v.tenant_by_token_hash(sha256_hex("token-a"))) == std::optional<std::string>{"acme"});
  CHECK(must(v.tenant_by_token_hash(sha256_hex("token-g"))) == std::optional<std::string>{"globex"});
  CHECK_FALSE(must(v.tenant_by_token_hash(sha256_hex("token-x"))).has_value());
  CHECK_FALSE(must(v.tenant_by_token_hash("")).has_value());

  // A rotated token: the old one is no longer found, the new one is, and the catalog moved on.
  const auto generation = p.catalog_generation();
  w.append(tenant_stream("acme"), {to_record(tenant_token_rotated{sha256_hex("token-a2"), "admin"})});
  REQUIRE_OK(p.catch_up());
  CHECK(p.catalog_generation() > generation);
  CHECK_FALSE(must(v.tenant_by_token_hash(sha256_hex("token-a"))).has_value());
  CHECK(must(v.tenant_by_token_hash(sha256_hex("token-a2"))) == std::optional<std::string>{"acme"});
  CHECK(must(v.tenant("acme"))->token_sha256 == sha256_hex("token-a2"));
}

namespace {

/// Printable bytes as they are, others as \xNN: keys a failure message can show.
std::string readable(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    if (b >= 0x20 && b < 0x7f && b != '\\') {
      out.push_back(c);
    } else {
      out += "\\x";
      out.push_back(digits[b >> 4]);
      out.push_back(digits[b & 0x0f]);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("views: usage per tenant and per cluster follows the requests' states", "[projections][views][usage]") {
  world w;
  projector p{w.store(), w.j()};
  views v{w.store()};
  submit(w, "r1", "acme");
  submit(w, "r2", "acme");
  submit(w, "r3", "globex");
  REQUIRE_OK(p.catch_up());
  auto acme = must(v.usage_of_tenant("acme"));
  CHECK(acme.reserved.instances == 2);
  CHECK(acme.used.instances == 0);
  CHECK(acme.total().cpu_millis == 2 * folded(w, "r1").spec.cpu_millis);
  CHECK(acme.reserved.instances_by_type.at("vps") == 2);
  // r2 fails and rolls back: it no longer counts. r1 allocates: its spec moves to "used".
  start_allocating(w, "r1");
  start_allocating(w, "r2");
  fail(w, "r2");
  REQUIRE_OK(p.catch_up());
  CHECK(must(v.usage_of_tenant("acme")).reserved.instances == 2);  // failed still holds
  CHECK(must(v.usage_of_cluster("sim-local")).reserved.instances == 2);
  start_rollback(w, "r2");
  finish_rollback(w, "r2");
  w.append(request_stream("r1"), {to_record(step_succeeded{step_kind::allocate, 1, {}})});
  REQUIRE_OK(p.catch_up());
  CHECK(must(v.usage_of_cluster("sim-local")).used.instances == 1);
  CHECK(must(v.usage_of_cluster("sim-local")).reserved.instances == 0);
  acme = must(v.usage_of_tenant("acme"));
  CHECK(acme.used.instances == 1);
  CHECK(acme.reserved.instances == 0);
  CHECK(must(v.usage_of_tenant("nobody")) == projections::tenant_usage{});
  const auto all = must(v.tenant_usages());
  CHECK(all.size() == 2);
  CHECK(all.at("globex").reserved.instances == 1);
}

TEST_CASE("views: the on-disk key layout is layout 5", "[projections][views]") {
  world w;
  projector p{w.store(), w.j()};
  create_tenant(w, "acme", "token-a");
  register_cluster(w, "sim-1", "one");
  const auto submit_receipt = submit(w, "r1", "acme");
  start_allocating(w, "r1");
  fail(w, "r1");
  const auto r2_receipt = submit(w, "r2", "acme");
  start_allocating(w, "r2");
  finish_step(w, "r2", step_kind::allocate);  // configuring
  const auto last = submit(w, "r3", "acme");   // queued: the same bucket as configuring
  REQUIRE_OK(p.catch_up());

  const auto inv_of = [](const append_receipt& r) {
    const auto created = static_cast<std::uint64_t>(r.time.time_since_epoch().count());
    return be64(std::numeric_limits<std::uint64_t>::max() - created);
  };
  const auto inv = inv_of(submit_receipt);
  const auto inv2 = inv_of(r2_receipt);
  const auto inv3 = inv_of(last);
  const std::string failed(1, static_cast<char>(lifecycle_state::failed));
  const std::string active(1, static_cast<char>(0x80));  // queued, allocating .. verifying
  const std::string nul(1, '\0');

  std::map<std::string, std::string> expected{
      {"m/position", be64(last.last_position)},
      {"m/layout", "5"},
      {"r/r1", encode_binary(folded(w, "r1"))},
      {"x/s/" + failed + inv + "r1", ""},
      {"x/u/acme" + nul + failed + inv + "r1", ""},
      {"r/r2", encode_binary(folded(w, "r2"))},
      {"x/s/" + active + inv2 + "r2", ""},
      {"x/u/acme" + nul + active + inv2 + "r2", ""},
      {"r/r3", encode_binary(folded(w, "r3"))},
      {"x/s/" + active + inv3 + "r3", ""},
      {"x/u/acme" + nul + active + inv3 + "r3", ""},
      {"c/sim-1", encode_binary(must(fold_cluster(must(w.j().read_stream(cluster_stream("sim-1"), 1, 10)))))},
      {"t/acme", encode_binary(must(fold_tenant(must(w.j().read_stream(tenant_stream("acme"), 1, 10)))))},
      {"k/" + sha256_hex("token-a"), "acme"},
  };
  // The failed request still holds its reservation until it is rolled back, and so does the
  // queued one; the configuring one uses what it allocated.
  projections::tenant_usage usage;
  usage.reserved.add(folded(w, "r1"), +1);
  usage.used.add(folded(w, "r2"), +1);  // allocated: in use
  usage.reserved.add(folded(w, "r3"), +1);
  expected["u/acme"] = encode_binary(usage);
  REQUIRE(folded(w, "r1").cluster == folded(w, "r2").cluster);
  projections::cluster_usage cu;
  cu.reserved.add(folded(w, "r1"), +1);
  cu.used.add(folded(w, "r2"), +1);
  expected["cu/" + folded(w, "r1").cluster] = encode_binary(cu);
  const auto render = [](const std::map<std::string, std::string>& kv) {
    std::vector<std::string> out;
    for (const auto& [k, v] : kv) {
      out.push_back(readable(k) + " = " + (v.size() > 40 ? std::to_string(v.size()) + " bytes" : readable(v)));
    }
    return out;
  };
  const auto dump = dump_projections(w.store());
  CHECK(render(dump) == render(expected));
  CHECK(dump == expected);

  // Values decode back to the states they encode.
  CHECK(must(decode_binary<request_state>(dump.at("r/r1"))) == folded(w, "r1"));
}

TEST_CASE("views: usage adds the moves of unwritten changes the store does not hold yet, and only those",
          "[projections][views][usage][unwritten]") {
  world w;
  projector p{w.store(), w.j()};
  submit(w, "stored", "acme");
  submit(w, "written-since", "acme");
  start_allocating(w, "written-since");
  REQUIRE_OK(p.catch_up());  // everything stored: "stored" reserved, "written-since" reserved on sim-local
  const views plain{w.store()};
  REQUIRE(must(plain.usage_of_tenant("acme")).reserved.instances == 2);

  // As the projector would leave them: "stored" allocated on sim-local and used, from its
  // stored image (version 1, queued, reserved, no cluster); "written-since" with an image
  // older than what the store holds (it was written after the entry was read).
  projections::unwritten_requests unwritten;
  auto moved = folded(w, "stored");
  moved.cluster = "sim-local";
  moved.step(step_kind::allocate).status = step_status::succeeded;
  moved.version += 3;
  const projections::stored_image stored_image_of{1, lifecycle_state::queued, projections::usage_bucket::reserved, ""};
  auto stale = folded(w, "written-since");
  stale.step(step_kind::allocate).status = step_status::succeeded;
  const projections::stored_image stale_image{1, lifecycle_state::queued, projections::usage_bucket::reserved, ""};
  unwritten.update({{"stored", &moved, stored_image_of}, {"written-since", &stale, stale_image}}, {});
  const views served{w.store(), &unwritten};

  const auto acme = must(served.usage_of_tenant("acme"));
  CHECK(acme.used.instances == 1);      // "stored" moved
  CHECK(acme.reserved.instances == 1);  // "written-since" as stored, not moved again
  const auto cluster = must(served.usage_of_cluster("sim-local"));
  CHECK(cluster.used.instances == 1);
  CHECK(cluster.reserved.instances == 1);
  CHECK(must(served.tenant_usages()).at("acme") == acme);
  CHECK(must(served.cluster_usages()).at("sim-local") == cluster);
}
