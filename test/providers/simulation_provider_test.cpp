#include <catch2/catch.hpp>

#include <filesystem>
#include <memory>
#include <set>
#include <tuple>

#include <rocksdb/db.h>

#include "prov/events/codec.hpp"

#include "prov/providers/provider_factory.hpp"
#include "prov/providers/simulation_provider.hpp"
#include "support/counting_inventory.hpp"

using namespace prov;
using namespace prov::providers;
using events::service_type;
using events::step_kind;

namespace {

step_call call_for(step_kind step, const std::string& key, service_type type = service_type::vps) {
  step_call c;
  c.request_id = "0193a6f0-0000-7000-8000-00000000abcd";
  c.tenant = "Acme Corp";
  c.type = type;
  c.step = step;
  c.idempotency_key = key;
  c.region = "local";
  return c;
}

std::set<std::string> ids(const std::vector<events::resource>& rs) {
  std::set<std::string> out;
  for (const auto& r : rs) {
    out.insert(r.id);
  }
  return out;
}

}  // namespace

TEST_CASE("simulation: each step creates its provider-style resources and endpoints", "[providers][simulation]") {
  manual_clock clk;
  auto store = make_memory_inventory_store();
  simulation_provider sim{"sim", {}, *store, clk};

  auto alloc = sim.run_step(call_for(step_kind::allocate, "k/allocate/1"));
  REQUIRE(alloc.ok);
  REQUIRE(alloc.resources.size() == 3);
  CHECK(alloc.resources[0].kind == "security_group");
  CHECK(alloc.resources[1].kind == "volume");
  CHECK(alloc.resources[2].kind == "server");
  CHECK(alloc.resources[2].id.size() == 36);  // a UUID, as OpenStack would answer
  auto configure = call_for(step_kind::configure, "k/configure/1");
  configure.resources = alloc.resources;
  auto conf = sim.run_step(configure);
  REQUIRE(conf.ok);
  REQUIRE(conf.resources.size() == 1);
  CHECK(conf.endpoints.at("ssh").rfind("ssh://cloud-user@198.1", 0) == 0);
  CHECK(sim.run_step(call_for(step_kind::activate, "k/activate/1")).resources.empty());

  auto ns = sim.run_step(call_for(step_kind::allocate, "n/allocate/1", service_type::namespace_));
  REQUIRE(ns.ok);
  CHECK(ns.resources.front().id == "prov-acme-corp-00000000abcd");  // DNS-1123 safe
  auto ns_conf = call_for(step_kind::configure, "n/configure/1", service_type::namespace_);
  ns_conf.resources = ns.resources;
  auto nsc = sim.run_step(ns_conf);
  REQUIRE(nsc.resources.size() == 4);
  CHECK(nsc.endpoints.at("namespace") == "prov-acme-corp-00000000abcd");
  CHECK(sim.inventory()->size() == 3 + 1 + 1 + 4);
}

TEST_CASE("simulation: a repeated call with the same key adopts instead of creating", "[providers][simulation]") {
  manual_clock clk;
  auto store = make_memory_inventory_store();
  simulation_provider sim{"sim", {}, *store, clk};
  const auto first = sim.run_step(call_for(step_kind::allocate, "k/allocate/1"));
  const auto again = sim.run_step(call_for(step_kind::allocate, "k/allocate/1"));
  CHECK(ids(first.resources) == ids(again.resources));
  CHECK(sim.inventory()->size() == 3);
  // A new attempt (new key) is a new call.
  const auto other = sim.run_step(call_for(step_kind::allocate, "k/allocate/2"));
  CHECK(sim.inventory()->size() == 6);
  CHECK(ids(other.resources) != ids(first.resources));
}

TEST_CASE("simulation: a first try looks nothing up, and any other call adopts what exists", "[providers][simulation]") {
  manual_clock clk;
  auto backing = make_memory_inventory_store();
  prov::test::counting_inventory store{*backing};
  simulation_provider sim{"sim", {}, store, clk};
  auto first = call_for(step_kind::allocate, "k/allocate/1");
  first.first_try = true;
  const auto created = sim.run_step(first);
  REQUIRE(created.ok);
  CHECK(store.lookups() == 0);
  CHECK(sim.inventory()->size() == 3);
  // The same key again (a restart, a timeout): looked up and adopted, nothing new.
  const auto again = sim.run_step(call_for(step_kind::allocate, "k/allocate/1"));
  CHECK(store.lookups() == 1);
  CHECK(ids(again.resources) == ids(created.resources));
  CHECK(sim.inventory()->size() == 3);
}

TEST_CASE("simulation: failures are partial where a cloud's would be, and deterministic", "[providers][simulation]") {
  manual_clock clk;
  auto store = make_memory_inventory_store();
  events::simulation_settings s;
  s.fail_allocate = 1.0;
  simulation_provider sim{"sim", s, *store, clk};
  const auto out = sim.run_step(call_for(step_kind::allocate, "k/allocate/1"));
  CHECK_FALSE(out.ok);
  CHECK(out.error.retryable);
  CHECK(out.error.code == "capacity");
  REQUIRE(out.resources.size() == 2);  // the server failed; its volume and group exist
  CHECK(sim.inventory()->size() == 2);

  // 30% failure: the same key always decides the same way; over many keys the rate holds.
  events::simulation_settings some;
  some.fail_verify = 0.3;
  some.seed = 99;
  simulation_provider sim2{"sim2", some, *store, clk};
  int failed = 0;
  for (int i = 0; i < 2000; ++i) {
    const auto key = "r" + std::to_string(i) + "/verify/1";
    const bool a = sim2.run_step(call_for(step_kind::verify, key)).ok;
    const bool b = sim2.run_step(call_for(step_kind::verify, key)).ok;
    CHECK(a == b);
    failed += a ? 0 : 1;
  }
  CHECK(failed > 480);
  CHECK(failed < 720);
}

TEST_CASE("simulation: delays fall in the configured range", "[providers][simulation]") {
  manual_clock clk;
  auto store = make_memory_inventory_store();
  events::simulation_settings s;
  s.delay_min_ms = 100;
  s.delay_max_ms = 250;
  simulation_provider sim{"sim", s, *store, clk};
  std::set<long> seen;
  for (int i = 0; i < 200; ++i) {
    const auto d = sim.run_step(call_for(step_kind::activate, "k" + std::to_string(i))).delay.count();
    CHECK(d >= 100);
    CHECK(d <= 250);
    seen.insert(d);
  }
  CHECK(seen.size() > 20);
}

TEST_CASE("simulation: release is idempotent and sweep removes what a request still owns", "[providers][simulation]") {
  manual_clock clk;
  auto store = make_memory_inventory_store();
  simulation_provider sim{"sim", {}, *store, clk};
  const auto out = sim.run_step(call_for(step_kind::allocate, "k/allocate/1"));
  const release_call rel{call_for(step_kind::allocate, "").request_id, out.resources[2], "k/release/1"};
  CHECK(sim.release(rel).ok);
  CHECK(sim.release(rel).ok);  // already gone is released
  CHECK(sim.inventory()->size() == 2);
  const auto swept = sim.sweep(rel.request_id);
  REQUIRE(swept.ok);
  CHECK(swept.released.size() == 2);
  CHECK(sim.inventory()->empty());
  CHECK(sim.sweep(rel.request_id).released.empty());
}

TEST_CASE("the rocks inventory survives a reopen, like a real cloud", "[providers][simulation][rocks]") {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("prov-inventory-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  manual_clock clk;
  std::set<std::string> created;
  {
    auto store = open_rocks_inventory_store(dir.string());
    REQUIRE(store.ok());
    simulation_provider sim{"sim", {}, **store, clk};
    created = ids(sim.run_step(call_for(step_kind::allocate, "k/allocate/1")).resources);
  }
  {
    auto store = open_rocks_inventory_store(dir.string());
    REQUIRE(store.ok());
    simulation_provider sim{"sim", {}, **store, clk};
    std::set<std::string> listed;
    const auto items = sim.inventory();
    for (const auto& item : *items) {
      listed.insert(item.id);
      CHECK(item.request_id == "0193a6f0-0000-7000-8000-00000000abcd");
    }
    CHECK(listed == created);
    // Adoption works across the reopen too.
    CHECK(ids(sim.run_step(call_for(step_kind::allocate, "k/allocate/1")).resources) == created);
    const std::string request = "0193a6f0-0000-7000-8000-00000000abcd";
    CHECK((*store)->by_key("sim", request, "k/allocate/1")->size() == 3);
    CHECK((*store)->by_key("sim", request, "k/configure/1")->empty());
    CHECK((*store)->by_key("sim", "0193a6f0-0000-7000-8000-00000000ffff", "k/allocate/1")->empty());
    CHECK((*store)->by_key("other", request, "k/allocate/1")->empty());
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("the rocks inventory keeps each request's resources apart and erases by request", "[providers][simulation][rocks]") {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("prov-inventory-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  {
    auto store = open_rocks_inventory_store(dir.string());
    REQUIRE(store.ok());
    auto& s = **store;
    // "sim" is a prefix of "sim2" and "r1" of "r10": scans must not run over into them.
    std::vector<inventory_item> items;
    for (const auto& [cluster, request, id] :
         std::vector<std::tuple<std::string, std::string, std::string>>{
             {"sim", "r1", "a"}, {"sim", "r1", "b"}, {"sim", "r10", "c"}, {"sim2", "r1", "d"}}) {
      inventory_item item;
      item.cluster = cluster;
      item.request_id = request;
      item.id = id;
      item.kind = "vm";
      item.idempotency_key = request + "/allocate/1";
      items.push_back(item);
    }
    REQUIRE(s.put_all(items).ok());
    CHECK(s.by_request("sim", "r1")->size() == 2);
    CHECK(s.by_request("sim", "r10")->size() == 1);
    CHECK(s.list("sim")->size() == 3);
    CHECK(s.list("sim2")->size() == 1);
    CHECK(s.by_key("sim", "r1", "r1/allocate/1")->size() == 2);
    CHECK_FALSE(*s.erase("sim", "r10", "a"));  // another request's resource is not touched
    CHECK(*s.erase("sim", "r1", "a"));
    CHECK_FALSE(*s.erase("sim", "r1", "a"));
    CHECK(s.by_request("sim", "r1")->size() == 1);
  }
  std::filesystem::remove_all(dir);
}

namespace {

std::filesystem::path inventory_dir() {
  return std::filesystem::temp_directory_path() /
         ("prov-inventory-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
}

inventory_item item_of(const std::string& request, const std::string& id, const std::string& key) {
  inventory_item item;
  item.cluster = "sim";
  item.kind = "vm";
  item.id = id;
  item.name = "prov-" + id;
  item.request_id = request;
  item.idempotency_key = key;
  return item;
}

/// The keys a store's database holds, after it is closed.
std::vector<std::string> raw_keys(const std::filesystem::path& dir) {
  rocksdb::DB* raw = nullptr;
  REQUIRE(rocksdb::DB::OpenForReadOnly(rocksdb::Options{}, dir.string(), &raw).ok());
  std::unique_ptr<rocksdb::DB> db{raw};
  std::unique_ptr<rocksdb::Iterator> it{db->NewIterator({})};
  std::vector<std::string> keys;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    keys.push_back(it->key().ToString());
  }
  return keys;
}

}  // namespace

TEST_CASE("the rocks inventory keeps one record per call", "[providers][simulation][rocks]") {
  const auto dir = inventory_dir();
  manual_clock clk;
  {
    auto store = open_rocks_inventory_store(dir.string());
    REQUIRE(store.ok());
    simulation_provider sim{"sim", {}, **store, clk};
    REQUIRE(sim.run_step(call_for(step_kind::allocate, "k/allocate/1")).ok);
    REQUIRE(sim.run_step(call_for(step_kind::configure, "k/configure/1")).ok);
    CHECK(sim.inventory()->size() == 4);
  }
  // Four resources, two calls: two keys.
  CHECK(raw_keys(dir).size() == 2);
  std::filesystem::remove_all(dir);
}

TEST_CASE("the rocks inventory lists a resource two calls hold once, the newest, and erases it from both",
          "[providers][simulation][rocks]") {
  const auto dir = inventory_dir();
  {
    auto store = open_rocks_inventory_store(dir.string());
    REQUIRE(store.ok());
    auto& s = **store;
    // A first try made the namespace and timed out; the retry, under a new key, got the same
    // one (its name is fixed by the request) and made one more resource.
    auto first = item_of("r1", "ns", "r1/allocate/1");
    first.created_at = timestamp{std::chrono::seconds{10}};
    REQUIRE(s.put_call({first}).ok());
    auto again = item_of("r1", "ns", "r1/allocate/2");
    again.created_at = timestamp{std::chrono::seconds{20}};
    auto quota = item_of("r1", "quota", "r1/allocate/2");
    REQUIRE(s.put_call({again, quota}).ok());
    REQUIRE(s.put_call({item_of("r2", "ns", "r2/allocate/1")}).ok());  // another request's
    const auto listed = s.by_request("sim", "r1");
    REQUIRE(listed->size() == 2);
    CHECK(listed->at(0).id == "ns");
    CHECK(listed->at(0).idempotency_key == "r1/allocate/2");
    CHECK(listed->at(1).id == "quota");
    CHECK(s.list("sim")->size() == 3);
    CHECK(s.by_key("sim", "r1", "r1/allocate/1")->size() == 1);  // each call's record as written
    // A change reads the record it changes: the call's other resource stays.
    auto stopped = listed->at(0);
    stopped.suspended = true;
    REQUIRE(s.put_all({stopped}).ok());
    const auto after = s.by_key("sim", "r1", "r1/allocate/2");
    REQUIRE(after->size() == 2);
    CHECK(after->at(0).suspended);
    CHECK(after->at(1).id == "quota");
    CHECK(*s.erase("sim", "r1", "ns"));
    CHECK_FALSE(*s.erase("sim", "r1", "ns"));  // gone from both records
    CHECK(s.by_request("sim", "r1")->size() == 1);
    CHECK(s.by_request("sim", "r2")->size() == 1);
    CHECK(*s.erase("sim", "r1", "quota"));
    CHECK(s.by_request("sim", "r1")->empty());
  }
  // An emptied record is deleted: r2's is all that is left.
  const auto keys = raw_keys(dir);
  REQUIRE(keys.size() == 1);
  CHECK(keys.front().find("r2") != std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("the rocks inventory converts the keys of formats 1 and 2 it finds on open", "[providers][simulation][rocks]") {
  const auto dir = inventory_dir();
  const auto item = item_of("r1", "vm-1", "r1/allocate/1");
  const auto second = item_of("r1", "vol-1", "r1/allocate/1");
  {
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    REQUIRE(rocksdb::DB::Open(options, dir.string(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db{raw};
    const std::string sep{"\x1f"};
    SECTION("format 1: a record by id and two index keys per resource") {
      for (const auto* i : {&item, &second}) {
        REQUIRE(db->Put({}, "r" + sep + "sim" + sep + i->id, events::encode_binary(*i)).ok());
        REQUIRE(db->Put({}, "k" + sep + "sim" + sep + "r1/allocate/1" + sep + i->id, "").ok());
        REQUIRE(db->Put({}, "q" + sep + "sim" + sep + "r1" + sep + i->id, "").ok());
      }
    }
    SECTION("format 2: a key per resource") {
      for (const auto* i : {&item, &second}) {
        REQUIRE(db->Put({}, "i" + sep + "sim" + sep + "r1" + sep + i->id, events::encode_binary(*i)).ok());
      }
    }
  }
  {
    auto store = open_rocks_inventory_store(dir.string());
    REQUIRE(store.ok());
    const auto found = (*store)->by_key("sim", "r1", "r1/allocate/1");
    REQUIRE(found->size() == 2);
    CHECK(found->front() == item);
    CHECK(found->back() == second);
    CHECK((*store)->list("sim")->size() == 2);
  }
  // Only the call's record is left.
  const auto keys = raw_keys(dir);
  REQUIRE(keys.size() == 1);
  CHECK(keys.front().starts_with("c"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("a cluster its driver cannot use fails every step with a permanent error", "[providers]") {
  manual_clock clk;
  events::cluster_state c;
  c.id = "k8s";
  c.type = events::provider_type::kubernetes;  // no endpoint, no credentials
  providers::provider_context ctx;
  ctx.clk = &clk;
  auto p = make_provider(c, ctx);
  const auto out = p->run_step(call_for(step_kind::allocate, "k"));
  CHECK_FALSE(out.ok);
  CHECK_FALSE(out.error.retryable);
  CHECK(out.error.code == "misconfigured");
  CHECK_FALSE(p->blocking());
  CHECK(has_driver(events::provider_type::simulation));
  CHECK(has_driver(events::provider_type::manual));
}
