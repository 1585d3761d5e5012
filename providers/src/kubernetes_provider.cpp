#include "prov/providers/kubernetes_provider.hpp"

#include <set>
#include <thread>

#include "detail/api_support.hpp"
#include "detail/cluster_config.hpp"
#include "detail/kube_objects.hpp"
#include "prov/core/time_format.hpp"
#include "prov/providers/http/client.hpp"

namespace prov::providers {

namespace {

using json = nlohmann::json;
using events::step_kind;
using steady = std::chrono::steady_clock;
using detail::text_at;
using detail::transport_error;

/// An answer from the API server, or why there is none.
struct api_reply {
  std::optional<provider_error> failure;  ///< transport failure (no HTTP status)
  unsigned status = 0;
  json body;  ///< null when the body is not JSON

  bool ok() const noexcept { return !failure && status >= 200 && status < 300; }
};

const json& object_at(const json& j, std::string_view key) {
  static const json empty = json::object();
  if (!j.is_object()) {
    return empty;
  }
  auto it = j.find(std::string{key});
  return it != j.end() && it->is_object() ? *it : empty;
}

/// An HTTP error status as a provider error (Kubernetes answers with a `Status` object:
/// https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/status/).
provider_error status_error(const api_reply& r, std::string_view what) {
  if (r.failure) {
    return *r.failure;
  }
  std::string message = std::string{what} + ": HTTP " + std::to_string(r.status);
  const auto reason = text_at(r.body, {"reason"});
  const auto detail = text_at(r.body, {"message"});
  if (!reason.empty()) {
    message += " " + reason;
  }
  if (!detail.empty()) {
    message += ": " + detail;
  }
  switch (r.status) {
    case 400: return provider_error{"bad_request", message, false};
    case 401: return provider_error{"unauthorized", message + " (the cluster refused the token)", false};
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

std::optional<step_kind> step_from_name(std::string_view name) {
  for (std::size_t i = 0; i < events::step_kind_names.size(); ++i) {
    if (events::step_kind_names[i] == name) {
      return static_cast<step_kind>(i);
    }
  }
  return std::nullopt;
}

bool is_terminating(const json& ns) {
  return text_at(ns, {"status", "phase"}) == "Terminating";
}

/// A namespace of this request: labelled as such, or made by our ProjectRequest and not
/// labelled yet (its description is our marker).
bool namespace_of_request(const json& ns, const std::string& request_id) {
  return kube::owned_by(ns, request_id) ||
         text_at(ns, {"metadata", "annotations", kube::openshift_description}) == kube::project_description(request_id);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Settings and credentials

result<kubernetes_settings> kubernetes_settings::parse(std::string_view text, bool openshift) {
  kubernetes_settings s;
  s.openshift = openshift;
  if (openshift) {
    s.use_project_request = true;
    s.dns_namespace = "openshift-dns";
    s.dns_pod_labels = {{"dns.operator.openshift.io/daemonset-dns", "default"}};
    s.dns_ports = {53, 5353};  // the DNS pods listen on 5353 behind the service's 53
  }
  if (text.empty()) {
    return s;
  }
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    return make_error(errc::invalid_argument, std::string{"kubernetes settings are not JSON: "} + e.what());
  }
  if (!j.is_object()) {
    return make_error(errc::invalid_argument, "kubernetes settings must be a JSON object");
  }
  const auto bad = [](const std::string& key, const std::string& why) {
    return make_error(errc::invalid_argument, "kubernetes settings: " + key + " " + why);
  };
  try {
    for (auto it = j.begin(); it != j.end(); ++it) {
      const auto& key = it.key();
      const auto& v = it.value();
      const detail::setting_field field{"kubernetes", key, v};
      status st;
      if (key == "namespacePrefix") {
        st = field.string(s.namespace_prefix);
      } else if (key == "tenantGroupPrefix") {
        st = field.string(s.tenant_group_prefix);
      } else if (key == "tenantSubjectKind") {
        st = field.string(s.tenant_subject_kind);
      } else if (key == "tenantRole") {
        st = field.string(s.tenant_role);
      } else if (key == "useProjectRequest") {
        st = field.boolean(s.use_project_request);
      } else if (key == "networkPolicyDns") {
        st = field.boolean(s.network_policy_dns);
      } else if (key == "dnsNamespace") {
        st = field.string(s.dns_namespace);
      } else if (key == "dnsPodLabels") {
        if (!v.is_object()) {
          return bad(key, "must be an object of label values");
        }
        s.dns_pod_labels.clear();
        for (auto l = v.begin(); l != v.end(); ++l) {
          if (!l.value().is_string()) {
            return bad(key, "values must be strings");
          }
          s.dns_pod_labels[l.key()] = l.value().get<std::string>();
        }
      } else if (key == "dnsPorts") {
        if (!v.is_array() || v.empty()) {
          return bad(key, "must be a non-empty array of ports");
        }
        s.dns_ports.clear();
        for (const auto& p : v) {
          if (!p.is_number_integer() || p.get<int>() < 1 || p.get<int>() > 65535) {
            return bad(key, "entries must be ports (1-65535)");
          }
          s.dns_ports.push_back(p.get<int>());
        }
      } else if (key == "allowIngressFromRouter") {
        st = field.boolean(s.allow_ingress_from_router);
      } else if (key == "maxPods") {
        if (!v.is_number_integer() || v.get<std::int64_t>() < 0) {
          return bad(key, "must be a non-negative integer");
        }
        s.max_pods = v.get<std::int64_t>();
      } else if (key == "limitDefaultFraction" || key == "limitRequestFraction") {
        if (!v.is_number() || v.get<double>() <= 0 || v.get<double>() > 1) {
          return bad(key, "must be a number in (0, 1]");
        }
        (key == "limitDefaultFraction" ? s.limit_default_fraction : s.limit_request_fraction) = v.get<double>();
      } else if (key == "activateTimeoutMs") {
        st = field.millis(s.activate_timeout);
      } else if (key == "deleteTimeoutMs") {
        st = field.millis(s.delete_timeout);
      } else if (key == "pollIntervalMs") {
        st = field.millis(s.poll_interval);
      } else if (key == "connectTimeoutMs") {
        st = field.millis(s.connect_timeout);
      } else if (key == "requestTimeoutMs") {
        st = field.millis(s.request_timeout);
      } else if (key == "verifyTls") {
        st = field.boolean(s.verify_tls);
      } else if (key == "consoleUrl") {
        st = field.string(s.console_url);
      } else {
        return bad(key, "is not a known setting");
      }
      if (!st) {
        return st.err();
      }
    }
  } catch (const json::exception& e) {
    return make_error(errc::invalid_argument, std::string{"kubernetes settings: "} + e.what());
  }
  if (s.namespace_prefix.size() > 20) {
    return bad("namespacePrefix", "must be at most 20 characters");
  }
  for (std::size_t i = 0; i < s.namespace_prefix.size(); ++i) {
    const char c = s.namespace_prefix[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && !(c == '-' && i > 0)) {
      return bad("namespacePrefix", "must be lowercase letters, digits and '-' (not first)");
    }
  }
  if (s.tenant_subject_kind != "Group" && s.tenant_subject_kind != "User") {
    return bad("tenantSubjectKind", "must be \"Group\" or \"User\"");
  }
  if (s.tenant_role.empty()) {
    return bad("tenantRole", "must name a ClusterRole");
  }
  if (s.limit_request_fraction > s.limit_default_fraction) {
    return bad("limitRequestFraction", "must not exceed limitDefaultFraction");
  }
  if (s.network_policy_dns && s.dns_namespace.empty()) {
    return bad("dnsNamespace", "must name the namespace of the cluster DNS");
  }
  if (!s.console_url.empty() && s.console_url.back() == '/') {
    s.console_url.pop_back();
  }
  return s;
}

result<kubernetes_credentials> kubernetes_credentials::parse(std::string_view text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception&) {
    return make_error(errc::invalid_argument, "kubernetes credentials are not JSON");  // never echo secrets
  }
  if (!j.is_object()) {
    return make_error(errc::invalid_argument, "kubernetes credentials must be a JSON object");
  }
  kubernetes_credentials c;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_string()) {
      return make_error(errc::invalid_argument, "kubernetes credentials: " + it.key() + " must be a string");
    }
    if (it.key() == "token") {
      c.token = it.value().get<std::string>();
    } else if (it.key() == "caPem") {
      c.ca_pem = it.value().get<std::string>();
    } else {
      return make_error(errc::invalid_argument, "kubernetes credentials: " + it.key() + " is not a known field");
    }
  }
  if (c.token.empty()) {
    return make_error(errc::invalid_argument, "kubernetes credentials: token is required");
  }
  for (char ch : c.token) {
    if (static_cast<unsigned char>(ch) < 0x21 || ch == 0x7f) {
      return make_error(errc::invalid_argument, "kubernetes credentials: token has spaces or control characters");
    }
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// The API calls

struct kubernetes_provider::impl {
  impl(std::string cluster_, std::string endpoint_, const kubernetes_settings& s, kubernetes_credentials creds_,
       const clock* clk_)
      : cluster(std::move(cluster_)),
        endpoint(std::move(endpoint_)),
        creds(std::move(creds_)),
        client(client_options_for(s, creds)),
        clk(clk_) {
    while (!endpoint.empty() && endpoint.back() == '/') {
      endpoint.pop_back();
    }
  }

  static http::client_options client_options_for(const kubernetes_settings& s, const kubernetes_credentials& c) {
    http::client_options o;
    o.verify_tls = s.verify_tls;
    o.ca_pem = c.ca_pem;
    o.connect_timeout = s.connect_timeout;
    o.request_timeout = s.request_timeout;
    return o;
  }

  timestamp now() const { return clk != nullptr ? clk->now() : wall.now(); }

  /// One request to the API server (`path` absolute, query included).
  api_reply call(std::string_view method, const std::string& path, const json* body = nullptr,
                 std::string_view content_type = "application/json") {
    http::request req;
    req.method = std::string{method};
    req.url = endpoint + path;
    req.headers = {{"Authorization", "Bearer " + creds.token}, {"Accept", "application/json"}};
    if (body != nullptr) {
      req.headers.emplace_back("Content-Type", std::string{content_type});
      req.body = body->dump();
    }
    api_reply out;
    auto res = client.send(req);
    if (!res) {
      out.failure = transport_error(res.err(), std::string{method} + " " + path);
      return out;
    }
    out.status = res->status;
    if (!res->body.empty()) {
      out.body = json::parse(res->body, nullptr, false);
      if (out.body.is_discarded()) {
        out.body = nullptr;
      }
    }
    return out;
  }

  /// Every item of a list (following `continue` tokens).
  std::optional<provider_error> list(const std::string& collection, const std::string& selector,
                                     std::vector<json>& items) {
    std::string next;
    do {
      std::string path = collection + "?limit=500";
      if (!selector.empty()) {
        path += "&labelSelector=" + http::url_encode(selector);
      }
      if (!next.empty()) {
        path += "&continue=" + http::url_encode(next);
      }
      auto r = call("GET", path);
      if (!r.ok() || !r.body.is_object()) {
        return status_error(r, "list " + collection);
      }
      if (r.body.contains("items") && r.body["items"].is_array()) {
        for (auto& item : r.body["items"]) {
          items.push_back(std::move(item));
        }
      }
      next = text_at(r.body, {"metadata", "continue"});
    } while (!next.empty());
    return std::nullopt;
  }

  /// Creates `desired`; a 409 reads the existing object and adopts it when it is this
  /// request's, else fails with the non-retryable `name_taken`.
  std::optional<provider_error> create_or_adopt(const kube::object_kind& kind, const std::string& ns,
                                                const json& desired, const std::string& request_id) {
    const std::string name = desired["metadata"]["name"].get<std::string>();
    const std::string what =
        std::string{kind.api_kind} + " " + (ns.empty() || kind.engine_kind == "namespace" ? name : ns + "/" + name);
    auto created = call("POST", kube::collection_path(kind, ns), &desired);
    if (created.ok()) {
      return std::nullopt;
    }
    if (created.failure || created.status != 409) {
      return status_error(created, "create " + what);
    }
    return adopt_existing(kind, ns, name, what, request_id);
  }

  std::optional<provider_error> adopt_existing(const kube::object_kind& kind, const std::string& ns,
                                               const std::string& name, const std::string& what,
                                               const std::string& request_id) {
    auto existing = call("GET", kube::object_path(kind, ns, name));
    if (existing.status == 404) {
      return provider_error{"conflict", what + " existed a moment ago and is gone now; try again", true};
    }
    if (!existing.ok() || !existing.body.is_object()) {
      return status_error(existing, "read existing " + what);
    }
    if (!kube::owned_by(existing.body, request_id)) {
      return provider_error{
          "name_taken", what + " already exists and was not created by provisiond for request " + request_id, false};
    }
    if (kind.engine_kind == "namespace" && is_terminating(existing.body)) {
      return provider_error{"terminating", what + " is still being deleted; try again once it is gone", true};
    }
    return std::nullopt;
  }

  std::string cluster;
  std::string endpoint;
  kubernetes_credentials creds;
  http::client client;
  const clock* clk;
  system_clock_source wall;
};

kubernetes_provider::kubernetes_provider(std::string cluster_id, std::string endpoint, kubernetes_settings settings,
                                         kubernetes_credentials credentials, const clock* clk)
    : _settings(std::move(settings)) {
  _impl = std::make_unique<impl>(std::move(cluster_id), std::move(endpoint), _settings, std::move(credentials), clk);
}

kubernetes_provider::~kubernetes_provider() = default;

result<std::unique_ptr<kubernetes_provider>> kubernetes_provider::from_cluster(const events::cluster_state& cluster,
                                                                               const secret_box* secrets,
                                                                               const clock* clk) {
  const bool openshift = cluster.type == events::provider_type::openshift;
  if (!openshift && cluster.type != events::provider_type::kubernetes) {
    return make_error(errc::invalid_argument, "cluster " + cluster.id + " is not a Kubernetes or OpenShift cluster");
  }
  if (cluster.endpoint.empty()) {
    return make_error(errc::invalid_argument, "cluster " + cluster.id + " has no API endpoint");
  }
  return detail::assemble_provider<kubernetes_provider, kubernetes_credentials>(
      cluster, kubernetes_settings::parse(cluster.settings_json, openshift), secrets, "a bearer token", clk);
}

// ---------------------------------------------------------------------------------------------
// Steps

namespace {

/// The request's namespace: the one recorded, else the deterministic name.
std::string namespace_of(const std::vector<events::resource>& resources, const kubernetes_settings& s,
                         std::string_view tenant, std::string_view request_id) {
  for (const auto& r : resources) {
    if (r.kind == "namespace" && !r.released) {
      return r.id;
    }
  }
  return kubernetes_provider::namespace_name(s.namespace_prefix, tenant, request_id);
}

events::resource resource_of(const kube::object_kind& kind, const std::string& ns, const step_call& call) {
  if (kind.engine_kind == "namespace") {
    return events::resource{"namespace", ns, ns, call.step, call.idempotency_key, false};
  }
  const std::string name{kind.object_name};
  return events::resource{std::string{kind.engine_kind}, ns + "/" + name, name, call.step, call.idempotency_key, false};
}

}  // namespace

step_outcome kubernetes_provider::run_step(const step_call& call) {
  step_outcome out;
  if (call.type != events::service_type::namespace_) {
    out.error = provider_error{"unsupported",
                               "Kubernetes/OpenShift clusters provide namespaces, not " +
                                   std::string{events::service_type_names[static_cast<std::size_t>(call.type)]},
                               false};
    return out;
  }
  auto& d = *_impl;
  const auto& s = _settings;
  const std::string ns = namespace_of(call.resources, s, call.tenant, call.request_id);
  const kube::owner owner{ns, call.tenant, call.request_id, call.idempotency_key, call.step};

  switch (call.step) {
    case step_kind::allocate: {
      const auto& kind = kube::object_kinds()[0];
      std::optional<provider_error> failed;
      if (s.openshift && s.use_project_request) {
        // A ProjectRequest carries no labels: the project template makes the namespace, then
        // we label it. Our description marks it as ours should we crash in between.
        const auto request = kube::project_request(owner);
        auto created = d.call("POST", "/apis/project.openshift.io/v1/projectrequests", &request);
        const std::string what = "Project " + ns;
        if (!created.ok() && (created.failure || created.status != 409)) {
          failed = status_error(created, "create " + what);
        } else {
          auto existing = d.call("GET", kube::object_path(kind, "", ns));
          if (!existing.ok() || !existing.body.is_object()) {
            failed = existing.status == 404 ? provider_error{"conflict", what + " is not visible yet; try again", true}
                                            : status_error(existing, "read " + what);
          } else if (kube::owned_by(existing.body, call.request_id)) {
            if (is_terminating(existing.body)) {
              failed = provider_error{"terminating", what + " is still being deleted; try again once it is gone", true};
            }
          } else if (text_at(existing.body, {"metadata", "annotations", kube::openshift_description}) ==
                     kube::project_description(call.request_id)) {
            const auto desired = kube::namespace_object(owner);
            const json patch{
                {"metadata",
                 {{"labels", desired["metadata"]["labels"]}, {"annotations", desired["metadata"]["annotations"]}}}};
            auto labelled = d.call("PATCH", kube::object_path(kind, "", ns), &patch, "application/merge-patch+json");
            if (!labelled.ok()) {
              // The project exists: report it, so a rollback deletes it (sweep cannot find
              // it by label yet).
              out.resources.push_back(resource_of(kind, ns, call));
              failed = status_error(labelled, "label " + what);
            }
          } else {
            failed = provider_error{
                "name_taken", what + " already exists and was not created by provisiond for request " + call.request_id,
                false};
          }
        }
      } else {
        failed = d.create_or_adopt(kind, "", kube::namespace_object(owner), call.request_id);
      }
      if (failed) {
        out.error = *failed;
        return out;
      }
      out.resources.push_back(resource_of(kind, ns, call));
      out.endpoints = {{"namespace", ns}};
      out.ok = true;
      return out;
    }

    case step_kind::configure: {
      for (const auto& kind : kube::object_kinds().subspan(1)) {
        const auto desired = kube::desired_object(kind, owner, call.spec, s);
        if (auto failed = d.create_or_adopt(kind, ns, desired, call.request_id)) {
          out.error = *failed;
          return out;  // what exists so far is reported: rollback releases it
        }
        out.resources.push_back(resource_of(kind, ns, call));
      }
      out.endpoints = {{"api", d.endpoint}, {"namespace", ns}};
      if (!s.console_url.empty()) {
        out.endpoints["console"] = s.console_url + "/k8s/cluster/projects/" + ns;
      }
      out.ok = true;
      return out;
    }

    case step_kind::activate: {
      const auto& kind = kube::object_kinds()[0];
      const auto deadline = steady::now() + s.activate_timeout;
      std::string last = "no answer yet";
      for (;;) {
        auto r = d.call("GET", kube::object_path(kind, "", ns));
        if (r.ok() && r.body.is_object()) {
          const auto phase = text_at(r.body, {"status", "phase"});
          if (phase == "Active") {
            out.ok = true;
            return out;
          }
          if (phase == "Terminating") {
            out.error = provider_error{"terminating", "namespace " + ns + " is being deleted", false};
            return out;
          }
          last = "phase '" + phase + "'";
        } else if (r.status == 404) {
          out.error = provider_error{"not_found", "namespace " + ns + " does not exist", false};
          return out;
        } else {
          auto e = status_error(r, "read namespace " + ns);
          if (!e.retryable) {
            out.error = e;
            return out;
          }
          last = e.message;
        }
        if (steady::now() + s.poll_interval > deadline) {
          out.error = provider_error{"timeout",
                                     "namespace " + ns + " did not become Active within " +
                                         std::to_string(s.activate_timeout.count()) + " ms (last: " + last + ")",
                                     true};
          return out;
        }
        std::this_thread::sleep_for(s.poll_interval);
      }
    }

    case step_kind::verify: {
      for (const auto& kind : kube::object_kinds()) {
        const std::string name = kind.engine_kind == "namespace" ? ns : std::string{kind.object_name};
        const std::string what =
            std::string{kind.api_kind} + " " + (kind.engine_kind == "namespace" ? ns : ns + "/" + name);
        auto r = d.call("GET", kube::object_path(kind, ns, name));
        if (r.status == 404) {
          out.error = provider_error{"missing", what + " does not exist", false};
          return out;
        }
        if (!r.ok() || !r.body.is_object()) {
          out.error = status_error(r, "read " + what);
          return out;
        }
        if (!kube::owned_by(r.body, call.request_id)) {
          out.error = provider_error{"drift", what + " is not labelled as this request's", false};
          return out;
        }
        if (kind.engine_kind == "namespace" && text_at(r.body, {"status", "phase"}) != "Active") {
          out.error = provider_error{"not_active", what + " is " + text_at(r.body, {"status", "phase"}), false};
          return out;
        }
        const auto desired = kube::desired_object(kind, owner, call.spec, s);
        if (auto diff = kube::compare_written(kind, desired, r.body); !diff.empty()) {
          out.error = provider_error{"drift", what + " differs from what was written: " + diff, false};
          return out;
        }
      }
      out.ok = true;
      return out;
    }
  }
  out.error = provider_error{"internal", "unknown step", false};
  return out;
}

// ---------------------------------------------------------------------------------------------
// Rollback

release_outcome kubernetes_provider::release(const release_call& call) {
  release_outcome out;
  auto& d = *_impl;
  const auto* kind = kube::find_kind(call.resource.kind);
  if (kind == nullptr) {
    out.ok = true;  // not a kind this provider makes: nothing of ours to delete here
    return out;
  }
  static const json options{{"apiVersion", "v1"}, {"kind", "DeleteOptions"}, {"propagationPolicy", "Background"}};
  if (kind->engine_kind == "namespace") {
    const std::string& ns = call.resource.id;
    auto current = d.call("GET", kube::object_path(*kind, "", ns));
    if (current.status == 404) {
      out.ok = true;
      return out;
    }
    if (!current.ok() || !current.body.is_object()) {
      out.error = status_error(current, "read namespace " + ns);
      return out;
    }
    if (!namespace_of_request(current.body, call.request_id) || is_terminating(current.body)) {
      out.ok = true;  // ours is gone (the name now belongs to someone else) or already going
      return out;
    }
    // Deletion of a namespace is asynchronous: accepted here, confirmed by sweep. 409 =
    // already terminating (https://github.com/kubernetes/kubernetes/issues/61576).
    auto deleted = d.call("DELETE", kube::object_path(*kind, "", ns), &options);
    if (deleted.ok() || deleted.status == 404 || deleted.status == 409) {
      out.ok = true;
      return out;
    }
    out.error = status_error(deleted, "delete namespace " + ns);
    return out;
  }
  const auto slash = call.resource.id.find('/');
  if (slash == std::string::npos) {
    out.error =
        provider_error{"bad_resource", "resource id '" + call.resource.id + "' is not <namespace>/<name>", false};
    return out;
  }
  const auto ns = call.resource.id.substr(0, slash);
  const auto name = call.resource.id.substr(slash + 1);
  auto deleted = d.call("DELETE", kube::object_path(*kind, ns, name), &options);
  if (deleted.ok() || deleted.status == 404) {
    out.ok = true;
    return out;
  }
  out.error = status_error(deleted, "delete " + std::string{kind->api_kind} + " " + call.resource.id);
  return out;
}

sweep_outcome kubernetes_provider::sweep(const std::string& request_id) {
  sweep_outcome out;
  auto& d = *_impl;
  const auto& kind = kube::object_kinds()[0];
  const std::string selector = std::string{kube::managed_by_label} + "=" + std::string{kube::managed_by_value} + "," +
                               std::string{kube::request_label} + "=" + label_value(request_id);
  std::vector<json> items;
  if (auto failed = d.list("/api/v1/namespaces", selector, items)) {
    out.error = *failed;
    return out;
  }
  static const json options{{"apiVersion", "v1"}, {"kind", "DeleteOptions"}, {"propagationPolicy", "Background"}};
  std::vector<std::string> pending;
  for (const auto& item : items) {
    if (!kube::owned_by(item, request_id)) {
      continue;
    }
    const auto ns = text_at(item, {"metadata", "name"});
    if (!is_terminating(item)) {
      auto deleted = d.call("DELETE", kube::object_path(kind, "", ns), &options);
      if (!deleted.ok() && deleted.status != 404 && deleted.status != 409) {
        out.error = status_error(deleted, "delete namespace " + ns);
        return out;
      }
      const auto step = step_from_name(text_at(item, {"metadata", "annotations", kube::step_annotation}));
      out.released.push_back(events::resource{"namespace", ns, ns, step.value_or(step_kind::allocate),
                                              text_at(item, {"metadata", "annotations", kube::key_annotation}), true});
    }
    pending.push_back(ns);
  }
  // Wait (bounded) until the API no longer has them: rolled back means gone.
  const auto deadline = steady::now() + _settings.delete_timeout;
  while (!pending.empty()) {
    std::vector<std::string> still;
    for (const auto& ns : pending) {
      auto r = d.call("GET", kube::object_path(kind, "", ns));
      if (r.status == 404) {
        continue;
      }
      if (!r.ok()) {
        auto e = status_error(r, "read namespace " + ns);
        if (!e.retryable) {
          out.error = e;
          return out;
        }
      } else if (!namespace_of_request(r.body, request_id)) {
        continue;  // gone, and the name already reused by someone else
      }
      still.push_back(ns);
    }
    pending.swap(still);
    if (pending.empty()) {
      break;
    }
    if (steady::now() + _settings.poll_interval > deadline) {
      out.error = provider_error{"terminating",
                                 "namespace " + pending.front() + " is still terminating after " +
                                     std::to_string(_settings.delete_timeout.count()) + " ms",
                                 true};
      return out;
    }
    std::this_thread::sleep_for(_settings.poll_interval);
  }
  out.ok = true;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Suspend, reactivate, metrics

namespace {

std::string quota_path(const std::string& ns) {
  const auto& kind = *kube::find_kind("resource_quota");
  return kube::object_path(kind, ns, kind.object_name);
}

}  // namespace

action_outcome kubernetes_provider::suspend(const service_call& call) {
  action_outcome out;
  auto& d = *_impl;
  const auto ns = namespace_of(call.resources, _settings, call.tenant, call.request_id);
  auto quota = d.call("GET", quota_path(ns));
  if (quota.status == 404) {
    out.error = provider_error{"not_found", "no ResourceQuota in namespace " + ns + " to suspend", false};
    return out;
  }
  if (!quota.ok() || !quota.body.is_object()) {
    out.error = status_error(quota, "read ResourceQuota of " + ns);
    return out;
  }
  if (object_at(object_at(quota.body, "metadata"), "annotations").contains(std::string{kube::suspended_annotation})) {
    out.ok = true;  // already suspended
    return out;
  }
  const json hard = object_at(object_at(quota.body, "spec"), "hard");
  // Conditional on the version we read (a concurrent change answers 409, retryable).
  const json patch{{"metadata",
                    {{"resourceVersion", text_at(quota.body, {"metadata", "resourceVersion"})},
                     {"annotations", {{std::string{kube::suspended_annotation}, hard.dump()}}}}},
                   {"spec", {{"hard", {{"pods", "0"}}}}}};
  auto patched = d.call("PATCH", quota_path(ns), &patch, "application/merge-patch+json");
  if (!patched.ok()) {
    out.error = status_error(patched, "suspend ResourceQuota of " + ns);
    return out;
  }
  out.ok = true;
  return out;
}

action_outcome kubernetes_provider::reactivate(const service_call& call) {
  action_outcome out;
  auto& d = *_impl;
  const auto ns = namespace_of(call.resources, _settings, call.tenant, call.request_id);
  auto quota = d.call("GET", quota_path(ns));
  if (quota.status == 404) {
    out.error = provider_error{"not_found", "no ResourceQuota in namespace " + ns + " to reactivate", false};
    return out;
  }
  if (!quota.ok() || !quota.body.is_object()) {
    out.error = status_error(quota, "read ResourceQuota of " + ns);
    return out;
  }
  const auto saved = text_at(quota.body, {"metadata", "annotations", kube::suspended_annotation});
  if (saved.empty()) {
    out.ok = true;  // not suspended
    return out;
  }
  json original = json::parse(saved, nullptr, false);
  if (original.is_discarded() || !original.is_object()) {
    out.error = provider_error{"corrupt", "the saved quota of namespace " + ns + " is not a JSON object", false};
    return out;
  }
  json hard = original;
  for (const auto& [key, value] : object_at(object_at(quota.body, "spec"), "hard").items()) {
    if (!original.contains(key)) {
      hard[key] = nullptr;  // merge patch: remove what suspend added
    }
  }
  const json patch{{"metadata",
                    {{"resourceVersion", text_at(quota.body, {"metadata", "resourceVersion"})},
                     {"annotations", {{std::string{kube::suspended_annotation}, nullptr}}}}},
                   {"spec", {{"hard", hard}}}};
  auto patched = d.call("PATCH", quota_path(ns), &patch, "application/merge-patch+json");
  if (!patched.ok()) {
    out.error = status_error(patched, "reactivate ResourceQuota of " + ns);
    return out;
  }
  out.ok = true;
  return out;
}

metrics_sample kubernetes_provider::metrics(const service_call& call) {
  metrics_sample m;
  auto& d = *_impl;
  m.at = d.now();
  const auto ns = namespace_of(call.resources, _settings, call.tenant, call.request_id);
  // PodMetricsList of the metrics API (metrics-server): metrics.k8s.io/v1beta1.
  auto r = d.call("GET", "/apis/metrics.k8s.io/v1beta1/namespaces/" + ns + "/pods");
  if (r.status == 404) {
    m.error = provider_error{"unsupported", "the cluster does not serve metrics.k8s.io (no metrics-server)", false};
    return m;
  }
  if (!r.ok() || !r.body.is_object()) {
    m.error = status_error(r, "read pod metrics of " + ns);
    return m;
  }
  long double cpu_cores = 0;
  long double memory_bytes = 0;
  std::size_t pods = 0;
  if (r.body.contains("items") && r.body["items"].is_array()) {
    for (const auto& pod : r.body["items"]) {
      ++pods;
      if (!pod.contains("containers") || !pod["containers"].is_array()) {
        continue;
      }
      for (const auto& c : pod["containers"]) {
        const auto& usage = object_at(c, "usage");
        if (auto cpu = kube::parse_quantity(text_at(usage, {"cpu"}))) {
          cpu_cores += *cpu;
        }
        if (auto mem = kube::parse_quantity(text_at(usage, {"memory"}))) {
          memory_bytes += *mem;
        }
      }
    }
  }
  const double used_millis = static_cast<double>(cpu_cores * 1000);
  if (call.spec.cpu_millis > 0) {
    m.cpu_percent = used_millis / static_cast<double>(call.spec.cpu_millis) * 100.0;
  }
  m.memory_used_mb = static_cast<double>(memory_bytes / (1024.0L * 1024.0L));
  m.extra = {{"pods", static_cast<double>(pods)}, {"cpu_millis", used_millis}};
  m.ok = true;
  return m;
}

// ---------------------------------------------------------------------------------------------
// Inventory and connectivity

result<std::vector<inventory_item>> kubernetes_provider::inventory() {
  auto& d = *_impl;
  const std::string selector = std::string{kube::managed_by_label} + "=" + std::string{kube::managed_by_value};
  std::vector<inventory_item> out;
  std::set<std::string> suspended;
  for (const auto& kind : kube::object_kinds()) {
    // Cluster-wide lists: one request per kind, whatever the number of namespaces.
    const std::string collection = std::string{kind.api_root} + "/" + std::string{kind.plural};
    std::vector<json> items;
    if (auto failed = d.list(collection, selector, items)) {
      return make_error(errc::provider_error, failed->message);
    }
    for (const auto& item : items) {
      const auto& meta = object_at(item, "metadata");
      const auto name = text_at(meta, {"name"});
      const auto ns = text_at(meta, {"namespace"});
      inventory_item it;
      it.cluster = d.cluster;
      it.kind = std::string{kind.engine_kind};
      it.id = kind.engine_kind == "namespace" ? name : ns + "/" + name;
      it.name = name;
      it.request_id = text_at(meta, {"annotations", kube::request_annotation});
      if (it.request_id.empty()) {
        it.request_id = text_at(meta, {"labels", kube::request_label});
      }
      it.idempotency_key = text_at(meta, {"annotations", kube::key_annotation});
      it.step = step_from_name(text_at(meta, {"annotations", kube::step_annotation})).value_or(kind.step);
      if (auto t = parse_rfc3339(text_at(meta, {"creationTimestamp"}))) {
        it.created_at = *t;
      }
      if (kind.engine_kind == "resource_quota" &&
          object_at(meta, "annotations").contains(std::string{kube::suspended_annotation})) {
        suspended.insert(ns);
      }
      out.push_back(std::move(it));
    }
  }
  for (auto& it : out) {
    const auto ns = it.kind == "namespace" ? it.id : it.id.substr(0, it.id.find('/'));
    it.suspended = suspended.count(ns) > 0;
  }
  return out;
}

connectivity_report kubernetes_provider::test_connectivity() {
  auto& d = *_impl;
  connectivity_report report;
  const auto start = steady::now();
  auto version = d.call("GET", "/version");
  report.latency = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start);
  if (!version.ok() || !version.body.is_object()) {
    report.message = status_error(version, "GET /version").message;
    return report;
  }
  // /version is often public: a list with the token proves it is accepted too.
  auto auth = d.call("GET", "/api/v1/namespaces?limit=1");
  if (!auth.ok()) {
    report.message = status_error(auth, "list namespaces").message;
    return report;
  }
  report.ok = true;
  report.message = std::string{_settings.openshift ? "OpenShift" : "Kubernetes"} + " " +
                   text_at(version.body, {"gitVersion"}) + " at " + d.endpoint;
  return report;
}

}  // namespace prov::providers
