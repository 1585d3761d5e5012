#pragma once
/// A fake vCenter for contract tests: the vSphere Automation REST API in both dialects,
/// `/api` (vSphere 7.0U2+) and `/rest` (6.5 - 7.0; the only one with `legacy`), with VMs,
/// power states, VMware Tools, inventory objects and CIS tagging in memory. Answers as the
/// documented API does (status codes, error bodies by dialect, `{"value": ...}` wrapping and
/// `[{key, value}]` maps on `/rest`) and checks every request body against the schema of the
/// fields provisiond uses (violations are recorded and answered 400 INVALID_ARGUMENT, as
/// vCenter does for unexpected or malformed properties). Runs on 127.0.0.1 (plain or TLS).
///
/// Behaviour, following the API reference (links in the .cpp):
///   POST /api/session (Basic auth)         201 + "<session id>"; bad credentials 401
///   any other call without a live session  401 UNAUTHENTICATED (`expire_sessions`)
///   POST /api/vcenter/vm                   VM.CreateSpec -> "vm-N"; a name taken in the
///                                          folder is 400 ALREADY_EXISTS
///   POST /api/vcenter/vm?action=clone      VM.CloneSpec (/api only)
///   POST .../vm-template/library-items/{item}?action=deploy
///   power: start/stop/suspend -> 204, ALREADY_IN_DESIRED_STATE / NOT_ALLOWED_IN_CURRENT_STATE;
///          the new state shows after `power_reads` reads of the power state
///   DELETE of a powered-on VM              400 NOT_ALLOWED_IN_CURRENT_STATE; of a gone one 404
///   tagging: categories, tags (names unique per category: ALREADY_EXISTS), associations;
///            deleting a VM detaches its tags

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

class fake_vsphere_api {
 public:
  struct options {
    std::string username = "provisiond@vsphere.local";
    std::string password = "test-password";
    bool legacy = false;               ///< vSphere 6.7: /api answers 404, only /rest works
    std::optional<test_identity> tls;  ///< https with this identity
    int power_reads = 1;               ///< reads of the power state before a change shows
    bool tools = true;                 ///< VMware Tools run in powered-on guests
    std::string guest_ip = "127.0.0.1";
  };

  /// A fault for matching requests: an error status (with a vAPI error body), or no answer.
  struct fault {
    std::string method;         ///< "" = any
    std::string path_contains;  ///< "" = any
    unsigned status = 0;
    bool hang = false;
    int times = 1;
  };

  explicit fake_vsphere_api(options o);
  ~fake_vsphere_api();
  fake_vsphere_api(const fake_vsphere_api&) = delete;
  fake_vsphere_api& operator=(const fake_vsphere_api&) = delete;

  /// "http(s)://127.0.0.1:<port>".
  std::string endpoint() const;
  unsigned short port() const noexcept { return _server.port(); }

  /// Every session ends (as after a vCenter restart or the idle timeout).
  void expire_sessions();
  void inject(fault f);
  /// A VM someone else made (not tagged), powered off; returns its id.
  std::string put_vm(const std::string& name);
  /// Sets a VM's power state at once (as if changed in the vSphere client).
  void set_power(const std::string& vm, const std::string& state);
  /// The guest's file systems reported by VMware Tools (bytes).
  void set_filesystem(const std::string& vm, std::int64_t capacity, std::int64_t free_space);

  /// The VM as the fake holds it ({name, power, cpu, memory_mib, disks, nics, folder, ...}).
  std::optional<nlohmann::json> vm(const std::string& id) const;
  /// Ids of the VMs that are not templates, sorted.
  std::vector<std::string> vm_ids() const;
  /// Names of the tags (all categories) and the categories.
  std::vector<std::string> tag_names() const;
  std::vector<std::string> category_names() const;
  /// Tag names attached to a VM.
  std::vector<std::string> tags_of(const std::string& vm) const;
  std::size_t sessions_created() const;

  std::vector<std::string> violations() const;
  /// "METHOD target -> status" of every request, in order.
  std::vector<std::string> log() const;
  std::size_t count(const std::string& method, const std::string& path_contains) const;

 private:
  struct vm_state {
    std::string name;
    std::string folder;
    std::string resource_pool;
    std::string datastore;
    std::string guest_os = "OTHER_LINUX_64";
    bool is_template = false;
    std::string power = "POWERED_OFF";  ///< actual
    std::string shown = "POWERED_OFF";  ///< what reads return until `lag` reads happened
    int lag = 0;
    std::int64_t cpu = 1;
    std::int64_t memory_mib = 1024;
    std::vector<std::int64_t> disks;  ///< capacities in bytes
    std::map<std::string, nlohmann::json> nics;  ///< key -> {type, backing{type, network}, start_connected}
    std::int64_t fs_capacity = 0;
    std::int64_t fs_free = 0;
  };
  struct answer {
    answer(unsigned s = 200, nlohmann::json v = nullptr, std::string type = "", std::string text = "")
        : status(s), value(std::move(v)), error_type(std::move(type)), message(std::move(text)) {}
    unsigned status;
    nlohmann::json value;    ///< the answer (null = no body)
    std::string error_type;  ///< set for errors
    std::string message;
  };

  served_response handle(const served_request& in);
  answer route(const std::string& method, const std::string& path,
               const std::vector<std::pair<std::string, std::string>>& query, const nlohmann::json& body,
               bool rest);
  answer vm_route(const std::string& method, const std::string& vm, const std::vector<std::string>& rest_path,
                  const std::string& action, const nlohmann::json& body, bool rest);
  answer tagging(const std::string& method, const std::vector<std::string>& segments, const std::string& action,
                 const nlohmann::json& body);
  answer create_vm(const nlohmann::json& spec);
  answer clone_vm(const nlohmann::json& spec);
  answer deploy(const std::string& item, const nlohmann::json& spec);
  nlohmann::json vm_info(const std::string& id, bool rest);
  nlohmann::json summary(const std::string& id, const vm_state& v) const;
  std::string visible_power(vm_state& v, bool count_read);
  answer invalid(const std::string& where, const std::vector<std::string>& problems);
  bool name_taken(const std::string& folder, const std::string& name) const;
  std::string new_vm(vm_state v);

  options _options;
  mutable std::mutex _mutex;
  std::set<std::string> _sessions;
  std::size_t _session_count = 0;
  std::map<std::string, vm_state> _vms;
  std::uint64_t _next_vm = 1001;
  std::uint64_t _next_urn = 1;
  std::map<std::string, nlohmann::json> _categories;      ///< id -> {name, description, cardinality, associable_types}
  std::map<std::string, nlohmann::json> _tags;            ///< id -> {name, description, category_id}
  std::map<std::string, std::set<std::string>> _attached;  ///< tag id -> VM ids
  std::vector<fault> _faults;
  std::vector<std::string> _violations;
  std::vector<std::string> _log;
  test_server _server;  ///< last: stopped first
};

}  // namespace prov::test
