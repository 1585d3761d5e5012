#include "detail/vsphere_api.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "prov/core/secret_box.hpp"

// The calls and their `/rest` forms follow the vSphere Automation API reference:
//   Session        POST/DELETE /api/session; POST /rest/com/vmware/cis/session (?~action=get)
//   VM             /api/vcenter/vm (list: names, vms filters; create: VM.CreateSpec;
//                  ?action=clone: VM.CloneSpec, 7.0U1+), /api/vcenter/vm/{vm}
//   Power          POST /api/vcenter/vm/{vm}/power?action=start|stop|suspend;
//                  POST /rest/vcenter/vm/{vm}/power/start|stop|suspend
//   Tagging        /api/cis/tagging/category, /tag, /tag-association;
//                  /rest/com/vmware/cis/tagging/category/id:{id}, /tag/id:{id}?~action=...
//   Errors         /api: {"error_type": "NOT_FOUND", "messages": [{"id", "default_message", "args"}]}
//                  /rest: {"type": "com.vmware.vapi.std.errors.not_found", "value": {"messages": [...]}}
// https://developer.broadcom.com/xapis/vsphere-automation-api/latest/ (vSphere 7/8, /api) and
// https://developer.broadcom.com/xapis/vsphere-automation-api/v6.5-v7.0u1/ (/rest).

namespace prov::providers::vsphere {

namespace {

/// Query keys of `/rest` list filters that are scalar (the rest are sets: `filter.names.1`).
bool scalar_filter(std::string_view key) {
  return key == "type";
}

std::string lowercase_to_upper(std::string s) {
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') {
      c = static_cast<char>(c - 'a' + 'A');
    }
  }
  return s;
}

std::string join_query(const std::vector<std::pair<std::string, std::string>>& query) {
  std::string out;
  for (const auto& [key, value] : query) {
    out += out.empty() ? "?" : "&";
    out += key + "=" + http::url_encode(value);
  }
  return out;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

}  // namespace

result<rendered> render(const operation& op, dialect d) {
  rendered out;
  out.method = op.method;
  if (d == dialect::api) {
    out.target = op.path + join_query(op.query);
    if (op.body) {
      out.body = op.body->dump();
    }
    return out;
  }
  std::string action;
  std::vector<std::pair<std::string, std::string>> rest_query;
  for (const auto& [key, value] : op.query) {
    if (key == "action") {
      action = value;
    }
  }
  std::optional<json> body = op.body;
  std::string path;
  if (op.path == "/api/session") {
    path = "/rest/com/vmware/cis/session";
    if (op.method == "GET") {
      out.method = "POST";
      rest_query.emplace_back("~action", "get");
    }
  } else if (starts_with(op.path, "/api/cis/tagging/")) {
    // /api/cis/tagging/<service>[/<id>] -> /rest/com/vmware/cis/tagging/<service>[/id:<id>]
    const std::string tail = op.path.substr(std::string_view{"/api/cis/tagging/"}.size());
    const auto slash = tail.find('/');
    path = "/rest/com/vmware/cis/tagging/" + tail.substr(0, slash);
    if (slash != std::string::npos) {
      path += "/id:" + tail.substr(slash + 1);
    }
    if (action == "list-tags-for-category" && body && body->contains("category_id")) {
      path += "/id:" + (*body)["category_id"].get<std::string>();
      body.reset();
    }
    if (!action.empty()) {
      rest_query.emplace_back("~action", action);
    }
  } else if (starts_with(op.path, "/api/vcenter/")) {
    path = "/rest" + op.path.substr(4);
    const bool power = path.size() > 6 && path.compare(path.size() - 6, 6, "/power") == 0;
    if (power && !action.empty()) {
      path += "/" + action;  // POST /rest/vcenter/vm/{vm}/power/start
    } else if (op.path == "/api/vcenter/vm" && action == "clone") {
      return make_error(errc::unsupported, "cloning a VM needs the /api of vSphere 7.0U1 or later");
    } else if (!action.empty()) {
      rest_query.emplace_back("action", action);
    }
    std::map<std::string, int> index;
    for (const auto& [key, value] : op.query) {
      if (key == "action") {
        continue;
      }
      if (scalar_filter(key)) {
        rest_query.emplace_back("filter." + key, value);
      } else {
        rest_query.emplace_back("filter." + key + "." + std::to_string(++index[key]), value);
      }
    }
  } else if (starts_with(op.path, "/api/")) {
    path = "/rest" + op.path.substr(4);
    for (const auto& q : op.query) {
      rest_query.push_back(q);
    }
  } else {
    return make_error(errc::invalid_argument, "not an /api path: " + op.path);
  }
  out.target = path + join_query(rest_query);
  if (body) {
    out.body = op.rest_wrap.empty() ? body->dump() : json{{op.rest_wrap, *body}}.dump();
  }
  return out;
}

void parse_error(const json& body, reply& r) {
  if (!body.is_object()) {
    return;
  }
  const json* messages = nullptr;
  if (auto t = body.find("error_type"); t != body.end() && t->is_string()) {
    r.error_type = t->get<std::string>();
    if (auto m = body.find("messages"); m != body.end()) {
      messages = &*m;
    }
  } else if (auto t = body.find("type"); t != body.end() && t->is_string()) {
    // "com.vmware.vapi.std.errors.not_found" -> "NOT_FOUND"
    const auto type = t->get<std::string>();
    r.error_type = lowercase_to_upper(type.substr(type.rfind('.') + 1));
    if (auto v = body.find("value"); v != body.end() && v->is_object()) {
      if (auto m = v->find("messages"); m != v->end()) {
        messages = &*m;
      }
    }
  }
  if (messages != nullptr && messages->is_array() && !messages->empty() && (*messages)[0].is_object()) {
    const auto& first = (*messages)[0];
    if (auto dm = first.find("default_message"); dm != first.end() && dm->is_string()) {
      r.message = dm->get<std::string>();
    }
  }
}

provider_error error_of(const reply& r, std::string_view what) {
  if (r.failure) {
    return *r.failure;
  }
  std::string message = std::string{what} + ": HTTP " + std::to_string(r.status);
  if (!r.error_type.empty()) {
    message += " " + r.error_type;
  }
  if (!r.message.empty()) {
    message += ": " + r.message;
  }
  const auto& t = r.error_type;
  if (t == "UNAUTHENTICATED") {
    return provider_error{"unauthorized", message + " (vCenter refused the session after a new login)", false};
  }
  if (t == "UNAUTHORIZED") {
    return provider_error{"forbidden", message, false};
  }
  if (t == "NOT_FOUND" || t == "OPERATION_NOT_FOUND") {
    return provider_error{"not_found", message, false};
  }
  if (t == "ALREADY_EXISTS" || t == "CONCURRENT_CHANGE") {
    return provider_error{"conflict", message, true};
  }
  if (t == "INVALID_ARGUMENT" || t == "INVALID_ELEMENT_CONFIGURATION" || t == "INVALID_ELEMENT_TYPE" ||
      t == "INVALID_REQUEST" || t == "UNEXPECTED_INPUT" || t == "UNSUPPORTED") {
    return provider_error{"bad_spec", message, false};
  }
  if (t == "UNABLE_TO_ALLOCATE_RESOURCE") {
    return provider_error{"capacity", message, false};
  }
  if (t == "RESOURCE_BUSY" || t == "RESOURCE_IN_USE" || t == "NOT_ALLOWED_IN_CURRENT_STATE" ||
      t == "RESOURCE_INACCESSIBLE") {
    return provider_error{"busy", message, true};
  }
  switch (r.status) {
    case 400: return provider_error{"bad_spec", message, false};
    case 401: return provider_error{"unauthorized", message + " (vCenter refused the session after a new login)", false};
    case 403: return provider_error{"forbidden", message, false};
    case 404: return provider_error{"not_found", message, false};
    case 409: return provider_error{"conflict", message, true};
    case 422: return provider_error{"bad_spec", message, false};
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

json as_map(const json& j) {
  if (j.is_object()) {
    return j;
  }
  json out = json::object();
  if (j.is_array()) {
    for (const auto& entry : j) {
      if (entry.is_object() && entry.contains("key") && entry["key"].is_string() && entry.contains("value")) {
        out[entry["key"].get<std::string>()] = entry["value"];
      }
    }
  }
  return out;
}

std::string render_marker(const marker& m) {
  return json{{"provisiond", 1},
              {"requestId", m.request_id},
              {"tenant", m.tenant},
              {"vm", m.vm_name},
              {"key", m.idempotency_key},
              {"createdAt", m.created_at},
              {"creating", m.creating},
              {"suspended", m.suspended}}
      .dump();
}

std::optional<marker> parse_marker(std::string_view description) {
  const json j = json::parse(description, nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("provisiond", 0) != 1) {
    return std::nullopt;
  }
  const auto text = [&](const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string{};
  };
  const auto flag = [&](const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_boolean() && it->get<bool>();
  };
  marker m;
  m.request_id = text("requestId");
  if (m.request_id.empty()) {
    return std::nullopt;
  }
  m.tenant = text("tenant");
  m.vm_name = text("vm");
  m.idempotency_key = text("key");
  m.created_at = text("createdAt");
  m.creating = flag("creating");
  m.suspended = flag("suspended");
  return m;
}

// ---------------------------------------------------------------------------------------------
// Session

api_client::api_client(options o) : _options(std::move(o)), _http(_options.http) {
  while (!_options.endpoint.empty() && _options.endpoint.back() == '/') {
    _options.endpoint.pop_back();
  }
  if (_options.dialect == "api") {
    _dialect = dialect::api;
  } else if (_options.dialect == "rest") {
    _dialect = dialect::rest;
  }
}

dialect api_client::current() const {
  std::lock_guard<std::mutex> guard{_mutex};
  return _dialect.value_or(dialect::api);
}

std::size_t api_client::logins() const {
  std::lock_guard<std::mutex> guard{_mutex};
  return _logins;
}

reply api_client::send(const std::string& method, const std::string& target, const std::string& body,
                       const std::string& session, dialect d) {
  http::request req;
  req.method = method;
  req.url = _options.endpoint + target;
  req.headers = {{"Accept", "application/json"}};
  if (!session.empty()) {
    req.headers.emplace_back("vmware-api-session-id", session);
  }
  if (!body.empty()) {
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = body;
  }
  reply out;
  auto res = _http.send(req);
  if (!res) {
    out.failure = transport_error(res.err(), method + " " + target);
    return out;
  }
  out.status = res->status;
  json parsed = res->body.empty() ? json{} : json::parse(res->body, nullptr, false);
  if (parsed.is_discarded()) {
    parsed = nullptr;
  }
  if (out.ok()) {
    if (d == dialect::rest && parsed.is_object() && parsed.contains("value")) {
      out.value = std::move(parsed["value"]);
    } else {
      out.value = std::move(parsed);
    }
  } else {
    parse_error(parsed, out);
  }
  return out;
}

std::optional<provider_error> api_client::login_locked() {
  std::vector<dialect> candidates;
  if (_dialect) {
    candidates = {*_dialect};
  } else {
    candidates = {dialect::api, dialect::rest};
  }
  const std::string basic = "Basic " + base64_encode(_options.username + ":" + _options.password);
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const dialect d = candidates[i];
    const std::string target = d == dialect::api ? "/api/session" : "/rest/com/vmware/cis/session";
    http::request req;
    req.method = "POST";
    req.url = _options.endpoint + target;
    req.headers = {{"Accept", "application/json"}, {"Authorization", basic}};
    auto res = _http.send(req);
    if (!res) {
      return transport_error(res.err(), "POST " + target);
    }
    reply r;
    r.status = res->status;
    json parsed = res->body.empty() ? json{} : json::parse(res->body, nullptr, false);
    if (parsed.is_discarded()) {
      parsed = nullptr;
    }
    if (r.status == 404 && i + 1 < candidates.size()) {
      continue;  // vSphere 6.7 has no /api: try /rest
    }
    if (r.status == 401 || r.status == 403) {
      parse_error(parsed, r);
      auto e = error_of(r, "log in to vCenter as " + _options.username);
      return provider_error{"unauthorized", e.message + " (check the cluster's username and password)", false};
    }
    if (!r.ok()) {
      parse_error(parsed, r);
      return error_of(r, "log in to vCenter");
    }
    // /api answers the session id as a JSON string; /rest as {"value": "<id>"}.
    const json id = d == dialect::rest && parsed.is_object() ? parsed.value("value", json{}) : parsed;
    if (!id.is_string() || id.get<std::string>().empty()) {
      return provider_error{"bad_response", "POST " + target + " answered no session id", true};
    }
    _session = id.get<std::string>();
    _dialect = d;
    ++_logins;
    return std::nullopt;
  }
  return provider_error{"internal", "no vCenter API dialect to log in with", false};
}

std::optional<provider_error> api_client::connect() {
  std::lock_guard<std::mutex> guard{_mutex};
  if (!_session.empty()) {
    return std::nullopt;
  }
  return login_locked();
}

reply api_client::call(const operation& op) {
  for (int attempt = 0;; ++attempt) {
    std::string session;
    dialect d = dialect::api;
    {
      std::lock_guard<std::mutex> guard{_mutex};
      if (_session.empty()) {
        if (auto failed = login_locked()) {
          reply out;
          out.failure = failed;
          return out;
        }
      }
      session = _session;
      d = *_dialect;
    }
    auto target = render(op, d);
    if (!target) {
      reply out;
      out.failure = transport_error(target.err(), op.method + " " + op.path);
      return out;
    }
    auto out = send(target->method, target->target, target->body, session, d);
    if (out.status == 401 && attempt == 0) {
      // The session expired (or vCenter restarted): log in again, once.
      std::lock_guard<std::mutex> guard{_mutex};
      if (_session == session) {
        _session.clear();
      }
      continue;
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// TCP probe

std::string tcp_probe(const std::string& host, int port, std::chrono::milliseconds timeout) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return "cannot resolve " + host + ": " + ::gai_strerror(rc);
  }
  std::string why = "no address for " + host;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      why = std::string{"socket: "} + std::strerror(errno);
      continue;
    }
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(0, left.count())));
      if (rc == 1) {
        int err = 0;
        socklen_t len = sizeof(err);
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        rc = err == 0 ? 0 : -1;
        why = err == 0 ? "" : std::strerror(err);
      } else {
        rc = -1;
        why = "no answer within " + std::to_string(timeout.count()) + " ms";
      }
    } else if (rc != 0) {
      why = std::strerror(errno);
    }
    ::close(fd);
    if (rc == 0) {
      ::freeaddrinfo(found);
      return {};
    }
  }
  ::freeaddrinfo(found);
  return "connect to " + host + ":" + service + ": " + why;
}

}  // namespace prov::providers::vsphere
