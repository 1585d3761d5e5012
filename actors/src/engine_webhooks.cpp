// Webhooks in the engine: the commands (register, delete, reactivate) and the
// dispatcher's start and stop. The dispatcher's position lives in the store's `meta` column
// family under `webhooks/position` (decimal text).

#include <rocksdb/db.h>

#include <algorithm>
#include <set>

#include "detail/engine_impl.hpp"
#include "prov/core/ids.hpp"
#include "prov/core/log.hpp"
#include "prov/events/catalog.hpp"
#include "prov/events/lifecycle.hpp"

namespace prov::actors {

namespace {

constexpr std::string_view position_key = "webhooks/position";
constexpr std::size_t min_secret = 16;
constexpr std::size_t max_secret = 256;
/// Appends of a command that lost a race with the dispatcher's records (which append without
/// an expected version) are tried again on a fresh fold this many times.
constexpr int command_attempts = 8;

std::uint64_t load_position(events::rocks_store& store) {
  std::string value;
  auto s = store.db()->Get(rocksdb::ReadOptions{}, store.meta_cf(), rocksdb::Slice{position_key.data(), position_key.size()}, &value);
  if (!s.ok()) {
    return 0;
  }
  try {
    return std::stoull(value);
  } catch (const std::exception&) {
    return 0;
  }
}

/// The webhook's state now: its projection (a snapshot at some version) with the events the
/// journal has after it, so a command reads a few events, not every delivery attempt.
result<events::webhook_state> fold_from_journal(const events::journal& journal, const projections::views& views,
                                               const std::string& id) {
  events::webhook_state snapshot;
  if (auto viewed = views.webhook(id); !viewed) {
    return std::move(viewed).err();
  } else if (*viewed) {
    snapshot = std::move(**viewed);
  }
  auto tail = journal.read_stream(events::webhook_stream(id), snapshot.version + 1);
  if (!tail) {
    return std::move(tail).err();
  }
  auto state = events::fold_webhook(std::move(snapshot), *tail);
  if (!state) {
    return std::move(state).err();
  }
  if (!state->exists() || state->deleted) {
    return make_error(errc::not_found, "webhook " + id + " does not exist");
  }
  return state;
}

}  // namespace

void engine::impl::start_webhooks() {
  auto& i = *this;
  const auto& o = i.options.webhooks;
  if (!o.enabled) {
    log::info("webhooks_disabled");
    return;
  }
  i.webhook_http = make_http_webhook_transport(o);
  webhook_dispatcher_context ctx;
  ctx.journal = i.journal.get();
  ctx.clk = &i.clk;
  ctx.secrets = i.secrets.get();
  ctx.transport = i.webhook_http;
  ctx.options = o;
  ctx.start_position = load_position(*i.store);
  auto* store = i.store.get();
  ctx.save_position = [store](std::uint64_t p) {
    const auto text = std::to_string(p);
    if (auto s = store->put_meta(position_key, text); !s) {
      log::warn("webhook_position_not_saved", {{"error", s.err().message}});
    }
  };
  auto* views = i.views.get();
  ctx.load_webhooks = [views] { return views->webhooks(); };
  log::info("webhooks_started", {{"position", ctx.start_position},
                                 {"allow_loopback", o.addresses.allow_loopback},
                                 {"allow_private", o.addresses.allow_private},
                                 {"allow_link_local", o.addresses.allow_link_local}});
  i.webhooks = webhook_dispatcher::start(*i.sys, std::move(ctx));
}

void engine::impl::stop_webhooks() {
  if (webhooks) {
    webhooks->stop(true);
    webhooks.reset();
  }
  webhook_http.reset();
}

void engine::register_webhook(webhook_command cmd, callback<webhook_created> done) {
  auto& i = *_impl;
  const auto& o = i.options.webhooks;
  if (auto st = check_webhook_url(cmd.url, o.addresses); !st) {
    done(std::move(st).err());
    return;
  }
  if (cmd.events.empty()) {
    done(make_error(errc::invalid_argument, "events must name at least one lifecycle type (or \"*\")"));
    return;
  }
  std::set<std::string> types;
  for (const auto& t : cmd.events) {
    if (t != "*" && !events::is_lifecycle_type(t)) {
      done(make_error(errc::invalid_argument, "events: unknown type '" + t + "'"));
      return;
    }
    types.insert(t);
  }
  if (!cmd.secret.empty() && (cmd.secret.size() < min_secret || cmd.secret.size() > max_secret)) {
    done(make_error(errc::invalid_argument, "secret must be " + std::to_string(min_secret) + " to " +
                                                std::to_string(max_secret) + " characters"));
    return;
  }
  auto tenant = i.views->tenant(cmd.tenant);
  if (!tenant || !*tenant) {
    done(!tenant ? std::move(tenant).err() : make_error(errc::not_found, "tenant " + cmd.tenant + " does not exist"));
    return;
  }
  auto existing = i.views->webhooks(cmd.tenant);
  if (!existing) {
    done(std::move(existing).err());
    return;
  }
  if (existing->size() >= o.max_per_tenant) {
    done(make_error(errc::quota_exceeded, "tenant " + cmd.tenant + " has " + std::to_string(existing->size()) +
                                              " webhooks (limit " + std::to_string(o.max_per_tenant) + ")"));
    return;
  }
  auto secret = std::make_shared<std::string>(cmd.secret.empty() ? "whsec_" + random_hex(32) : std::move(cmd.secret));
  events::webhook_registered e;
  e.webhook_id = make_uuid_v7(i.clk.now());
  e.tenant = cmd.tenant;
  e.url = cmd.url;
  e.events.assign(types.begin(), types.end());
  e.secret_sealed = i.secrets->seal(*secret);
  e.by = cmd.by;
  const auto id = e.webhook_id;
  std::vector<events::stream_append> batch;
  batch.push_back(events::stream_append{events::webhook_stream(id), 0, {events::to_record(e)}});
  i.append_then(std::move(batch), [this, id, secret, done](result<events::append_receipt> r) {
    if (!r) {
      done(std::move(r).err());
      return;
    }
    _impl->after_projection(r->last_position, [this, id, secret, done] {
      auto w = _impl->views->webhook(id);
      if (!w || !*w) {
        done(make_error(errc::internal, "webhook " + id + " missing from projections after registration"));
        return;
      }
      done(webhook_created{**w, *secret});
    });
  });
}

void engine::impl::webhook_command(std::string id,
                                   std::function<result<events::event_record>(const events::webhook_state&)> decide,
                                   callback<events::webhook_state> done, int attempts_left) {
  auto one_record = [decide = std::move(decide)](const events::webhook_state& w) -> result<std::vector<events::event_record>> {
    auto record = decide(w);
    if (!record) {
      return std::move(record).err();
    }
    return std::vector<events::event_record>{std::move(*record)};
  };
  auto committed = [this, id, done](result<std::uint64_t> position) {
    if (!position) {
      done(std::move(position).err());
      return;
    }
    after_projection(*position, [this, id, done] {
      auto w = views->webhook(id);
      if (!w || !*w) {
        done(make_error(errc::internal, "webhook " + id + " missing from projections"));
        return;
      }
      done(**w);
    });
  };
  decide_and_append<events::webhook_state>(
      events::webhook_stream(id), [this, id] { return fold_from_journal(*journal, *views, id); }, std::move(one_record), nullptr,
      std::move(committed), attempts_left);
}

void engine::delete_webhook(std::string id, std::string by, callback<events::webhook_state> done) {
  _impl->webhook_command(std::move(id),
                       [by](const events::webhook_state&) -> result<events::event_record> {
                         return events::to_record(events::webhook_deleted{by});
                       },
                       std::move(done), command_attempts);
}

void engine::reactivate_webhook(std::string id, std::string by, callback<events::webhook_state> done) {
  _impl->webhook_command(std::move(id),
                       [by](const events::webhook_state& s) -> result<events::event_record> {
                         if (s.active) {
                           return make_error(errc::conflict, "webhook " + s.id + " is active");
                         }
                         return events::to_record(events::webhook_reactivated{by});
                       },
                       std::move(done), command_attempts);
}

}  // namespace prov::actors
