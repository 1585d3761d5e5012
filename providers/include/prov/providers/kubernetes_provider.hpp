#pragma once
/// The Kubernetes / OpenShift provider: one namespace per request with the five
/// objects of the spec, through the cluster's REST API with a bearer token.
///
/// What each step does (service type `namespace` only):
///   allocate:  the Namespace (OpenShift with `useProjectRequest`: a ProjectRequest, then our
///              labels on the namespace it made) -> resource "namespace"
///   configure: ResourceQuota, LimitRange, RoleBinding (tenant -> ClusterRole admin),
///              NetworkPolicy (ingress from the namespace only; egress to the namespace and
///              DNS) -> resources "resource_quota", "limit_range", "role_binding",
///              "network_policy" with id "<namespace>/<name>"; endpoints api, namespace
///              (and console where configured)
///   activate:  polls until the namespace is Active (bounded; Terminating fails)
///   verify:    reads every object back and compares the fields we set
/// Every object carries the labels `app.kubernetes.io/managed-by=provisiond`,
/// `provisiond.io/request-id`, `provisiond.io/tenant` and the creating call's idempotency
/// key as an annotation. A create answered 409 reads the object: ours (same request) is
/// adopted, anything else is a non-retryable `name_taken`. Releasing the namespace deletes
/// everything in it; the call returns once the API accepted the deletion, and `sweep` waits
/// (bounded) until every namespace of the request is gone. Suspend sets the quota's `pods`
/// to 0 (the previous `hard` kept in an annotation); reactivate restores it.
///
/// Settings and credentials are documented in docs/providers/kubernetes.md.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "prov/core/clock.hpp"
#include "prov/core/secret_box.hpp"
#include "prov/events/cluster.hpp"
#include "prov/providers/provider.hpp"

namespace prov::providers {

/// Non-secret settings of a Kubernetes/OpenShift cluster (the cluster's `settings` JSON).
struct kubernetes_settings {
  bool openshift = false;                     ///< from the cluster's type, not the JSON
  std::string namespace_prefix = "prov-";     ///< namespaceName = prefix + tenant + "-" + hash
  std::string tenant_group_prefix;            ///< RoleBinding subject = prefix + tenant
  std::string tenant_subject_kind = "Group";  ///< "Group" or "User"
  std::string tenant_role = "admin";          ///< the ClusterRole bound in the namespace
  bool use_project_request = false;           ///< OpenShift: create through ProjectRequest
  bool network_policy_dns = true;             ///< allow egress to the cluster DNS
  std::string dns_namespace = "kube-system";
  std::map<std::string, std::string> dns_pod_labels{{"k8s-app", "kube-dns"}};
  std::vector<int> dns_ports{53};
  bool allow_ingress_from_router = false;  ///< OpenShift: also admit the ingress routers
  std::int64_t max_pods = 0;               ///< quota `pods` while active (0 = not limited)
  double limit_default_fraction = 0.5;     ///< LimitRange default limit = quota * this
  double limit_request_fraction = 0.125;   ///< LimitRange default request = quota * this
  std::chrono::milliseconds activate_timeout{60'000};
  std::chrono::milliseconds delete_timeout{30'000};  ///< how long sweep waits for deletion
  std::chrono::milliseconds poll_interval{500};
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds request_timeout{30'000};
  bool verify_tls = true;
  std::string console_url;  ///< web console base URL ("" = no console endpoint)

  /// Parses the settings JSON ("" = all defaults); `openshift` picks the OpenShift defaults
  /// (ProjectRequest, DNS in openshift-dns on ports 53 and 5353). Unknown keys are refused.
  static result<kubernetes_settings> parse(std::string_view json, bool openshift);
};

/// Secret part of a cluster's registration (sealed at rest): a bearer token and optionally
/// the API server's CA certificate(s) as PEM text.
struct kubernetes_credentials {
  std::string token;
  std::string ca_pem;

  /// Parses `{"token": "...", "caPem": "..."}`.
  static result<kubernetes_credentials> parse(std::string_view json);
};

class kubernetes_provider final : public provider {
 public:
  /// `endpoint` is the API server URL (https://host:6443, a path prefix allowed).
  kubernetes_provider(std::string cluster_id, std::string endpoint, kubernetes_settings settings,
                      kubernetes_credentials credentials, const clock* clk = nullptr);
  ~kubernetes_provider() override;

  /// The provider for a registered cluster: settings parsed, credentials opened with
  /// `secrets`. Errors say what is wrong with the registration (never the secret itself).
  static result<std::unique_ptr<kubernetes_provider>> from_cluster(const events::cluster_state& cluster,
                                                                   const secret_box* secrets, const clock* clk);

  /// The namespace of a request: a DNS-1123 label (<= 63 characters) made of `prefix`, the
  /// tenant and a hash of the request id, so a re-run finds the same name.
  static std::string namespace_name(std::string_view prefix, std::string_view tenant, std::string_view request_id);

  /// A label value for `text`: itself when valid (<= 63, alphanumeric ends, [-_.] inside),
  /// else a sanitized form with a hash suffix (the full value is kept in an annotation).
  static std::string label_value(std::string_view text);

  step_outcome run_step(const step_call& call) override;
  release_outcome release(const release_call& call) override;
  sweep_outcome sweep(const std::string& request_id) override;
  action_outcome suspend(const service_call& call) override;
  action_outcome reactivate(const service_call& call) override;
  metrics_sample metrics(const service_call& call) override;
  result<std::vector<inventory_item>> inventory() override;
  connectivity_report test_connectivity() override;

  const kubernetes_settings& settings() const noexcept { return _settings; }

 private:
  struct impl;
  std::unique_ptr<impl> _impl;
  kubernetes_settings _settings;
};

}  // namespace prov::providers
