// What an operator asks of a running engine: `engine::runtime`, a snapshot of what the
// engine's actors report about themselves, gathered without a blocking wait, so `/metrics` and
// the cluster views hold no I/O thread while an actor works through a long mailbox; and
// `engine::backup`, a consistent copy of the store taken while it runs.

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <system_error>

#include "prov/core/log.hpp"
#include "prov/core/time_format.hpp"
#include "prov/events/rocks_journal.hpp"

#include "detail/engine_impl.hpp"

namespace prov::actors {

namespace {

// The round's answers so far; the last reply (or timeout) in hands them over.
struct gathering {
  engine_runtime out;
  int pending = 0;
  std::function<void(engine_runtime)> done;
};

}  // namespace

void engine::impl::probe(bool everything, std::function<void(engine_runtime)> done) {
  if (stopping.load()) {
    done(engine_runtime{});
    return;
  }
  auto g = std::make_shared<gathering>();
  g->done = std::move(done);
  const auto registry = ctx.registry;
  const auto sup = supervisor;
  const auto adm = ctx.admission;
  const auto dog = ctx.watchdog;
  const auto rec = reconciler;
  const auto hooks = webhooks ? webhooks->actor() : webhook_dispatcher_actor{};
  sys->spawn([=](caf::event_based_actor* self) {
    auto settle = [self, g] {
      if (--g->pending == 0) {
        auto answer = std::move(g->done);
        answer(std::move(g->out));
        self->quit();
      }
    };
    // Asks `target`, when it runs, and stores the reply with `keep`; a missing or late reply
    // leaves its part empty.
    auto ask = [&](const auto& target, auto keep, auto... xs) {
      if (!target) {
        return;
      }
      ++g->pending;
      self->request(target, runtime_timeout, xs...).then(keep, [settle](caf::error&) { settle(); });
    };
    ++g->pending;  // held while the asks go out, so an early reply cannot end the round
    if (everything) {
      ask(sup, [g, settle](std::size_t n) { g->out.live_requests = n; settle(); }, count_atom::value);
      ask(adm, [g, settle](const admission_status& s) { g->out.admission = s; settle(); }, status_atom::value);
      ask(dog, [g, settle](std::uint64_t n) { g->out.stuck_reports = n; settle(); }, status_atom::value);
      ask(rec, [g, settle](const reconcile_status& s) { g->out.reconciler = s; settle(); }, status_atom::value);
      ask(hooks, [g, settle](const webhook_dispatcher_status& s) { g->out.webhooks = s; settle(); }, status_atom::value);
    }
    ask(registry,
        [self, g, settle](const std::vector<cluster_choice>& running) {
          for (const auto& c : running) {
            if (!c.ok || !c.handle) {
              continue;
            }
            ++g->pending;
            self->request(c.handle, runtime_timeout, status_atom::value)
                .then([g, settle, id = c.cluster_id](const cluster_runtime& r) {
                        g->out.clusters[id] = r;
                        settle();
                      },
                      [settle](caf::error&) { settle(); });
          }
          settle();
        },
        clusters_atom::value);
    settle();
  });
}

void engine::runtime(std::function<void(engine_runtime)> done) { _impl->probe(true, std::move(done)); }

void engine::cluster_runtimes(std::function<void(std::map<std::string, cluster_runtime>)> done) {
  _impl->probe(false, [done = std::move(done)](engine_runtime r) { done(std::move(r.clusters)); });
}

namespace {

bool valid_backup_name(const std::string& name) {
  if (name.empty() || name.size() > 64 || name.front() == '.') {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

}  // namespace

void engine::backup(std::string name, callback<backup_report> done) {
  namespace fs = std::filesystem;
  auto& i = *_impl;
  if (i.stopping.load()) {
    done(detail::shutting_down());
    return;
  }
  if (name.empty()) {
    // backup-20261127T204512Z: sorts by time, unique to the second (a clash is a conflict).
    auto stamp = format_rfc3339(i.clk.now(), 0);
    std::erase_if(stamp, [](char c) { return c == '-' || c == ':'; });
    name = "backup-" + stamp;
  }
  if (!valid_backup_name(name)) {
    done(make_error(errc::invalid_argument,
                    "name must be 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'"));
    return;
  }
  const fs::path root = i.options.backup_dir.empty() ? fs::path{i.options.data_dir} / "backups" : fs::path{i.options.backup_dir};
  const fs::path data_dir{i.options.data_dir};
  i.elsewhere([impl = &i, root, data_dir, name, done] {
    const auto started = std::chrono::steady_clock::now();
    const auto target = root / name;
    std::error_code ec;
    fs::create_directories(root, ec);
    if (ec) {
      done(make_error(errc::io_error, "cannot create the backup directory " + root.string() + ": " + ec.message()));
      return;
    }
    if (!fs::create_directory(target, ec)) {
      done(ec ? make_error(errc::io_error, "cannot create " + target.string() + ": " + ec.message())
              : make_error(errc::conflict, "a backup named " + name + " exists"));
      return;
    }
    auto written = impl->store->checkpoint((target / "db").string());
    std::uint64_t head = 0;
    if (written) {
      // Read back: what the copy holds exactly (appends go on while it is made), and a check
      // that it opens.
      if (auto read = events::read_log_head((target / "db").string())) {
        head = *read;
      } else {
        written = std::move(read).err();
      }
    }
    if (written) {
      fs::copy_file(data_dir / "secret.key", target / "secret.key", ec);
      if (!ec) {
        fs::permissions(target / "secret.key", fs::perms::owner_read | fs::perms::owner_write, ec);
      }
      if (ec) {
        written = make_error(errc::io_error, "cannot copy the secret key: " + ec.message());
      }
    }
    if (!written) {
      fs::remove_all(target, ec);
      log::error("backup_failed", {{"name", name}, {"error", written.err().message}});
      done(std::move(written).err());
      return;
    }
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    log::info("backup_written", {{"name", name}, {"path", target.string()}, {"journal_head", head}, {"ms", took.count()}});
    done(backup_report{name, target.string(), head, static_cast<std::uint64_t>(took.count())});
  }, [done] { done(detail::shutting_down()); });
}

}  // namespace prov::actors
