// A journal whose WAL fails, through the real binary: the disk fault comes from a library
// LD_PRELOADed into provisiond (test/support/fail_sync_preload.cpp), which fails the syncs
// (EIO) or the writes (ENOSPC, a full disk) of the journal's write-ahead log while a flag file
// exists.

#include <algorithm>
#include <fstream>
#include <set>

#include "server_fixture.hpp"

using namespace prov::test;
using nlohmann::json;

namespace {

/// A provisiond whose journal syncs (or, with `fault` "write", writes) fail once `fail()` is
/// called; with `store` "simcloud", those of the simulated cloud's inventory instead. The files
/// that fail are the write-ahead logs (`suffix` ".log"), or with ".sst" the tables that a
/// memtable flush writes.
struct faulty_disk {
  explicit faulty_disk(const std::string& fault = "sync", const std::string& store = "db",
                       std::string file_suffix = ".log")
      : flag(dir / ("fail-" + fault)),
        variable(fault == "write" ? "PROV_FAIL_WRITE_FLAG=" : "PROV_FAIL_SYNC_FLAG="),
        store_dir(dir / "data" / store),
        suffix(std::move(file_suffix)) {}

  std::filesystem::path dir = fresh_dir("journal-failure");
  std::filesystem::path flag;
  std::string variable;
  std::filesystem::path store_dir;
  std::string suffix;
  server s{dir};

  std::vector<std::string> env() const {
    return {std::string{"LD_PRELOAD="} + PROV_FAIL_SYNC_LIBRARY, variable + flag.string(),
            "PROV_FAIL_SYNC_DIR=" + store_dir.string() + "/", "PROV_FAIL_SUFFIX=" + suffix};
  }
  void fail() { std::ofstream{flag} << "fail\n"; }
  void heal() { std::filesystem::remove(flag); }
};

const json vps{{"type", "vps"}, {"provider", "simulation"}, {"spec", {{"cpu", 1}, {"memoryGb", 1}}}};

std::string completed_request(http_client& c, const std::string& token) {
  auto r = c.post("/v1/requests", vps, token);
  REQUIRE(r.status == 202);
  const auto id = r.json()["id"].get<std::string>();
  REQUIRE(eventually([&] { return c.get("/v1/requests/" + id, token).json()["state"] == "completed"; }));
  return id;
}

/// One completed request, then a cluster "slow" (calls of 50-200 ms) and 12 requests on it,
/// waited for until one of them is in its steps. Returns all 13 ids.
std::vector<std::string> requests_in_their_steps(http_client& c, const std::string& admin, const std::string& token) {
  std::vector<std::string> ids{completed_request(c, token)};
  REQUIRE(c.post("/v1/clusters",
                 json{{"id", "slow"},
                      {"type", "simulation"},
                      {"region", "local"},
                      {"simulation", {{"delayMs", {{"min", 50}, {"max", 200}}}}}},
                 admin)
              .status == 201);
  for (int i = 0; i < 12; ++i) {
    auto body = vps;
    body["cluster"] = "slow";
    auto r = c.post("/v1/requests", body, token);
    REQUIRE(r.status == 202);
    ids.push_back(r.json()["id"].get<std::string>());
  }
  REQUIRE(eventually([&] {
    return !c.get("/v1/requests?state=configuring&limit=1", token).json()["items"].empty();
  }));
  return ids;
}

/// After a restart: every request of `ids` completes, and the cluster "slow" holds exactly
/// what they hold there.
void check_completed_without_orphans(http_client& c, const std::string& admin, const std::string& token,
                                     const std::vector<std::string>& ids) {
  REQUIRE(eventually([&] {
    return std::all_of(ids.begin(), ids.end(), [&](const std::string& id) {
      return c.get("/v1/requests/" + id, token).json()["state"] == "completed";
    });
  }));
  std::set<std::string> held;
  for (const auto& id : ids) {
    const auto view = c.get("/v1/requests/" + id, token).json();
    for (const auto& r : view["resources"]) {
      if (r["status"] == "active" && view["cluster"] == "slow") {
        held.insert(r["id"].get<std::string>());
      }
    }
  }
  CHECK(held.size() >= 12);
  std::set<std::string> at_provider;
  const auto inventory = c.get("/v1/clusters/slow/inventory", admin).json();
  for (const auto& item : inventory["items"]) {
    at_provider.insert(item["id"].get<std::string>());
  }
  CHECK(at_provider == held);
}

/// provisiond started on `disk` with `flags`, a tenant "acme" and its requests in their steps
/// (`requests_in_their_steps`).
struct busy_server {
  http_client c;
  std::string token;
  std::vector<std::string> ids;
};

busy_server start_busy(faulty_disk& disk, const std::vector<std::string>& flags) {
  disk.s.start(flags, disk.env());
  auto c = disk.s.client();
  auto token = make_tenant(c, disk.s.admin(), "acme");
  auto ids = requests_in_their_steps(c, disk.s.admin(), token);
  return {std::move(c), std::move(token), std::move(ids)};
}

}  // namespace

TEST_CASE("e2e a failed journal fsync or write (a full disk) stops provisiond with exit code 3, and after a restart "
          "every request finishes with no orphans",
          "[e2e][journal]") {
  const std::string fault = GENERATE("sync", "write");
  CAPTURE(fault);
  faulty_disk disk{fault};
  // A grace longer than the wait below: actors whose appends are refused stop at once rather
  // than wait for it.
  const std::vector<std::string> flags{"--shutdown-grace", "10m"};
  auto [c, token, ids] = start_busy(disk, flags);

  // The disk fails while requests are in their steps: their actors' next appends fail (and a
  // submission's, in case they all finished first).
  disk.fail();
  (void)c.post("/v1/requests", vps, token);
  // provisiond stops by itself, gracefully (the stop is logged), with the code that tells a
  // service manager to restart it.
  const auto code = disk.s.exited_within(std::chrono::seconds{120});
  REQUIRE(code.has_value());
  CHECK(*code == 3);
  const auto log = disk.s.log();
  CHECK(log.find(fault == "sync" ? "WAL sync failed" : "No space left on device") != std::string::npos);
  CHECK(log.find(R"("reason":"journal_failed")") != std::string::npos);
  CHECK(log.find("Assertion") == std::string::npos);  // RocksDB's, on a write after a failed one

  // The disk is good again: a restart resumes every request where its journal left it.
  disk.heal();
  disk.s.start(flags, disk.env());
  c = disk.s.client();
  CHECK(c.get("/healthz").status == 200);
  check_completed_without_orphans(c, disk.s.admin(), token, ids);
  completed_request(c, token);
  CHECK(disk.s.stop() == 0);
}

TEST_CASE("e2e a full disk under the projections: the flush that cannot write its table fails the backup, the next "
          "append stops provisiond with exit code 3, a start is refused while the disk is full, and then every "
          "request finishes",
          "[e2e][journal]") {
  // The projections are written without the WAL and reach the disk only when a memtable is
  // flushed to a table (.sst): a backup flushes at once. RocksDB then refuses every write of
  // the database until it is reopened, the journal's too.
  faulty_disk disk{"write", "db", ".sst"};
  const std::vector<std::string> flags{"--shutdown-grace", "10m"};
  auto [c, token, ids] = start_busy(disk, flags);

  disk.fail();
  const auto backup = c.post("/v1/backups", json::object(), disk.s.admin());
  CHECK(backup.status == 500);
  CHECK(backup.json()["error"]["code"] == "io_error");
  CHECK(backup.json()["error"]["message"].get<std::string>().find("No space left on device") != std::string::npos);
  (void)c.post("/v1/requests", vps, token);  // in case every step's append came before the backup
  const auto code = disk.s.exited_within(std::chrono::seconds{120});
  REQUIRE(code.has_value());
  CHECK(*code == 3);
  CHECK(disk.s.log().find(R"("reason":"journal_failed")") != std::string::npos);

  // Still full: opening the store replays the WAL and flushes what it recovered, which fails;
  // provisiond says so and exits 1, before it listens.
  {
    std::vector<std::string> argv{PROVISIOND_BINARY, "--data-dir", (disk.dir / "data").string(), "--listen",
                                  "127.0.0.1:0"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    child_process refused{argv, (disk.dir / "refused.log").string(), disk.env()};
    CHECK_FALSE(refused.read_line(std::chrono::seconds{60}).has_value());
    CHECK(refused.wait(std::chrono::seconds{60}) == 1);
    std::ifstream in{disk.dir / "refused.log"};
    const std::string said{std::istreambuf_iterator<char>{in}, {}};
    CHECK(said.find(R"("msg":"startup_failed")") != std::string::npos);
    CHECK(said.find("No space left on device") != std::string::npos);
  }

  // Space again: every request resumes where its journal left it, and the backup works.
  disk.heal();
  disk.s.start(flags, disk.env());
  c = disk.s.client();
  check_completed_without_orphans(c, disk.s.admin(), token, ids);
  CHECK(c.post("/v1/backups", json::object(), disk.s.admin()).status == 201);

  // Stopped while the disk is full: the shutdown's flush fails, which loses nothing (the WAL
  // holds it all), so the stop is still a clean one.
  const auto last = completed_request(c, token);
  const auto logged = disk.s.log().size();  // the log is appended to across starts
  disk.fail();
  CHECK(disk.s.stop() == 0);
  const auto stop_log = disk.s.log().substr(logged);
  CHECK(stop_log.find(R"("msg":"flush_failed")") != std::string::npos);
  CHECK(stop_log.find("No space left on device") != std::string::npos);
  disk.heal();
  disk.s.start(flags, disk.env());
  c = disk.s.client();
  CHECK(c.get("/v1/requests/" + last, token).json()["state"] == "completed");
  CHECK(disk.s.stop() == 0);
  CHECK(disk.s.log().find("Assertion") == std::string::npos);
}

TEST_CASE("e2e --journal-failure serve keeps reads up, refuses writes, and says so in /healthz", "[e2e][journal]") {
  const std::string fault = GENERATE("sync", "write");
  CAPTURE(fault);
  faulty_disk disk{fault};
  disk.s.start({"--journal-failure", "serve"}, disk.env());
  auto c = disk.s.client();
  const auto token = make_tenant(c, disk.s.admin(), "acme");
  const auto before = completed_request(c, token);
  CHECK(c.get("/healthz").status == 200);

  disk.fail();
  const auto refused = c.post("/v1/requests", vps, token);
  CHECK(refused.status == 503);
  // A failed sync leaves its outcome unknown (written, not made durable): the client is told
  // how to be safe. A failed write recorded nothing.
  CHECK(refused.json()["error"]["message"].get<std::string>().find(fault == "sync" ? "same idempotency key"
                                                                                    : "not recorded") !=
        std::string::npos);
  // The disk stays bad while it serves (a full disk is not freed at once).
  const auto health = c.get("/healthz");
  CHECK(health.status == 503);
  CHECK(health.json()["error"]["code"] == "unavailable");
  CHECK(c.get("/readyz").status == 503);
  CHECK(c.post("/v1/requests", vps, token).status == 503);
  CHECK(c.get("/v1/requests/" + before, token).json()["state"] == "completed");
  CHECK(c.get("/metrics", disk.s.admin()).body.find("provisiond_journal_failed 1") != std::string::npos);
  CHECK_FALSE(disk.s.exited_within(std::chrono::seconds{0}).has_value());  // still serving
  disk.heal();
  CHECK(c.post("/v1/requests", vps, token).status == 503);  // failed until a restart

  // A stop after the failure is not a clean one: the exit code says so. It writes nothing
  // through the failed log (Debian's RocksDB would abort on it).
  CHECK(disk.s.stop() == 3);
  CHECK(disk.s.log().find("Assertion") == std::string::npos);
  disk.s.start({"--journal-failure", "serve"}, disk.env());
  c = disk.s.client();
  CHECK(c.get("/healthz").status == 200);
  completed_request(c, token);
  CHECK(disk.s.stop() == 0);
}

TEST_CASE("e2e --journal-failure takes exit or serve only", "[e2e][journal]") {
  auto dir = fresh_dir("journal-failure-flag");
  child_process p({PROVISIOND_BINARY, "--data-dir", (dir / "data").string(), "--journal-failure", "retry"},
                  (dir / "provisiond.log").string());
  const auto code = p.wait(std::chrono::seconds{30});
  REQUIRE(code.has_value());
  CHECK(*code == 2);
  std::ifstream in{dir / "provisiond.log"};
  const std::string log{std::istreambuf_iterator<char>{in}, {}};
  CHECK(log.find("--journal-failure must be exit or serve, got 'retry'") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir / "data"));
}

TEST_CASE("e2e a full disk under the simulated cloud fails its calls, not provisiond, and a restart recovers",
          "[e2e][journal]") {
  faulty_disk disk{"write", "simcloud"};
  // The failing calls open the cluster's breaker: a short cool-down lets the rollbacks' sweeps
  // (reads) through soon after.
  const std::vector<std::string> flags{"--retry-base", "50ms", "--retry-cap", "100ms", "--breaker-cooldown", "100ms"};
  disk.s.start(flags, disk.env());
  auto c = disk.s.client();
  const auto token = make_tenant(c, disk.s.admin(), "acme");
  const auto before = completed_request(c, token);

  // The simulated cloud cannot record what it creates: its calls fail, the requests retry,
  // fail and roll back (nothing was created), and provisiond goes on serving.
  disk.fail();
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    auto r = c.post("/v1/requests", vps, token);
    REQUIRE(r.status == 202);
    ids.push_back(r.json()["id"].get<std::string>());
  }
  REQUIRE(eventually([&] {
    return std::all_of(ids.begin(), ids.end(), [&](const std::string& id) {
      return c.get("/v1/requests/" + id, token).json()["state"] == "rolled_back";
    });
  }));
  CHECK(c.get("/healthz").status == 200);
  CHECK(c.get("/v1/requests/" + before, token).json()["state"] == "completed");
  CHECK_FALSE(disk.s.exited_within(std::chrono::seconds{0}).has_value());
  CHECK(disk.s.log().find("inventory_write_failed") != std::string::npos);

  // Space again: the inventory takes writes after a restart (its log file failed one).
  disk.heal();
  CHECK(disk.s.stop() == 0);
  CHECK(disk.s.log().find("Assertion") == std::string::npos);
  disk.s.start(flags, disk.env());
  c = disk.s.client();
  const auto after = completed_request(c, token);
  std::set<std::string> held;
  for (const auto& id : {before, after}) {
    for (const auto& r : c.get("/v1/requests/" + id, token).json()["resources"]) {
      held.insert(r["id"].get<std::string>());
    }
  }
  std::set<std::string> at_provider;
  for (const auto& item : c.get("/v1/clusters/simulation-local/inventory", disk.s.admin()).json()["items"]) {
    at_provider.insert(item["id"].get<std::string>());
  }
  CHECK(at_provider == held);
  CHECK(disk.s.stop() == 0);
}
