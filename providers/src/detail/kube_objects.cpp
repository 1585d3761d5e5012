#include "detail/kube_objects.hpp"

#include <array>
#include <cmath>

#include "detail/api_support.hpp"
#include "prov/core/ids.hpp"

// The objects follow the Kubernetes API reference (v1.29):
//   Namespace      https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/namespace-v1/
//   ResourceQuota  https://kubernetes.io/docs/reference/kubernetes-api/policy-resources/resource-quota-v1/
//   LimitRange     https://kubernetes.io/docs/reference/kubernetes-api/policy-resources/limit-range-v1/
//   RoleBinding    https://kubernetes.io/docs/reference/kubernetes-api/authorization-resources/role-binding-v1/
//   NetworkPolicy  https://kubernetes.io/docs/reference/kubernetes-api/policy-resources/network-policy-v1/
//   ObjectMeta     https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/object-meta/
// and OpenShift's ProjectRequest (project.openshift.io/v1: metadata.name, displayName,
// description):
// https://docs.openshift.com/container-platform/4.14/rest_api/project_apis/projectrequest-project-openshift-io-v1.html

namespace prov::providers {

namespace {

bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool is_alnum(char c) {
  return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

bool valid_label_value(std::string_view v) {
  if (v.empty()) {
    return true;
  }
  if (v.size() > 63 || !is_alnum(v.front()) || !is_alnum(v.back())) {
    return false;
  }
  for (char c : v) {
    if (!is_alnum(c) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string kubernetes_provider::namespace_name(std::string_view prefix, std::string_view tenant,
                                                std::string_view request_id) {
  const std::string hash = sha256_hex(request_id).substr(0, 10);
  std::string tenant_part;
  for (char c : tenant) {
    const char l = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    if (is_lower_alnum(l)) {
      tenant_part.push_back(l);
    } else if (!tenant_part.empty() && tenant_part.back() != '-') {
      tenant_part.push_back('-');
    }
  }
  std::string name{prefix};
  const std::size_t room = 63 - std::min<std::size_t>(63, name.size() + 1 + hash.size());
  if (tenant_part.size() > room) {
    tenant_part.resize(room);
  }
  while (!tenant_part.empty() && tenant_part.back() == '-') {
    tenant_part.pop_back();
  }
  if (!tenant_part.empty()) {
    name += tenant_part + "-";
  }
  name += hash;
  if (name.size() > 63) {
    name = name.substr(name.size() - 63);
  }
  while (!name.empty() && !is_lower_alnum(name.front())) {
    name.erase(0, 1);
  }
  return name;
}

std::string kubernetes_provider::label_value(std::string_view text) {
  if (valid_label_value(text)) {
    return std::string{text};
  }
  std::string out;
  for (char c : text) {
    out.push_back(is_alnum(c) || c == '-' || c == '_' || c == '.' ? c : '-');
    if (out.size() >= 52) {
      break;
    }
  }
  while (!out.empty() && !is_alnum(out.back())) {
    out.pop_back();
  }
  while (!out.empty() && !is_alnum(out.front())) {
    out.erase(0, 1);
  }
  const std::string hash = sha256_hex(text).substr(0, 10);
  return out.empty() ? hash : out + "-" + hash;
}

namespace kube {

std::span<const object_kind> object_kinds() {
  using events::step_kind;
  static constexpr std::array<object_kind, 5> kinds{{
      {"namespace", "Namespace", "v1", "/api/v1", "namespaces", "", step_kind::allocate},
      {"resource_quota", "ResourceQuota", "v1", "/api/v1", "resourcequotas", "provisiond-quota", step_kind::configure},
      {"limit_range", "LimitRange", "v1", "/api/v1", "limitranges", "provisiond-limits", step_kind::configure},
      {"role_binding", "RoleBinding", "rbac.authorization.k8s.io/v1", "/apis/rbac.authorization.k8s.io/v1",
       "rolebindings", "provisiond-tenant-admin", step_kind::configure},
      {"network_policy", "NetworkPolicy", "networking.k8s.io/v1", "/apis/networking.k8s.io/v1", "networkpolicies",
       "provisiond-isolation", step_kind::configure},
  }};
  return kinds;
}

const object_kind* find_kind(std::string_view engine_kind) {
  for (const auto& k : object_kinds()) {
    if (k.engine_kind == engine_kind) {
      return &k;
    }
  }
  return nullptr;
}

std::string collection_path(const object_kind& kind, std::string_view ns) {
  if (kind.engine_kind == "namespace") {
    return std::string{kind.api_root} + "/namespaces";
  }
  return std::string{kind.api_root} + "/namespaces/" + std::string{ns} + "/" + std::string{kind.plural};
}

std::string object_path(const object_kind& kind, std::string_view ns, std::string_view name) {
  if (kind.engine_kind == "namespace") {
    return std::string{kind.api_root} + "/namespaces/" + std::string{name};
  }
  return collection_path(kind, ns) + "/" + std::string{name};
}

json labels_for(const owner& o) {
  return json{{std::string{managed_by_label}, std::string{managed_by_value}},
              {std::string{request_label}, kubernetes_provider::label_value(o.request_id)},
              {std::string{tenant_label}, kubernetes_provider::label_value(o.tenant)}};
}

json metadata_for(const owner& o, std::string_view name, bool namespaced) {
  json meta{{"name", std::string{name}},
            {"labels", labels_for(o)},
            {"annotations",
             {{std::string{request_annotation}, o.request_id},
              {std::string{tenant_annotation}, o.tenant},
              {std::string{key_annotation}, o.idempotency_key},
              {std::string{step_annotation}, std::string{events::step_kind_names[static_cast<std::size_t>(o.step)]}}}}};
  if (namespaced) {
    meta["namespace"] = o.ns;
  }
  return meta;
}

json namespace_object(const owner& o) {
  return json{{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", metadata_for(o, o.ns, false)}};
}

std::string project_description(std::string_view request_id) {
  return "provisiond request " + std::string{request_id};
}

json project_request(const owner& o) {
  return json{{"apiVersion", "project.openshift.io/v1"},
              {"kind", "ProjectRequest"},
              {"metadata", {{"name", o.ns}}},
              {"displayName", o.tenant + " (" + o.request_id + ")"},
              {"description", project_description(o.request_id)}};
}

namespace {

std::string millis(std::int64_t v) {
  return std::to_string(v) + "m";
}
std::string mebi(std::int64_t v) {
  return std::to_string(v) + "Mi";
}

std::int64_t fraction_of(std::int64_t total, double fraction) {
  const auto v = static_cast<std::int64_t>(std::floor(static_cast<double>(total) * fraction));
  return std::max<std::int64_t>(1, v);
}

}  // namespace

json resource_quota(const owner& o, const events::resource_spec& spec, const kubernetes_settings& s) {
  json hard = json::object();
  if (spec.cpu_millis > 0) {
    hard["requests.cpu"] = millis(spec.cpu_millis);
    hard["limits.cpu"] = millis(spec.cpu_millis);
  }
  if (spec.memory_mb > 0) {
    hard["requests.memory"] = mebi(spec.memory_mb);
    hard["limits.memory"] = mebi(spec.memory_mb);
  }
  if (spec.storage_gb > 0) {
    hard["requests.storage"] = std::to_string(spec.storage_gb) + "Gi";
  }
  if (s.max_pods > 0) {
    hard["pods"] = std::to_string(s.max_pods);
  }
  const auto& kind = *find_kind("resource_quota");
  return json{{"apiVersion", "v1"},
              {"kind", "ResourceQuota"},
              {"metadata", metadata_for(o, kind.object_name, true)},
              {"spec", {{"hard", hard}}}};
}

json limit_range(const owner& o, const events::resource_spec& spec, const kubernetes_settings& s) {
  json limit{{"type", "Container"}};
  json defaults = json::object();
  json requests = json::object();
  if (spec.cpu_millis > 0) {
    defaults["cpu"] = millis(fraction_of(spec.cpu_millis, s.limit_default_fraction));
    requests["cpu"] = millis(fraction_of(spec.cpu_millis, s.limit_request_fraction));
  }
  if (spec.memory_mb > 0) {
    defaults["memory"] = mebi(fraction_of(spec.memory_mb, s.limit_default_fraction));
    requests["memory"] = mebi(fraction_of(spec.memory_mb, s.limit_request_fraction));
  }
  if (!defaults.empty()) {
    limit["default"] = defaults;
    limit["defaultRequest"] = requests;
  }
  const auto& kind = *find_kind("limit_range");
  return json{{"apiVersion", "v1"},
              {"kind", "LimitRange"},
              {"metadata", metadata_for(o, kind.object_name, true)},
              {"spec", {{"limits", json::array({limit})}}}};
}

json role_binding(const owner& o, const kubernetes_settings& s) {
  const auto& kind = *find_kind("role_binding");
  return json{
      {"apiVersion", "rbac.authorization.k8s.io/v1"},
      {"kind", "RoleBinding"},
      {"metadata", metadata_for(o, kind.object_name, true)},
      {"roleRef", {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "ClusterRole"}, {"name", s.tenant_role}}},
      {"subjects", json::array({{{"kind", s.tenant_subject_kind},
                                 {"apiGroup", "rbac.authorization.k8s.io"},
                                 {"name", s.tenant_group_prefix + o.tenant}}})}};
}

json network_policy(const owner& o, const kubernetes_settings& s) {
  // An empty podSelector in a peer = every pod of this namespace; in the spec = every pod
  // the policy applies to. Both directions are listed in policyTypes, so anything not
  // allowed below is denied.
  json from = json::array({{{"podSelector", json::object()}}});
  if (s.allow_ingress_from_router) {
    const json router_labels{{"policy-group.network.openshift.io/ingress", ""}};
    from.push_back(json{{"namespaceSelector", json{{"matchLabels", router_labels}}}});
  }
  json egress = json::array({{{"to", json::array({{{"podSelector", json::object()}}})}}});
  if (s.network_policy_dns) {
    json peer{{"namespaceSelector", {{"matchLabels", {{"kubernetes.io/metadata.name", s.dns_namespace}}}}}};
    if (!s.dns_pod_labels.empty()) {
      peer["podSelector"] = {{"matchLabels", s.dns_pod_labels}};
    }
    json ports = json::array();
    for (int port : s.dns_ports) {
      ports.push_back({{"protocol", "UDP"}, {"port", port}});
      ports.push_back({{"protocol", "TCP"}, {"port", port}});
    }
    egress.push_back({{"to", json::array({peer})}, {"ports", ports}});
  }
  const auto& kind = *find_kind("network_policy");
  return json{{"apiVersion", "networking.k8s.io/v1"},
              {"kind", "NetworkPolicy"},
              {"metadata", metadata_for(o, kind.object_name, true)},
              {"spec",
               {{"podSelector", json::object()},
                {"policyTypes", {"Ingress", "Egress"}},
                {"ingress", json::array({{{"from", from}}})},
                {"egress", egress}}}};
}

json desired_object(const object_kind& kind, const owner& o, const events::resource_spec& spec,
                    const kubernetes_settings& s) {
  if (kind.engine_kind == "namespace") {
    return namespace_object(o);
  }
  if (kind.engine_kind == "resource_quota") {
    return resource_quota(o, spec, s);
  }
  if (kind.engine_kind == "limit_range") {
    return limit_range(o, spec, s);
  }
  if (kind.engine_kind == "role_binding") {
    return role_binding(o, s);
  }
  return network_policy(o, s);
}

bool owned_by(const json& object, std::string_view request_id) {
  if (detail::text_at(object, {"metadata", "labels", managed_by_label}) != managed_by_value) {
    return false;
  }
  if (detail::text_at(object, {"metadata", "labels", request_label}) != kubernetes_provider::label_value(request_id)) {
    return false;
  }
  const auto full = detail::text_at(object, {"metadata", "annotations", request_annotation});
  return full.empty() || full == request_id;
}

std::optional<long double> parse_quantity(std::string_view text) {
  // <quantity> ::= <signedNumber><suffix>; suffix: binary (Ki..Ei), decimal (n u m "" k M G T P
  // E) or a decimal exponent (e3, E-2).
  std::size_t i = 0;
  bool negative = false;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) {
    negative = text[i] == '-';
    ++i;
  }
  long double value = 0;
  bool digits = false;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    value = value * 10 + (text[i] - '0');
    digits = true;
    ++i;
  }
  if (i < text.size() && text[i] == '.') {
    ++i;
    long double scale = 0.1L;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      value += (text[i] - '0') * scale;
      scale /= 10;
      digits = true;
      ++i;
    }
  }
  if (!digits) {
    return std::nullopt;
  }
  const std::string_view suffix = text.substr(i);
  long double factor = 1;
  static constexpr std::array<std::pair<std::string_view, long double>, 16> suffixes{{
      {"", 1.0L},
      {"n", 1e-9L},
      {"u", 1e-6L},
      {"m", 1e-3L},
      {"k", 1e3L},
      {"M", 1e6L},
      {"G", 1e9L},
      {"T", 1e12L},
      {"P", 1e15L},
      {"E", 1e18L},
      {"Ki", 1024.0L},
      {"Mi", 1024.0L * 1024},
      {"Gi", 1024.0L * 1024 * 1024},
      {"Ti", 1024.0L * 1024 * 1024 * 1024},
      {"Pi", 1024.0L * 1024 * 1024 * 1024 * 1024},
      {"Ei", 1024.0L * 1024 * 1024 * 1024 * 1024 * 1024},
  }};
  bool known = false;
  for (const auto& [name, f] : suffixes) {
    if (suffix == name) {
      factor = f;
      known = true;
      break;
    }
  }
  if (!known) {
    if (suffix.size() < 2 || (suffix[0] != 'e' && suffix[0] != 'E')) {
      return std::nullopt;
    }
    std::size_t j = 1;
    bool exp_negative = false;
    if (suffix[j] == '+' || suffix[j] == '-') {
      exp_negative = suffix[j] == '-';
      ++j;
    }
    if (j >= suffix.size()) {
      return std::nullopt;
    }
    int exponent = 0;
    for (; j < suffix.size(); ++j) {
      if (suffix[j] < '0' || suffix[j] > '9' || exponent > 100) {
        return std::nullopt;
      }
      exponent = exponent * 10 + (suffix[j] - '0');
    }
    factor = std::pow(10.0L, exp_negative ? -exponent : exponent);
  }
  const long double out = value * factor;
  return negative ? -out : out;
}

bool quantities_equal(std::string_view a, std::string_view b) {
  if (a == b) {
    return true;
  }
  const auto x = parse_quantity(a);
  const auto y = parse_quantity(b);
  if (!x || !y) {
    return false;
  }
  const long double scale = std::max({std::fabs(*x), std::fabs(*y), 1e-12L});
  return std::fabs(*x - *y) <= scale * 1e-12L;
}

bool json_matches(const json& expected, const json& actual, bool quantities, std::string& where,
                  const std::string& path) {
  if (expected.is_object()) {
    if (!actual.is_object()) {
      where = (path.empty() ? "." : path) + ": expected an object";
      return false;
    }
    for (auto it = expected.begin(); it != expected.end(); ++it) {
      const auto found = actual.find(it.key());
      const std::string sub = path + "." + it.key();
      if (found == actual.end()) {
        where = sub + ": missing";
        return false;
      }
      if (!json_matches(it.value(), *found, quantities, where, sub)) {
        return false;
      }
    }
    return true;
  }
  if (expected.is_array()) {
    if (!actual.is_array() || actual.size() != expected.size()) {
      where = path + ": expected " + std::to_string(expected.size()) + " entries";
      return false;
    }
    for (std::size_t i = 0; i < expected.size(); ++i) {
      if (!json_matches(expected[i], actual[i], quantities, where, path + "[" + std::to_string(i) + "]")) {
        return false;
      }
    }
    return true;
  }
  if (expected.is_string() && actual.is_string() && quantities) {
    if (quantities_equal(expected.get<std::string>(), actual.get<std::string>())) {
      return true;
    }
  } else if (expected == actual) {
    return true;
  }
  where = path + ": expected " + expected.dump() + ", found " + actual.dump();
  return false;
}

std::string compare_written(const object_kind& kind, const json& desired, const json& actual) {
  std::string where;
  const json empty = json::object();
  const auto labels = actual.contains("metadata") ? actual["metadata"].value("labels", empty) : empty;
  if (!json_matches(desired["metadata"]["labels"], labels, false, where, "metadata.labels")) {
    return where;
  }
  if (kind.engine_kind == "namespace") {
    return {};
  }
  if (kind.engine_kind == "role_binding") {
    if (!json_matches(desired["roleRef"], actual.value("roleRef", empty), false, where, "roleRef")) {
      return where;
    }
    if (!json_matches(desired["subjects"], actual.value("subjects", json::array()), false, where, "subjects")) {
      return where;
    }
    return {};
  }
  const bool quantities = kind.engine_kind == "resource_quota" || kind.engine_kind == "limit_range";
  if (!json_matches(desired["spec"], actual.value("spec", empty), quantities, where, "spec")) {
    return where;
  }
  return {};
}

}  // namespace kube

}  // namespace prov::providers
