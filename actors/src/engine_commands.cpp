// The engine's commands beyond submission: lifecycle commands on a request, manual input,
// credentials, metrics, approval rules, quotas and cluster connectivity tests. Every command
// decides from the request's fold as the journal holds it, and appends with that version as
// the expected one: a command racing with the request's actor (or another command) loses
// cleanly with a conflict instead of acting on a stale state.

#include <caf/all.hpp>

#include "detail/engine_impl.hpp"
#include "detail/sealed_credentials.hpp"
#include "prov/core/log.hpp"
#include "prov/events/catalog.hpp"

namespace prov::actors {

namespace {

std::string state_name(events::lifecycle_state s) { return std::string{events::enum_name(s)}; }

std::string cores(std::int64_t millis) {
  return millis % 1000 == 0 ? std::to_string(millis / 1000) : std::to_string(static_cast<double>(millis) / 1000.0);
}

// Why a command does not fit the request's state (409), or nothing.
std::optional<error> refuse_command(lifecycle_command cmd, const events::request_state& r) {
  using events::lifecycle_state;
  auto conflict = [&](std::string what) {
    return make_error(errc::conflict, "request " + r.id + " is " + state_name(r.state) + ": " + std::move(what));
  };
  switch (cmd) {
    case lifecycle_command::approve:
    case lifecycle_command::reject:
      if (r.state != lifecycle_state::pending_approval) {
        return conflict("only a request pending approval can be approved or rejected");
      }
      return std::nullopt;
    case lifecycle_command::cancel:
      if (r.state == lifecycle_state::completed || r.state == lifecycle_state::suspended) {
        return conflict("it is delivered; deprovision it instead");
      }
      if (r.state == lifecycle_state::failed || r.state == lifecycle_state::rolling_back ||
          r.state == lifecycle_state::rolled_back) {
        return conflict("it has already failed");
      }
      return std::nullopt;
    case lifecycle_command::suspend:
      if (r.state != lifecycle_state::completed) {
        return conflict("only a completed request can be suspended");
      }
      if (r.pending_action != 0) {
        return conflict("another action is in progress");
      }
      return std::nullopt;
    case lifecycle_command::reactivate:
      if (r.state != lifecycle_state::suspended) {
        return conflict("only a suspended request can be reactivated");
      }
      if (r.pending_action != 0) {
        return conflict("another action is in progress");
      }
      return std::nullopt;
    case lifecycle_command::deprovision:
      if (r.state != lifecycle_state::completed && r.state != lifecycle_state::suspended) {
        return conflict("only a completed or suspended request can be deprovisioned");
      }
      return std::nullopt;
  }
  return std::nullopt;
}

std::vector<events::request_event> events_for(lifecycle_command cmd, const command_input& in) {
  switch (cmd) {
    case lifecycle_command::approve:
      return {events::request_approved{in.by}};
    case lifecycle_command::reject:
      return {events::request_rejected{in.reason, in.by}, events::rollback_started{"rejected"}};
    case lifecycle_command::cancel:
      return {events::request_cancelled{in.reason, in.by}, events::rollback_started{"cancelled"}};
    case lifecycle_command::suspend:
      return {events::action_requested{events::service_action::suspend, in.reason, in.by}};
    case lifecycle_command::reactivate:
      return {events::action_requested{events::service_action::reactivate, in.reason, in.by}};
    case lifecycle_command::deprovision:
      return {events::rollback_started{"deprovisioned"}};
  }
  return {};
}

}  // namespace

namespace detail {

void catalog_cache::renew(std::uint64_t generation) {
  // A caller that read an older generation may use newer entries, never keep older ones.
  if (generation > _generation) {
    _generation = generation;
    _tenants.clear();
    _rules.reset();
  }
}

result<std::optional<events::tenant_state>> catalog_cache::tenant(const projections::views& views,
                                                                  std::uint64_t generation, const std::string& id) {
  {
    std::lock_guard<std::mutex> guard{_mutex};
    renew(generation);
    if (const auto found = _tenants.find(id); found != _tenants.end()) {
      return std::optional<events::tenant_state>{found->second};
    }
  }
  // Read without the lock. Kept only if no change was applied since `generation` was read.
  auto read = views.tenant(id);
  if (read && *read) {
    std::lock_guard<std::mutex> guard{_mutex};
    if (generation == _generation) {
      _tenants.insert_or_assign(id, **read);
    }
  }
  return read;
}

result<std::vector<events::rule_state>> catalog_cache::rules(const projections::views& views,
                                                             std::uint64_t generation) {
  {
    std::lock_guard<std::mutex> guard{_mutex};
    renew(generation);
    if (_rules) {
      return *_rules;
    }
  }
  auto read = views.rules();
  if (read) {
    std::lock_guard<std::mutex> guard{_mutex};
    if (generation == _generation) {
      _rules = *read;
    }
  }
  return read;
}

status quota_ledger::reserve(const std::string& tenant, const events::tenant_quota& quota, const events::request_state& r) {
  std::lock_guard<std::mutex> guard{_mutex};
  auto& held = _held[tenant];
  auto over = [&](const char* what, std::int64_t used, std::int64_t asked, std::int64_t limit, auto show) -> status {
    return make_error(errc::quota_exceeded, std::string{what} + " quota of tenant " + tenant + " exceeded: " +
                                                show(used) + " of " + show(limit) + " in use or reserved, " +
                                                show(asked) + " requested");
  };
  const auto plain = [](std::int64_t v) { return std::to_string(v); };
  if (quota.cpu_millis && held.cpu_millis + r.spec.cpu_millis > *quota.cpu_millis) {
    return over("cpu (cores)", held.cpu_millis, r.spec.cpu_millis, *quota.cpu_millis, cores);
  }
  if (quota.memory_mb && held.memory_mb + r.spec.memory_mb > *quota.memory_mb) {
    return over("memory (MiB)", held.memory_mb, r.spec.memory_mb, *quota.memory_mb, plain);
  }
  if (quota.storage_gb && held.storage_gb + r.spec.storage_gb > *quota.storage_gb) {
    return over("storage (GB)", held.storage_gb, r.spec.storage_gb, *quota.storage_gb, plain);
  }
  if (quota.instances && held.instances + 1 > *quota.instances) {
    return over("instances", held.instances, 1, *quota.instances, plain);
  }
  const std::string type{events::enum_name(r.type)};
  if (auto limit = quota.instances_by_type.find(type); limit != quota.instances_by_type.end()) {
    const auto it = held.instances_by_type.find(type);
    const auto n = it == held.instances_by_type.end() ? 0 : it->second;
    if (n + 1 > limit->second) {
      return over((type + " instances").c_str(), n, 1, limit->second, plain);
    }
  }
  held.add(r, +1);
  return {};
}

void quota_ledger::release(const std::string& tenant, const events::request_state& r) {
  std::lock_guard<std::mutex> guard{_mutex};
  _held[tenant].add(r, -1);
}

}  // namespace detail

void engine::command(std::string request_id, lifecycle_command cmd, command_input input,
                     callback<events::request_state> done) {
  _impl->request_command(
      std::move(request_id),
      [cmd, input = std::move(input)](const events::request_state& state) -> result<std::vector<events::event_record>> {
        if (auto refused = refuse_command(cmd, state)) {
          return std::move(*refused);
        }
        std::vector<events::event_record> records;
        for (const auto& e : events_for(cmd, input)) {
          records.push_back(std::visit([](const auto& x) { return events::to_record(x); }, e));
        }
        return records;
      },
      std::move(done));
}

void engine::impl::request_command(std::string request_id, request_decision decide, callback<events::request_state> done,
                                   int attempts) {
  auto fold = [this, request_id]() -> result<events::request_state> {
    auto stored = journal->read_stream(events::request_stream(request_id));
    if (!stored) {
      return std::move(stored).err();
    }
    auto state = events::fold_request(*stored);
    if (state && !state->exists()) {
      return make_error(errc::not_found, "request " + request_id + " does not exist");
    }
    return state;
  };
  auto exhausted = [request_id] {
    return make_error(errc::conflict, "request " + request_id + " changed " + std::to_string(command_attempts) +
                                          " times while the command was decided; retry");
  };
  auto committed = [this, request_id, done](result<std::uint64_t> position) {
    if (!position) {
      done(std::move(position).err());
      return;
    }
    // The view is read before the request's actor is woken, so the answer shows the state the
    // command left (not a later step the actor may already have taken).
    after_projection(*position, [this, request_id, done] {
      auto view = views->request(request_id);
      caf::anon_send(supervisor, start_atom::value, request_id);
      if (!view || !*view) {
        done(make_error(errc::internal, "request " + request_id + " missing from projections"));
        return;
      }
      done(**view);
    });
  };
  decide_and_append<events::request_state>(events::request_stream(request_id), std::move(fold), std::move(decide),
                                           std::move(exhausted), std::move(committed), attempts);
}

void engine::provide_input(std::string request_id, manual_input input, callback<events::request_state> done) {
  const auto* secrets = _impl->secrets.get();
  _impl->request_command(
      std::move(request_id),
      [secrets, input = std::move(input)](const events::request_state& state) -> result<std::vector<events::event_record>> {
        const auto step = events::step_of(state.state);
        if (!step || state.step(*step).status != events::step_status::awaiting_input) {
          return make_error(errc::conflict,
                            "request " + state.id + " is " + state_name(state.state) + " and not awaiting manual input");
        }
        std::vector<events::event_record> records{
            events::to_record(events::input_provided{*step, input.endpoints, input.by})};
        if (!input.credentials.empty()) {
          records.push_back(events::to_record(detail::sealed_credentials(secrets, input.credentials)));
        }
        return records;
      },
      std::move(done));
}

result<std::map<std::string, std::string>> engine::credentials(const std::string& request_id) {
  auto& i = *_impl;
  auto view = i.views->request(request_id);
  if (!view) {
    return std::move(view).err();
  }
  if (!*view) {
    return make_error(errc::not_found, "request " + request_id + " does not exist");
  }
  if ((*view)->credentials_sealed.empty()) {
    return make_error(errc::not_found, "request " + request_id + " has no credentials (yet)");
  }
  auto plain = i.secrets->open((*view)->credentials_sealed);
  if (!plain) {
    return std::move(plain).err();
  }
  auto parsed = nlohmann::json::parse(*plain, nullptr, false);
  if (!parsed.is_object()) {
    return make_error(errc::corrupt, "credentials of request " + request_id + " do not decode");
  }
  std::map<std::string, std::string> out;
  for (auto it = parsed.begin(); it != parsed.end(); ++it) {
    out.emplace(it.key(), it.value().is_string() ? it.value().get<std::string>() : it.value().dump());
  }
  return out;
}

void engine::metrics(std::string request_id, callback<providers::metrics_sample> done) {
  auto& i = *_impl;
  auto view = i.views->request(request_id);
  if (!view || !*view) {
    done(!view ? std::move(view).err() : make_error(errc::not_found, "request " + request_id + " does not exist"));
    return;
  }
  const auto& r = **view;
  if (r.state != events::lifecycle_state::completed && r.state != events::lifecycle_state::suspended) {
    done(make_error(errc::conflict, "request " + request_id + " is " + state_name(r.state) +
                                        ": metrics exist only for delivered services"));
    return;
  }
  providers::service_call call;
  call.request_id = r.id;
  call.tenant = r.tenant;
  call.type = r.type;
  call.idempotency_key = r.id + "/metrics";
  call.spec = r.spec;
  call.endpoints = r.endpoints;
  for (const auto& res : r.resources) {
    if (!res.released) {
      call.resources.push_back(res);
    }
  }
  auto* sys = i.sys.get();
  detail::ask<cluster_choice>(
      *sys, i.ctx.registry,
      std::function<void(result<cluster_choice>)>{[sys, call, done](result<cluster_choice> choice) {
        if (!choice || !choice->ok) {
          done(!choice ? std::move(choice).err() : make_error(errc::unavailable, choice->message));
          return;
        }
        detail::ask<providers::metrics_sample>(*sys, choice->handle,
                                               std::function<void(result<providers::metrics_sample>)>{done},
                                               metrics_atom::value, call);
      }},
      lookup_atom::value, r.cluster);
}

void engine::test_cluster(std::string cluster_id, callback<events::cluster_state> done) {
  auto& i = *_impl;
  auto* sys = i.sys.get();
  auto* self = this;
  detail::ask<cluster_choice>(
      *sys, i.ctx.registry,
      std::function<void(result<cluster_choice>)>{[self, sys, cluster_id, done](result<cluster_choice> choice) {
        if (!choice || !choice->ok) {
          done(!choice ? std::move(choice).err() : make_error(errc::not_found, choice->message));
          return;
        }
        detail::ask<providers::connectivity_report>(
            *sys, choice->handle,
            std::function<void(result<providers::connectivity_report>)>{
                [self, cluster_id, done](result<providers::connectivity_report> report) {
                  events::cluster_tested tested;
                  if (report) {
                    tested = events::cluster_tested{report->ok, report->latency.count(), report->message};
                  } else {
                    tested = events::cluster_tested{false, 0, report.err().message};
                  }
                  std::vector<events::stream_append> batch;
                  batch.push_back(events::stream_append{events::cluster_stream(cluster_id), events::any_version,
                                                        {events::to_record(tested)}});
                  self->_impl->append_then(std::move(batch), [self, cluster_id, done](result<events::append_receipt> r) {
                    if (!r) {
                      done(std::move(r).err());
                      return;
                    }
                    self->_impl->after_projection(r->last_position, [self, cluster_id, done] {
                      auto c = self->_impl->views->cluster(cluster_id);
                      if (!c || !*c) {
                        done(make_error(errc::internal, "cluster " + cluster_id + " missing from projections"));
                        return;
                      }
                      done(**c);
                    });
                  });
                }},
            test_atom::value);
      }},
      lookup_atom::value, cluster_id);
}

void engine::create_rule(events::rule_created rule, callback<events::rule_state> done) {
  auto& i = *_impl;
  const auto id = rule.rule_id;
  std::vector<events::stream_append> batch;
  batch.push_back(events::stream_append{events::rule_stream(id), 0, {events::to_record(rule)}});
  i.append_then(std::move(batch), [this, id, done](result<events::append_receipt> r) {
    if (!r) {
      done(r.err().code == errc::version_conflict ? make_error(errc::conflict, "rule " + id + " already exists")
                                                  : std::move(r).err());
      return;
    }
    _impl->after_projection(r->last_position, [this, id, done] {
      auto rule = _impl->views->rule(id);
      if (!rule || !*rule) {
        done(make_error(errc::internal, "rule " + id + " missing from projections"));
        return;
      }
      done(**rule);
    });
  });
}

void engine::delete_rule(std::string rule_id, std::string by, callback<events::rule_state> done) {
  auto& i = *_impl;
  auto stored = i.journal->read_stream(events::rule_stream(rule_id));
  if (!stored) {
    done(std::move(stored).err());
    return;
  }
  auto rule = events::fold_rule(*stored);
  if (!rule || !rule->exists() || rule->deleted) {
    done(!rule ? std::move(rule).err() : make_error(errc::not_found, "rule " + rule_id + " does not exist"));
    return;
  }
  std::vector<events::stream_append> batch;
  batch.push_back(events::stream_append{events::rule_stream(rule_id), rule->version,
                                        {events::to_record(events::rule_deleted{std::move(by)})}});
  auto deleted = *rule;
  deleted.deleted = true;
  i.append_then(std::move(batch), [this, rule_id, deleted, done](result<events::append_receipt> r) {
    if (!r) {
      done(r.err().code == errc::version_conflict ? make_error(errc::not_found, "rule " + rule_id + " was deleted meanwhile")
                                                  : std::move(r).err());
      return;
    }
    _impl->after_projection(r->last_position, [deleted, done] { done(deleted); });
  });
}

void engine::impl::append_to_tenant(const std::string& tenant_id, events::event_record record,
                                    std::function<void(result<void>)> projected) {
  auto version = journal->stream_version(events::tenant_stream(tenant_id));
  if (!version || *version == 0) {
    projected(!version ? std::move(version).err() : make_error(errc::not_found, "tenant " + tenant_id + " does not exist"));
    return;
  }
  std::vector<events::stream_append> batch;
  batch.push_back(events::stream_append{events::tenant_stream(tenant_id), *version, {std::move(record)}});
  append_then(std::move(batch), [this, tenant_id, projected](result<events::append_receipt> r) {
    if (!r) {
      projected(r.err().code == errc::version_conflict
                    ? make_error(errc::conflict, "tenant " + tenant_id + " changed concurrently; retry")
                    : std::move(r).err());
      return;
    }
    after_projection(r->last_position, [projected] { projected(result<void>{}); });
  });
}

void engine::set_quota(std::string tenant_id, events::tenant_quota quota, callback<events::tenant_state> done) {
  auto* i = _impl.get();
  i->append_to_tenant(tenant_id, events::to_record(events::tenant_quota_set{std::move(quota)}),
                      [i, tenant_id, done](result<void> r) {
                        if (!r) {
                          done(std::move(r).err());
                          return;
                        }
                        auto t = i->views->tenant(tenant_id);
                        if (!t || !*t) {
                          done(make_error(errc::internal, "tenant " + tenant_id + " missing from projections"));
                          return;
                        }
                        done(**t);
                      });
}

void engine::rotate_token(std::string tenant_id, std::string by, callback<tenant_reply> done) {
  auto reply = std::make_shared<tenant_reply>(tenant_reply{tenant_id, detail::new_tenant_token()});
  auto record = events::to_record(events::tenant_token_rotated{sha256_hex(reply->token), by});
  _impl->append_to_tenant(tenant_id, std::move(record), [reply, by, done](result<void> r) {
    if (!r) {
      done(std::move(r).err());
      return;
    }
    log::info("tenant_token_rotated", {{"tenant", reply->id}, {"by", by}});
    done(*reply);
  });
}

std::uint64_t engine::catalog_generation() const noexcept { return _impl->projector->catalog_generation(); }

result<usage_report> engine::usage(const std::string& tenant_id) {
  auto& i = *_impl;
  auto tenant = i.views->tenant(tenant_id);
  if (!tenant || !*tenant) {
    return !tenant ? std::move(tenant).err() : make_error(errc::not_found, "tenant " + tenant_id + " does not exist");
  }
  auto used = i.views->usage_of_tenant(tenant_id);
  if (!used) {
    return std::move(used).err();
  }
  return usage_report{(*tenant)->quota, std::move(*used)};
}

}  // namespace prov::actors

namespace prov::actors {

result<dependency_node> engine::impl::dependency_node_of(const events::request_state& r) const {
  dependency_node node;
  node.request_id = r.id;
  if (!r.idempotency_key.empty()) {
    node.key_node = key_node_of(r.tenant, r.idempotency_key);
  }
  for (const auto& ref : r.depends_on) {
    if (ref.rfind("key:", 0) == 0) {
      auto claim = journal->read_stream(events::idempotency_stream(r.tenant, ref.substr(4)));
      if (!claim) {
        return std::move(claim).err();
      }
      std::string resolved = key_node_of(r.tenant, ref.substr(4));  // not submitted yet
      if (!claim->empty()) {
        if (auto decoded = events::decode(claim->front());
            decoded && std::holds_alternative<events::idempotency_claimed>(*decoded)) {
          resolved = std::get<events::idempotency_claimed>(*decoded).request_id;
        }
      }
      node.prerequisites.push_back(std::move(resolved));
      continue;
    }
    auto first = journal->read_stream(events::request_stream(ref), 1, 1);
    if (!first) {
      return std::move(first).err();
    }
    std::optional<events::any_event> submitted;
    if (!first->empty()) {
      if (auto decoded = events::decode(first->front())) {
        submitted = std::move(*decoded);
      }
    }
    if (!submitted || !std::holds_alternative<events::request_submitted>(*submitted) ||
        std::get<events::request_submitted>(*submitted).tenant != r.tenant) {
      return make_error(errc::invalid_argument, "dependsOn: request " + ref + " does not exist");
    }
    node.prerequisites.push_back(ref);
  }
  return node;
}

}  // namespace prov::actors
