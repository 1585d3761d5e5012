#include "prov/gateway/api.hpp"

#include <openssl/crypto.h>

#include <array>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "detail/openapi.hpp"
#include "detail/parse.hpp"
#include "detail/render.hpp"
#include "prov/gateway/metrics_text.hpp"
#include "prov/core/ids.hpp"
#include "prov/core/log.hpp"
#include "prov/core/time_format.hpp"
#include "prov/events/apply.hpp"
#include "prov/events/cloudevents.hpp"
#include "prov/events/rocks_journal.hpp"

namespace prov::gateway {

namespace {

using nlohmann::json;

struct caller {
  bool admin = false;
  std::string tenant;  ///< set for tenant tokens
};

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') {
      ++i;
    }
    const auto j = path.find('/', i);
    const auto end = j == std::string_view::npos ? path.size() : j;
    if (end > i) {
      out.push_back(path.substr(i, end - i));
    }
    i = end;
  }
  return out;
}

// Out of line: the error path is cold, and inlined into the callers that take the error out of
// a `result<request_state>` it made GCC 12 warn (-Wmaybe-uninitialized, Release) about
// the variant's other alternative.
[[gnu::noinline]] http_response error_of(const error& e) { return error_response(e); }

/// A webhook as the API shows it: never its secret, sealed or not.
json render_webhook(const events::webhook_state& w) {
  return json{{"id", w.id},
              {"tenant", w.tenant},
              {"url", w.url},
              {"events", w.events},
              {"active", w.active},
              {"consecutiveFailures", w.consecutive_failures},
              {"deactivationReason", w.active || w.deactivation_reason.empty() ? json(nullptr) : json(w.deactivation_reason)},
              {"deactivatedAt", w.deactivated_at ? json(format_rfc3339(*w.deactivated_at)) : json(nullptr)},
              {"deliveries", {{"delivered", w.delivered}, {"failed", w.failed}, {"dropped", w.dropped}}},
              {"lastAttemptAt", w.last_attempt_at ? json(format_rfc3339(*w.last_attempt_at)) : json(nullptr)},
              {"createdAt", format_rfc3339(w.created_at)},
              {"updatedAt", format_rfc3339(w.updated_at)},
              {"version", w.version}};
}

json render_delivery(const events::webhook_delivery_attempted& d) {
  return json{{"eventId", d.event_id},
              {"eventType", d.event_type},
              {"requestId", d.request_id},
              {"attempt", d.attempt},
              {"outcome", std::string{events::enum_names(d.outcome)[static_cast<std::size_t>(d.outcome)]}},
              {"final", d.final},
              {"statusCode", d.status_code},
              {"latencyMs", d.latency_ms},
              {"error", d.error.empty() ? json(nullptr) : json(d.error)},
              {"attemptedAt", format_rfc3339(d.attempted_at)}};
}

http_response method_not_allowed(std::string_view allow) {
  auto r = error_response(405, errc::invalid_argument, "method not allowed; allowed: " + std::string{allow});
  r.headers.emplace_back("Allow", std::string{allow});
  return r;
}

/// The most requests one `POST /v1/requests:batch` may carry.
constexpr std::size_t max_batch_items = 1000;

}  // namespace

struct api::impl : std::enable_shared_from_this<api::impl> {
  actors::engine& engine;
  api_options options;
  std::mutex token_mutex;
  std::unordered_map<std::string, std::string> token_cache;  ///< sha256(token) -> tenant
  std::uint64_t token_generation = 0;  ///< the engine's catalog generation `token_cache` holds
  std::array<std::atomic<std::uint64_t>, 6> responses{};     ///< by status class 0xx..5xx
  std::array<std::atomic<std::uint64_t>, 6> batch_items{};   ///< batch items by status class

  impl(actors::engine& e, api_options o) : engine(e), options(std::move(o)) {}

  // -- authentication ---------------------------------------------------------------------

  result<caller> authenticate(const http_request& req) {
    constexpr std::string_view scheme = "Bearer ";
    std::string_view h = req.authorization;
    if (h.size() <= scheme.size() || h.substr(0, scheme.size()) != scheme) {
      return make_error(errc::unauthorized, "missing bearer token (Authorization: Bearer <token>)");
    }
    const auto token = h.substr(scheme.size());
    const auto& admin = options.admin_token;
    if (token.size() == admin.size() && CRYPTO_memcmp(token.data(), admin.data(), admin.size()) == 0) {
      return caller{true, {}};
    }
    const auto hash = sha256_hex(token);
    // A tenant change (a rotated token) makes the projections grow their catalog generation:
    // the cache is emptied then, and filled only by reads made under the generation it holds.
    const auto generation = engine.catalog_generation();  // before the read it vouches for
    {
      std::lock_guard<std::mutex> guard{token_mutex};
      if (generation > token_generation) {
        token_cache.clear();
        token_generation = generation;
      } else if (auto it = token_cache.find(hash); it != token_cache.end() && generation == token_generation) {
        return caller{false, it->second};
      }
    }
    auto tenant = engine.views().tenant_by_token_hash(hash);
    if (!tenant) {
      return std::move(tenant).err();
    }
    if (!*tenant) {
      return make_error(errc::unauthorized, "unknown token");
    }
    std::lock_guard<std::mutex> guard{token_mutex};
    if (generation == token_generation) {
      token_cache.emplace(hash, **tenant);
    }
    return caller{false, **tenant};
  }

  // -- requests -----------------------------------------------------------------------------

  void submit(const http_request& req, const caller& who, const responder& respond) {
    auto body = detail::parse_object(req.body);
    if (!body) {
      return respond(error_of(body.err()));
    }
    auto cmd = detail::parse_submit(*body, who.tenant);
    if (!cmd) {
      return respond(error_of(cmd.err()));
    }
    engine.submit(std::move(*cmd), [respond](result<actors::submit_reply> r) {
      if (!r) {
        auto resp = error_of(r.err());
        if (r.err().code == errc::overloaded) {
          resp.headers.emplace_back("Retry-After", "1");
        }
        return respond(std::move(resp));
      }
      auto resp = json_response(202, json{{"id", r->id}, {"state", events::enum_name(r->state)}});
      resp.headers.emplace_back("Location", "/v1/requests/" + r->id);
      if (r->replayed) {
        resp.headers.emplace_back("Idempotent-Replayed", "true");
      }
      respond(std::move(resp));
    });
  }

  /// `POST /v1/requests:batch`: each item is submitted as `POST /v1/requests` would, in order
  /// (so an item may depend on an earlier one's idempotency key), and answered in the item's
  /// slot of `results` with the status that call would have had. The batch is not atomic: one
  /// item's rejection leaves the others be. The answer (200) comes once every item's fate is
  /// known, i.e. each accepted item is durable and projected.
  void submit_batch(const http_request& req, const caller& who, const responder& respond) {
    auto body = detail::parse_object(req.body);
    if (!body) {
      return respond(error_of(body.err()));
    }
    auto items = detail::parse_submit_batch(*body, max_batch_items);
    if (!items) {
      return respond(error_of(items.err()));
    }
    // Shared by the items' callbacks, which come from several threads.
    struct gathered {
      std::mutex mutex;
      json results;
      std::size_t left = 0;
      std::size_t accepted = 0;
      bool overloaded = false;
      responder respond;
    };
    const auto n = (*items)->size();
    auto g = std::make_shared<gathered>();
    g->results = json::array();
    g->results.get_ref<json::array_t&>().resize(n);
    g->left = n;
    g->respond = respond;
    auto settle = [self = shared_from_this(), g](std::size_t index, result<actors::submit_reply> r) {
      const auto status = r ? 202U : http_status_for(r.err().code);
      self->batch_items[std::min<std::size_t>(status / 100, 5)].fetch_add(1, std::memory_order_relaxed);
      std::unique_lock<std::mutex> lock{g->mutex};
      if (r) {
        ++g->accepted;
        g->results[index] = json{{"status", 202}, {"id", r->id}, {"state", events::enum_name(r->state)},
                                 {"replayed", r->replayed}};
      } else {
        g->overloaded = g->overloaded || r.err().code == errc::overloaded;
        g->results[index] = json{{"status", status},
                                 {"error", {{"code", to_string(r.err().code)}, {"message", r.err().message}}}};
      }
      if (--g->left > 0) {
        return;
      }
      lock.unlock();  // the last item: nobody else touches `g` any more
      auto resp = json_response(200, json{{"accepted", g->accepted},
                                          {"rejected", g->results.size() - g->accepted},
                                          {"results", std::move(g->results)}});
      if (g->overloaded) {
        resp.headers.emplace_back("Retry-After", "1");
      }
      g->respond(std::move(resp));
    };
    for (std::size_t index = 0; index < n; ++index) {
      auto cmd = detail::parse_submit((**items)[index], who.tenant, "requests[" + std::to_string(index) + "]");
      if (!cmd) {
        settle(index, std::move(cmd).err());
        continue;
      }
      engine.submit(std::move(*cmd), [settle, index](result<actors::submit_reply> r) { settle(index, std::move(r)); });
    }
  }

  // The request if the caller may see it; another tenant's request is "not found".
  result<events::request_state> visible_request(const std::string& id, const caller& who) {
    auto r = engine.views().request(id);
    if (!r) {
      return std::move(r).err();
    }
    if (!*r || (!who.admin && (*r)->tenant != who.tenant)) {
      return make_error(errc::not_found, "request " + id + " does not exist");
    }
    return std::move(**r);
  }

  http_response get_request(const std::string& id, const caller& who) {
    auto r = visible_request(id, who);
    if (!r) {
      return error_of(r.err());
    }
    return json_response(200, detail::render_request(*r));
  }

  http_response list_requests(const http_request& req, const caller& who) {
    projections::request_query q;
    if (auto it = req.query.find("tenant"); it != req.query.end() && !it->second.empty()) {
      if (!who.admin && it->second != who.tenant) {
        return error_response(403, errc::forbidden, "a tenant token can only list its own requests");
      }
      q.tenant = it->second;
    }
    if (!who.admin) {
      q.tenant = who.tenant;
    }
    if (auto it = req.query.find("state"); it != req.query.end() && !it->second.empty()) {
      auto s = events::enum_from_name<events::lifecycle_state>(it->second);
      if (!s) {
        return error_response(400, errc::invalid_argument, "state '" + it->second + "' is not a lifecycle state");
      }
      q.state = *s;
    }
    if (auto it = req.query.find("limit"); it != req.query.end()) {
      const auto& v = it->second;
      const bool digits = !v.empty() && v.size() <= 4 && v.find_first_not_of("0123456789") == std::string::npos;
      const auto n = digits ? std::stoul(v) : 0;
      if (n < 1 || n > 1000) {
        return error_response(400, errc::invalid_argument, "limit must be an integer from 1 to 1000");
      }
      q.limit = n;
    }
    if (auto it = req.query.find("cursor"); it != req.query.end()) {
      q.cursor = it->second;
    }
    auto page = engine.views().requests(q);
    if (!page) {
      return error_of(page.err());
    }
    json items = json::array();
    for (const auto& r : page->items) {
      items.push_back(detail::render_request(r));
    }
    return json_response(200, json{{"items", std::move(items)},
                                   {"nextCursor", page->next_cursor.empty() ? json(nullptr) : json(page->next_cursor)}});
  }

  http_response request_events(const http_request& req, const std::string& id, const caller& who) {
    auto visible = visible_request(id, who);
    if (!visible) {
      return error_of(visible.err());
    }
    auto stored = engine.journal().read_stream(events::request_stream(id));
    if (!stored) {
      return error_of(stored.err());
    }
    std::size_t upto = stored->size();
    const auto as_of = req.query.find("asOf");
    const auto as_of_time = req.query.find("asOfTime");
    if (as_of != req.query.end() && as_of_time != req.query.end()) {
      return error_response(400, errc::invalid_argument, "give asOf or asOfTime, not both");
    }
    if (as_of != req.query.end()) {
      const auto& v = as_of->second;
      const bool digits = !v.empty() && v.size() <= 18 && v.find_first_not_of("0123456789") == std::string::npos;
      const auto n = digits ? std::stoull(v) : 0;
      if (n < 1 || n > stored->size()) {
        return error_response(400, errc::invalid_argument,
                              "asOf must be a sequence from 1 to " + std::to_string(stored->size()));
      }
      upto = n;
    } else if (as_of_time != req.query.end()) {
      const auto t = parse_rfc3339(as_of_time->second);
      if (!t) {
        return error_response(400, errc::invalid_argument, "asOfTime must be an RFC 3339 time");
      }
      upto = 0;
      while (upto < stored->size() && (*stored)[upto].time <= *t) {
        ++upto;
      }
      if (upto == 0) {
        return error_response(404, errc::not_found, "request " + id + " did not exist yet at " + as_of_time->second);
      }
    }
    json list = json::array();
    for (std::size_t i = 0; i < upto; ++i) {
      auto ce = events::to_cloudevent((*stored)[i]);
      if (!ce) {
        return error_of(ce.err());
      }
      list.push_back(std::move(*ce));
    }
    json out{{"requestId", id}, {"events", std::move(list)}};
    if (as_of != req.query.end() || as_of_time != req.query.end()) {
      auto state = events::fold_request(std::span<const events::stored_event>{stored->data(), upto});
      if (!state) {
        return error_of(state.err());
      }
      out["asOf"] = upto;
      out["state"] = detail::render_request(*state);
    }
    return json_response(200, out);
  }

  // The async answer of a command: the request's view, or the error.
  static std::function<void(result<events::request_state>)> view_reply(const responder& respond, unsigned status) {
    return [respond, status](result<events::request_state> r) {
      if (!r) {
        return respond(error_of(r.err()));
      }
      respond(json_response(status, detail::render_request(*r)));
    };
  }

  void lifecycle(const http_request& req, const std::string& id, std::string_view verb, const caller& who,
                 const responder& respond) {
    static const std::map<std::string_view, actors::lifecycle_command> verbs{
        {"approve", actors::lifecycle_command::approve},       {"reject", actors::lifecycle_command::reject},
        {"cancel", actors::lifecycle_command::cancel},         {"suspend", actors::lifecycle_command::suspend},
        {"reactivate", actors::lifecycle_command::reactivate}, {"deprovision", actors::lifecycle_command::deprovision}};
    const auto cmd = verbs.at(verb);
    const bool admin_only = cmd == actors::lifecycle_command::approve || cmd == actors::lifecycle_command::reject;
    if (admin_only && !who.admin) {
      return respond(error_response(403, errc::forbidden, std::string{verb} + " needs the admin token"));
    }
    if (auto visible = visible_request(id, who); !visible) {
      return respond(error_of(visible.err()));
    }
    auto reason = detail::parse_reason(req.body, cmd == actors::lifecycle_command::reject);
    if (!reason) {
      return respond(error_of(reason.err()));
    }
    engine.command(id, cmd, actors::command_input{std::move(*reason), who.admin ? "admin" : who.tenant},
                   view_reply(respond, 202));
  }

  void manual_input(const http_request& req, const std::string& id, const responder& respond) {
    auto body = detail::parse_object(req.body);
    if (!body) {
      return respond(error_of(body.err()));
    }
    auto input = detail::parse_manual_input(*body);
    if (!input) {
      return respond(error_of(input.err()));
    }
    input->by = "admin";
    engine.provide_input(id, std::move(*input), view_reply(respond, 202));
  }

  http_response credentials(const std::string& id, const caller& who) {
    if (auto visible = visible_request(id, who); !visible) {
      return error_of(visible.err());
    }
    auto creds = engine.credentials(id);
    if (!creds) {
      return error_of(creds.err());
    }
    auto r = json_response(200, json{{"requestId", id}, {"credentials", *creds}});
    r.headers.emplace_back("Cache-Control", "no-store");
    return r;
  }

  void metrics_of(const std::string& id, const caller& who, const responder& respond) {
    if (auto visible = visible_request(id, who); !visible) {
      return respond(error_of(visible.err()));
    }
    engine.metrics(id, [respond, id](result<providers::metrics_sample> m) {
      if (!m) {
        return respond(error_of(m.err()));
      }
      if (!m->ok) {
        const auto code = m->error.code == "unsupported" ? errc::unsupported : errc::provider_error;
        return respond(error_response(http_status_for(code), code, m->error.message));
      }
      auto body = detail::render_metrics(*m);
      body["requestId"] = id;
      respond(json_response(200, body));
    });
  }

  // -- approval rules -----------------------------------------------------------------------

  void create_rule(const http_request& req, const responder& respond) {
    auto body = detail::parse_object(req.body);
    if (!body) {
      return respond(error_of(body.err()));
    }
    auto rule = detail::parse_rule(*body);
    if (!rule) {
      return respond(error_of(rule.err()));
    }
    if (rule->rule_id.empty()) {
      rule->rule_id = make_uuid_v4();
    }
    if (!rule->tenant.empty()) {
      auto t = engine.views().tenant(rule->tenant);
      if (!t || !*t) {
        return respond(t ? error_response(404, errc::not_found, "tenant " + rule->tenant + " does not exist")
                         : error_of(t.err()));
      }
    }
    rule->by = "admin";
    engine.create_rule(std::move(*rule), [respond](result<events::rule_state> r) {
      if (!r) {
        return respond(error_of(r.err()));
      }
      auto resp = json_response(201, detail::render_rule(*r));
      resp.headers.emplace_back("Location", "/v1/approval-rules/" + r->id);
      respond(std::move(resp));
    });
  }

  http_response list_rules() {
    auto rules = engine.views().rules();
    if (!rules) {
      return error_of(rules.err());
    }
    json items = json::array();
    for (const auto& r : *rules) {
      items.push_back(detail::render_rule(r));
    }
    return json_response(200, json{{"items", std::move(items)}});
  }

  // -- tenants ------------------------------------------------------------------------------

  void put_quota(const http_request& req, const std::string& id, const responder& respond) {
    auto body = detail::parse_object(req.body);
    if (!body) {
      return respond(error_of(body.err()));
    }
    auto quota = detail::parse_quota(*body, "");
    if (!quota) {
      return respond(error_of(quota.err()));
    }
    engine.set_quota(id, std::move(*quota), [respond](result<events::tenant_state> t) {
      respond(t ? json_response(200, detail::render_quota(t->quota)) : error_of(t.err()));
    });
  }

  http_response usage(const std::string& id, const caller& who) {
    if (!who.admin && who.tenant != id) {
      return error_response(403, errc::forbidden, "a tenant token can only read its own usage");
    }
    auto report = engine.usage(id);
    if (!report) {
      return error_of(report.err());
    }
    return json_response(200, json{{"tenant", id},
                                   {"quota", detail::render_quota(report->quota)},
                                   {"used", detail::render_usage(report->usage.used)},
                                   {"reserved", detail::render_usage(report->usage.reserved)},
                                   {"total", detail::render_usage(report->usage.total())}});
  }

  // -- tenants (continued) --------------------------------------------------------------------

  void create_tenant(const http_request& req, const responder& respond) {
    auto body = detail::parse_object(req.body);
    if (!body) {
      return respond(error_of(body.err()));
    }
    auto cmd = detail::parse_tenant(*body);
    if (!cmd) {
      return respond(error_of(cmd.err()));
    }
    engine.create_tenant(std::move(*cmd), [respond](result<actors::tenant_reply> r) {
      if (!r) {
        return respond(error_of(r.err()));
      }
      auto resp = json_response(201, json{{"id", r->id}, {"token", r->token}});
      resp.headers.emplace_back("Location", "/v1/tenants/" + r->id);
      resp.headers.emplace_back("Cache-Control", "no-store");
      respond(std::move(resp));
    });
  }

  /// `POST /v1/tenants/{id}/token`: a new token for the tenant (shown once); the one it had
  /// stops working before the answer is sent.
  void rotate_token(const std::string& id, const caller& who, const responder& respond) {
    if (!who.admin && who.tenant != id) {
      return respond(error_response(403, errc::forbidden, "a tenant token can only rotate its own token"));
    }
    engine.rotate_token(id, who.admin ? "admin" : who.tenant, [respond](result<actors::tenant_reply> r) {
      if (!r) {
        return respond(error_of(r.err()));
      }
      auto resp = json_response(200, json{{"id", r->id}, {"token", r->token}});
      resp.headers.emplace_back("Cache-Control", "no-store");
      respond(std::move(resp));
    });
  }

  http_response get_tenant(const std::string& id, const caller& who, bool quota_only) {
    if (!who.admin && who.tenant != id) {
      return error_response(403, errc::forbidden, "a tenant token can only read its own tenant");
    }
    auto t = engine.views().tenant(id);
    if (!t) {
      return error_of(t.err());
    }
    if (!*t) {
      return error_response(404, errc::not_found, "tenant " + id + " does not exist");
    }
    return json_response(200, quota_only ? detail::render_quota((*t)->quota) : detail::render_tenant(**t));
  }

  http_response list_tenants() {
    auto all = engine.views().tenants();
    if (!all) {
      return error_of(all.err());
    }
    json items = json::array();
    for (const auto& t : *all) {
      items.push_back(detail::render_tenant(t));
    }
    return json_response(200, json{{"items", std::move(items)}});
  }

  // -- backups ------------------------------------------------------------------------------

  void backup(const http_request& req, const responder& respond) {
    auto name = detail::parse_backup_name(req.body);
    if (!name) {
      return respond(error_of(name.err()));
    }
    engine.backup(std::move(*name), [respond](result<actors::backup_report> r) {
      if (!r) {
        return respond(error_of(r.err()));
      }
      respond(json_response(201, json{{"name", r->name},
                                      {"path", r->path},
                                      {"journalHead", r->journal_head},
                                      {"tookMs", r->took_ms}}));
    });
  }

  // -- clusters -----------------------------------------------------------------------------

  using cluster_runtimes = std::map<std::string, actors::cluster_runtime>;

  // The registry view of a cluster plus its runtime (breaker, bulkhead) when it runs.
  json cluster_json(const events::cluster_state& c, const cluster_runtimes& runtimes) {
    auto out = detail::render_cluster(c);
    if (auto used = engine.views().usage_of_cluster(c.id)) {
      out["usage"] = {{"used", detail::render_usage(used->used)},
                      {"reserved", detail::render_usage(used->reserved)},
                      {"total", detail::render_usage(used->total())}};
    }
    if (const auto it = runtimes.find(c.id); it != runtimes.end()) {
      out["runtime"] = detail::render_runtime(it->second);
    }
    return out;
  }

  // The cluster actors' runtimes are gathered without a blocking wait on this I/O thread.
  void list_clusters(const responder& respond) {
    engine.cluster_runtimes([self = shared_from_this(), respond](cluster_runtimes runtimes) {
      auto all = self->engine.views().clusters();
      if (!all) {
        return respond(error_of(all.err()));
      }
      json items = json::array();
      for (const auto& c : *all) {
        items.push_back(self->cluster_json(c, runtimes));
      }
      respond(json_response(200, json{{"items", std::move(items)}}));
    });
  }

  void get_cluster(const std::string& id, const responder& respond) {
    auto c = find_cluster(id);
    if (!c) {
      return respond(error_of(c.err()));
    }
    engine.cluster_runtimes([self = shared_from_this(), respond, cluster = std::move(*c)](cluster_runtimes runtimes) {
      respond(json_response(200, self->cluster_json(cluster, runtimes)));
    });
  }

  result<events::cluster_state> find_cluster(const std::string& id) {
    auto c = engine.views().cluster(id);
    if (!c) {
      return std::move(c).err();
    }
    if (!*c) {
      return make_error(errc::not_found, "cluster " + id + " is not registered");
    }
    return std::move(**c);
  }

  void register_cluster(const http_request& req, const responder& respond) {
    auto body = detail::parse_object(req.body);
    if (!body) {
      return respond(error_of(body.err()));
    }
    auto cmd = detail::parse_cluster(*body);
    if (!cmd) {
      return respond(error_of(cmd.err()));
    }
    engine.register_cluster(std::move(cmd->command), std::move(cmd->credentials_json), [respond](result<events::cluster_state> r) {
      if (!r) {
        return respond(error_of(r.err()));
      }
      auto resp = json_response(201, detail::render_cluster(*r));
      resp.headers.emplace_back("Location", "/v1/clusters/" + r->id);
      respond(std::move(resp));
    });
  }

  void patch_cluster(const http_request& req, const std::string& id, const responder& respond) {
    auto current = find_cluster(id);
    if (!current) {
      return respond(error_of(current.err()));
    }
    auto body = detail::parse_object(req.body);
    if (!body) {
      return respond(error_of(body.err()));
    }
    auto cmd = detail::parse_cluster_patch(*body, *current);
    if (!cmd) {
      return respond(error_of(cmd.err()));
    }
    engine.update_cluster(id, std::move(cmd->command), std::move(cmd->credentials_json), [respond](result<events::cluster_state> r) {
      if (!r) {
        return respond(error_of(r.err()));
      }
      respond(json_response(200, detail::render_cluster(*r)));
    });
  }

  void test_cluster(const std::string& id, const responder& respond) {
    if (auto c = find_cluster(id); !c) {
      return respond(error_of(c.err()));
    }
    engine.test_cluster(id, [respond](result<events::cluster_state> c) {
      if (!c) {
        return respond(error_of(c.err()));
      }
      const auto& t = *c->last_test;
      respond(json_response(200, json{{"cluster", c->id}, {"ok", t.ok}, {"latencyMs", t.latency_ms}, {"message", t.message}}));
    });
  }

  void reconcile(const std::string& id, const responder& respond) {
    engine.reconcile(id, [respond](result<actors::reconcile_status> r) {
      if (!r) {
        return respond(error_of(r.err()));
      }
      respond(json_response(200, json{{"orphansFound", r->orphans_found},
                                      {"released", r->released},
                                      {"releaseFailures", r->release_failures},
                                      {"deferred", r->deferred},
                                      {"foreign", r->foreign},
                                      {"inventoryFailures", r->inventory_failures}}));
    });
  }

  void inventory(const std::string& id, const responder& respond) {
    if (auto c = find_cluster(id); !c) {
      return respond(error_of(c.err()));
    }
    engine.inventory(id, [respond](result<actors::inventory_listing> r) {
      if (!r) {
        return respond(error_of(r.err()));
      }
      json items = json::array();
      for (const auto& item : r->items) {
        items.push_back(detail::render_inventory_item(item));
      }
      respond(json_response(200, json{{"cluster", r->cluster}, {"items", std::move(items)}}));
    });
  }

  // -- operability --------------------------------------------------------------------------

  /// Set once the journal failed a WAL write or sync: nothing can be written until a restart
  /// (the events after the last good sync may or may not have reached the disk).
  std::optional<std::string> journal_failure() const {
    if (const auto stats = events::rocks_journal_stats_of(engine.journal()); stats && stats->failed) {
      return std::string{"journal: a WAL write or sync failed; every write is refused until provisiond is restarted"};
    }
    return std::nullopt;
  }

  /// Alive unless only a restart can bring it back (a failed journal).
  http_response liveness() {
    if (auto failed = journal_failure()) {
      return error_response(503, errc::unavailable, std::move(*failed));
    }
    return json_response(200, json{{"status", "ok"}});
  }

  http_response readiness() {
    if (auto failed = journal_failure()) {
      return error_response(503, errc::unavailable, std::move(*failed));
    }
    // Reads the store: a store that cannot be read is not ready.
    if (auto stored = engine.views().position(); !stored) {
      return error_response(503, errc::unavailable, stored.err().message);
    }
    return json_response(200, json{{"status", "ready"},
                                   {"journalHead", engine.journal().head()},
                                   {"projectionPosition", engine.projection_position()}});
  }

  // What the actors report is gathered without a blocking wait on this I/O thread; the
  // page is rendered where the last answer arrives.
  void metrics(const responder& respond) {
    engine.runtime([self = shared_from_this(), respond](actors::engine_runtime rt) { respond(self->render_metrics(rt)); });
  }

  http_response render_metrics(const actors::engine_runtime& rt) {
    metrics_text m;
    m.family("provisiond_http_responses_total", "counter", "HTTP responses by status class.");
    for (std::size_t i = 1; i < responses.size(); ++i) {
      m.sample("provisiond_http_responses_total", "class=\"" + std::to_string(i) + "xx\"", responses[i].load());
    }
    m.family("provisiond_batch_items_total", "counter",
             "Requests inside POST /v1/requests:batch by the status class of their slot.");
    for (std::size_t i = 2; i < batch_items.size(); ++i) {
      m.sample("provisiond_batch_items_total", "class=\"" + std::to_string(i) + "xx\"", batch_items[i].load());
    }
    m.single("provisiond_journal_head_position", "gauge", "Position of the last committed journal event.",
             engine.journal().head());
    if (const auto journal = events::rocks_journal_stats_of(engine.journal())) {
      // Appends (and events) per sync: how well one fsync is shared.
      m.single("provisiond_journal_group_commits_total", "counter",
               "Group commits the journal wrote (several may share one fsync).", journal->groups);
      m.single("provisiond_journal_syncs_total", "counter",
               "WAL fsyncs the journal made (each covers every group written before it).", journal->syncs);
      m.single("provisiond_journal_appends_total", "counter", "Appends the journal committed.", journal->appends);
      m.single("provisiond_journal_events_total", "counter", "Events the journal committed since start.",
               journal->events);
      m.single("provisiond_journal_failed", "gauge",
               "1 once a WAL write or sync failed: every write is refused until provisiond is restarted.",
               journal->failed ? 1 : 0);
    }
    m.single("provisiond_projection_position", "gauge", "Journal position the read models reflect.",
             engine.projection_position());
    auto stored = engine.views().position();
    m.single("provisiond_projection_stored_position", "gauge",
             "Journal position a restart replays the read models from (behind while request states are unwritten).",
             stored ? *stored : 0);
    m.single("provisiond_projection_unwritten_requests", "gauge",
             "Request states the read models serve from memory, not yet written to the store.",
             engine.unwritten_request_states());
    m.single("provisiond_unfinished_requests", "gauge", "Requests submitted and not yet at rest.",
             engine.unfinished_requests());
    if (const auto& live = rt.live_requests) {
      m.single("provisiond_live_request_actors", "gauge", "Requests whose actors are running.", *live);
    }
    if (const auto& adm = rt.admission) {
      m.single("provisiond_admission_active", "gauge", "Requests holding a slot in the active steps.", adm->active);
      m.single("provisiond_admission_waiting", "gauge", "Requests queued for a tenant or global slot.", adm->waiting);
    }
    if (const auto& wh = rt.webhooks) {
      m.single("provisiond_webhook_position", "gauge", "Journal position the webhook dispatcher has read.",
               wh->position);
      m.single("provisiond_webhook_pending", "gauge", "Webhook deliveries queued or in flight.", wh->pending);
      m.family("provisiond_webhook_attempts_total", "counter", "Webhook delivery attempts by outcome since start.")
          .sample("provisiond_webhook_attempts_total", "outcome=\"delivered\"", wh->delivered)
          .sample("provisiond_webhook_attempts_total", "outcome=\"failed\"", wh->failed)
          .sample("provisiond_webhook_attempts_total", "outcome=\"dropped\"", wh->dropped);
    }
    if (const auto& stuck = rt.stuck_reports) {
      m.single("provisiond_stuck_reports_total", "counter", "Requests reported stuck by the watchdog.", *stuck);
    }
    if (rt.reconciler) {
      const auto& rec = *rt.reconciler;
      m.single("provisiond_reconcile_passes_total", "counter", "Orphan reconciler passes finished.", rec.passes);
      m.family("provisiond_orphans_total", "counter",
               "Resources at a provider that their request does not hold, by what the reconciler did.")
          .sample("provisiond_orphans_total", "outcome=\"found\"", rec.orphans_found)
          .sample("provisiond_orphans_total", "outcome=\"released\"", rec.released)
          .sample("provisiond_orphans_total", "outcome=\"release_failed\"", rec.release_failures);
      m.single("provisiond_reconcile_foreign_resources_total", "counter",
               "Tagged resources of requests this engine's journal does not know (left alone).", rec.foreign);
    }
    {
      std::vector<std::pair<std::string, actors::cluster_runtime>> statuses;
      for (const auto& [id, r] : rt.clusters) {
        statuses.emplace_back("cluster=\"" + id + "\"", r);
      }
      const auto per_cluster = [&](std::string_view name, std::string_view type, std::string_view help,
                                   auto value_of) {
        m.family(name, type, help);
        for (const auto& [label, r] : statuses) {
          m.sample(name, label, value_of(r));
        }
      };
      per_cluster("provisiond_cluster_breaker_state", "gauge", "Circuit breaker: 0 closed, 1 half-open, 2 open.",
                  [](const auto& r) -> std::uint64_t { return r.breaker == "closed" ? 0 : r.breaker == "half_open" ? 1 : 2; });
      per_cluster("provisiond_cluster_calls_in_flight", "gauge", "Provider calls running per cluster.",
                  [](const auto& r) -> std::uint64_t { return r.in_flight; });
      per_cluster("provisiond_cluster_calls_total", "counter", "Provider calls started per cluster.",
                  [](const auto& r) -> std::uint64_t { return r.calls; });
      per_cluster("provisiond_cluster_calls_rejected_total", "counter", "Calls failed fast (breaker or bulkhead).",
                  [](const auto& r) -> std::uint64_t { return r.rejected; });
    }
    if (options.extra_metrics) {
      m.raw(options.extra_metrics());
    }
    http_response r;
    r.body = m.take();
    r.content_type = "text/plain; version=0.0.4";
    return r;
  }

  // -- webhooks (R-6.3) ----------------------------------------------------------------------

  void create_webhook(const http_request& req, const caller& who, const responder& respond) {
    auto body = detail::parse_object(req.body);
    if (!body) {
      return respond(error_of(body.err()));
    }
    actors::webhook_command cmd;
    try {
      for (const auto& [key, value] : body->items()) {
        if (key != "tenant" && key != "url" && key != "events" && key != "secret") {
          return respond(error_response(400, errc::invalid_argument, "unknown field '" + key + "'"));
        }
      }
      if (!body->contains("url") || !(*body)["url"].is_string()) {
        return respond(error_response(400, errc::invalid_argument, "url is required (a string)"));
      }
      cmd.url = (*body)["url"].get<std::string>();
      if (!body->contains("events") || !(*body)["events"].is_array()) {
        return respond(error_response(400, errc::invalid_argument, "events is required (an array of types)"));
      }
      for (const auto& t : (*body)["events"]) {
        if (!t.is_string()) {
          return respond(error_response(400, errc::invalid_argument, "events must hold strings"));
        }
        cmd.events.push_back(t.get<std::string>());
      }
      if (body->contains("secret")) {
        if (!(*body)["secret"].is_string()) {
          return respond(error_response(400, errc::invalid_argument, "secret must be a string"));
        }
        cmd.secret = (*body)["secret"].get<std::string>();
      }
      if (body->contains("tenant")) {
        if (!(*body)["tenant"].is_string()) {
          return respond(error_response(400, errc::invalid_argument, "tenant must be a string"));
        }
        cmd.tenant = (*body)["tenant"].get<std::string>();
      }
    } catch (const json::exception& e) {
      return respond(error_response(400, errc::invalid_argument, std::string{"bad webhook: "} + e.what()));
    }
    if (who.admin) {
      if (cmd.tenant.empty()) {
        return respond(error_response(400, errc::invalid_argument, "tenant is required with the admin token"));
      }
      cmd.by = "admin";
    } else {
      if (!cmd.tenant.empty() && cmd.tenant != who.tenant) {
        return respond(error_response(403, errc::forbidden, "a tenant token can only register its own webhooks"));
      }
      cmd.tenant = who.tenant;
      cmd.by = who.tenant;
    }
    engine.register_webhook(std::move(cmd), [respond](result<actors::webhook_created> r) {
      if (!r) {
        return respond(error_of(r.err()));
      }
      auto out = render_webhook(r->state);
      out["secret"] = r->secret;  // shown once
      auto resp = json_response(201, std::move(out));
      resp.headers.emplace_back("Location", "/v1/webhooks/" + r->state.id);
      resp.headers.emplace_back("Cache-Control", "no-store");
      respond(std::move(resp));
    });
  }

  /// The webhook if the caller may see it; 404 for another tenant's (its existence is not told).
  result<events::webhook_state> visible_webhook(const std::string& id, const caller& who) {
    auto w = engine.views().webhook(id);
    if (!w) {
      return std::move(w).err();
    }
    if (!*w || (*w)->deleted || (!who.admin && (*w)->tenant != who.tenant)) {
      return make_error(errc::not_found, "webhook " + id + " does not exist");
    }
    return **w;
  }

  http_response list_webhooks(const http_request& req, const caller& who) {
    std::optional<std::string> tenant;
    if (auto it = req.query.find("tenant"); it != req.query.end() && !it->second.empty()) {
      if (!who.admin && it->second != who.tenant) {
        return error_response(403, errc::forbidden, "a tenant token can only list its own webhooks");
      }
      tenant = it->second;
    }
    if (!who.admin) {
      tenant = who.tenant;
    }
    auto all = engine.views().webhooks(tenant);
    if (!all) {
      return error_of(all.err());
    }
    json items = json::array();
    for (const auto& w : *all) {
      items.push_back(render_webhook(w));
    }
    return json_response(200, json{{"items", std::move(items)}});
  }

  http_response webhook_deliveries(const http_request& req, const std::string& id, const caller& who) {
    auto w = visible_webhook(id, who);
    if (!w) {
      return error_of(w.err());
    }
    std::size_t limit = 100;
    if (auto it = req.query.find("limit"); it != req.query.end()) {
      const auto& v = it->second;
      const bool digits = !v.empty() && v.size() <= 3 && v.find_first_not_of("0123456789") == std::string::npos;
      const auto n = digits ? std::stoul(v) : 0;
      if (n < 1 || n > 100) {
        return error_response(400, errc::invalid_argument, "limit must be an integer from 1 to 100");
      }
      limit = n;
    }
    auto records = engine.views().webhook_deliveries(id, limit);
    if (!records) {
      return error_of(records.err());
    }
    json items = json::array();
    for (const auto& d : *records) {
      items.push_back(render_delivery(d));
    }
    return json_response(200, json{{"webhook", id}, {"active", w->active}, {"items", std::move(items)}});
  }

  void webhook_command(const std::string& id, bool reactivate, const caller& who, const responder& respond) {
    auto w = visible_webhook(id, who);
    if (!w) {
      return respond(error_of(w.err()));
    }
    const auto by = who.admin ? std::string{"admin"} : who.tenant;
    if (reactivate) {
      return engine.reactivate_webhook(id, by, [respond](result<events::webhook_state> r) {
        respond(r ? json_response(200, render_webhook(*r)) : error_of(r.err()));
      });
    }
    engine.delete_webhook(id, by, [respond](result<events::webhook_state> r) {
      if (!r) {
        return respond(error_of(r.err()));
      }
      http_response resp;
      resp.status = 204;
      resp.content_type.clear();
      respond(std::move(resp));
    });
  }

  // -- routing ------------------------------------------------------------------------------

  void route(http_request&& req, const responder& respond) {
    const auto seg = split_path(req.path);
    const auto& m = req.method;
    const auto n = seg.size();

    // Unauthenticated operability routes.
    if (n == 1 && (seg[0] == "healthz" || seg[0] == "readyz" || seg[0] == "metrics" || seg[0] == "openapi.json")) {
      if (m != "GET") {
        return respond(method_not_allowed("GET"));
      }
      if (seg[0] == "healthz") {
        return respond(liveness());
      }
      if (seg[0] == "readyz") {
        return respond(readiness());
      }
      if (seg[0] == "metrics") {
        return metrics(respond);
      }
      return respond(json_response(200, detail::openapi_document()));
    }
    if (n < 2 || seg[0] != "v1") {
      return respond(error_response(404, errc::not_found, "no route for " + m + " " + req.path));
    }
    auto who = authenticate(req);
    if (!who) {
      auto r = error_of(who.err());
      if (r.status == 401) {
        r.headers.emplace_back("WWW-Authenticate", "Bearer");
      }
      return respond(std::move(r));
    }
    auto admin_only = [&]() -> bool {
      if (!who->admin) {
        respond(error_response(403, errc::forbidden, "this operation needs the admin token"));
        return false;
      }
      return true;
    };
    const auto collection = seg[1];
    const std::string id = n >= 3 ? std::string{seg[2]} : std::string{};

    if (collection == "requests:batch") {
      if (n == 2) {
        return m == "POST" ? submit_batch(req, *who, respond) : respond(method_not_allowed("POST"));
      }
    } else if (collection == "requests") {
      if (n == 2) {
        if (m == "POST") {
          return submit(req, *who, respond);
        }
        if (m == "GET") {
          return respond(list_requests(req, *who));
        }
        return respond(method_not_allowed("GET, POST"));
      }
      if (n == 3) {
        return respond(m == "GET" ? get_request(id, *who) : method_not_allowed("GET"));
      }
      if (n == 4 && seg[3] == "events") {
        return respond(m == "GET" ? request_events(req, id, *who) : method_not_allowed("GET"));
      }
      if (n == 4 && (seg[3] == "approve" || seg[3] == "reject" || seg[3] == "cancel" || seg[3] == "suspend" ||
                     seg[3] == "reactivate" || seg[3] == "deprovision")) {
        return m == "POST" ? lifecycle(req, id, seg[3], *who, respond) : respond(method_not_allowed("POST"));
      }
      if (n == 4 && seg[3] == "manual-input") {
        if (m != "POST") {
          return respond(method_not_allowed("POST"));
        }
        return admin_only() ? manual_input(req, id, respond) : void();
      }
      if (n == 4 && seg[3] == "credentials") {
        return respond(m == "GET" ? credentials(id, *who) : method_not_allowed("GET"));
      }
      if (n == 4 && seg[3] == "metrics") {
        return m == "GET" ? metrics_of(id, *who, respond) : respond(method_not_allowed("GET"));
      }
    } else if (collection == "webhooks") {
      if (n == 2) {
        if (m == "POST") {
          return create_webhook(req, *who, respond);
        }
        return respond(m == "GET" ? list_webhooks(req, *who) : method_not_allowed("GET, POST"));
      }
      if (n == 3) {
        if (m == "GET") {
          auto w = visible_webhook(id, *who);
          return respond(w ? json_response(200, render_webhook(*w)) : error_of(w.err()));
        }
        if (m == "DELETE") {
          return webhook_command(id, false, *who, respond);
        }
        return respond(method_not_allowed("GET, DELETE"));
      }
      if (n == 4 && seg[3] == "deliveries") {
        return respond(m == "GET" ? webhook_deliveries(req, id, *who) : method_not_allowed("GET"));
      }
      if (n == 4 && seg[3] == "reactivate") {
        return m == "POST" ? webhook_command(id, true, *who, respond) : respond(method_not_allowed("POST"));
      }
    } else if (collection == "tenants") {
      if (n == 2) {
        if (m == "POST") {
          return admin_only() ? create_tenant(req, respond) : void();
        }
        if (m == "GET") {
          return admin_only() ? respond(list_tenants()) : void();
        }
        return respond(method_not_allowed("GET, POST"));
      }
      if (n == 4 && seg[3] == "quota" && m == "PUT") {
        return admin_only() ? put_quota(req, id, respond) : void();
      }
      if (n == 4 && seg[3] == "usage") {
        return respond(m == "GET" ? usage(id, *who) : method_not_allowed("GET"));
      }
      if (n == 4 && seg[3] == "token") {
        return m == "POST" ? rotate_token(id, *who, respond) : respond(method_not_allowed("POST"));
      }
      if (n == 3 || (n == 4 && seg[3] == "quota")) {
        return respond(m == "GET" ? get_tenant(id, *who, n == 4) : method_not_allowed(n == 4 ? "GET, PUT" : "GET"));
      }
    } else if (collection == "approval-rules") {
      if (!admin_only()) {
        return;
      }
      if (n == 2) {
        if (m == "POST") {
          return create_rule(req, respond);
        }
        return respond(m == "GET" ? list_rules() : method_not_allowed("GET, POST"));
      }
      if (n == 3) {
        if (m == "GET") {
          auto r = engine.views().rule(id);
          if (!r || !*r || (*r)->deleted) {
            return respond(r ? error_response(404, errc::not_found, "rule " + id + " does not exist") : error_of(r.err()));
          }
          return respond(json_response(200, detail::render_rule(**r)));
        }
        if (m == "DELETE") {
          return engine.delete_rule(id, "admin", [respond](result<events::rule_state> r) {
            if (!r) {
              return respond(error_of(r.err()));
            }
            http_response resp;
            resp.status = 204;
            resp.content_type.clear();
            respond(std::move(resp));
          });
        }
        return respond(method_not_allowed("GET, DELETE"));
      }
    } else if (collection == "backups") {
      if (!admin_only()) {
        return;
      }
      if (n == 2) {
        return m == "POST" ? backup(req, respond) : respond(method_not_allowed("POST"));
      }
    } else if (collection == "clusters") {
      if (!admin_only()) {
        return;
      }
      if (n == 2) {
        if (m == "POST") {
          return register_cluster(req, respond);
        }
        return m == "GET" ? list_clusters(respond) : respond(method_not_allowed("GET, POST"));
      }
      if (n == 3) {
        if (m == "GET") {
          return get_cluster(id, respond);
        }
        if (m == "PATCH") {
          return patch_cluster(req, id, respond);
        }
        return respond(method_not_allowed("GET, PATCH"));
      }
      if (n == 4 && seg[3] == "inventory") {
        return m == "GET" ? inventory(id, respond) : respond(method_not_allowed("GET"));
      }
      if (n == 4 && seg[3] == "reconcile") {
        return m == "POST" ? reconcile(id, respond) : respond(method_not_allowed("POST"));
      }
      if (n == 4 && seg[3] == "test") {
        return m == "POST" ? test_cluster(id, respond) : respond(method_not_allowed("POST"));
      }
    }
    respond(error_response(404, errc::not_found, "no route for " + m + " " + req.path));
  }
};

api::api(actors::engine& engine, api_options options) : _impl(std::make_shared<impl>(engine, std::move(options))) {}

api::~api() = default;

void api::handle(http_request&& request, responder respond) {
  auto* self = _impl.get();
  // Count every response by status class, whichever path answers it.
  responder counted = [self, respond = std::move(respond)](http_response r) {
    self->responses[std::min<std::size_t>(r.status / 100, 5)].fetch_add(1, std::memory_order_relaxed);
    respond(std::move(r));
  };
  try {
    self->route(std::move(request), counted);
  } catch (const std::exception& e) {
    log::error("handler_exception", {{"error", e.what()}});
    counted(error_response(500, errc::internal, "internal error"));
  }
}

}  // namespace prov::gateway
