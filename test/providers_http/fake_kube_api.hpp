#pragma once
/// A fake Kubernetes (and OpenShift) API server for contract tests: objects in memory, answers
/// as the documented API does, and every request body checked against the API's schema for
/// the fields provisiond uses (violations are recorded and answered 422, as the real server
/// does). Runs on 127.0.0.1 (plain or TLS) on a port the kernel picks.
///
/// Behaviour, following the API reference (links in the .cpp):
///   POST   collection        201 + object; 409 AlreadyExists; 404 if the namespace is
///                            missing; 403 if it is terminating; 422 Invalid on schema errors
///   GET    object            200 + object; 404 NotFound (a Status object)
///   GET    collection        <Kind>List, `labelSelector` (=, ==, !=, exists, !exists)
///   DELETE object            200; a namespace turns Terminating, is still readable for
///                            `terminating_reads` reads, then disappears with its contents;
///                            DELETE of a terminating namespace is 409 Conflict
///   PATCH  object            merge-patch+json and strategic-merge-patch+json (as a merge
///                            patch: enough for the maps we patch), json-patch+json;
///                            `metadata.resourceVersion` in a patch is a precondition (409)
///   GET    /version          public, like the real server
/// Every other route needs `Authorization: Bearer <token>` (401 Unauthorized otherwise).

#include <cstdint>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "test_pki.hpp"
#include "test_server.hpp"

namespace prov::test {

class fake_kube_api {
 public:
  struct options {
    std::string token = "test-token";
    bool openshift = false;            ///< serve project.openshift.io ProjectRequests
    std::optional<test_identity> tls;  ///< https with this identity
    int terminating_reads = 2;         ///< reads a deleted namespace survives
    int activation_reads = 0;          ///< reads before a new namespace reports Active
    bool metrics = false;              ///< serve metrics.k8s.io/v1beta1 pod metrics
  };

  /// A fault for matching requests: an error status, or no answer at all.
  struct fault {
    std::string method;         ///< "" = any
    std::string path_contains;  ///< "" = any
    unsigned status = 0;        ///< answer with this status and a Status body
    bool hang = false;          ///< never answer (the client times out)
    int times = 1;
  };

  explicit fake_kube_api(options o);
  ~fake_kube_api();
  fake_kube_api(const fake_kube_api&) = delete;
  fake_kube_api& operator=(const fake_kube_api&) = delete;

  /// "http(s)://127.0.0.1:<port>".
  std::string endpoint() const;

  /// A new valid token: the old one is refused from now on (an expired token).
  void set_token(std::string token);
  void inject(fault f);
  /// Pod metrics of a namespace (PodMetrics items) when `metrics` is on.
  void set_pod_metrics(const std::string& ns, nlohmann::json items);

  /// Seeds an object as someone else made it (no validation), e.g. a foreign namespace.
  void put(const std::string& plural, const std::string& ns, nlohmann::json object);
  std::optional<nlohmann::json> object(const std::string& plural, const std::string& ns, const std::string& name) const;
  /// "namespaces/<name>" and "<plural>/<ns>/<name>" of everything stored, sorted.
  std::vector<std::string> keys() const;

  /// Schema violations seen in request bodies (empty when every body was valid).
  std::vector<std::string> violations() const;
  /// "METHOD path -> status" of every request, in order.
  std::vector<std::string> log() const;
  /// How many requests had this method and a path containing `path_contains`.
  std::size_t count(const std::string& method, const std::string& path_contains) const;

 private:
  struct entry {
    nlohmann::json object;
    int reads_left = -1;    ///< namespaces: reads until a terminating one is gone
    int pending_reads = 0;  ///< namespaces: reads until Active
  };

  served_response handle(const served_request& in);
  served_response route(const served_request& in, const std::string& path,
                        const std::map<std::string, std::string>& query);
  served_response create(const std::string& plural, const std::string& ns, const std::string& body,
                         const std::string& where);
  served_response read(const std::string& plural, const std::string& ns, const std::string& name);
  served_response list(const std::string& plural, const std::optional<std::string>& ns, const std::string& selector);
  served_response remove(const std::string& plural, const std::string& ns, const std::string& name,
                         const std::string& body, const std::string& where);
  served_response patch(const std::string& plural, const std::string& ns, const std::string& name,
                        const served_request& in, const std::string& where);
  served_response project_request(const std::string& body, const std::string& where);

  /// Observes a namespace (GET or list): counts down its terminating/activation reads.
  /// Returns false when the namespace is gone after this observation.
  bool observe_namespace(const std::string& name);
  std::map<std::string, entry>::iterator find(const std::string& plural, const std::string& ns,
                                              const std::string& name);
  nlohmann::json stored(const nlohmann::json& object, const std::string& ns);
  served_response invalid(const std::string& where, const std::string& kind, const std::string& name,
                          const std::vector<std::string>& problems);

  options _options;
  mutable std::mutex _mutex;
  std::map<std::string, entry> _objects;  ///< key: plural/ns/name
  std::vector<fault> _faults;
  std::map<std::string, nlohmann::json> _pod_metrics;
  std::vector<std::string> _violations;
  std::vector<std::string> _log;
  std::uint64_t _version = 100;
  test_server _server;  ///< last: stopped first
};

/// Schema checks of the fake, open to tests: each returns the problems found ("" = none).
namespace kube_schema {
bool dns1123_label(const std::string& s);
bool dns1123_subdomain(const std::string& s);
bool quantity(const std::string& s);
std::vector<std::string> check(const std::string& plural, const nlohmann::json& object);
}  // namespace kube_schema

}  // namespace prov::test
