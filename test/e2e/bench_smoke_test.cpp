// bench_pipeline as bench/compare runs it, on a few hundred requests: it must finish, submit
// through the gateway and account for every request. No timing is checked here (figures
// belong to the benchmarks); this guards the load driver and the JSON the scripts read.

#include <catch2/catch.hpp>

#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "server_fixture.hpp"

using namespace prov::test;

namespace {

nlohmann::json run_bench(const std::vector<std::string>& args, const std::filesystem::path& dir) {
  std::vector<std::string> argv{BENCH_PIPELINE_BINARY, "--data-dir", (dir / "data").string()};
  argv.insert(argv.end(), args.begin(), args.end());
  child_process bench{argv, (dir / "bench.err").string()};
  std::string last;
  while (auto line = bench.read_line(std::chrono::seconds{120})) {
    last = *line;
  }
  REQUIRE(bench.wait(std::chrono::seconds{120}) == 0);
  // A successful run removes its data directory, whole: the engine is closed first.
  CHECK_FALSE(std::filesystem::exists(dir / "data"));
  std::ifstream err{dir / "bench.err"};
  const std::string diagnostics{std::istreambuf_iterator<char>{err}, std::istreambuf_iterator<char>{}};
  CHECK(diagnostics.find("cannot remove") == std::string::npos);
  return nlohmann::json::parse(last);
}

}  // namespace

TEST_CASE("bench_pipeline submits over HTTP and accounts for every request", "[e2e][bench]") {
  const auto dir = fresh_dir("bench");
  const auto out = run_bench({"--requests", "300", "--tenants", "3", "--connections", "8"}, dir);
  CHECK(out["mode"] == "http");
  CHECK(out["n"] == 300);
  CHECK(out["completed"] == 300);
  CHECK(out["rolled_back"] == 0);
  CHECK(out["events_per_request"].get<double>() >= 10);
  CHECK(out["submits_per_s"].get<double>() > 0);
  CHECK(out["p99_ms"].get<double>() >= out["p50_ms"].get<double>());
  CHECK(out["scheduler_policy"] == "sharing");
  CHECK(out["rate_target"].is_null());
  CHECK(out["p99_from_due_ms"].is_null());
  // The host probe ran before and after, and timed something.
  REQUIRE(out["host_probe_ms"].size() == 2);
  CHECK(out["host_probe_ms"][0].get<double>() > 0);
  CHECK(out["host_probe_ms"][1].get<double>() > 0);
  // Under jemalloc the run's allocations are counted: each request makes some (its events,
  // its HTTP exchange), so a count of zero would be a broken reading.
  if (out["allocator"] == "jemalloc") {
    REQUIRE(out["allocations_per_request"].is_number());
    CHECK(out["allocations_per_request"].get<double>() > 0);
  } else {
    CHECK(out["allocations_per_request"].is_null());
  }
  // Threads hand requests to each other (the journal's, the actors'), so they block.
  REQUIRE(out["voluntary_switches_per_request"].is_number());
  CHECK(out["voluntary_switches_per_request"].get<double>() > 0);
}

TEST_CASE("bench_pipeline submits batches, the short last one included", "[e2e][bench]") {
  const auto dir = fresh_dir("bench-batch");
  // 3 connections of 16-request batches: 307 = 19 full batches and one of 3.
  const auto out = run_bench({"--requests", "307", "--tenants", "3", "--connections", "3", "--batch", "16"}, dir);
  CHECK(out["batch"] == 16);
  CHECK(out["n"] == 307);
  CHECK(out["completed"] == 307);
  CHECK(out["rolled_back"] == 0);
  CHECK(out["submits_per_s"].get<double>() > 0);
}

TEST_CASE("bench_pipeline gives every request its own idempotency key, one by one and in batches", "[e2e][bench]") {
  for (const auto* batch : {"1", "8"}) {
    const auto dir = fresh_dir(std::string{"bench-keys-"} + batch);
    const auto out = run_bench(
        {"--requests", "100", "--tenants", "3", "--connections", "4", "--batch", batch, "--idempotency-keys"}, dir);
    CHECK(out["idempotency_keys"] == true);
    // Distinct keys: no submission was answered as a replay of another (the tracker would
    // see one id twice and never account for 100 requests).
    CHECK(out["completed"] == 100);
  }
}

TEST_CASE("bench_pipeline sends an open loop's batch once its last request is due", "[e2e][bench]") {
  const auto dir = fresh_dir("bench-batch-open");
  // 400/s in batches of 8: a batch's first request is due 7/400 s = 17.5 ms before the batch
  // goes out, and that wait counts from its due time.
  const auto out =
      run_bench({"--requests", "200", "--tenants", "2", "--rate", "400", "--batch", "8", "--connections", "4"}, dir);
  CHECK(out["completed"] == 200);
  CHECK(out["rate_target"] == 400);
  // One request in eight waited at least 17.5 ms before its batch was sent, and seven in
  // eight were due before their batch's send: from the due time they took longer.
  CHECK(out["p99_from_due_ms"].get<double>() >= 17.5);
  CHECK(out["p50_from_due_ms"].get<double>() > out["p50_ms"].get<double>());
}

TEST_CASE("bench_pipeline paces an open loop and reports its schedule lag", "[e2e][bench]") {
  const auto dir = fresh_dir("bench-open");
  const auto out = run_bench({"--requests", "200", "--tenants", "2", "--rate", "400", "--connections", "4"}, dir);
  CHECK(out["completed"] == 200);
  CHECK(out["rate_target"] == 400.0);
  CHECK(out["max_schedule_lag_ms"].is_number());
  // A request goes out at or after its due time: measured from the due time, no request is
  // faster than measured from its send.
  CHECK(out["p50_from_due_ms"].get<double>() >= out["p50_ms"].get<double>());
  CHECK(out["p99_from_due_ms"].get<double>() >= out["p99_ms"].get<double>());
  // 200 requests due over half a second cannot all be answered much sooner than that.
  CHECK(out["submit_wall_s"].get<double>() >= 0.45);
}

TEST_CASE("bench_pipeline counts a late send in the latency from the due time", "[e2e][bench]") {
  // One connection cannot send 10 000 requests/s (each submit waits for its append and the
  // projector), so the driver falls behind its schedule, and the requests it sent late waited
  // for that before their own latency began.
  const auto dir = fresh_dir("bench-late");
  const auto out = run_bench({"--requests", "200", "--tenants", "2", "--rate", "10000", "--connections", "1"}, dir);
  CHECK(out["completed"] == 200);
  CHECK(out["max_schedule_lag_ms"].get<double>() > 0);
  CHECK(out["p99_from_due_ms"].get<double>() > out["p99_ms"].get<double>());
}
