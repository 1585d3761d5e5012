#pragma once
/// A fake OpenStack cloud for contract tests: Keystone v3, Nova, Neutron, Cinder and Glance on
/// one local Beast server (127.0.0.1, a port the kernel picks, plain or TLS), state in memory.
/// It answers as the documented APIs do for the calls provisiond makes, and checks every
/// request body against the API's schema for the fields used (violations are recorded and
/// answered 400 as the real services do). Tests assert that no body was refused.
///
/// Services live under path prefixes that the catalog announces: /identity/v3, /compute/v2.1,
/// /network (no version, as Neutron's catalog entry), /volume/v3/<project id>, /image (no
/// version). The catalog also has an `internal` interface and a second region, both pointing
/// nowhere, so a client that ignores interface or region fails.
///
/// Behaviour, following the API references cited in the .cpp:
///   tokens      201 + X-Subject-Token; 401 for wrong credentials; every other route needs a
///               token that was issued and not expired by `expire_tokens()`
///   servers     BUILD for `build_reads` reads, then ACTIVE (or ERROR with a fault); the port
///               appears after `port_reads` port lists; DELETE makes it go after one read;
///               os-stop/os-start/suspend/resume with 409 in the wrong state
///   volumes     creating for `volume_reads` reads, then available; in-use while attached;
///               DELETE of an in-use volume is 400; deleting -> gone on the next read
///   groups      DELETE while a port uses it is 409; duplicate rule is 409
///   floating IPs a second one for the same port is 409
///   faults      injected by method and path: an error status (with a body in the service's
///               own error format), or no answer at all

#include <chrono>
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

class fake_openstack {
 public:
  struct options {
    std::optional<test_identity> tls;
    std::string username = "admin";
    std::string password = "secret";
    std::string project = "admin";
    std::string project_id = "0f0e0d0c0b0a09080706050403020100";
    std::string app_credential_id = "appcred-1";
    std::string app_credential_secret = "appcred-secret";
    std::chrono::seconds token_lifetime{3600};
    int build_reads = 1;   ///< server reads in BUILD before it turns ACTIVE (or ERROR)
    int port_reads = 0;    ///< port lists of a server before its port exists
    int volume_reads = 1;  ///< volume reads in `creating` before `available`
    std::string server_fault;  ///< non-empty: new servers go to ERROR with this fault message
    bool diagnostics = true;   ///< false: /diagnostics answers 403 (non-admin policy)
    std::string floating_ip_prefix = "203.0.113.";  ///< floating IPs: prefix + n
    std::string floating_ip_fixed;  ///< non-empty: every floating IP has this address
    bool catalog_without_volume = false;
  };

  /// A fault for matching requests: an error status, or no answer at all.
  struct fault {
    std::string method;         ///< "" = any
    std::string path_contains;  ///< "" = any
    unsigned status = 0;        ///< answer with this status
    std::string message;        ///< the error message in the body ("" = a default)
    bool hang = false;          ///< never answer (the client times out)
    int times = 1;
  };

  explicit fake_openstack(options o);
  ~fake_openstack();
  fake_openstack(const fake_openstack&) = delete;
  fake_openstack& operator=(const fake_openstack&) = delete;

  /// The Keystone URL the provider is given: "http(s)://127.0.0.1:<port>/identity/v3".
  std::string keystone() const;
  /// "http(s)://127.0.0.1:<port>".
  std::string base() const;

  /// Every token issued so far is refused from now on (expired or revoked).
  void expire_tokens();
  /// Every request with a token, new or old, is refused (401).
  void refuse_all_tokens(bool refuse);
  void inject(fault f);
  /// New servers go to ERROR with this fault ("" = ACTIVE again).
  void set_server_fault(std::string message);
  /// Seeds an object as someone else made it ("servers", "volumes", "security_groups",
  /// "floatingips"); returns its id.
  std::string put(const std::string& collection, nlohmann::json object);
  /// Forces a server's status (e.g. someone stopped it).
  void set_server_status(const std::string& id, const std::string& status);
  /// Removes an object behind the provider's back (gone = 404 from now on).
  void remove(const std::string& collection, const std::string& id);

  std::optional<nlohmann::json> object(const std::string& collection, const std::string& id) const;
  /// Ids of everything in a collection, sorted.
  std::vector<std::string> ids(const std::string& collection) const;
  /// "collection/id" of everything stored except the seeded catalog objects (flavors, images,
  /// networks, the default group), sorted: what a test expects to be empty after a rollback.
  std::vector<std::string> made() const;

  std::size_t tokens_issued() const;
  /// The last token request body (to check the auth method).
  nlohmann::json last_auth() const;
  /// Schema violations seen in request bodies (empty when every body was valid).
  std::vector<std::string> violations() const;
  /// "METHOD path -> status" of every request, in order.
  std::vector<std::string> log() const;
  /// How many requests had this method and a path containing `path_contains`.
  std::size_t count(const std::string& method, const std::string& path_contains) const;

  /// Seeded ids.
  static constexpr const char* image_id = "11111111-2222-4333-8444-555555555555";
  static constexpr const char* private_network_id = "aaaaaaaa-0000-4000-8000-000000000001";
  static constexpr const char* public_network_id = "aaaaaaaa-0000-4000-8000-000000000002";

 private:
  served_response handle(const served_request& in);
  served_response identity(const served_request& in, const std::string& path);
  served_response compute(const served_request& in, const std::string& path,
                          const std::map<std::string, std::string>& query);
  served_response network(const served_request& in, const std::string& path,
                          const std::map<std::string, std::string>& query);
  served_response volume(const served_request& in, const std::string& path,
                         const std::map<std::string, std::string>& query);
  served_response image(const served_request& in, const std::string& path,
                        const std::map<std::string, std::string>& query);

  served_response create_server(const nlohmann::json& body);
  served_response server_action(const std::string& id, const nlohmann::json& body);
  served_response read_server(const std::string& id);
  nlohmann::json server_view(const nlohmann::json& stored) const;
  void delete_server_now(const std::string& id);
  std::string new_id();
  std::string next_fixed_ip();
  served_response bad(const std::string& service, unsigned status, const std::string& message,
                      const std::string& where = "");

  options _options;
  mutable std::mutex _mutex;
  std::map<std::string, std::map<std::string, nlohmann::json>> _store;  ///< collection -> id -> object
  std::map<std::string, int> _reads;        ///< "servers/<id>" etc: countdowns
  std::set<std::string> _seeded;             ///< "collection/id" of seeded objects
  std::set<std::string> _valid_tokens;
  bool _refuse_tokens = false;
  std::vector<fault> _faults;
  std::vector<std::string> _violations;
  std::vector<std::string> _log;
  nlohmann::json _last_auth;
  std::size_t _tokens = 0;
  std::uint64_t _next = 1;
  int _next_ip = 10;
  test_server _server;  ///< last: stopped first
};

}  // namespace prov::test
