#include "fake_kube_api.hpp"

#include <algorithm>
#include <regex>

// What the fake follows (Kubernetes v1.29 API reference; OpenShift 4.14 REST API):
//   API concepts (verbs, lists, labelSelector, 409/404/422, Status bodies)
//     https://kubernetes.io/docs/reference/using-api/api-concepts/
//   Status           https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/status/
//   ObjectMeta       https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/object-meta/
//   Names (DNS-1123) https://kubernetes.io/docs/concepts/overview/working-with-objects/names/
//   Label syntax     https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set
//   LabelSelector    https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/label-selector/
//   Quantity         https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/
//   Namespace        https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/namespace-v1/
//   ResourceQuota    https://kubernetes.io/docs/reference/kubernetes-api/policy-resources/resource-quota-v1/
//   LimitRange       https://kubernetes.io/docs/reference/kubernetes-api/policy-resources/limit-range-v1/
//   RoleBinding      https://kubernetes.io/docs/reference/kubernetes-api/authorization-resources/role-binding-v1/
//   NetworkPolicy    https://kubernetes.io/docs/reference/kubernetes-api/policy-resources/network-policy-v1/
//   DeleteOptions    https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/delete-options/
//   ProjectRequest
//   https://docs.openshift.com/container-platform/4.14/rest_api/project_apis/projectrequest-project-openshift-io-v1.html
//   PodMetrics       metrics.k8s.io/v1beta1 (k8s.io/metrics, served by metrics-server)
// Deleting a namespace that is already terminating answers 409 Conflict ("The system is
// ensuring all content is removed from this namespace"), as kubernetes/kubernetes#61576 shows.

namespace prov::test {

using json = nlohmann::json;

namespace {

/// Where a resource lives and what it is.
struct resource_type {
  std::string group_version;  ///< "v1", "rbac.authorization.k8s.io/v1", ...
  std::string plural;
  std::string kind;
  bool namespaced = true;
};

const std::vector<resource_type>& types() {
  static const std::vector<resource_type> all{
      {"v1", "namespaces", "Namespace", false},
      {"v1", "resourcequotas", "ResourceQuota", true},
      {"v1", "limitranges", "LimitRange", true},
      {"rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding", true},
      {"networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", true},
  };
  return all;
}

const resource_type* type_of(const std::string& group_version, const std::string& plural) {
  for (const auto& t : types()) {
    if (t.group_version == group_version && t.plural == plural) {
      return &t;
    }
  }
  return nullptr;
}

const resource_type* type_by_plural(const std::string& plural) {
  for (const auto& t : types()) {
    if (t.plural == plural) {
      return &t;
    }
  }
  return nullptr;
}

std::string key_of(const std::string& plural, const std::string& ns, const std::string& name) {
  return plural + "/" + ns + "/" + name;
}

std::string reason_for(unsigned code) {
  switch (code) {
    case 400: return "BadRequest";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "NotFound";
    case 405: return "MethodNotAllowed";
    case 409: return "Conflict";
    case 415: return "UnsupportedMediaType";
    case 422: return "Invalid";
    case 429: return "TooManyRequests";
    case 500: return "InternalError";
    case 503: return "ServiceUnavailable";
    case 504: return "Timeout";
    default: return "Unknown";
  }
}

served_response json_response(unsigned status, const json& body) {
  served_response out;
  out.status = status;
  out.headers = {{"Content-Type", "application/json"}};
  out.body = body.dump();
  return out;
}

/// A `Status` object, as every error (and some deletes) come back.
served_response status_response(unsigned code, const std::string& message, std::string reason = "",
                                json details = nullptr) {
  json body{{"kind", "Status"},
            {"apiVersion", "v1"},
            {"metadata", json::object()},
            {"status", code < 300 ? "Success" : "Failure"},
            {"message", message},
            {"reason", reason.empty() ? reason_for(code) : reason},
            {"code", code}};
  if (!details.is_null()) {
    body["details"] = std::move(details);
  }
  if (code < 300) {
    body.erase("message");
    body.erase("reason");
  }
  return json_response(code, body);
}

std::string url_decode(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string part;
  for (char c : s) {
    if (c == sep) {
      out.push_back(part);
      part.clear();
    } else {
      part.push_back(c);
    }
  }
  out.push_back(part);
  return out;
}

std::string label(const json& object, const std::string& key) {
  const auto& meta = object.value("metadata", json::object());
  const auto& labels = meta.value("labels", json::object());
  auto it = labels.find(key);
  return it != labels.end() && it->is_string() ? it->get<std::string>() : std::string{};
}

bool has_label(const json& object, const std::string& key) {
  const auto& meta = object.value("metadata", json::object());
  const auto& labels = meta.value("labels", json::object());
  return labels.contains(key);
}

/// `labelSelector` equality-based terms: k=v, k==v, k!=v, k, !k.
bool selected(const json& object, const std::string& selector) {
  if (selector.empty()) {
    return true;
  }
  for (const auto& term : split(selector, ',')) {
    if (term.empty()) {
      continue;
    }
    if (auto ne = term.find("!="); ne != std::string::npos) {
      if (label(object, term.substr(0, ne)) == term.substr(ne + 2) && has_label(object, term.substr(0, ne))) {
        return false;
      }
    } else if (auto eq = term.find('='); eq != std::string::npos) {
      const auto value = term.substr(term.compare(eq, 2, "==") == 0 ? eq + 2 : eq + 1);
      if (!has_label(object, term.substr(0, eq)) || label(object, term.substr(0, eq)) != value) {
        return false;
      }
    } else if (term.front() == '!') {
      if (has_label(object, term.substr(1))) {
        return false;
      }
    } else if (!has_label(object, term)) {
      return false;
    }
  }
  return true;
}

std::string now_rfc3339() {
  return "2030-01-01T00:00:00Z";
}

// Quantities come back canonical from the API server ("1000m" -> "1", "2048Mi" -> "2Gi"):
// clients must compare them as numbers, so the fake does the same.
std::string canonical_quantity(const std::string& q) {
  static const std::regex whole{R"(^([0-9]+)(m|Mi|Gi)$)"};
  std::smatch m;
  if (!std::regex_match(q, m, whole)) {
    return q;
  }
  const auto n = std::stoll(m[1].str());
  if (m[2] == "m" && n % 1000 == 0) {
    return std::to_string(n / 1000);
  }
  if (m[2] == "Mi" && n % 1024 == 0 && n > 0) {
    return std::to_string(n / 1024) + "Gi";
  }
  if (m[2] == "Gi" && n % 1024 == 0 && n > 0) {
    return std::to_string(n / 1024) + "Ti";
  }
  return q;
}

void canonicalize_map(json& map) {
  if (!map.is_object()) {
    return;
  }
  for (auto& [key, value] : map.items()) {
    if (value.is_string()) {
      value = canonical_quantity(value.get<std::string>());
    }
  }
}

void canonicalize(const std::string& plural, json& object) {
  if (plural == "resourcequotas" && object.contains("spec")) {
    canonicalize_map(object["spec"]["hard"]);
  }
  if (plural == "limitranges" && object.contains("spec") && object["spec"].contains("limits")) {
    for (auto& limit : object["spec"]["limits"]) {
      for (const char* field : {"default", "defaultRequest", "max", "min", "maxLimitRequestRatio"}) {
        if (limit.contains(field)) {
          canonicalize_map(limit[field]);
        }
      }
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Schema checks

namespace kube_schema {

namespace {

/// Numeric value of a quantity (enough precision to order default vs defaultRequest).
double quantity_value(const std::string& s) {
  static const std::regex re{R"(^([+-]?[0-9.]+)([a-zA-Z]*)$)"};
  std::smatch m;
  if (!std::regex_match(s, m, re)) {
    return 0;
  }
  const double v = std::stod(m[1].str());
  static const std::map<std::string, double> factor{
      {"", 1},    {"n", 1e-9}, {"u", 1e-6},    {"m", 1e-3},       {"k", 1e3},           {"M", 1e6},
      {"G", 1e9}, {"T", 1e12}, {"Ki", 1024.0}, {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0}};
  auto it = factor.find(m[2].str());
  return it == factor.end() ? v : v * it->second;
}

bool label_name(const std::string& s) {
  static const std::regex re{R"(^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$)"};
  return s.size() <= 63 && std::regex_match(s, re);
}

bool label_key(const std::string& k) {
  const auto slash = k.find('/');
  if (slash == std::string::npos) {
    return label_name(k);
  }
  const auto prefix = k.substr(0, slash);
  return !prefix.empty() && prefix.size() <= 253 && dns1123_subdomain(prefix) && label_name(k.substr(slash + 1));
}

bool label_value(const std::string& v) {
  return v.empty() || label_name(v);
}

void allowed_keys(const json& object, std::initializer_list<const char*> keys, const std::string& where,
                  std::vector<std::string>& problems) {
  if (!object.is_object()) {
    problems.push_back(where + ": must be an object");
    return;
  }
  for (const auto& [key, value] : object.items()) {
    if (std::find_if(keys.begin(), keys.end(), [&](const char* k) { return key == k; }) == keys.end()) {
      problems.push_back(where + "." + key + ": unknown field");
    }
  }
}

void string_map(const json& map, const std::string& where, bool labels, std::vector<std::string>& problems) {
  if (!map.is_object()) {
    problems.push_back(where + ": must be an object of strings");
    return;
  }
  for (const auto& [key, value] : map.items()) {
    if (!label_key(key)) {
      problems.push_back(where + ": invalid key '" + key + "'");
    }
    if (!value.is_string()) {
      problems.push_back(where + "." + key + ": must be a string");
    } else if (labels && !label_value(value.get<std::string>())) {
      problems.push_back(where + "." + key + ": invalid label value '" + value.get<std::string>() + "'");
    }
  }
}

void label_selector(const json& sel, const std::string& where, std::vector<std::string>& problems) {
  allowed_keys(sel, {"matchLabels", "matchExpressions"}, where, problems);
  if (!sel.is_object()) {
    return;
  }
  if (sel.contains("matchLabels")) {
    string_map(sel["matchLabels"], where + ".matchLabels", true, problems);
  }
  if (sel.contains("matchExpressions")) {
    if (!sel["matchExpressions"].is_array()) {
      problems.push_back(where + ".matchExpressions: must be an array");
      return;
    }
    for (const auto& e : sel["matchExpressions"]) {
      allowed_keys(e, {"key", "operator", "values"}, where + ".matchExpressions[]", problems);
      const auto op = e.value("operator", "");
      if (op != "In" && op != "NotIn" && op != "Exists" && op != "DoesNotExist") {
        problems.push_back(where + ".matchExpressions[].operator: unsupported '" + op + "'");
      }
    }
  }
}

void quantity_map(const json& map, const std::string& where, std::vector<std::string>& problems) {
  if (!map.is_object()) {
    problems.push_back(where + ": must be an object of quantities");
    return;
  }
  for (const auto& [key, value] : map.items()) {
    if (!value.is_string() || !quantity(value.get<std::string>())) {
      problems.push_back(where + "." + key + ": must be a quantity string, got " + value.dump());
    }
  }
}

bool standard_quota_resource(const std::string& name) {
  static const std::set<std::string> names{"cpu",
                                           "memory",
                                           "requests.cpu",
                                           "requests.memory",
                                           "limits.cpu",
                                           "limits.memory",
                                           "requests.storage",
                                           "persistentvolumeclaims",
                                           "pods",
                                           "services",
                                           "secrets",
                                           "configmaps",
                                           "replicationcontrollers",
                                           "resourcequotas",
                                           "services.loadbalancers",
                                           "services.nodeports",
                                           "ephemeral-storage",
                                           "requests.ephemeral-storage",
                                           "limits.ephemeral-storage"};
  return names.count(name) > 0 || name.rfind("count/", 0) == 0 ||
         name.find(".storageclass.storage.k8s.io/") != std::string::npos;
}

void metadata(const json& object, const resource_type& type, std::vector<std::string>& problems) {
  if (!object.contains("metadata") || !object["metadata"].is_object()) {
    problems.push_back("metadata: required");
    return;
  }
  const auto& meta = object["metadata"];
  allowed_keys(meta,
               {"name", "namespace", "labels", "annotations", "resourceVersion", "uid", "creationTimestamp",
                "deletionTimestamp", "finalizers", "generation", "managedFields"},
               "metadata", problems);
  if (!meta.contains("name") || !meta["name"].is_string()) {
    problems.push_back("metadata.name: required string");
  } else {
    const auto name = meta["name"].get<std::string>();
    // Namespaces are DNS-1123 labels; the other kinds here are DNS-1123 subdomains
    // (RoleBinding names are path segments, a superset).
    const bool ok = type.plural == "namespaces" ? dns1123_label(name) : dns1123_subdomain(name);
    if (!ok) {
      problems.push_back("metadata.name: '" + name + "' is not a valid " +
                         (type.plural == "namespaces" ? "DNS-1123 label" : "DNS-1123 subdomain"));
    }
  }
  if (meta.contains("labels")) {
    string_map(meta["labels"], "metadata.labels", true, problems);
  }
  if (meta.contains("annotations")) {
    string_map(meta["annotations"], "metadata.annotations", false, problems);
    if (meta["annotations"].dump().size() > 256 * 1024) {
      problems.push_back("metadata.annotations: total size over 256 KiB");
    }
  }
}

}  // namespace

bool dns1123_label(const std::string& s) {
  static const std::regex re{R"(^[a-z0-9]([-a-z0-9]*[a-z0-9])?$)"};
  return s.size() <= 63 && std::regex_match(s, re);
}

bool dns1123_subdomain(const std::string& s) {
  if (s.empty() || s.size() > 253) {
    return false;
  }
  for (const auto& part : split(s, '.')) {
    if (!dns1123_label(part)) {
      return false;
    }
  }
  return true;
}

bool quantity(const std::string& s) {
  static const std::regex re{R"(^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?[0-9]+)?$)"};
  return std::regex_match(s, re);
}

std::vector<std::string> check(const std::string& plural, const json& object) {
  std::vector<std::string> problems;
  const auto* type = type_by_plural(plural);
  if (plural == "projectrequests") {
    allowed_keys(object, {"apiVersion", "kind", "metadata", "displayName", "description"}, "", problems);
    if (object.value("apiVersion", "") != "project.openshift.io/v1" || object.value("kind", "") != "ProjectRequest") {
      problems.push_back("apiVersion/kind: must be project.openshift.io/v1 ProjectRequest");
    }
    const auto name = object.contains("metadata") ? object["metadata"].value("name", "") : "";
    if (!dns1123_label(name)) {
      problems.push_back("metadata.name: '" + name + "' is not a valid DNS-1123 label");
    }
    for (const char* f : {"displayName", "description"}) {
      if (object.contains(f) && !object[f].is_string()) {
        problems.push_back(std::string{f} + ": must be a string");
      }
    }
    return problems;
  }
  if (type == nullptr) {
    problems.push_back("unknown resource " + plural);
    return problems;
  }
  if (!object.is_object()) {
    problems.push_back("body: must be an object");
    return problems;
  }
  if (object.value("apiVersion", "") != type->group_version) {
    problems.push_back("apiVersion: must be " + type->group_version);
  }
  if (object.value("kind", "") != type->kind) {
    problems.push_back("kind: must be " + type->kind);
  }
  metadata(object, *type, problems);

  if (plural == "namespaces") {
    allowed_keys(object, {"apiVersion", "kind", "metadata", "spec", "status"}, "", problems);
    if (object.contains("spec")) {
      allowed_keys(object["spec"], {"finalizers"}, "spec", problems);
    }
  } else if (plural == "resourcequotas") {
    allowed_keys(object, {"apiVersion", "kind", "metadata", "spec", "status"}, "", problems);
    const auto& spec = object.value("spec", json::object());
    allowed_keys(spec, {"hard", "scopes", "scopeSelector"}, "spec", problems);
    if (spec.contains("hard")) {
      quantity_map(spec["hard"], "spec.hard", problems);
      if (spec["hard"].is_object()) {
        for (const auto& [key, value] : spec["hard"].items()) {
          if (!standard_quota_resource(key)) {
            problems.push_back("spec.hard." + key + ": not a quota resource name");
          }
        }
      }
    }
  } else if (plural == "limitranges") {
    allowed_keys(object, {"apiVersion", "kind", "metadata", "spec"}, "", problems);
    const auto& spec = object.value("spec", json::object());
    allowed_keys(spec, {"limits"}, "spec", problems);
    if (!spec.contains("limits") || !spec["limits"].is_array() || spec["limits"].empty()) {
      problems.push_back("spec.limits: required, a non-empty array");
    } else {
      for (const auto& limit : spec["limits"]) {
        allowed_keys(limit, {"type", "max", "min", "default", "defaultRequest", "maxLimitRequestRatio"},
                     "spec.limits[]", problems);
        const auto t = limit.value("type", "");
        if (t != "Container" && t != "Pod" && t != "PersistentVolumeClaim") {
          problems.push_back("spec.limits[].type: must be Container, Pod or PersistentVolumeClaim");
        }
        for (const char* f : {"max", "min", "default", "defaultRequest", "maxLimitRequestRatio"}) {
          if (limit.contains(f)) {
            quantity_map(limit[f], std::string{"spec.limits[]."} + f, problems);
          }
        }
        if ((limit.contains("default") || limit.contains("defaultRequest")) && t != "Container") {
          problems.push_back("spec.limits[]: default and defaultRequest apply to type Container only");
        }
        if (limit.contains("default") && limit.contains("defaultRequest") && limit["default"].is_object() &&
            limit["defaultRequest"].is_object()) {
          for (const auto& [resource, request] : limit["defaultRequest"].items()) {
            if (limit["default"].contains(resource) && request.is_string() && limit["default"][resource].is_string() &&
                quantity_value(request.get<std::string>()) >
                    quantity_value(limit["default"][resource].get<std::string>())) {
              problems.push_back("spec.limits[].defaultRequest." + resource +
                                 ": must be less than or equal to the default limit");
            }
          }
        }
      }
    }
  } else if (plural == "rolebindings") {
    allowed_keys(object, {"apiVersion", "kind", "metadata", "roleRef", "subjects"}, "", problems);
    const auto& ref = object.value("roleRef", json());
    if (!ref.is_object()) {
      problems.push_back("roleRef: required");
    } else {
      allowed_keys(ref, {"apiGroup", "kind", "name"}, "roleRef", problems);
      if (ref.value("apiGroup", "") != "rbac.authorization.k8s.io") {
        problems.push_back("roleRef.apiGroup: must be rbac.authorization.k8s.io");
      }
      if (ref.value("kind", "") != "ClusterRole" && ref.value("kind", "") != "Role") {
        problems.push_back("roleRef.kind: must be ClusterRole or Role");
      }
      if (ref.value("name", "").empty()) {
        problems.push_back("roleRef.name: required");
      }
    }
    if (object.contains("subjects")) {
      if (!object["subjects"].is_array()) {
        problems.push_back("subjects: must be an array");
      } else {
        for (const auto& subject : object["subjects"]) {
          allowed_keys(subject, {"kind", "apiGroup", "name", "namespace"}, "subjects[]", problems);
          const auto kind = subject.value("kind", "");
          if (kind != "User" && kind != "Group" && kind != "ServiceAccount") {
            problems.push_back("subjects[].kind: must be User, Group or ServiceAccount");
          }
          if (subject.value("name", "").empty()) {
            problems.push_back("subjects[].name: required");
          }
          if ((kind == "User" || kind == "Group") && subject.value("apiGroup", "") != "rbac.authorization.k8s.io") {
            problems.push_back("subjects[].apiGroup: must be rbac.authorization.k8s.io for " + kind);
          }
        }
      }
    }
  } else if (plural == "networkpolicies") {
    allowed_keys(object, {"apiVersion", "kind", "metadata", "spec"}, "", problems);
    const auto& spec = object.value("spec", json());
    if (!spec.is_object()) {
      problems.push_back("spec: required");
      return problems;
    }
    allowed_keys(spec, {"podSelector", "policyTypes", "ingress", "egress"}, "spec", problems);
    if (!spec.contains("podSelector")) {
      problems.push_back("spec.podSelector: required");
    } else {
      label_selector(spec["podSelector"], "spec.podSelector", problems);
    }
    if (spec.contains("policyTypes")) {
      for (const auto& t : spec["policyTypes"]) {
        if (t != "Ingress" && t != "Egress") {
          problems.push_back("spec.policyTypes: " + t.dump() + " is not Ingress or Egress");
        }
      }
    }
    const auto peers = [&](const json& list, const std::string& where) {
      if (!list.is_array()) {
        problems.push_back(where + ": must be an array");
        return;
      }
      for (const auto& peer : list) {
        allowed_keys(peer, {"podSelector", "namespaceSelector", "ipBlock"}, where + "[]", problems);
        if (!peer.is_object() || peer.empty()) {
          problems.push_back(where + "[]: must select something");
          continue;
        }
        if (peer.contains("ipBlock") && (peer.contains("podSelector") || peer.contains("namespaceSelector"))) {
          problems.push_back(where + "[]: ipBlock excludes the selectors");
        }
        for (const char* f : {"podSelector", "namespaceSelector"}) {
          if (peer.contains(f)) {
            label_selector(peer[f], where + "[]." + f, problems);
          }
        }
      }
    };
    const auto ports = [&](const json& list, const std::string& where) {
      if (!list.is_array()) {
        problems.push_back(where + ": must be an array");
        return;
      }
      for (const auto& port : list) {
        allowed_keys(port, {"protocol", "port", "endPort"}, where + "[]", problems);
        const auto protocol = port.value("protocol", "TCP");
        if (protocol != "TCP" && protocol != "UDP" && protocol != "SCTP") {
          problems.push_back(where + "[].protocol: must be TCP, UDP or SCTP");
        }
        if (port.contains("port")) {
          const auto& p = port["port"];
          const bool number = p.is_number_integer() && p.get<int>() >= 1 && p.get<int>() <= 65535;
          // A named port is an IANA_SVC_NAME: at most 15 of [a-z0-9-], at least one letter.
          static const std::regex svc_name{R"(^(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?$)"};
          const bool name =
              p.is_string() && p.get<std::string>().size() <= 15 && std::regex_match(p.get<std::string>(), svc_name);
          if (!number && !name) {
            problems.push_back(where + "[].port: must be 1-65535 or a port name, got " + p.dump());
          }
        }
      }
    };
    for (const char* direction : {"ingress", "egress"}) {
      if (!spec.contains(direction)) {
        continue;
      }
      const std::string where = std::string{"spec."} + direction;
      const char* peer_field = std::string{direction} == "ingress" ? "from" : "to";
      if (!spec[direction].is_array()) {
        problems.push_back(where + ": must be an array");
        continue;
      }
      for (const auto& rule : spec[direction]) {
        allowed_keys(rule, {peer_field, "ports"}, where + "[]", problems);
        if (rule.contains(peer_field)) {
          peers(rule[peer_field], where + "[]." + peer_field);
        }
        if (rule.contains("ports")) {
          ports(rule["ports"], where + "[].ports");
        }
      }
    }
  }
  return problems;
}

}  // namespace kube_schema

// ---------------------------------------------------------------------------------------------
// The server

fake_kube_api::fake_kube_api(options o)
    : _options(std::move(o)), _server([this](const served_request& in) { return handle(in); }, _options.tls) {}

fake_kube_api::~fake_kube_api() {
  _server.stop();
}

std::string fake_kube_api::endpoint() const {
  return _server.url();
}

void fake_kube_api::set_token(std::string token) {
  std::lock_guard<std::mutex> guard{_mutex};
  _options.token = std::move(token);
}

void fake_kube_api::inject(fault f) {
  std::lock_guard<std::mutex> guard{_mutex};
  _faults.push_back(std::move(f));
}

void fake_kube_api::set_pod_metrics(const std::string& ns, json items) {
  std::lock_guard<std::mutex> guard{_mutex};
  _pod_metrics[ns] = std::move(items);
}

void fake_kube_api::put(const std::string& plural, const std::string& ns, json object) {
  std::lock_guard<std::mutex> guard{_mutex};
  const auto name = object["metadata"]["name"].get<std::string>();
  if (plural == "namespaces" && !object.contains("status")) {
    object["status"] = {{"phase", "Active"}};
  }
  _objects[key_of(plural, ns, name)] = entry{stored(object, ns)};
}

std::optional<json> fake_kube_api::object(const std::string& plural, const std::string& ns,
                                          const std::string& name) const {
  std::lock_guard<std::mutex> guard{_mutex};
  auto it = _objects.find(key_of(plural, ns, name));
  if (it == _objects.end()) {
    return std::nullopt;
  }
  return it->second.object;
}

std::vector<std::string> fake_kube_api::keys() const {
  std::lock_guard<std::mutex> guard{_mutex};
  std::vector<std::string> out;
  for (const auto& [key, e] : _objects) {
    const auto parts = split(key, '/');
    out.push_back(parts[0] == "namespaces" ? "namespaces/" + parts[2] : key);
  }
  return out;
}

std::vector<std::string> fake_kube_api::violations() const {
  std::lock_guard<std::mutex> guard{_mutex};
  return _violations;
}

std::vector<std::string> fake_kube_api::log() const {
  std::lock_guard<std::mutex> guard{_mutex};
  return _log;
}

std::size_t fake_kube_api::count(const std::string& method, const std::string& path_contains) const {
  std::lock_guard<std::mutex> guard{_mutex};
  return static_cast<std::size_t>(std::count_if(_log.begin(), _log.end(), [&](const std::string& line) {
    return line.rfind(method + " ", 0) == 0 && line.find(path_contains) != std::string::npos;
  }));
}

json fake_kube_api::stored(const json& object, const std::string& ns) {
  json out = object;
  auto& meta = out["metadata"];
  if (!ns.empty()) {
    meta["namespace"] = ns;
  }
  meta["uid"] = "uid-" + std::to_string(++_version);
  meta["resourceVersion"] = std::to_string(_version);
  meta["creationTimestamp"] = now_rfc3339();
  return out;
}

std::map<std::string, fake_kube_api::entry>::iterator fake_kube_api::find(const std::string& plural,
                                                                          const std::string& ns,
                                                                          const std::string& name) {
  return _objects.find(key_of(plural, ns, name));
}

bool fake_kube_api::observe_namespace(const std::string& name) {
  auto it = find("namespaces", "", name);
  if (it == _objects.end()) {
    return false;
  }
  auto& e = it->second;
  if (e.reads_left == 0) {
    // The namespace controller finished: the namespace and everything in it are gone.
    for (auto o = _objects.begin(); o != _objects.end();) {
      const auto parts = split(o->first, '/');
      if (parts[0] != "namespaces" && parts[1] == name) {
        o = _objects.erase(o);
      } else {
        ++o;
      }
    }
    _objects.erase(it);
    return false;
  }
  if (e.reads_left > 0) {
    --e.reads_left;
  }
  if (e.pending_reads > 0) {
    if (--e.pending_reads == 0) {
      e.object["status"] = {{"phase", "Active"}};
    }
  }
  return true;
}

served_response fake_kube_api::invalid(const std::string& where, const std::string& kind, const std::string& name,
                                       const std::vector<std::string>& problems) {
  json causes = json::array();
  std::string message = kind + " \"" + name + "\" is invalid:";
  for (const auto& p : problems) {
    _violations.push_back(where + ": " + p);
    causes.push_back({{"reason", "FieldValueInvalid"}, {"message", p}});
    message += " " + p + ";";
  }
  return status_response(422, message, "Invalid", {{"name", name}, {"kind", kind}, {"causes", causes}});
}

served_response fake_kube_api::handle(const served_request& in) {
  std::lock_guard<std::mutex> guard{_mutex};
  const auto q = in.target.find('?');
  const std::string path = in.target.substr(0, q);
  std::map<std::string, std::string> query;
  if (q != std::string::npos) {
    for (const auto& pair : split(in.target.substr(q + 1), '&')) {
      const auto eq = pair.find('=');
      query[url_decode(pair.substr(0, eq))] = eq == std::string::npos ? "" : url_decode(pair.substr(eq + 1));
    }
  }
  served_response out;
  bool faulted = false;
  for (auto& f : _faults) {
    if (f.times > 0 && (f.method.empty() || f.method == in.method) &&
        (f.path_contains.empty() || in.target.find(f.path_contains) != std::string::npos)) {
      --f.times;
      faulted = true;
      if (f.hang) {
        out.hang = true;
      } else {
        out = status_response(f.status, "injected fault");
      }
      break;
    }
  }
  if (!faulted) {
    if (path == "/version" && in.method == "GET") {
      out =
          json_response(200, {{"major", "1"}, {"minor", "29"}, {"gitVersion", "v1.29.2"}, {"platform", "linux/amd64"}});
    } else if (in.header("authorization") != "Bearer " + _options.token) {
      out = status_response(401, "Unauthorized");
    } else {
      out = route(in, path, query);
    }
  }
  _log.push_back(in.method + " " + in.target + " -> " +
                 (out.hang ? std::string{"(no answer)"} : std::to_string(out.status)));
  return out;
}

served_response fake_kube_api::route(const served_request& in, const std::string& path,
                                     const std::map<std::string, std::string>& query) {
  auto segments = split(path, '/');
  if (!segments.empty() && segments.front().empty()) {
    segments.erase(segments.begin());
  }
  std::string group_version;
  std::size_t at = 0;
  if (segments.size() >= 2 && segments[0] == "api" && segments[1] == "v1") {
    group_version = "v1";
    at = 2;
  } else if (segments.size() >= 3 && segments[0] == "apis") {
    group_version = segments[1] + "/" + segments[2];
    at = 3;
  } else {
    return status_response(404, "the server could not find the requested resource");
  }
  std::vector<std::string> rest(segments.begin() + static_cast<std::ptrdiff_t>(at), segments.end());
  const std::string where = in.method + " " + path;
  const auto selector = query.count("labelSelector") ? query.at("labelSelector") : std::string{};

  if (group_version == "project.openshift.io/v1" && rest.size() == 1 && rest[0] == "projectrequests" &&
      _options.openshift) {
    if (in.method != "POST") {
      return status_response(405, "only POST is served for projectrequests here");
    }
    return project_request(in.body, where);
  }
  if (group_version == "metrics.k8s.io/v1beta1" && _options.metrics && rest.size() == 3 && rest[0] == "namespaces" &&
      rest[2] == "pods" && in.method == "GET") {
    const auto it = _pod_metrics.find(rest[1]);
    return json_response(200, {{"kind", "PodMetricsList"},
                               {"apiVersion", "metrics.k8s.io/v1beta1"},
                               {"metadata", json::object()},
                               {"items", it == _pod_metrics.end() ? json::array() : it->second}});
  }

  // Cluster-wide collections: /api/v1/<plural>, /apis/<g>/<v>/<plural>.
  if (rest.size() == 1) {
    const auto* type = type_of(group_version, rest[0]);
    if (type == nullptr) {
      return status_response(404, "the server could not find the requested resource");
    }
    if (type->plural == "namespaces") {
      if (in.method == "GET") {
        return list("namespaces", std::nullopt, selector);
      }
      if (in.method == "POST") {
        return create("namespaces", "", in.body, where);
      }
      return status_response(405, "method not allowed");
    }
    if (in.method != "GET") {
      return status_response(405, "method not allowed");
    }
    return list(type->plural, std::nullopt, selector);
  }
  if (rest.size() < 2 || rest[0] != "namespaces") {
    return status_response(404, "the server could not find the requested resource");
  }
  if (rest.size() == 2) {  // one namespace
    if (group_version != "v1") {
      return status_response(404, "the server could not find the requested resource");
    }
    if (in.method == "GET") {
      return read("namespaces", "", rest[1]);
    }
    if (in.method == "DELETE") {
      return remove("namespaces", "", rest[1], in.body, where);
    }
    if (in.method == "PATCH") {
      return patch("namespaces", "", rest[1], in, where);
    }
    return status_response(405, "method not allowed");
  }
  const auto* type = type_of(group_version, rest[2]);
  if (type == nullptr || !type->namespaced || rest.size() > 4) {
    return status_response(404, "the server could not find the requested resource");
  }
  const auto& ns = rest[1];
  if (rest.size() == 3) {
    if (in.method == "GET") {
      return list(type->plural, ns, selector);
    }
    if (in.method == "POST") {
      return create(type->plural, ns, in.body, where);
    }
    return status_response(405, "method not allowed");
  }
  if (in.method == "GET") {
    return read(type->plural, ns, rest[3]);
  }
  if (in.method == "DELETE") {
    return remove(type->plural, ns, rest[3], in.body, where);
  }
  if (in.method == "PATCH") {
    return patch(type->plural, ns, rest[3], in, where);
  }
  return status_response(405, "method not allowed");
}

served_response fake_kube_api::create(const std::string& plural, const std::string& ns, const std::string& body,
                                      const std::string& where) {
  const auto* type = type_by_plural(plural);
  const json object = json::parse(body, nullptr, false);
  if (object.is_discarded()) {
    _violations.push_back(where + ": body is not JSON");
    return status_response(400, "the body of the request was not JSON");
  }
  const auto name = object.contains("metadata") ? object["metadata"].value("name", "") : "";
  if (auto problems = kube_schema::check(plural, object); !problems.empty()) {
    return invalid(where, type->kind, name, problems);
  }
  if (type->namespaced) {
    if (object["metadata"].contains("namespace") && object["metadata"]["namespace"] != ns) {
      _violations.push_back(where + ": metadata.namespace does not match the request path");
      return status_response(400,
                             "the namespace of the provided object does not match the namespace sent on the request");
    }
    auto owner = find("namespaces", "", ns);
    if (owner == _objects.end()) {
      return status_response(404, "namespaces \"" + ns + "\" not found", "NotFound",
                             {{"name", ns}, {"kind", "namespaces"}});
    }
    if (owner->second.object["status"].value("phase", "") == "Terminating") {
      return status_response(
          403,
          type->plural + " \"" + name + "\" is forbidden: unable to create new content in namespace " + ns +
              " because it is being terminated",
          "Forbidden",
          {{"name", name}, {"kind", type->plural}, {"causes", json::array({{{"reason", "NamespaceTerminating"}}})}});
    }
  }
  if (find(plural, ns, name) != _objects.end()) {
    return status_response(409, type->plural + " \"" + name + "\" already exists", "AlreadyExists",
                           {{"name", name}, {"kind", type->plural}});
  }
  json object_out = stored(object, type->namespaced ? ns : "");
  canonicalize(plural, object_out);
  entry e;
  if (plural == "namespaces") {
    object_out["spec"] = {{"finalizers", {"kubernetes"}}};
    e.pending_reads = _options.activation_reads;
    object_out["status"] = e.pending_reads > 0 ? json::object() : json{{"phase", "Active"}};
  }
  e.object = object_out;
  _objects[key_of(plural, type->namespaced ? ns : "", name)] = e;
  return json_response(201, object_out);
}

served_response fake_kube_api::project_request(const std::string& body, const std::string& where) {
  const json request = json::parse(body, nullptr, false);
  if (request.is_discarded()) {
    _violations.push_back(where + ": body is not JSON");
    return status_response(400, "the body of the request was not JSON");
  }
  const auto name = request.contains("metadata") ? request["metadata"].value("name", "") : "";
  if (auto problems = kube_schema::check("projectrequests", request); !problems.empty()) {
    return invalid(where, "ProjectRequest", name, problems);
  }
  if (find("namespaces", "", name) != _objects.end()) {
    return status_response(409, "project.project.openshift.io \"" + name + "\" already exists", "AlreadyExists",
                           {{"name", name}, {"group", "project.openshift.io"}, {"kind", "project"}});
  }
  // The default project template: a namespace with the display name, description and
  // requester as annotations, and the requester as its admin.
  json ns{{"apiVersion", "v1"},
          {"kind", "Namespace"},
          {"metadata",
           {{"name", name},
            {"annotations",
             {{"openshift.io/display-name", request.value("displayName", "")},
              {"openshift.io/description", request.value("description", "")},
              {"openshift.io/requester", "system:serviceaccount:provisiond:engine"}}}}}};
  json object_out = stored(ns, "");
  object_out["spec"] = {{"finalizers", {"kubernetes"}}};
  object_out["status"] = {{"phase", "Active"}};
  _objects[key_of("namespaces", "", name)] = entry{object_out};
  json project = object_out;
  project["apiVersion"] = "project.openshift.io/v1";
  project["kind"] = "Project";
  return json_response(201, project);
}

served_response fake_kube_api::read(const std::string& plural, const std::string& ns, const std::string& name) {
  const auto* type = type_by_plural(plural);
  if (plural == "namespaces") {
    if (!observe_namespace(name)) {
      return status_response(404, "namespaces \"" + name + "\" not found", "NotFound",
                             {{"name", name}, {"kind", "namespaces"}});
    }
  }
  auto it = find(plural, ns, name);
  if (it == _objects.end()) {
    return status_response(404, type->plural + " \"" + name + "\" not found", "NotFound",
                           {{"name", name}, {"kind", type->plural}});
  }
  return json_response(200, it->second.object);
}

served_response fake_kube_api::list(const std::string& plural, const std::optional<std::string>& ns,
                                    const std::string& selector) {
  const auto* type = type_by_plural(plural);
  if (plural == "namespaces") {
    std::vector<std::string> names;
    for (const auto& [key, e] : _objects) {
      const auto parts = split(key, '/');
      if (parts[0] == "namespaces") {
        names.push_back(parts[2]);
      }
    }
    for (const auto& n : names) {
      observe_namespace(n);
    }
  }
  json items = json::array();
  for (const auto& [key, e] : _objects) {
    const auto parts = split(key, '/');
    if (parts[0] != plural || (ns && parts[1] != *ns) || !selected(e.object, selector)) {
      continue;
    }
    json item = e.object;
    item.erase("apiVersion");  // items of a typed list carry neither
    item.erase("kind");
    items.push_back(item);
  }
  return json_response(200, {{"kind", type->kind + "List"},
                             {"apiVersion", type->group_version},
                             {"metadata", {{"resourceVersion", std::to_string(_version)}}},
                             {"items", items}});
}

served_response fake_kube_api::remove(const std::string& plural, const std::string& ns, const std::string& name,
                                      const std::string& body, const std::string& where) {
  const auto* type = type_by_plural(plural);
  if (!body.empty()) {
    const json options = json::parse(body, nullptr, false);
    const auto policy = options.is_object() ? options.value("propagationPolicy", "Background") : "";
    if (options.is_discarded() || !options.is_object() || options.value("kind", "DeleteOptions") != "DeleteOptions" ||
        (policy != "Background" && policy != "Foreground" && policy != "Orphan")) {
      _violations.push_back(where + ": body is not valid DeleteOptions: " + body);
      return status_response(400, "invalid DeleteOptions");
    }
  }
  if (plural == "namespaces" && !observe_namespace(name)) {
    return status_response(404, "namespaces \"" + name + "\" not found", "NotFound",
                           {{"name", name}, {"kind", "namespaces"}});
  }
  auto it = find(plural, ns, name);
  if (it == _objects.end()) {
    return status_response(404, type->plural + " \"" + name + "\" not found", "NotFound",
                           {{"name", name}, {"kind", type->plural}});
  }
  if (plural == "namespaces") {
    auto& e = it->second;
    if (e.object["status"].value("phase", "") == "Terminating") {
      return status_response(409,
                             "Operation cannot be fulfilled on namespaces \"" + name +
                                 "\": The system is ensuring all content is removed from this namespace.  Upon "
                                 "completion, this namespace will automatically be purged by the system.",
                             "Conflict", {{"name", name}, {"kind", "namespaces"}});
    }
    e.object["status"] = {{"phase", "Terminating"}};
    e.object["metadata"]["deletionTimestamp"] = now_rfc3339();
    e.reads_left = _options.terminating_reads;
    return status_response(200, "", "", {{"name", name}, {"kind", "namespaces"}, {"uid", e.object["metadata"]["uid"]}});
  }
  json last = it->second.object;
  _objects.erase(it);
  return json_response(200, last);
}

served_response fake_kube_api::patch(const std::string& plural, const std::string& ns, const std::string& name,
                                     const served_request& in, const std::string& where) {
  const auto* type = type_by_plural(plural);
  if (plural == "namespaces" && !observe_namespace(name)) {
    return status_response(404, "namespaces \"" + name + "\" not found", "NotFound",
                           {{"name", name}, {"kind", "namespaces"}});
  }
  auto it = find(plural, ns, name);
  if (it == _objects.end()) {
    return status_response(404, type->plural + " \"" + name + "\" not found", "NotFound",
                           {{"name", name}, {"kind", type->plural}});
  }
  const json patch = json::parse(in.body, nullptr, false);
  if (patch.is_discarded()) {
    _violations.push_back(where + ": patch is not JSON");
    return status_response(400, "the body of the request was not JSON");
  }
  const auto type_header = in.header("content-type");
  json result = it->second.object;
  if (type_header == "application/merge-patch+json" || type_header == "application/strategic-merge-patch+json") {
    if (!patch.is_object()) {
      _violations.push_back(where + ": a merge patch must be an object");
      return status_response(400, "a merge patch must be a JSON object");
    }
    if (patch.contains("metadata") && patch["metadata"].contains("resourceVersion") &&
        patch["metadata"]["resourceVersion"] != result["metadata"]["resourceVersion"]) {
      return status_response(409,
                             "Operation cannot be fulfilled on " + type->plural + " \"" + name +
                                 "\": the object has been modified; please apply your changes to the latest version "
                                 "and try again",
                             "Conflict");
    }
    result.merge_patch(patch);
  } else if (type_header == "application/json-patch+json") {
    try {
      result = result.patch(patch);
    } catch (const json::exception& e) {
      return status_response(422, std::string{"json patch failed: "} + e.what());
    }
  } else {
    _violations.push_back(where + ": unsupported patch content type '" + type_header + "'");
    return status_response(415,
                           "the body of the request was in an unknown format - accepted media types include: "
                           "application/json-patch+json, application/merge-patch+json, "
                           "application/apply-patch+yaml, application/strategic-merge-patch+json");
  }
  if (result["metadata"].value("name", "") != name) {
    _violations.push_back(where + ": a patch may not change metadata.name");
    return status_response(422, "metadata.name: field is immutable");
  }
  if (plural == "rolebindings" && result["roleRef"] != it->second.object["roleRef"]) {
    _violations.push_back(where + ": roleRef is immutable");
    return status_response(422, "roleRef: cannot change roleRef");
  }
  json checked = result;
  checked["metadata"].erase("deletionTimestamp");
  if (auto problems = kube_schema::check(plural, checked); !problems.empty()) {
    return invalid(where, type->kind, name, problems);
  }
  canonicalize(plural, result);
  result["metadata"]["resourceVersion"] = std::to_string(++_version);
  it->second.object = result;
  return json_response(200, result);
}

}  // namespace prov::test
