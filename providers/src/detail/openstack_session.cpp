#include "detail/openstack_session.hpp"

#include <algorithm>
#include <cctype>

#include "prov/core/time_format.hpp"

namespace prov::providers::openstack {

namespace {

using steady = std::chrono::steady_clock;

std::string lowercase(std::string_view s) {
  std::string out{s};
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string strip_slashes(std::string url) {
  while (!url.empty() && url.back() == '/') {
    url.pop_back();
  }
  return url;
}

/// Keystone timestamps: "2026-11-26T07:03:39.000000Z" (RFC 3339); some clouds leave out the
/// zone, which then is UTC.
std::optional<timestamp> keystone_time(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) {
    return std::nullopt;
  }
  std::string text = j[key].get<std::string>();
  if (!text.empty() && text.back() != 'Z' && text.find('+', 10) == std::string::npos &&
      text.find('-', 10) == std::string::npos) {
    text += "Z";
  }
  return parse_rfc3339(text);
}

/// The catalog types that serve each service, in order of preference.
std::vector<std::string_view> catalog_types(service s) {
  switch (s) {
    case service::compute: return {"compute"};
    case service::network: return {"network"};
    case service::volume: return {"volumev3", "block-storage"};
    case service::image: return {"image"};
  }
  return {};
}

/// Catalog URLs of Neutron and Glance name the server, not the API version.
std::string with_version(service s, std::string url) {
  url = strip_slashes(std::move(url));
  if (s == service::network && !ends_with(url, "/v2.0")) {
    url += "/v2.0";
  } else if (s == service::image && !ends_with(url, "/v2")) {
    url += "/v2";
  }
  return url;
}

}  // namespace

std::string_view service_name(service s) noexcept {
  switch (s) {
    case service::compute: return "compute";
    case service::network: return "network";
    case service::volume: return "volumev3";
    case service::image: return "image";
  }
  return "?";
}

std::string error_detail(const json& body, const std::string& text) {
  if (body.is_object()) {
    // Neutron: {"NeutronError": {"type": "...", "message": "...", "detail": ""}}
    // Nova/Cinder: {"badRequest": {"message": "...", "code": 400}}, {"itemNotFound": {...}}, ...
    // Keystone: {"error": {"code": 401, "message": "...", "title": "Unauthorized"}}
    for (const auto& [name, value] : body.items()) {
      if (value.is_object() && value.contains("message") && value["message"].is_string()) {
        std::string out = value["message"].get<std::string>();
        if (value.contains("type") && value["type"].is_string()) {
          out = value["type"].get<std::string>() + ": " + out;
        }
        return out;
      }
    }
    if (body.contains("message") && body["message"].is_string()) {
      return body["message"].get<std::string>();
    }
  }
  // Glance and proxies answer in plain text or HTML: keep it short.
  std::string flat;
  for (char c : text) {
    flat += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  }
  if (flat.size() > 200) {
    flat = flat.substr(0, 200) + "...";
  }
  return flat;
}

provider_error status_error(const api_reply& r, std::string_view what) {
  if (r.failure) {
    return *r.failure;
  }
  const std::string detail = error_detail(r.body, r.text);
  std::string message = std::string{what} + ": HTTP " + std::to_string(r.status);
  if (!detail.empty()) {
    message += ": " + detail;
  }
  const std::string lower = lowercase(detail);
  const bool quota = lower.find("quota") != std::string::npos || lower.find("overlimit") != std::string::npos;
  switch (r.status) {
    case 400: return provider_error{"bad_request", message, false};
    case 401: return provider_error{"unauthorized", message + " (Keystone refused the credentials)", false};
    case 403:
      return quota ? provider_error{"quota_exceeded", message, false} : provider_error{"forbidden", message, false};
    case 404: return provider_error{"not_found", message, false};
    case 409:
      return quota ? provider_error{"quota_exceeded", message, false} : provider_error{"conflict", message, true};
    case 413: return provider_error{"quota_exceeded", message, false};
    case 429: return provider_error{"rate_limited", message, true};
    default: break;
  }
  if (r.status >= 500) {
    return provider_error{"server_error", message, true};
  }
  if (r.status >= 200 && r.status < 300) {
    return provider_error{"bad_response", message + " (unexpected answer)", true};
  }
  return provider_error{"http_" + std::to_string(r.status), message, false};
}

// ---------------------------------------------------------------------------------------------

session::session(std::string keystone_url, openstack_credentials credentials, const openstack_settings& settings,
                 const clock& clk)
    : _keystone(strip_slashes(std::move(keystone_url))),
      _credentials(std::move(credentials)),
      _region(settings.region),
      _interface(settings.interface),
      _compute_microversion(settings.compute_microversion),
      _clock(clk),
      _client([&] {
        http::client_options o;
        o.verify_tls = settings.verify_tls;
        o.ca_pem = _credentials.ca_pem;
        o.connect_timeout = settings.connect_timeout;
        o.request_timeout = settings.request_timeout;
        return o;
      }()) {
  if (!ends_with(_keystone, "/v3")) {
    _keystone += "/v3";
  }
}

json session::auth_body() const {
  const auto& c = _credentials;
  if (c.uses_application_credential()) {
    // An application credential is scoped already: no "scope" member.
    return {{"auth",
             {{"identity",
               {{"methods", {"application_credential"}},
                {"application_credential", {{"id", c.application_credential_id}, {"secret", c.application_credential_secret}}}}}}}};
  }
  json user = {{"password", c.password}};
  if (!c.user_id.empty()) {
    user["id"] = c.user_id;
  } else {
    user["name"] = c.username;
    user["domain"] = {{"name", c.user_domain}};
  }
  json project;
  if (!c.project_id.empty()) {
    project = {{"id", c.project_id}};
  } else {
    project = {{"name", c.project}, {"domain", {{"name", c.project_domain}}}};
  }
  return {{"auth",
           {{"identity", {{"methods", {"password"}}, {"password", {{"user", user}}}}},
            {"scope", {{"project", project}}}}}};
}

std::optional<provider_error> session::issue_locked(token_info* info) {
  http::request req;
  req.method = "POST";
  req.url = _keystone + "/auth/tokens";
  req.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
  req.body = auth_body().dump();
  const auto started = steady::now();
  auto res = _client.send(req);
  const auto latency = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - started);
  const std::string what = "POST " + req.url;
  if (!res) {
    return transport_error(res.err(), what);
  }
  api_reply reply;
  reply.status = res->status;
  reply.text = res->body;
  reply.body = json::parse(res->body, nullptr, false);
  if (reply.body.is_discarded()) {
    reply.body = nullptr;
  }
  if (res->status != 201 && res->status != 200) {
    auto e = status_error(reply, "Keystone token request");
    if (res->status == 401) {
      e.message = "Keystone token request: HTTP 401: the cluster's credentials were refused";
    }
    return e;
  }
  const std::string token = res->header("x-subject-token");
  if (token.empty() || !reply.body.is_object() || !reply.body.contains("token") || !reply.body["token"].is_object()) {
    return provider_error{"bad_response", what + ": no X-Subject-Token header or no token body", true};
  }
  const json& t = reply.body["token"];
  token_state next;
  next.token = token;
  if (t.contains("project") && t["project"].is_object()) {
    next.project_id = t["project"].value("id", "");
  }
  // Renew before expiry: at 3/4 of the lifetime, at most 5 minutes early. The lifetime comes
  // from Keystone's own issued_at/expires_at, so a skewed local clock does not matter.
  const auto now = _clock.now();
  const auto issued = keystone_time(t, "issued_at");
  const auto expires = keystone_time(t, "expires_at");
  std::chrono::microseconds lifetime = std::chrono::minutes{10};
  if (issued && expires && *expires > *issued) {
    lifetime = *expires - *issued;
  }
  const auto margin = std::min<std::chrono::microseconds>(lifetime / 4, std::chrono::minutes{5});
  next.refresh_at = now + (lifetime - margin);

  std::vector<std::string> types;
  if (t.contains("catalog") && t["catalog"].is_array()) {
    for (const auto& entry : t["catalog"]) {
      if (!entry.is_object() || !entry.contains("type") || !entry["type"].is_string()) {
        continue;
      }
      const std::string type = entry["type"].get<std::string>();
      types.push_back(type);
      if (!entry.contains("endpoints") || !entry["endpoints"].is_array()) {
        continue;
      }
      for (const auto& ep : entry["endpoints"]) {
        if (!ep.is_object() || ep.value("interface", "") != _interface) {
          continue;
        }
        const std::string region = ep.value("region_id", ep.value("region", ""));
        if (!_region.empty() && region != _region) {
          continue;
        }
        const std::string url = ep.value("url", "");
        if (!url.empty()) {
          next.endpoints.emplace_back(type, url);
          break;  // the first matching endpoint of this service
        }
      }
    }
  }
  if (info != nullptr) {
    info->project_id = next.project_id;
    if (t.contains("project") && t["project"].is_object()) {
      info->project_name = t["project"].value("name", "");
    }
    if (t.contains("user") && t["user"].is_object()) {
      info->user_name = t["user"].value("name", "");
    }
    info->service_types = types;
    info->latency = latency;
  }
  _token = std::move(next);
  ++_issued;
  return std::nullopt;
}

std::optional<provider_error> session::current(service s, bool force, std::string& token, std::string& base) {
  std::lock_guard lock{_mutex};
  if (force || _token.token.empty() || _clock.now() >= _token.refresh_at) {
    if (auto failed = issue_locked(nullptr)) {
      return failed;
    }
  }
  token = _token.token;
  for (auto type : catalog_types(s)) {
    for (const auto& [name, url] : _token.endpoints) {
      if (name == type) {
        base = with_version(s, url);
        return std::nullopt;
      }
    }
  }
  return provider_error{"misconfigured",
                        "the service catalog has no " + _interface + " endpoint of type " +
                            std::string{service_name(s)} + (_region.empty() ? "" : " in region " + _region),
                        false};
}

api_reply session::call(service s, std::string_view method, const std::string& path, const json* body) {
  api_reply out;
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::string token;
    std::string base;
    if (auto failed = current(s, attempt > 0, token, base)) {
      out = api_reply{};
      out.failure = std::move(failed);
      return out;
    }
    http::request req;
    req.method = std::string{method};
    req.url = path.rfind("http", 0) == 0 ? path : base + path;
    req.headers = {{"X-Auth-Token", token}, {"Accept", "application/json"}};
    if (s == service::compute) {
      req.headers.emplace_back("OpenStack-API-Version", "compute " + _compute_microversion);
      req.headers.emplace_back("X-OpenStack-Nova-API-Version", _compute_microversion);
    }
    if (body != nullptr) {
      req.headers.emplace_back("Content-Type", "application/json");
      req.body = body->dump();
    }
    out = api_reply{};
    auto res = _client.send(req);
    if (!res) {
      out.failure = transport_error(res.err(), std::string{method} + " " + req.url);
      return out;
    }
    out.status = res->status;
    out.text = std::move(res->body);
    if (!out.text.empty()) {
      out.body = json::parse(out.text, nullptr, false);
      if (out.body.is_discarded()) {
        out.body = nullptr;
      }
    }
    if (out.status != 401) {
      return out;
    }
    // The token expired early or was revoked: issue a new one and repeat once.
  }
  return out;
}

result<token_info> session::issue_token() {
  std::lock_guard lock{_mutex};
  token_info info;
  if (auto failed = issue_locked(&info)) {
    return make_error(failed->retryable ? errc::unavailable : errc::provider_error, failed->message);
  }
  return info;
}

std::string session::project_id() {
  std::lock_guard lock{_mutex};
  return _token.project_id;
}

result<std::string> session::endpoint(service s) {
  std::string token;
  std::string base;
  if (auto failed = current(s, false, token, base)) {
    return make_error(errc::provider_error, failed->message);
  }
  return base;
}

}  // namespace prov::providers::openstack
