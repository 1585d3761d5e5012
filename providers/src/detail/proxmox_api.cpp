#include "detail/proxmox_api.hpp"

#include <cstdlib>

namespace prov::providers::pve {

namespace {

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) {
    s.pop_back();
  }
  return s;
}

}  // namespace

provider_error error_of(const reply& r, std::string_view what) {
  if (r.failure) {
    return *r.failure;
  }
  std::string message = std::string{what} + ": HTTP " + std::to_string(r.status);
  if (!r.message.empty()) {
    message += ": " + r.message;
  }
  if (r.errors.is_object()) {
    for (const auto& [param, why] : r.errors.items()) {
      message += " [" + param + ": " + trimmed(why.is_string() ? why.get<std::string>() : why.dump()) + "]";
    }
  }
  switch (r.status) {
    case 400: return provider_error{"bad_spec", message, false};
    case 401: return provider_error{"unauthorized", message + " (Proxmox refused the credentials)", false};
    case 403: return provider_error{"forbidden", message, false};
    case 404: return provider_error{"not_found", message, false};
    case 429: return provider_error{"rate_limited", message, true};
    case 501: return provider_error{"unsupported", message, false};
    default: break;
  }
  if (r.status >= 500) {
    // PVE answers most failures of a call's own checks with 500 and a message.
    if (r.says("does not exist")) {
      return provider_error{"not_found", message, false};
    }
    if (r.says("already exists")) {
      return provider_error{"conflict", message, true};
    }
    if (r.says("locked") || r.says("lock ")) {
      return provider_error{"busy", message, true};
    }
    return provider_error{r.status >= 595 ? "unreachable" : "server_error", message, true};
  }
  if (r.status >= 200 && r.status < 300) {
    return provider_error{"bad_response", message + " (unexpected answer)", true};
  }
  return provider_error{"http_" + std::to_string(r.status), message, false};
}

bool vm_gone(const reply& r) {
  return !r.failure && (r.status == 404 || (r.status == 500 && r.says("does not exist")));
}

std::string form_encode(const params& p) {
  std::string out;
  for (const auto& [key, value] : p) {
    if (!out.empty()) {
      out += '&';
    }
    out += http::url_encode(key) + "=" + http::url_encode(value);
  }
  return out;
}

std::int64_t vmid_of(const json& j) {
  if (j.is_number_integer()) {
    return j.get<std::int64_t>();
  }
  if (j.is_string()) {
    const auto s = j.get<std::string>();
    char* end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (end != s.c_str() && *end == '\0') {
      return v;
    }
  }
  return 0;
}

std::string render_marker(const marker& m) {
  return "provisiond: VM of request " + m.request_id + " (managed, do not edit these lines)\n" +
         "provisiond-request: " + m.request_id + "\n" + "provisiond-tenant: " + m.tenant + "\n" +
         "provisiond-key: " + m.idempotency_key + "\n" + "provisiond-created: " + m.created_at + "\n";
}

std::optional<marker> parse_marker(std::string_view description) {
  marker m;
  std::size_t at = 0;
  while (at <= description.size()) {
    auto end = description.find('\n', at);
    if (end == std::string_view::npos) {
      end = description.size();
    }
    std::string line{description.substr(at, end - at)};
    if (!line.empty() && line.back() == '\r') {
      line.pop_back();
    }
    const auto field = [&](std::string_view key, std::string& out) {
      if (line.compare(0, key.size(), key) == 0) {
        out = line.substr(key.size());
      }
    };
    field("provisiond-request: ", m.request_id);
    field("provisiond-tenant: ", m.tenant);
    field("provisiond-key: ", m.idempotency_key);
    field("provisiond-created: ", m.created_at);
    at = end + 1;
  }
  if (m.request_id.empty()) {
    return std::nullopt;
  }
  return m;
}

std::vector<std::string> split_tags(std::string_view list) {
  std::vector<std::string> out;
  std::string tag;
  for (char c : list) {
    if (c == ';' || c == ',' || c == ' ') {
      if (!tag.empty()) {
        out.push_back(tag);
      }
      tag.clear();
    } else {
      tag.push_back(c);
    }
  }
  if (!tag.empty()) {
    out.push_back(tag);
  }
  return out;
}

std::string join_tags(const std::vector<std::string>& tags) {
  std::string out;
  for (const auto& t : tags) {
    if (!out.empty()) {
      out += ';';
    }
    out += t;
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> parse_property_string(std::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t at = 0;
  while (at < text.size()) {
    auto end = text.find(',', at);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    const auto part = text.substr(at, end - at);
    const auto eq = part.find('=');
    if (eq == std::string_view::npos) {
      out.emplace_back(std::string{part}, "");
    } else {
      out.emplace_back(std::string{part.substr(0, eq)}, std::string{part.substr(eq + 1)});
    }
    at = end + 1;
  }
  return out;
}

std::string render_property_string(const std::vector<std::pair<std::string, std::string>>& props) {
  std::string out;
  for (const auto& [key, value] : props) {
    if (!out.empty()) {
      out += ',';
    }
    out += value.empty() ? key : key + "=" + value;
  }
  return out;
}

std::optional<double> drive_size_gib(std::string_view drive) {
  for (const auto& [key, value] : parse_property_string(drive)) {
    if (key != "size" || value.empty()) {
      continue;
    }
    char* end = nullptr;
    const double n = std::strtod(value.c_str(), &end);
    if (end == value.c_str()) {
      return std::nullopt;
    }
    const std::string unit{end};
    if (unit.empty()) {
      return n / (1024.0 * 1024.0 * 1024.0);  // bytes
    }
    if (unit == "K") {
      return n / (1024.0 * 1024.0);
    }
    if (unit == "M") {
      return n / 1024.0;
    }
    if (unit == "G") {
      return n;
    }
    if (unit == "T") {
      return n * 1024.0;
    }
    return std::nullopt;
  }
  return std::nullopt;
}

std::string upid_node(std::string_view upid) {
  if (upid.substr(0, 5) != "UPID:") {
    return {};
  }
  const auto rest = upid.substr(5);
  return std::string{rest.substr(0, rest.find(':'))};
}

// ---------------------------------------------------------------------------------------------
// Client

api_client::api_client(options o) : _options(std::move(o)), _http(_options.http) {
  _endpoint = _options.endpoint;
  while (!_endpoint.empty() && _endpoint.back() == '/') {
    _endpoint.pop_back();
  }
  constexpr std::string_view suffix = "/api2/json";
  if (_endpoint.size() >= suffix.size() && _endpoint.compare(_endpoint.size() - suffix.size(), suffix.size(), suffix) == 0) {
    _endpoint.resize(_endpoint.size() - suffix.size());
  }
}

std::size_t api_client::logins() const {
  std::lock_guard<std::mutex> guard{_mutex};
  return _logins;
}

reply api_client::send(const std::string& method, const std::string& path, const params& p,
                       const std::string& ticket, const std::string& csrf) {
  http::request req;
  req.method = method;
  req.url = _endpoint + "/api2/json" + path;
  req.headers = {{"Accept", "application/json"}};
  if (!_options.token_id.empty()) {
    req.headers.emplace_back("Authorization", "PVEAPIToken=" + _options.token_id + "=" + _options.secret);
  } else if (!ticket.empty()) {
    req.headers.emplace_back("Cookie", "PVEAuthCookie=" + ticket);
    if (method != "GET") {
      req.headers.emplace_back("CSRFPreventionToken", csrf);
    }
  }
  const std::string form = form_encode(p);
  if (method == "GET" || method == "DELETE") {
    if (!form.empty()) {
      req.url += "?" + form;
    }
  } else {
    req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    req.body = form;
  }
  reply out;
  auto res = _http.send(req);
  if (!res) {
    out.failure = transport_error(res.err(), method + " " + path);
    return out;
  }
  out.status = res->status;
  json body = res->body.empty() ? json{} : json::parse(res->body, nullptr, false);
  if (body.is_object()) {
    out.data = body.value("data", json{});
    if (auto m = body.find("message"); m != body.end() && m->is_string()) {
      out.message = trimmed(m->get<std::string>());
    }
    if (auto e = body.find("errors"); e != body.end() && e->is_object()) {
      out.errors = *e;
    }
  }
  return out;
}

std::optional<provider_error> api_client::login_locked() {
  auto r = send("POST", "/access/ticket", {{"username", _options.username}, {"password", _options.password}}, "", "");
  if (r.status == 401 || r.status == 403) {
    return provider_error{"unauthorized",
                          "log in to Proxmox as " + _options.username +
                              ": authentication failure (check the cluster's username and password)",
                          false};
  }
  if (!r.ok() || !r.data.is_object() || !r.data.contains("ticket") || !r.data["ticket"].is_string()) {
    return error_of(r, "log in to Proxmox as " + _options.username);
  }
  _ticket = r.data["ticket"].get<std::string>();
  _csrf = r.data.value("CSRFPreventionToken", std::string{});
  ++_logins;
  return std::nullopt;
}

reply api_client::call(const std::string& method, const std::string& path, const params& p) {
  const bool tickets = _options.token_id.empty();
  for (int attempt = 0;; ++attempt) {
    std::string ticket;
    std::string csrf;
    if (tickets) {
      std::lock_guard<std::mutex> guard{_mutex};
      if (_ticket.empty()) {
        if (auto failed = login_locked()) {
          reply out;
          out.failure = failed;
          return out;
        }
      }
      ticket = _ticket;
      csrf = _csrf;
    }
    auto out = send(method, path, p, ticket, csrf);
    if (out.status == 401 && attempt == 0) {
      // An expired ticket (2 h) is renewed; a token is tried once more (e.g. a token created a
      // moment ago that this node's cluster file system has not seen yet).
      if (tickets) {
        std::lock_guard<std::mutex> guard{_mutex};
        if (_ticket == ticket) {
          _ticket.clear();
        }
      }
      continue;
    }
    return out;
  }
}

}  // namespace prov::providers::pve
