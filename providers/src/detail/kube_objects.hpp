#pragma once
/// Internals of the Kubernetes provider, open to its tests: the objects it writes, Kubernetes
/// quantities, and the "reads back as written" comparison. Pure functions, no I/O.

#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "prov/events/request.hpp"
#include "prov/providers/kubernetes_provider.hpp"

namespace prov::providers::kube {

using json = nlohmann::json;

inline constexpr std::string_view managed_by_label = "app.kubernetes.io/managed-by";
inline constexpr std::string_view managed_by_value = "provisiond";
inline constexpr std::string_view request_label = "provisiond.io/request-id";
inline constexpr std::string_view tenant_label = "provisiond.io/tenant";
inline constexpr std::string_view request_annotation = "provisiond.io/request-id";
inline constexpr std::string_view tenant_annotation = "provisiond.io/tenant";
inline constexpr std::string_view key_annotation = "provisiond.io/idempotency-key";
inline constexpr std::string_view step_annotation = "provisiond.io/step";
inline constexpr std::string_view suspended_annotation = "provisiond.io/suspended-hard";
inline constexpr std::string_view openshift_description = "openshift.io/description";

/// One kind of object the provider manages: the engine's name for it and where it lives in
/// the API.
struct object_kind {
  std::string_view engine_kind;  ///< "namespace", "resource_quota", ...
  std::string_view api_kind;     ///< "Namespace", "ResourceQuota", ...
  std::string_view api_version;  ///< "v1", "rbac.authorization.k8s.io/v1", ...
  std::string_view api_root;     ///< "/api/v1" or "/apis/<group>/<version>"
  std::string_view plural;       ///< "namespaces", "resourcequotas", ...
  std::string_view object_name;  ///< fixed name inside the namespace ("" for the namespace)
  events::step_kind step;        ///< the step that creates it
};

/// The namespace and the four namespaced kinds, in creation order.
std::span<const object_kind> object_kinds();
/// The kind with this engine name, or null.
const object_kind* find_kind(std::string_view engine_kind);

/// "/api/v1/namespaces/<ns>/resourcequotas" (collection) or ".../<name>" (one object).
std::string collection_path(const object_kind& kind, std::string_view ns);
std::string object_path(const object_kind& kind, std::string_view ns, std::string_view name);

/// Who and what an object belongs to: rendered into its labels and annotations.
struct owner {
  std::string ns;
  std::string tenant;
  std::string request_id;
  std::string idempotency_key;
  events::step_kind step = events::step_kind::allocate;
};

json labels_for(const owner& o);
json metadata_for(const owner& o, std::string_view name, bool namespaced);

json namespace_object(const owner& o);
json project_request(const owner& o);
/// The description a ProjectRequest leaves on its namespace (our marker before the labels).
std::string project_description(std::string_view request_id);
json resource_quota(const owner& o, const events::resource_spec& spec, const kubernetes_settings& s);
json limit_range(const owner& o, const events::resource_spec& spec, const kubernetes_settings& s);
json role_binding(const owner& o, const kubernetes_settings& s);
json network_policy(const owner& o, const kubernetes_settings& s);
/// The desired object of `kind` (namespace included).
json desired_object(const object_kind& kind, const owner& o, const events::resource_spec& spec,
                    const kubernetes_settings& s);

/// Whether the object carries our labels for this request (and, where present, the full
/// request id annotation agrees).
bool owned_by(const json& object, std::string_view request_id);

/// A Kubernetes quantity ("250m", "1Gi", "1.5", "2e3", "100n") as a number, or nullopt.
/// See https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/
std::optional<long double> parse_quantity(std::string_view text);
bool quantities_equal(std::string_view a, std::string_view b);

/// Whether `actual` holds everything in `expected` (objects: every expected key, recursively;
/// arrays: same length, element-wise; scalars: equal, strings as quantities where
/// `quantities`). On a mismatch, `where` names the first differing path.
bool json_matches(const json& expected, const json& actual, bool quantities, std::string& where,
                  const std::string& path = "");

/// The fields of `desired` that verify compares: metadata.labels plus spec (or roleRef and
/// subjects for a RoleBinding). "" when `actual` matches, else what differs.
std::string compare_written(const object_kind& kind, const json& desired, const json& actual);

}  // namespace prov::providers::kube
