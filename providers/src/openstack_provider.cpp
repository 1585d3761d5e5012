#include "prov/providers/openstack_provider.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <thread>
#include <variant>

#include "detail/api_support.hpp"
#include "detail/cluster_config.hpp"
#include "detail/openstack_objects.hpp"
#include "detail/openstack_session.hpp"
#include "prov/core/time_format.hpp"
#include "prov/providers/http/client.hpp"

// API references (the fields used are cited where they are read or written):
//   Compute      https://docs.openstack.org/api-ref/compute/
//   Network      https://docs.openstack.org/api-ref/network/v2/
//   Block Storage https://docs.openstack.org/api-ref/block-storage/v3/
//   Image        https://docs.openstack.org/api-ref/image/v2/
//   Identity     https://docs.openstack.org/api-ref/identity/v3/

namespace prov::providers {

namespace {

using json = nlohmann::json;
using events::step_kind;
using steady = std::chrono::steady_clock;
using detail::text_at;
using openstack::api_reply;
using openstack::service;
using openstack::status_error;

/// A value or why there is none (with the retryable flag a plain `result` lacks).
template <class T>
class fallible {
 public:
  fallible(T value) : _v(std::in_place_index<0>, std::move(value)) {}
  fallible(provider_error e) : _v(std::in_place_index<1>, std::move(e)) {}
  bool ok() const noexcept { return _v.index() == 0; }
  T& operator*() { return std::get<0>(_v); }
  T* operator->() { return &std::get<0>(_v); }
  const provider_error& err() const { return std::get<1>(_v); }

 private:
  std::variant<T, provider_error> _v;
};

/// Failure of an action without a value (nullopt = success).
using failure = std::optional<provider_error>;

const json& member(const json& j, std::string_view key) {
  static const json null_value;
  if (!j.is_object()) {
    return null_value;
  }
  auto it = j.find(std::string{key});
  return it != j.end() ? *it : null_value;
}

const json& array_at(const json& j, std::string_view key) {
  static const json empty = json::array();
  const json& m = member(j, key);
  return m.is_array() ? m : empty;
}

std::optional<double> number_at(const json& j, std::string_view key) {
  const json& m = member(j, key);
  if (m.is_number()) {
    return m.get<double>();
  }
  return std::nullopt;
}

bool is_uuid(std::string_view s) {
  if (s.size() != 36) {
    return false;
  }
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') {
        return false;
      }
    } else if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

std::string enc(std::string_view s) { return http::url_encode(s); }

/// OpenStack timestamps: Nova/Neutron "2026-11-26T06:03:39Z", Cinder "2026-11-26T06:03:39.000000"
/// (UTC without a zone).
timestamp created_time(const json& object) {
  std::string text = text_at(object, {"created_at"});
  if (text.empty()) {
    text = text_at(object, {"created"});
  }
  if (text.size() >= 19 && text.back() != 'Z' && text.find('+', 19) == std::string::npos &&
      text.find('-', 19) == std::string::npos) {
    text += "Z";
  }
  return parse_rfc3339(text).value_or(timestamp{});
}


/// The unreleased resource of a kind that the request holds ("" if none).
std::string held(const std::vector<events::resource>& resources, std::string_view kind) {
  for (auto it = resources.rbegin(); it != resources.rend(); ++it) {
    if (it->kind == kind && !it->released) {
      return it->id;
    }
  }
  return {};
}

events::resource resource_from(std::string kind, const json& object, std::string name, const openstack::owner& fallback) {
  const auto o = openstack::owner_of(object).value_or(fallback);
  return events::resource{std::move(kind), text_at(object, {"id"}), std::move(name), o.step, o.idempotency_key, false};
}

/// One TCP connect with a deadline (the guest's SSH port): "" on success, else why not.
std::string tcp_connect(const std::string& address, int port, std::chrono::milliseconds timeout) {
  sockaddr_storage storage{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(port));
    length = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(port));
    length = sizeof(sockaddr_in6);
  } else {
    return "'" + address + "' is not an IP address";
  }
  const int fd = ::socket(storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return std::string{"socket: "} + std::strerror(errno);
  }
  std::string why;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0) {
    if (errno != EINPROGRESS) {
      why = std::strerror(errno);
    } else {
      pollfd p{fd, POLLOUT, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
      if (ready == 0) {
        why = "no answer within " + std::to_string(timeout.count()) + " ms";
      } else if (ready < 0) {
        why = std::string{"poll: "} + std::strerror(errno);
      } else {
        int code = 0;
        socklen_t size = sizeof(code);
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &size);
        if (code != 0) {
          why = std::strerror(code);
        }
      }
    }
  }
  ::close(fd);
  return why;
}

std::string url_host(const std::string& address) {
  return address.find(':') != std::string::npos ? "[" + address + "]" : address;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Settings and credentials

result<openstack_settings> openstack_settings::parse(std::string_view text) {
  openstack_settings s;
  json j = json::object();
  if (!text.empty()) {
    try {
      j = json::parse(text);
    } catch (const json::exception& e) {
      return make_error(errc::invalid_argument, std::string{"openstack settings are not JSON: "} + e.what());
    }
  }
  if (!j.is_object()) {
    return make_error(errc::invalid_argument, "openstack settings must be a JSON object");
  }
  const auto bad = [](const std::string& key, const std::string& why) {
    return make_error(errc::invalid_argument, "openstack settings: " + key + " " + why);
  };
  for (auto it = j.begin(); it != j.end(); ++it) {
    const auto& key = it.key();
    const auto& v = it.value();
    const detail::setting_field field{"openstack", key, v};
    status st;
    if (key == "region") {
      st = field.string(s.region);
    } else if (key == "interface") {
      st = field.string(s.interface);
      if (st && s.interface != "public" && s.interface != "internal" && s.interface != "admin") {
        return bad(key, "must be \"public\", \"internal\" or \"admin\"");
      }
    } else if (key == "image") {
      st = field.string(s.image);
    } else if (key == "flavor") {
      st = field.string(s.flavor);
    } else if (key == "network") {
      st = field.string(s.network);
    } else if (key == "externalNetwork") {
      st = field.string(s.external_network);
    } else if (key == "volumeSizeGb") {
      if (!v.is_number_integer() || v.get<std::int64_t>() < 0) {
        return bad(key, "must be a non-negative integer (0 = the request's storageGb)");
      }
      s.volume_size_gb = v.get<std::int64_t>();
    } else if (key == "verifyReachable") {
      st = field.boolean(s.verify_reachable);
    } else if (key == "httpProbe") {
      st = field.boolean(s.http_probe);
    } else if (key == "sshPort" || key == "httpProbePort") {
      if (!v.is_number_integer() || v.get<std::int64_t>() < 1 || v.get<std::int64_t>() > 65535) {
        return bad(key, "must be a port (1-65535)");
      }
      (key == "sshPort" ? s.ssh_port : s.http_port) = v.get<int>();
    } else if (key == "bootFromVolume") {
      if (v == "cinder") {
        s.boot_volume = openstack_boot_volume::cinder;
      } else if (v == "nova-bdm") {
        s.boot_volume = openstack_boot_volume::nova_bdm;
      } else {
        return bad(key, "must be \"cinder\" or \"nova-bdm\"");
      }
    } else if (key == "namePrefix") {
      st = field.string(s.name_prefix);
      if (st && s.name_prefix.size() > 40) {
        return bad(key, "must be at most 40 characters");
      }
    } else if (key == "keyName") {
      st = field.string(s.key_name);
    } else if (key == "cloudInitCredentials") {
      st = field.boolean(s.cloud_init_credentials);
    } else if (key == "loginUser") {
      st = field.string(s.login_user);
      bool valid = !s.login_user.empty() && s.login_user.size() <= 32 &&
                   ((s.login_user[0] >= 'a' && s.login_user[0] <= 'z') || s.login_user[0] == '_');
      for (char c : s.login_user) {
        valid = valid && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-');
      }
      if (st && !valid) {
        return bad(key, "must be a Linux user name ([a-z_][a-z0-9_-]*, at most 32)");
      }
    } else if (key == "suspendAction") {
      st = field.string(s.suspend_action);
      if (st && s.suspend_action != "stop" && s.suspend_action != "suspend") {
        return bad(key, "must be \"stop\" or \"suspend\"");
      }
    } else if (key == "computeMicroversion") {
      st = field.string(s.compute_microversion);
      if (st && (s.compute_microversion.rfind("2.", 0) != 0 || s.compute_microversion.size() < 3)) {
        return bad(key, "must be a compute microversion such as \"2.79\"");
      }
    } else if (key == "pollIntervalMs") {
      st = field.millis(s.poll_interval);
    } else if (key == "volumeTimeoutMs") {
      st = field.millis(s.volume_timeout);
    } else if (key == "portTimeoutMs") {
      st = field.millis(s.port_timeout);
    } else if (key == "activateTimeoutMs") {
      st = field.millis(s.activate_timeout);
    } else if (key == "deleteTimeoutMs") {
      st = field.millis(s.delete_timeout);
    } else if (key == "powerTimeoutMs") {
      st = field.millis(s.power_timeout);
    } else if (key == "verifyTimeoutMs") {
      st = field.millis(s.verify_timeout);
    } else if (key == "probeTimeoutMs") {
      st = field.millis(s.probe_timeout);
    } else if (key == "connectTimeoutMs") {
      st = field.millis(s.connect_timeout);
    } else if (key == "requestTimeoutMs") {
      st = field.millis(s.request_timeout);
    } else if (key == "verifyTls") {
      st = field.boolean(s.verify_tls);
    } else {
      return bad(key, "is not a known setting");
    }
    if (!st) {
      return st.err();
    }
  }
  if (s.image.empty()) {
    return bad("image", "is required (a Glance image name or id)");
  }
  if (s.network.empty()) {
    return bad("network", "is required (the private network's name or id)");
  }
  return s;
}

result<openstack_credentials> openstack_credentials::parse(std::string_view text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception&) {
    return make_error(errc::invalid_argument, "openstack credentials are not JSON");  // never echo secrets
  }
  if (!j.is_object()) {
    return make_error(errc::invalid_argument, "openstack credentials must be a JSON object");
  }
  openstack_credentials c;
  const std::map<std::string, std::string*> fields{
      {"username", &c.username},
      {"userId", &c.user_id},
      {"password", &c.password},
      {"userDomain", &c.user_domain},
      {"project", &c.project},
      {"projectId", &c.project_id},
      {"projectDomain", &c.project_domain},
      {"applicationCredentialId", &c.application_credential_id},
      {"applicationCredentialSecret", &c.application_credential_secret},
      {"caPem", &c.ca_pem},
  };
  for (auto it = j.begin(); it != j.end(); ++it) {
    const auto field = fields.find(it.key());
    if (field == fields.end()) {
      return make_error(errc::invalid_argument, "openstack credentials: " + it.key() + " is not a known field");
    }
    if (!it.value().is_string()) {
      return make_error(errc::invalid_argument, "openstack credentials: " + it.key() + " must be a string");
    }
    *field->second = it.value().get<std::string>();
  }
  const auto missing = [](const char* what) {
    return make_error(errc::invalid_argument, std::string{"openstack credentials: "} + what);
  };
  if (c.uses_application_credential() || !c.application_credential_secret.empty()) {
    if (c.application_credential_id.empty() || c.application_credential_secret.empty()) {
      return missing("applicationCredentialId and applicationCredentialSecret go together");
    }
    if (!c.password.empty() || !c.username.empty() || !c.user_id.empty()) {
      return missing("either an application credential or a password, not both");
    }
    return c;
  }
  if (c.password.empty()) {
    return missing("password (or an application credential) is required");
  }
  if (c.username.empty() && c.user_id.empty()) {
    return missing("username or userId is required");
  }
  if (c.project.empty() && c.project_id.empty()) {
    return missing("project or projectId is required");
  }
  if (c.user_domain.empty() || c.project_domain.empty()) {
    return missing("userDomain and projectDomain must not be empty");
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// The API calls

struct openstack_provider::impl {
  impl(std::string cluster_, std::string endpoint, const openstack_settings& s_, openstack_credentials creds,
       const clock* clk_)
      : cluster(std::move(cluster_)),
        s(s_),
        secret(creds.uses_application_credential() ? creds.application_credential_secret : creds.password),
        clk(clk_ != nullptr ? *clk_ : wall),
        api(std::move(endpoint), std::move(creds), s_, clk),
        probe([&] {
          http::client_options o;
          o.connect_timeout = s_.probe_timeout;
          o.request_timeout = s_.probe_timeout;
          o.max_idle_per_origin = 0;
          return o;
        }()) {}

  std::string cluster;
  openstack_settings s;
  std::string secret;  ///< the cluster's secret: seeds the login passwords
  system_clock_source wall;
  const clock& clk;
  openstack::session api;
  http::client probe;  ///< plain HTTP to the guests (verifyReachable)

  timestamp now() const { return clk.now(); }

  // ----------------------------------------------------------------------------------- waits

  /// Polls `check` every poll interval until it returns a value or an error, or `limit`
  /// passes (then a retryable timeout naming `what` and the last state seen).
  template <class T, class Check>
  fallible<T> poll(std::chrono::milliseconds limit, const std::string& what, Check check) {
    const auto deadline = steady::now() + limit;
    std::string last = "no answer yet";
    for (;;) {
      std::optional<fallible<T>> done = check(last);
      if (done) {
        return std::move(*done);
      }
      if (steady::now() + s.poll_interval > deadline) {
        return provider_error{"timeout", what + " within " + std::to_string(limit.count()) + " ms (last: " + last + ")",
                              true};
      }
      std::this_thread::sleep_for(s.poll_interval);
    }
  }

  /// A retryable error while polling is waited out (recorded as the last state); others end
  /// the wait.
  static std::optional<provider_error> fatal(const api_reply& r, const std::string& what, std::string& last) {
    auto e = status_error(r, what);
    if (e.retryable) {
      last = e.message;
      return std::nullopt;
    }
    return e;
  }

  // ----------------------------------------------------------------------------------- lookups

  /// Lists a collection, following Nova/Cinder pagination (`<key>_links` rel=next, by marker).
  fallible<std::vector<json>> list(service svc, const std::string& path, const std::string& key) {
    std::vector<json> items;
    std::string marker;
    for (int page = 0; page < 1000; ++page) {
      std::string url = path;
      if (!marker.empty()) {
        url += (url.find('?') == std::string::npos ? "?" : "&") + std::string{"marker="} + enc(marker);
      }
      auto r = api.call(svc, "GET", url);
      if (!r.ok() || !r.body.is_object()) {
        return status_error(r, "list " + key);
      }
      const auto& got = array_at(r.body, key);
      for (const auto& item : got) {
        items.push_back(item);
      }
      bool more = false;
      for (const auto& link : array_at(r.body, key + "_links")) {
        more = more || text_at(link, {"rel"}) == "next";
      }
      if (!more || got.empty()) {
        break;
      }
      marker = text_at(got.back(), {"id"});
    }
    return items;
  }

  /// Neutron lists are limited to the token's project (an admin token sees every project's).
  fallible<std::vector<json>> list_network(const std::string& collection, const std::string& query = "") {
    if (auto failed = ensure_token()) {
      return *failed;
    }
    std::string path = "/" + collection + "?project_id=" + enc(api.project_id());
    if (!query.empty()) {
      path += "&" + query;
    }
    const std::string key = collection == "security-groups" ? "security_groups" : collection;
    return list(service::network, path, key);
  }

  failure ensure_token() {
    auto ep = api.endpoint(service::network);
    if (!ep) {
      return provider_error{"misconfigured", ep.err().message, false};
    }
    return std::nullopt;
  }

  struct image_ref {
    std::string id;
    std::int64_t min_disk_gb = 0;
    std::int64_t size_bytes = 0;
  };

  /// https://docs.openstack.org/api-ref/image/v2/#show-image, #list-images (name filter)
  fallible<image_ref> resolve_image(const std::string& ref) {
    const auto from = [](const json& image) {
      image_ref out;
      out.id = text_at(image, {"id"});
      out.min_disk_gb = static_cast<std::int64_t>(number_at(image, "min_disk").value_or(0));
      out.size_bytes = static_cast<std::int64_t>(number_at(image, "size").value_or(0));
      return out;
    };
    if (is_uuid(ref)) {
      auto r = api.call(service::image, "GET", "/images/" + ref);
      if (r.ok() && r.body.is_object()) {
        return from(r.body);
      }
      if (r.status != 404) {
        return status_error(r, "read image " + ref);
      }
    }
    auto r = api.call(service::image, "GET", "/images?name=" + enc(ref) + "&status=active");
    if (!r.ok() || !r.body.is_object()) {
      return status_error(r, "find image " + ref);
    }
    const auto& found = array_at(r.body, "images");
    if (found.empty()) {
      return provider_error{"bad_spec", "image '" + ref + "' does not exist (or is not active) in Glance", false};
    }
    if (found.size() > 1) {
      return provider_error{"bad_spec", "image name '" + ref + "' is ambiguous (" + std::to_string(found.size()) +
                                            " images): configure its id",
                            false};
    }
    return from(found[0]);
  }

  struct flavor_ref {
    std::string id;
    std::string name;
  };

  /// https://docs.openstack.org/api-ref/compute/#show-flavor-details, #list-flavors-with-details
  fallible<flavor_ref> resolve_flavor(const std::string& ref, const events::resource_spec& spec) {
    if (!ref.empty()) {
      auto r = api.call(service::compute, "GET", "/flavors/" + enc(ref));
      if (r.ok() && r.body.is_object()) {
        return flavor_ref{text_at(r.body, {"flavor", "id"}), text_at(r.body, {"flavor", "name"})};
      }
      if (r.status != 404) {
        return status_error(r, "read flavor " + ref);
      }
    }
    auto all = list(service::compute, "/flavors/detail", "flavors");
    if (!all.ok()) {
      return all.err();
    }
    if (!ref.empty()) {
      for (const auto& f : *all) {
        if (text_at(f, {"name"}) == ref) {
          return flavor_ref{text_at(f, {"id"}), ref};
        }
      }
      return provider_error{"bad_spec", "flavor '" + ref + "' does not exist", false};
    }
    // The smallest flavor with enough vCPUs and RAM for the request.
    const json* best = nullptr;
    const auto key = [](const json& f) {
      return std::make_tuple(number_at(f, "vcpus").value_or(0), number_at(f, "ram").value_or(0),
                             number_at(f, "disk").value_or(0), text_at(f, {"name"}));
    };
    for (const auto& f : *all) {
      const double vcpus = number_at(f, "vcpus").value_or(0);
      const double ram = number_at(f, "ram").value_or(0);
      if (vcpus * 1000 < static_cast<double>(spec.cpu_millis) || ram < static_cast<double>(spec.memory_mb)) {
        continue;
      }
      if (best == nullptr || key(f) < key(*best)) {
        best = &f;
      }
    }
    if (best == nullptr) {
      return provider_error{"bad_spec",
                            "no flavor has " + std::to_string(spec.cpu_millis) + " mCPU and " +
                                std::to_string(spec.memory_mb) + " MB RAM",
                            false};
    }
    return flavor_ref{text_at(*best, {"id"}), text_at(*best, {"name"})};
  }

  /// https://docs.openstack.org/api-ref/network/v2/#show-network-details, #list-networks
  fallible<std::string> resolve_network(const std::string& ref, bool external) {
    if (ref.empty() && external) {
      auto r = api.call(service::network, "GET", "/networks?router:external=true");
      if (!r.ok() || !r.body.is_object()) {
        return status_error(r, "find external networks");
      }
      const auto& found = array_at(r.body, "networks");
      if (found.size() != 1) {
        return provider_error{"misconfigured",
                              std::to_string(found.size()) +
                                  " external networks are visible: set externalNetwork in the cluster's settings",
                              false};
      }
      return text_at(found[0], {"id"});
    }
    if (is_uuid(ref)) {
      auto r = api.call(service::network, "GET", "/networks/" + ref);
      if (r.ok() && r.body.is_object()) {
        return text_at(r.body, {"network", "id"});
      }
      if (r.status != 404) {
        return status_error(r, "read network " + ref);
      }
    }
    auto r = api.call(service::network, "GET", "/networks?name=" + enc(ref));
    if (!r.ok() || !r.body.is_object()) {
      return status_error(r, "find network " + ref);
    }
    const auto& found = array_at(r.body, "networks");
    if (found.empty()) {
      return provider_error{"misconfigured", "network '" + ref + "' does not exist", false};
    }
    if (found.size() > 1) {
      return provider_error{"misconfigured", "network name '" + ref + "' is ambiguous: configure its id", false};
    }
    return text_at(found[0], {"id"});
  }

  // ------------------------------------------------------------------------ finding our objects

  fallible<std::optional<json>> find_security_group(const std::string& request_id) {
    auto found = list_network("security-groups", "name=" + enc(openstack::security_group_name(s.name_prefix, request_id)));
    if (!found.ok()) {
      return found.err();
    }
    for (auto& g : *found) {
      if (openstack::owned_by(g, request_id)) {
        return std::optional<json>{g};
      }
    }
    return std::optional<json>{};
  }

  /// https://docs.openstack.org/api-ref/block-storage/v3/#list-accessible-volumes-with-details
  fallible<std::optional<json>> find_volume(const std::string& request_id) {
    auto found = list(service::volume, "/volumes/detail?name=" + enc(openstack::volume_name(s.name_prefix, request_id)),
                      "volumes");
    if (!found.ok()) {
      return found.err();
    }
    for (auto& v : *found) {
      if (openstack::owned_by(v, request_id)) {
        return std::optional<json>{v};
      }
    }
    return std::optional<json>{};
  }

  /// https://docs.openstack.org/api-ref/compute/#list-servers-detailed (`tags` filter, 2.26)
  fallible<std::vector<json>> servers_of(const std::string& request_id) {
    auto found = list(service::compute, "/servers/detail?tags=" + enc(openstack::request_tag(request_id)), "servers");
    if (!found.ok()) {
      return found.err();
    }
    std::vector<json> ours;
    for (auto& v : *found) {
      if (openstack::owned_by(v, request_id)) {
        ours.push_back(std::move(v));
      }
    }
    return ours;
  }

  fallible<std::optional<json>> find_server(const std::string& request_id) {
    auto found = servers_of(request_id);
    if (!found.ok()) {
      return found.err();
    }
    if (found->empty()) {
      return std::optional<json>{};
    }
    return std::optional<json>{found->front()};
  }

  /// The id of a resource the request holds, else of the one found by its marks ("" = none).
  fallible<std::string> locate(const std::vector<events::resource>& resources, std::string_view kind,
                               const std::string& request_id) {
    if (auto id = held(resources, kind); !id.empty()) {
      return id;
    }
    fallible<std::optional<json>> found = kind == "server"           ? find_server(request_id)
                                          : kind == "security_group" ? find_security_group(request_id)
                                                                     : find_volume(request_id);
    if (!found.ok()) {
      return found.err();
    }
    return *found ? text_at(**found, {"id"}) : std::string{};
  }

  /// Neutron tags: https://docs.openstack.org/api-ref/network/v2/#replace-all-tags
  failure tag_network_object(const std::string& collection, const std::string& id, const std::string& request_id) {
    const auto body = openstack::tags_body(request_id);
    auto r = api.call(service::network, "PUT", "/" + collection + "/" + id + "/tags", &body);
    if (!r.ok()) {
      return status_error(r, "tag " + collection + " " + id);
    }
    return std::nullopt;
  }

  // --------------------------------------------------------------------------------- allocate

  /// https://docs.openstack.org/api-ref/network/v2/#create-security-group
  fallible<json> ensure_security_group(const openstack::owner& o) {
    auto found = find_security_group(o.request_id);
    if (!found.ok()) {
      return found.err();
    }
    json group;
    if (*found) {
      group = **found;
    } else {
      const auto name = openstack::security_group_name(s.name_prefix, o.request_id);
      const auto body = openstack::security_group_body(name, o);
      auto r = api.call(service::network, "POST", "/security-groups", &body);
      if (!r.ok() || !member(r.body, "security_group").is_object()) {
        return status_error(r, "create security group " + name);
      }
      group = r.body["security_group"];
    }
    if (auto failed = tag_network_object("security-groups", text_at(group, {"id"}), o.request_id)) {
      return *failed;
    }
    return group;
  }

  /// https://docs.openstack.org/api-ref/block-storage/v3/#create-a-volume
  fallible<json> ensure_volume(const openstack::owner& o, std::int64_t size_gb, const std::string& image_id) {
    auto found = find_volume(o.request_id);
    if (!found.ok()) {
      return found.err();
    }
    if (*found) {
      return **found;
    }
    const auto name = openstack::volume_name(s.name_prefix, o.request_id);
    const auto body = openstack::volume_body(name, size_gb, image_id, o);
    auto r = api.call(service::volume, "POST", "/volumes", &body);
    if (!r.ok() || !member(r.body, "volume").is_object()) {
      return status_error(r, "create volume " + name);
    }
    return r.body["volume"];
  }

  /// https://docs.openstack.org/api-ref/block-storage/v3/#show-a-volume-s-details
  fallible<json> wait_volume_available(const std::string& id) {
    return poll<json>(s.volume_timeout, "volume " + id + " did not become available",
                      [&](std::string& last) -> std::optional<fallible<json>> {
                        auto r = api.call(service::volume, "GET", "/volumes/" + id);
                        if (r.ok() && member(r.body, "volume").is_object()) {
                          const auto st = text_at(r.body, {"volume", "status"});
                          if (st == "available" || st == "in-use") {
                            return fallible<json>{r.body["volume"]};
                          }
                          if (st.rfind("error", 0) == 0) {
                            return fallible<json>{provider_error{
                                "volume_error", "volume " + id + " went to status '" + st + "' while being made", false}};
                          }
                          last = "status '" + st + "'";
                          return std::nullopt;
                        }
                        if (auto e = fatal(r, "read volume " + id, last)) {
                          return fallible<json>{*e};
                        }
                        return std::nullopt;
                      });
  }

  /// https://docs.openstack.org/api-ref/compute/#create-server
  fallible<json> ensure_server(const openstack::owner& o, const openstack::server_plan& plan) {
    auto found = find_server(o.request_id);
    if (!found.ok()) {
      return found.err();
    }
    if (*found) {
      return **found;
    }
    const auto body = openstack::server_body(plan, o);
    auto r = api.call(service::compute, "POST", "/servers", &body);
    if (!r.ok() || !member(r.body, "server").is_object()) {
      return status_error(r, "create server " + plan.name);
    }
    return r.body["server"];
  }

  std::int64_t volume_size(const events::resource_spec& spec, const image_ref& image) const {
    std::int64_t size = s.volume_size_gb > 0 ? s.volume_size_gb : spec.storage_gb;
    const std::int64_t image_gb = (image.size_bytes + (1LL << 30) - 1) >> 30;
    return std::max({size, image.min_disk_gb, image_gb, std::int64_t{1}});
  }

  step_outcome allocate(const step_call& call) {
    step_outcome out;
    const openstack::owner o{call.request_id, call.tenant, call.idempotency_key, call.step};
    // Per-request overrides of the cluster's image and flavor (the spec's "extra" object).
    std::string image_name = s.image;
    std::string flavor_name = s.flavor;
    if (!call.spec.extra_json.empty()) {
      const json extra = json::parse(call.spec.extra_json, nullptr, false);
      if (const auto& v = member(extra, "image"); v.is_string()) {
        image_name = v.get<std::string>();
      }
      if (const auto& v = member(extra, "flavor"); v.is_string()) {
        flavor_name = v.get<std::string>();
      }
    }
    auto image = resolve_image(image_name);
    if (!image.ok()) {
      out.error = image.err();
      return out;
    }
    auto flavor = resolve_flavor(flavor_name, call.spec);
    if (!flavor.ok()) {
      out.error = flavor.err();
      return out;
    }
    auto network = resolve_network(s.network, false);
    if (!network.ok()) {
      out.error = network.err();
      return out;
    }

    auto group = ensure_security_group(o);
    if (!group.ok()) {
      out.error = group.err();
      return out;
    }
    out.resources.push_back(resource_from("security_group", *group, text_at(*group, {"name"}), o));

    openstack::server_plan plan;
    plan.name = openstack::server_name(s.name_prefix, call.request_id);
    plan.flavor_id = flavor->id;
    plan.image_id = image->id;
    plan.network_id = *network;
    plan.security_group_id = text_at(*group, {"id"});
    plan.boot_volume = s.boot_volume;
    plan.volume_size_gb = volume_size(call.spec, *image);
    plan.key_name = s.key_name;
    const auto password = openstack::login_password(secret, call.request_id);
    if (s.cloud_init_credentials) {
      plan.user_data = openstack::cloud_config(s.login_user, password);
    }

    if (s.boot_volume == openstack_boot_volume::cinder) {
      auto volume = ensure_volume(o, plan.volume_size_gb, image->id);
      if (!volume.ok()) {
        out.error = volume.err();
        return out;
      }
      out.resources.push_back(resource_from("volume", *volume, text_at(*volume, {"name"}), o));
      plan.volume_id = text_at(*volume, {"id"});
      auto ready = wait_volume_available(plan.volume_id);
      if (!ready.ok()) {
        out.error = ready.err();
        return out;
      }
    }

    auto server = ensure_server(o, plan);
    if (!server.ok()) {
      out.error = server.err();
      return out;
    }
    out.resources.push_back(resource_from("server", *server, plan.name, o));
    if (s.cloud_init_credentials) {
      out.credentials = {{"username", s.login_user}, {"password", password}};
    }
    out.ok = true;
    return out;
  }

  // -------------------------------------------------------------------------------- configure

  /// Why a server cannot go on: ERROR (with Nova's fault) or gone. nullopt = fine so far.
  static std::optional<provider_error> server_failed(const json& server, const std::string& id) {
    if (text_at(server, {"status"}) == "ERROR") {
      std::string fault = text_at(server, {"fault", "message"});
      const auto code = number_at(member(server, "fault"), "code");
      if (code) {
        fault += " (code " + std::to_string(static_cast<int>(*code)) + ")";
      }
      return provider_error{"server_error", "server " + id + " is in ERROR: " + (fault.empty() ? "no fault given" : fault),
                            false};
    }
    return std::nullopt;
  }

  /// The server's port on the private network, waiting (bounded) for Nova to make it.
  /// https://docs.openstack.org/api-ref/network/v2/#list-ports (`device_id` filter)
  fallible<json> wait_port(const std::string& server_id, const std::string& network_id) {
    return poll<json>(s.port_timeout, "server " + server_id + " got no port",
                      [&](std::string& last) -> std::optional<fallible<json>> {
                        auto r = api.call(service::network, "GET", "/ports?device_id=" + enc(server_id));
                        if (r.ok() && r.body.is_object()) {
                          for (const auto& p : array_at(r.body, "ports")) {
                            if (network_id.empty() || text_at(p, {"network_id"}) == network_id) {
                              return fallible<json>{p};
                            }
                          }
                          last = "no port yet";
                        } else if (auto e = fatal(r, "list ports of server " + server_id, last)) {
                          return fallible<json>{*e};
                        }
                        auto srv = api.call(service::compute, "GET", "/servers/" + server_id);
                        if (srv.status == 404) {
                          return fallible<json>{
                              provider_error{"not_found", "server " + server_id + " does not exist", false}};
                        }
                        if (srv.ok()) {
                          if (auto failed = server_failed(member(srv.body, "server"), server_id)) {
                            return fallible<json>{*failed};
                          }
                          last += ", server " + text_at(srv.body, {"server", "status"});
                        }
                        return std::nullopt;
                      });
  }

  /// https://docs.openstack.org/api-ref/network/v2/#create-security-group-rule (409 = exists)
  failure ensure_rules(const std::string& group_id) {
    auto r = api.call(service::network, "GET", "/security-groups/" + group_id);
    if (!r.ok() || !member(r.body, "security_group").is_object()) {
      return status_error(r, "read security group " + group_id);
    }
    std::set<int> present;
    for (const auto& rule : array_at(r.body["security_group"], "security_group_rules")) {
      const auto min = number_at(rule, "port_range_min");
      const auto max = number_at(rule, "port_range_max");
      if (text_at(rule, {"direction"}) == "ingress" && text_at(rule, {"ethertype"}) == "IPv4" &&
          text_at(rule, {"protocol"}) == "tcp" && min && max && *min == *max &&
          text_at(rule, {"remote_ip_prefix"}) == "0.0.0.0/0") {
        present.insert(static_cast<int>(*min));
      }
    }
    for (int port : openstack::ingress_ports()) {
      if (present.count(port) > 0) {
        continue;
      }
      const auto body = openstack::ingress_rule_body(group_id, port);
      auto created = api.call(service::network, "POST", "/security-group-rules", &body);
      if (!created.ok() && created.status != 409) {  // 409 SecurityGroupRuleExists: made by an earlier try
        return status_error(created, "create rule tcp/" + std::to_string(port) + " in security group " + group_id);
      }
    }
    return std::nullopt;
  }

  /// The request's floating IP on `port_id`: adopted (on the port, or ours and unattached),
  /// else made. https://docs.openstack.org/api-ref/network/v2/#create-floating-ip,
  /// #update-floating-ip
  fallible<json> ensure_floating_ip(const openstack::owner& o, const std::string& external_id, const json& port) {
    const std::string port_id = text_at(port, {"id"});
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto ours = list_network("floatingips");
      if (!ours.ok()) {
        return ours.err();
      }
      std::optional<json> unattached;
      for (const auto& fip : *ours) {
        const bool mine = openstack::owned_by(fip, o.request_id);
        if (text_at(fip, {"port_id"}) == port_id) {
          if (!mine) {
            return provider_error{"name_taken",
                                  "port " + port_id + " already has floating IP " +
                                      text_at(fip, {"floating_ip_address"}) + ", not made by provisiond for request " +
                                      o.request_id,
                                  false};
          }
          return fip;
        }
        if (mine && !unattached) {
          unattached = fip;
        }
      }
      if (unattached) {
        const json body{{"floatingip", {{"port_id", port_id}}}};
        auto r = api.call(service::network, "PUT", "/floatingips/" + text_at(*unattached, {"id"}), &body);
        if (!r.ok() || !member(r.body, "floatingip").is_object()) {
          return status_error(r, "associate floating IP " + text_at(*unattached, {"id"}));
        }
        return r.body["floatingip"];
      }
      const auto body = openstack::floating_ip_body(external_id, port_id, o);
      auto r = api.call(service::network, "POST", "/floatingips", &body);
      if (r.ok() && member(r.body, "floatingip").is_object()) {
        return r.body["floatingip"];
      }
      auto e = status_error(r, "create floating IP for port " + port_id);
      if (r.status != 409 || attempt > 0 || e.code == "quota_exceeded") {
        return e;
      }
      // 409: the port got a floating IP meanwhile (an earlier try of ours?): look again.
    }
    return provider_error{"conflict", "floating IP of port " + port_id + " keeps changing", true};
  }

  step_outcome configure(const step_call& call) {
    step_outcome out;
    const openstack::owner o{call.request_id, call.tenant, call.idempotency_key, call.step};
    auto server_id = locate(call.resources, "server", call.request_id);
    auto group_id = locate(call.resources, "security_group", call.request_id);
    if (!server_id.ok() || !group_id.ok()) {
      out.error = !server_id.ok() ? server_id.err() : group_id.err();
      return out;
    }
    if (server_id->empty() || group_id->empty()) {
      out.error = provider_error{"missing", "the request holds no server or security group to configure", false};
      return out;
    }
    if (auto failed = ensure_rules(*group_id)) {
      out.error = *failed;
      return out;
    }
    auto network = resolve_network(s.network, false);
    auto external = resolve_network(s.external_network, true);
    if (!network.ok() || !external.ok()) {
      out.error = !network.ok() ? network.err() : external.err();
      return out;
    }
    auto port = wait_port(*server_id, *network);
    if (!port.ok()) {
      out.error = port.err();
      return out;
    }
    auto fip = ensure_floating_ip(o, *external, *port);
    if (!fip.ok()) {
      out.error = fip.err();
      return out;
    }
    const std::string address = text_at(*fip, {"floating_ip_address"});
    out.resources.push_back(resource_from("floating_ip", *fip, address, o));
    if (auto failed = tag_network_object("floatingips", text_at(*fip, {"id"}), call.request_id)) {
      out.error = *failed;
      return out;
    }
    const std::string host = url_host(address);
    out.endpoints = {{"ssh", "ssh://" + (s.cloud_init_credentials ? s.login_user + "@" : std::string{}) + host + ":22"},
                     {"http", "http://" + host},
                     {"https", "https://" + host},
                     {"floatingIp", address},
                     {"fixedIp", text_at(*fip, {"fixed_ip_address"})},
                     {"server", *server_id}};
    out.ok = true;
    return out;
  }

  // --------------------------------------------------------------------------- activate/verify

  /// https://docs.openstack.org/api-ref/compute/#show-server-details
  fallible<json> wait_server_status(const std::string& id, const std::string& wanted, std::chrono::milliseconds limit) {
    return poll<json>(limit, "server " + id + " did not become " + wanted,
                      [&](std::string& last) -> std::optional<fallible<json>> {
                        auto r = api.call(service::compute, "GET", "/servers/" + id);
                        if (r.status == 404) {
                          return fallible<json>{provider_error{"not_found", "server " + id + " does not exist", false}};
                        }
                        if (r.ok() && member(r.body, "server").is_object()) {
                          const auto& server = r.body["server"];
                          if (text_at(server, {"status"}) == wanted) {
                            return fallible<json>{server};
                          }
                          if (auto failed = server_failed(server, id)) {
                            return fallible<json>{*failed};
                          }
                          last = "status " + text_at(server, {"status"});
                          const auto task = text_at(server, {"OS-EXT-STS:task_state"});
                          if (!task.empty()) {
                            last += ", task " + task;
                          }
                          return std::nullopt;
                        }
                        if (auto e = fatal(r, "read server " + id, last)) {
                          return fallible<json>{*e};
                        }
                        return std::nullopt;
                      });
  }

  step_outcome activate(const step_call& call) {
    step_outcome out;
    auto id = locate(call.resources, "server", call.request_id);
    if (!id.ok() || id->empty()) {
      out.error = id.ok() ? provider_error{"missing", "the request holds no server", false} : id.err();
      return out;
    }
    auto server = wait_server_status(*id, "ACTIVE", s.activate_timeout);
    if (!server.ok()) {
      out.error = server.err();
      return out;
    }
    out.ok = true;
    return out;
  }

  /// Verify over the network: the floating IP's SSH port (22) answers a TCP connect (polled
  /// until verifyTimeoutMs), then, with httpProbe, any HTTP answer on the HTTP port (80).
  failure verify_reachable(const std::string& address) {
    const auto deadline = steady::now() + s.verify_timeout;
    std::string why;
    for (;;) {
      why = tcp_connect(address, s.ssh_port, s.probe_timeout);
      if (why.empty() || steady::now() + s.poll_interval > deadline) {
        break;
      }
      std::this_thread::sleep_for(s.poll_interval);
    }
    if (!why.empty()) {
      return provider_error{"unreachable",
                            "ssh port " + std::to_string(s.ssh_port) + " of " + address + " does not answer: " + why, true};
    }
    if (s.http_probe) {
      http::request req;
      req.url = "http://" + url_host(address) + ":" + std::to_string(s.http_port) + "/";
      auto r = probe.send(req);
      if (!r) {
        return provider_error{"unreachable", "HTTP probe of " + req.url + " failed: " + r.err().message, true};
      }
    }
    return std::nullopt;
  }

  /// Verify by the API (guests not reachable from the engine, or clouds without a data
  /// plane): the server is ACTIVE and ours; its port on the private network exists, is bound
  /// to a host (binding:vif_type not unbound/binding_failed, where the token may see it) and
  /// carries our security group; the floating IP is on that port. Port status is not
  /// required to be ACTIVE.
  failure verify_by_api(const step_call& call, const std::string& server_id, const json& fip) {
    auto srv = api.call(service::compute, "GET", "/servers/" + server_id);
    if (!srv.ok() || !member(srv.body, "server").is_object()) {
      return srv.status == 404 ? provider_error{"missing", "server " + server_id + " does not exist", false}
                               : status_error(srv, "read server " + server_id);
    }
    const auto& server = srv.body["server"];
    if (!openstack::owned_by(server, call.request_id)) {
      return provider_error{"drift", "server " + server_id + " does not carry this request's metadata", false};
    }
    if (text_at(server, {"status"}) != "ACTIVE") {
      return provider_error{"not_active", "server " + server_id + " is " + text_at(server, {"status"}), false};
    }
    auto ports = api.call(service::network, "GET", "/ports?device_id=" + enc(server_id));
    if (!ports.ok() || !ports.body.is_object()) {
      return status_error(ports, "list ports of server " + server_id);
    }
    const std::string port_id = text_at(fip, {"port_id"});
    const json* port = nullptr;
    for (const auto& p : array_at(ports.body, "ports")) {
      if (text_at(p, {"id"}) == port_id) {
        port = &p;
      }
    }
    if (port == nullptr) {
      return provider_error{"drift",
                            "floating IP " + text_at(fip, {"floating_ip_address"}) + " is not on a port of server " +
                                server_id,
                            false};
    }
    const auto vif = text_at(*port, {"binding:vif_type"});
    if (vif == "unbound" || vif == "binding_failed") {
      return provider_error{"not_bound", "port " + port_id + " of server " + server_id + " is " + vif, false};
    }
    if (member(*port, "binding:host_id").is_string() && text_at(*port, {"binding:host_id"}).empty()) {
      return provider_error{"not_bound", "port " + port_id + " is bound to no host", false};
    }
    const std::string group_id = held(call.resources, "security_group");
    if (!group_id.empty()) {
      bool in_group = false;
      for (const auto& g : array_at(*port, "security_groups")) {
        in_group = in_group || (g.is_string() && g.get<std::string>() == group_id);
      }
      if (!in_group) {
        return provider_error{"drift", "port " + port_id + " is not in security group " + group_id, false};
      }
    }
    if (s.boot_volume == openstack_boot_volume::cinder) {
      const std::string volume_id = held(call.resources, "volume");
      bool attached = volume_id.empty();
      for (const auto& v : array_at(server, "os-extended-volumes:volumes_attached")) {
        attached = attached || text_at(v, {"id"}) == volume_id;
      }
      if (!attached) {
        return provider_error{"drift", "volume " + volume_id + " is not attached to server " + server_id, false};
      }
    }
    return std::nullopt;
  }

  step_outcome verify(const step_call& call) {
    step_outcome out;
    auto server_id = locate(call.resources, "server", call.request_id);
    if (!server_id.ok() || server_id->empty()) {
      out.error = server_id.ok() ? provider_error{"missing", "the request holds no server", false} : server_id.err();
      return out;
    }
    const std::string fip_id = held(call.resources, "floating_ip");
    if (fip_id.empty()) {
      out.error = provider_error{"missing", "the request holds no floating IP", false};
      return out;
    }
    auto r = api.call(service::network, "GET", "/floatingips/" + fip_id);
    if (!r.ok() || !member(r.body, "floatingip").is_object()) {
      out.error = r.status == 404 ? provider_error{"missing", "floating IP " + fip_id + " does not exist", false}
                                  : status_error(r, "read floating IP " + fip_id);
      return out;
    }
    const json fip = r.body["floatingip"];
    failure failed = s.verify_reachable ? verify_reachable(text_at(fip, {"floating_ip_address"}))
                                        : verify_by_api(call, *server_id, fip);
    if (failed) {
      out.error = *failed;
      return out;
    }
    out.ok = true;
    return out;
  }

  // ---------------------------------------------------------------------------------- release

  /// https://docs.openstack.org/api-ref/network/v2/#delete-floating-ip
  failure delete_floating_ip(const std::string& id) {
    auto r = api.call(service::network, "DELETE", "/floatingips/" + id);
    if (r.ok() || r.status == 404) {
      return std::nullopt;
    }
    return status_error(r, "delete floating IP " + id);
  }

  /// https://docs.openstack.org/api-ref/compute/#delete-server; then polls until 404.
  failure delete_server(const std::string& id) {
    auto r = api.call(service::compute, "DELETE", "/servers/" + id);
    if (r.status == 404) {
      return std::nullopt;
    }
    if (!r.ok()) {
      return status_error(r, "delete server " + id);
    }
    auto gone = poll<bool>(s.delete_timeout, "server " + id + " was not deleted",
                           [&](std::string& last) -> std::optional<fallible<bool>> {
                             auto g = api.call(service::compute, "GET", "/servers/" + id);
                             if (g.status == 404) {
                               return fallible<bool>{true};
                             }
                             if (g.ok()) {
                               const auto& server = member(g.body, "server");
                               if (text_at(server, {"status"}) == "DELETED") {
                                 return fallible<bool>{true};
                               }
                               last = "status " + text_at(server, {"status"}) + ", task " +
                                      text_at(server, {"OS-EXT-STS:task_state"});
                               return std::nullopt;
                             }
                             if (auto e = fatal(g, "read server " + id, last)) {
                               return fallible<bool>{*e};
                             }
                             return std::nullopt;
                           });
    return gone.ok() ? std::nullopt : std::optional<provider_error>{gone.err()};
  }

  /// Waits while the volume is attached or busy, deletes it, then polls until 404.
  /// https://docs.openstack.org/api-ref/block-storage/v3/#delete-a-volume
  failure delete_volume(const std::string& id) {
    static const std::set<std::string> busy{"in-use",      "attaching", "detaching",     "reserved",  "creating",
                                            "downloading", "uploading", "backing-up",    "restoring-backup",
                                            "maintenance", "extending", "awaiting-transfer"};
    bool asked = false;
    auto gone = poll<bool>(s.delete_timeout, "volume " + id + " was not deleted",
                           [&](std::string& last) -> std::optional<fallible<bool>> {
                             auto g = api.call(service::volume, "GET", "/volumes/" + id);
                             if (g.status == 404) {
                               return fallible<bool>{true};
                             }
                             if (!g.ok()) {
                               if (auto e = fatal(g, "read volume " + id, last)) {
                                 return fallible<bool>{*e};
                               }
                               return std::nullopt;
                             }
                             const auto st = text_at(g.body, {"volume", "status"});
                             last = "status '" + st + "'";
                             if (st == "deleting" || busy.count(st) > 0 || (asked && st != "error_deleting")) {
                               return std::nullopt;
                             }
                             auto d = api.call(service::volume, "DELETE", "/volumes/" + id);
                             if (d.ok() || d.status == 404) {
                               asked = true;
                               return std::nullopt;
                             }
                             if (d.status == 400 || d.status == 409) {
                               last += ", delete refused: " + openstack::error_detail(d.body, d.text);
                               return std::nullopt;  // attached a moment longer
                             }
                             if (auto e = fatal(d, "delete volume " + id, last)) {
                               return fallible<bool>{*e};
                             }
                             return std::nullopt;
                           });
    return gone.ok() ? std::nullopt : std::optional<provider_error>{gone.err()};
  }

  /// https://docs.openstack.org/api-ref/network/v2/#delete-security-group (409 while a port
  /// still uses it: the server's port goes a moment after the server)
  failure delete_security_group(const std::string& id) {
    auto done = poll<bool>(s.delete_timeout, "security group " + id + " was not deleted",
                           [&](std::string& last) -> std::optional<fallible<bool>> {
                             auto r = api.call(service::network, "DELETE", "/security-groups/" + id);
                             if (r.ok() || r.status == 404) {
                               return fallible<bool>{true};
                             }
                             if (r.status == 409) {
                               last = "in use: " + openstack::error_detail(r.body, r.text);
                               return std::nullopt;
                             }
                             if (auto e = fatal(r, "delete security group " + id, last)) {
                               return fallible<bool>{*e};
                             }
                             return std::nullopt;
                           });
    return done.ok() ? std::nullopt : std::optional<provider_error>{done.err()};
  }

  failure release(const std::string& kind, const std::string& id) {
    if (kind == "floating_ip") {
      return delete_floating_ip(id);
    }
    if (kind == "server") {
      return delete_server(id);
    }
    if (kind == "volume") {
      return delete_volume(id);
    }
    if (kind == "security_group") {
      return delete_security_group(id);
    }
    return std::nullopt;  // not a kind this provider makes
  }

  // ------------------------------------------------------------------------ suspend/reactivate

  /// https://docs.openstack.org/api-ref/compute/#stop-server-os-stop-action, #start-server-os-start-action,
  /// #suspend-server-suspend-action, #resume-suspended-server-resume-action
  action_outcome power(const service_call& call, bool on) {
    action_outcome out;
    auto id = locate(call.resources, "server", call.request_id);
    if (!id.ok() || id->empty()) {
      out.error = id.ok() ? provider_error{"not_found", "the request holds no server", false} : id.err();
      return out;
    }
    const bool stop_mode = s.suspend_action == "stop";
    const std::string off_status = stop_mode ? "SHUTOFF" : "SUSPENDED";
    const std::string wanted = on ? "ACTIVE" : off_status;
    auto r = api.call(service::compute, "GET", "/servers/" + *id);
    if (r.status == 404) {
      out.error = provider_error{"not_found", "server " + *id + " does not exist", false};
      return out;
    }
    if (!r.ok() || !member(r.body, "server").is_object()) {
      out.error = status_error(r, "read server " + *id);
      return out;
    }
    const auto current = text_at(r.body, {"server", "status"});
    if (current == wanted) {
      out.ok = true;
      return out;
    }
    if (auto failed = server_failed(r.body["server"], *id)) {
      out.error = *failed;
      return out;
    }
    std::string action;
    if (on) {
      action = current == "SUSPENDED" ? "resume" : current == "PAUSED" ? "unpause" : "os-start";
    } else {
      action = stop_mode ? "os-stop" : "suspend";
    }
    const json body{{action, nullptr}};
    auto acted = api.call(service::compute, "POST", "/servers/" + *id + "/action", &body);
    // 409: a task is running (e.g. already powering off): wait for the outcome below.
    if (!acted.ok() && acted.status != 409) {
      out.error = status_error(acted, action + " server " + *id);
      return out;
    }
    auto reached = wait_server_status(*id, wanted, s.power_timeout);
    if (!reached.ok()) {
      out.error = reached.err();
      return out;
    }
    out.ok = true;
    return out;
  }

  // ---------------------------------------------------------------------------------- metrics

  /// Standardized diagnostics (compute 2.48+): https://docs.openstack.org/api-ref/compute/#show-server-diagnostics
  static void read_diagnostics(const json& d, metrics_sample& m) {
    double cpu_sum = 0;
    int cpu_count = 0;
    for (const auto& cpu : array_at(d, "cpu_details")) {
      if (auto u = number_at(cpu, "utilisation")) {
        cpu_sum += *u;
        ++cpu_count;
      }
    }
    if (cpu_count > 0) {
      m.cpu_percent = cpu_sum / cpu_count;
    }
    const auto& memory = member(d, "memory_details");
    if (auto used = number_at(memory, "used")) {
      m.memory_used_mb = *used;
    }
    if (auto maximum = number_at(memory, "maximum")) {
      m.extra["memory_max_mb"] = *maximum;
    }
    double rx = 0;
    double tx = 0;
    bool nics = false;
    for (const auto& nic : array_at(d, "nic_details")) {
      rx += number_at(nic, "rx_octets").value_or(0);
      tx += number_at(nic, "tx_octets").value_or(0);
      nics = true;
    }
    if (nics) {
      m.network_rx_bytes = rx;
      m.network_tx_bytes = tx;
    }
    double read = 0;
    double written = 0;
    for (const auto& disk : array_at(d, "disk_details")) {
      read += number_at(disk, "read_bytes").value_or(0);
      written += number_at(disk, "write_bytes").value_or(0);
    }
    m.extra["disk_read_bytes"] = read;
    m.extra["disk_write_bytes"] = written;
    if (auto uptime = number_at(d, "uptime")) {
      m.extra["uptime_s"] = *uptime;
    }
    if (auto cpus = number_at(d, "num_cpus")) {
      m.extra["vcpus"] = *cpus;
    }
  }

  metrics_sample metrics(const service_call& call) {
    metrics_sample m;
    m.at = now();
    auto id = locate(call.resources, "server", call.request_id);
    if (!id.ok() || id->empty()) {
      m.error = id.ok() ? provider_error{"not_found", "the request holds no server", false} : id.err();
      return m;
    }
    auto d = api.call(service::compute, "GET", "/servers/" + *id + "/diagnostics");
    if (d.ok() && d.body.is_object()) {
      read_diagnostics(d.body, m);
      m.extra["diagnostics"] = 1;
    } else if (d.failure || (d.status >= 500 && d.status != 501) || d.status == 429) {
      m.error = status_error(d, "read diagnostics of server " + *id);
      return m;
    }
    // Without diagnostics (403 for non-admin tokens by default policy, 409 while the server
    // is not running, 501 where the driver has none), and in any case: what the server
    // record offers. https://docs.openstack.org/api-ref/compute/#show-server-details
    auto r = api.call(service::compute, "GET", "/servers/" + *id);
    if (r.status == 404) {
      m.error = provider_error{"not_found", "server " + *id + " does not exist", false};
      return m;
    }
    if (!r.ok() || !member(r.body, "server").is_object()) {
      m.error = status_error(r, "read server " + *id);
      return m;
    }
    const auto& server = r.body["server"];
    if (!d.ok()) {
      m.extra["diagnostics"] = 0;
    }
    const auto& flavor = member(server, "flavor");  // embedded since 2.47
    if (auto v = number_at(flavor, "vcpus")) {
      m.extra.try_emplace("vcpus", *v);
    }
    if (auto v = number_at(flavor, "ram")) {
      m.extra["flavor_ram_mb"] = *v;
    }
    m.extra["powered_on"] = number_at(server, "OS-EXT-STS:power_state").value_or(0) == 1 ? 1 : 0;
    if (!m.extra.count("uptime_s")) {
      std::string launched = text_at(server, {"OS-SRV-USG:launched_at"});
      if (!launched.empty() && launched.back() != 'Z') {
        launched += "Z";
      }
      if (auto at = parse_rfc3339(launched); at && text_at(server, {"status"}) == "ACTIVE") {
        m.extra["uptime_s"] =
            static_cast<double>(std::chrono::duration_cast<std::chrono::seconds>(m.at - *at).count());
      }
    }
    const std::string volume_id = held(call.resources, "volume");
    if (!volume_id.empty()) {
      auto v = api.call(service::volume, "GET", "/volumes/" + volume_id);
      if (v.ok()) {
        if (auto size = number_at(member(v.body, "volume"), "size")) {
          m.extra["volume_gb"] = *size;
        }
      }
    }
    m.ok = true;
    return m;
  }
};

openstack_provider::openstack_provider(std::string cluster_id, std::string endpoint, openstack_settings settings,
                                       openstack_credentials credentials, const clock* clk)
    : _settings(std::move(settings)) {
  _impl = std::make_unique<impl>(std::move(cluster_id), std::move(endpoint), _settings, std::move(credentials), clk);
}

openstack_provider::~openstack_provider() = default;

result<std::unique_ptr<openstack_provider>> openstack_provider::from_cluster(const events::cluster_state& cluster,
                                                                             const secret_box* secrets,
                                                                             const clock* clk) {
  if (cluster.type != events::provider_type::openstack) {
    return make_error(errc::invalid_argument, "cluster " + cluster.id + " is not an OpenStack cluster");
  }
  if (cluster.endpoint.empty()) {
    return make_error(errc::invalid_argument, "cluster " + cluster.id + " has no Keystone endpoint");
  }
  return detail::assemble_provider<openstack_provider, openstack_credentials>(
      cluster, openstack_settings::parse(cluster.settings_json), secrets,
      "Keystone password or application credential", clk);
}

// ---------------------------------------------------------------------------------------------
// The interface

step_outcome openstack_provider::run_step(const step_call& call) {
  if (call.type != events::service_type::vps) {
    step_outcome out;
    out.error = provider_error{"unsupported",
                               "OpenStack clusters provide VPS, not " +
                                   std::string{events::service_type_names[static_cast<std::size_t>(call.type)]},
                               false};
    return out;
  }
  switch (call.step) {
    case step_kind::allocate: return _impl->allocate(call);
    case step_kind::configure: return _impl->configure(call);
    case step_kind::activate: return _impl->activate(call);
    case step_kind::verify: return _impl->verify(call);
  }
  step_outcome out;
  out.error = provider_error{"internal", "unknown step", false};
  return out;
}

release_outcome openstack_provider::release(const release_call& call) {
  release_outcome out;
  if (auto failed = _impl->release(call.resource.kind, call.resource.id)) {
    out.error = *failed;
    return out;
  }
  out.ok = true;
  return out;
}

sweep_outcome openstack_provider::sweep(const std::string& request_id) {
  sweep_outcome out;
  auto& d = *_impl;
  const openstack::owner fallback{request_id, "", "", step_kind::allocate};
  const auto fail = [&](const provider_error& e) {
    out.error = e;
    return out;
  };
  // Everything of the request is listed first (a volume may go with its server), then deleted
  // in the order of a rollback: floating IPs, servers (until gone), volumes, security groups.
  auto fips = d.list_network("floatingips");
  if (!fips.ok()) {
    return fail(fips.err());
  }
  auto servers = d.servers_of(request_id);
  if (!servers.ok()) {
    return fail(servers.err());
  }
  auto volumes = d.list(service::volume, "/volumes/detail", "volumes");
  if (!volumes.ok()) {
    return fail(volumes.err());
  }
  auto groups = d.list_network("security-groups");
  if (!groups.ok()) {
    return fail(groups.err());
  }
  for (const auto& fip : *fips) {
    if (!openstack::owned_by(fip, request_id)) {
      continue;
    }
    if (auto failed = d.delete_floating_ip(text_at(fip, {"id"}))) {
      return fail(*failed);
    }
    out.released.push_back(resource_from("floating_ip", fip, text_at(fip, {"floating_ip_address"}), fallback));
  }
  for (const auto& server : *servers) {
    if (auto failed = d.delete_server(text_at(server, {"id"}))) {
      return fail(*failed);
    }
    out.released.push_back(resource_from("server", server, text_at(server, {"name"}), fallback));
  }
  for (const auto& volume : *volumes) {
    if (!openstack::owned_by(volume, request_id)) {
      continue;
    }
    if (auto failed = d.delete_volume(text_at(volume, {"id"}))) {
      return fail(*failed);
    }
    out.released.push_back(resource_from("volume", volume, text_at(volume, {"name"}), fallback));
  }
  for (const auto& group : *groups) {
    if (!openstack::owned_by(group, request_id)) {
      continue;
    }
    if (auto failed = d.delete_security_group(text_at(group, {"id"}))) {
      return fail(*failed);
    }
    out.released.push_back(resource_from("security_group", group, text_at(group, {"name"}), fallback));
  }
  for (auto& r : out.released) {
    r.released = true;
  }
  out.ok = true;
  return out;
}

action_outcome openstack_provider::suspend(const service_call& call) { return _impl->power(call, false); }

action_outcome openstack_provider::reactivate(const service_call& call) { return _impl->power(call, true); }

metrics_sample openstack_provider::metrics(const service_call& call) { return _impl->metrics(call); }

result<std::vector<inventory_item>> openstack_provider::inventory() {
  auto& d = *_impl;
  std::vector<inventory_item> out;
  std::set<std::string> suspended;
  const auto add = [&](std::string kind, const json& object, std::string name) {
    const auto o = openstack::owner_of(object);
    if (!o) {
      return;
    }
    inventory_item it;
    it.cluster = d.cluster;
    it.kind = std::move(kind);
    it.id = text_at(object, {"id"});
    it.name = std::move(name);
    it.request_id = o->request_id;
    it.idempotency_key = o->idempotency_key;
    it.step = o->step;
    it.created_at = created_time(object);
    out.push_back(std::move(it));
  };
  const auto failed = [](const provider_error& e) { return make_error(errc::provider_error, e.message); };

  auto servers = d.list(service::compute, "/servers/detail?tags=" + std::string{openstack::managed_tag}, "servers");
  if (!servers.ok()) {
    return failed(servers.err());
  }
  for (const auto& server : *servers) {
    add("server", server, text_at(server, {"name"}));
    const auto st = text_at(server, {"status"});
    if (auto o = openstack::owner_of(server); o && (st == "SHUTOFF" || st == "SUSPENDED")) {
      suspended.insert(o->request_id);
    }
  }
  auto volumes = d.list(service::volume, "/volumes/detail", "volumes");
  if (!volumes.ok()) {
    return failed(volumes.err());
  }
  for (const auto& volume : *volumes) {
    add("volume", volume, text_at(volume, {"name"}));
  }
  auto groups = d.list_network("security-groups");
  if (!groups.ok()) {
    return failed(groups.err());
  }
  for (const auto& group : *groups) {
    add("security_group", group, text_at(group, {"name"}));
  }
  auto fips = d.list_network("floatingips");
  if (!fips.ok()) {
    return failed(fips.err());
  }
  for (const auto& fip : *fips) {
    add("floating_ip", fip, text_at(fip, {"floating_ip_address"}));
  }
  for (auto& it : out) {
    it.suspended = suspended.count(it.request_id) > 0;
  }
  return out;
}

connectivity_report openstack_provider::test_connectivity() {
  auto& d = *_impl;
  connectivity_report report;
  auto info = d.api.issue_token();
  if (!info) {
    report.message = info.err().message;
    return report;
  }
  report.latency = info->latency;
  std::vector<std::string> missing;
  for (auto svc : {service::compute, service::network, service::volume, service::image}) {
    if (!d.api.endpoint(svc)) {
      missing.emplace_back(openstack::service_name(svc));
    }
  }
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) {
      list += (list.empty() ? "" : ", ") + m;
    }
    report.message = "token issued, but the catalog lacks " + d.s.interface + " endpoints for: " + list;
    return report;
  }
  report.ok = true;
  report.message = "Keystone " + d.api.keystone_url() + ": project " +
                   (info->project_name.empty() ? info->project_id : info->project_name) +
                   ", catalog has compute, network, volumev3, image";
  return report;
}

}  // namespace prov::providers
