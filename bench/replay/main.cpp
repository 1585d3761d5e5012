// bench_replay: how fast the read models are rebuilt from the journal, and how soon provisiond
// serves on a big journal whose projections are current (docs/PERFORMANCE.md).
//
//   1. template: an engine on a fresh data dir runs one vps request on the zero-delay
//      simulation cluster to completion, and is shut down;
//   2. generate: its request stream is appended again under new request ids until the journal
//      holds --requests completed requests (straight into the journal, in the template's
//      appends, no fsync, flushed at the end): the same events the engine writes, without running it;
//      The generated journal is flushed and its compactions are left to finish before the
//      replay is timed: a rebuild in production runs on a journal at rest, not on one written
//      a second ago;
//   3. replay: `projector::rebuild()` clears every read model and replays the whole journal;
//   4. ready: `engine::open` on that data dir (projections current), then one request read.
// Prints one JSON line on stdout; progress on stderr.

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/program_options.hpp>
#include <rocksdb/db.h>
#include <nlohmann/json.hpp>

#include "prov/actors/engine.hpp"
#include "prov/core/clock.hpp"
#include "prov/core/log.hpp"
#include "prov/events/catalog.hpp"
#include "prov/events/rocks_journal.hpp"
#include "prov/events/rocks_store.hpp"
#include "prov/projections/projector.hpp"

namespace {

using namespace prov;
using steady = std::chrono::steady_clock;
namespace po = boost::program_options;

struct options {
  std::size_t requests = 1'000'000;
  std::size_t batch = 1'000;  ///< requests generated between waits for the journal
  std::string data_dir;
  bool keep = false;
};

[[noreturn]] void fail(const std::string& what) {
  std::cerr << "bench_replay: " << what << std::endl;
  std::exit(1);
}

template <class T>
T must(result<T> r, const char* what) {
  if (!r) {
    fail(std::string(what) + ": " + r.err().message);
  }
  return std::move(*r);
}

void must(const status& s, const char* what) {
  if (!s) {
    fail(std::string(what) + ": " + s.err().message);
  }
}

/// Waits (at most 10 minutes) until RocksDB has no flush or compaction running or pending.
void settle(events::rocks_store& store) {
  const auto deadline = steady::now() + std::chrono::minutes(10);
  const auto busy = [&store] {
    for (const char* property : {"rocksdb.num-running-compactions", "rocksdb.compaction-pending",
                                 "rocksdb.num-running-flushes", "rocksdb.mem-table-flush-pending"}) {
      std::uint64_t value = 0;
      if (store.db()->GetAggregatedIntProperty(property, &value) && value != 0) {
        return true;
      }
    }
    return false;
  };
  while (busy()) {
    if (steady::now() > deadline) {
      fail("RocksDB's background work did not settle within 10 minutes");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

double seconds_since(steady::time_point t0) {
  return std::chrono::duration<double>(steady::now() - t0).count();
}

double peak_rss_mb() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

template <class T>
T await(const std::function<void(actors::callback<T>)>& call, const char* what) {
  auto promise = std::make_shared<std::promise<result<T>>>();
  auto answer = promise->get_future();
  call([promise](result<T> r) { promise->set_value(std::move(r)); });
  if (answer.wait_for(std::chrono::seconds{30}) != std::future_status::ready) {
    fail(std::string(what) + ": no answer in 30 s");
  }
  return must(answer.get(), what);
}

/// Runs one request to completion; returns its id.
std::string run_template(const std::string& data_dir, const prov::clock& clk) {
  actors::engine_options eo;
  eo.data_dir = data_dir;
  auto engine = must(actors::engine::open(eo, clk), "open the template engine");
  actors::tenant_command tenant;
  tenant.id = "replay";
  await<actors::tenant_reply>([&](auto done) { engine->create_tenant(tenant, std::move(done)); }, "create tenant");
  actors::submit_command submit;
  submit.tenant = "replay";
  submit.spec.cpu_millis = 1000;
  submit.spec.memory_mb = 1024;
  submit.spec.storage_gb = 10;
  const auto id = await<actors::submit_reply>([&](auto done) { engine->submit(submit, std::move(done)); }, "submit").id;
  const auto deadline = steady::now() + std::chrono::seconds{30};
  for (;;) {
    auto view = must(engine->views().request(id), "read the template request");
    if (view && view->state == events::lifecycle_state::completed) {
      break;
    }
    if (steady::now() > deadline || (view && events::is_at_rest(view->state))) {
      fail("the template request did not complete");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{10});  // polling a projection, bounded
  }
  engine->shutdown();
  return id;
}

/// Appends copies of `id`'s stream until the journal holds `o.requests` requests, each in the
/// appends the engine made for the template (so the log's records have the engine's shapes:
/// the runs of the appends a group commits, in one record up to its size). The template's
/// appends are told apart by their commit times: each waited for the one before it to be
/// durable, so no two shared a group.
std::uint64_t generate(events::rocks_store& store, const prov::clock& clk, const std::string& id, const options& o) {
  events::rocks_journal_options jo;
  jo.sync = false;
  auto journal = must(events::make_rocks_journal(store, clk, jo), "open the journal");
  std::vector<std::vector<events::any_event>> appends;
  timestamp last_time{};
  for (const auto& e : must(journal->read_stream("request/" + id), "read the template stream")) {
    if (appends.empty() || e.time != last_time) {
      appends.emplace_back();
      last_time = e.time;
    }
    appends.back().push_back(must(events::decode(e), "decode the template"));
  }
  std::cerr << "bench_replay: the template request made " << appends.size() << " appends" << std::endl;

  const auto t0 = steady::now();
  std::atomic<bool> failed{false};
  std::string first_error;
  std::mutex error_mutex;
  std::size_t made = 1;
  while (made < o.requests) {
    const auto copy_id = "replay-" + std::to_string(made);
    std::uint64_t version = 0;
    for (const auto& group : appends) {
      events::stream_append a{"request/" + copy_id, version, {}};
      a.events.reserve(group.size());
      for (const auto& e : group) {
        if (const auto* submitted = std::get_if<events::request_submitted>(&e)) {
          auto s = *submitted;
          s.request_id = copy_id;
          s.idempotency_key.clear();
          a.events.push_back(events::to_record(events::any_event{std::move(s)}));
        } else {
          a.events.push_back(events::to_record(e));
        }
      }
      version += group.size();
      std::vector<events::stream_append> batch;
      batch.push_back(std::move(a));
      journal->append(std::move(batch), [&](result<events::append_receipt> r) {
        if (!r && !failed.exchange(true)) {
          std::lock_guard lock(error_mutex);
          first_error = r.err().message;
        }
      });
    }
    ++made;
    if (made % o.batch == 0) {
      journal->drain();  // bounds what waits in the journal's queue
      if (failed) {
        fail("append: " + first_error);
      }
    }
    if (made % 100'000 == 0) {
      std::cerr << "bench_replay: generated " << made << " requests (" << journal->head() << " events)" << std::endl;
    }
  }
  journal->drain();
  if (failed) {
    fail("append: " + first_error);
  }
  const auto head = journal->head();
  std::cerr << "bench_replay: generated " << made << " requests, " << head << " events in " << seconds_since(t0)
            << " s" << std::endl;
  return head;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  po::options_description desc("bench_replay options");
  desc.add_options()("help,h", "show this help")(
      "requests", po::value(&o.requests)->default_value(o.requests), "requests in the journal")(
      "batch", po::value(&o.batch)->default_value(o.batch), "requests generated between waits for the journal")(
      "data-dir", po::value(&o.data_dir), "where to build the journal (must not exist; default: a temp dir)")(
      "keep", po::bool_switch(&o.keep), "keep the data dir");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "bench_replay: " << e.what() << "\n" << desc;
    return 2;
  }
  if (vm.count("help") != 0U) {
    std::cout << desc;
    return 0;
  }
  if (o.requests == 0 || o.batch == 0) {
    std::cerr << "bench_replay: --requests and --batch must be positive\n";
    return 2;
  }
  if (o.data_dir.empty()) {
    o.data_dir = (std::filesystem::temp_directory_path() / ("prov-replay-" + std::to_string(::getpid()))).string();
  }
  if (std::filesystem::exists(o.data_dir)) {
    fail(o.data_dir + " exists: the figures need a fresh journal");
  }
  log::set_level(log::level::warn);
  system_clock_source clk;

  const auto id = run_template(o.data_dir, clk);
  const auto db = (std::filesystem::path{o.data_dir} / "db").string();
  std::uint64_t events_total = 0;
  double replay_s = 0;
  {
    auto store = must(events::rocks_store::open({db}), "open the store");
    events_total = generate(*store, clk, id, o);
    must(store->flush(), "flush");
    const auto t0 = steady::now();
    settle(*store);
    std::cerr << "bench_replay: compactions settled in " << seconds_since(t0) << " s" << std::endl;
  }
  {
    // A fresh process would find the journal on disk, not in the memtables: reopen it.
    auto store = must(events::rocks_store::open({db}), "reopen the store");
    auto journal = must(events::make_rocks_journal(*store, clk, {}), "reopen the journal");
    projections::projector projector{*store, *journal};
    const auto t0 = steady::now();
    must(projector.rebuild(), "rebuild the projections");
    replay_s = seconds_since(t0);
    std::cerr << "bench_replay: replayed " << events_total << " events in " << replay_s << " s" << std::endl;
    must(store->flush(), "flush");
  }
  double ready_s = 0;
  {
    actors::engine_options eo;
    eo.data_dir = o.data_dir;
    const auto t0 = steady::now();
    auto engine = must(actors::engine::open(eo, clk), "open the engine on the big journal");
    auto view = must(engine->views().request("replay-" + std::to_string(o.requests - 1)), "read a request");
    ready_s = seconds_since(t0);
    if (!view || view->state != events::lifecycle_state::completed) {
      fail("the last generated request is not in the projections as completed");
    }
    engine->shutdown();
  }
  nlohmann::json out;
  out["bench"] = "replay";
  out["requests"] = o.requests;
  out["events"] = events_total;
  out["replay_s"] = replay_s;
  out["replay_events_per_s"] = static_cast<double>(events_total) / replay_s;
  out["ready_s"] = ready_s;
  out["peak_rss_mb"] = peak_rss_mb();
  out["allocator"] = PROV_ALLOCATOR;
  out["cores"] = std::thread::hardware_concurrency();
  std::cout << out.dump() << std::endl;
  if (!o.keep) {
    std::error_code ec;
    std::filesystem::remove_all(o.data_dir, ec);
  }
  return 0;
}
