#pragma once
/// A fake Proxmox VE API (`/api2/json`) for contract tests: QEMU VMs, templates, tasks (UPIDs
/// that stay "running" for a few status reads, then stop with an exit status), API token and
/// ticket authentication, `/cluster/nextid` and `/cluster/resources`, in memory. Answers as
/// the documented API does ({"data": ...}; errors with the HTTP status and {"data": null,
/// "message": ..., "errors": {...}}; PVE's 500 "... does not exist" for a missing VM) and
/// checks every parameter against the API viewer's schema for the calls provisiond makes
/// (unknown parameters, formats such as dns-name, pve-tag-list, property strings, ranges);
/// violations are recorded and answered 400 "Parameter verification failed.", as PVE does.
///
/// Like PVE, a clone first leaves a temporary configuration holding only `lock: clone` (no
/// name); the name, description and disks appear when the task ends. Time is counted in
/// requests: a task ends after `task_reads` further requests (of any kind), or at once with
/// `finish_tasks` (time passing while the engine was down).

#include <cstdint>
#include <functional>
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

class fake_proxmox_api {
 public:
  struct options {
    std::string token_id = "provisiond@pve!engine";
    std::string secret = "5b7e2a8c-3f1d-4c6a-9e0b-7d4f2a1c8e36";
    std::string username = "provisiond@pve";
    std::string password = "test-password";
    std::string node = "pve";
    std::optional<test_identity> tls;
    int task_reads = 2;  ///< requests a task stays "running" for
    bool agent = true;   ///< the QEMU guest agent answers in running VMs
  };

  /// A fault for matching requests: an error status (PVE's error body), or no answer.
  struct fault {
    std::string method;         ///< "" = any
    std::string path_contains;  ///< "" = any
    unsigned status = 0;
    bool hang = false;
    int times = 1;
    std::string message = "injected fault";
  };

  explicit fake_proxmox_api(options o);
  ~fake_proxmox_api();
  fake_proxmox_api(const fake_proxmox_api&) = delete;
  fake_proxmox_api& operator=(const fake_proxmox_api&) = delete;

  /// "http(s)://127.0.0.1:<port>".
  std::string endpoint() const;

  /// Every ticket is refused from now on (they expire after two hours).
  void expire_tickets();
  void inject(fault f);
  /// The next `n` VMIDs from /cluster/nextid are taken by someone else's VM before they can
  /// be used (the race between nextid and create).
  void steal_next_ids(int n);
  /// A VM someone else made; returns its VMID.
  std::int64_t put_vm(const std::string& name, const std::string& description = "");
  /// Live counters of a running VM (status/current fields: cpu, mem, disk, netin, ...).
  void set_counters(std::int64_t vmid, nlohmann::json counters);
  /// Sets a VM's state at once ("stopped", "running", "paused").
  void set_state(std::int64_t vmid, const std::string& state);
  /// Ends every running task now.
  void finish_tasks();

  /// The VM's configuration plus "status" and "qmpstatus".
  std::optional<nlohmann::json> vm(std::int64_t vmid) const;
  /// VMIDs of the VMs that are not templates, sorted.
  std::vector<std::int64_t> vmids() const;
  std::size_t tickets_issued() const;

  std::vector<std::string> violations() const;
  /// "METHOD target -> status" of every request, in order.
  std::vector<std::string> log() const;
  std::size_t count(const std::string& method, const std::string& path_contains) const;

 private:
  struct vm_state {
    nlohmann::json config;  ///< as GET .../config answers
    std::string status = "stopped";
    std::string qmp = "stopped";
    std::string pool;
    nlohmann::json counters = nlohmann::json::object();
  };
  struct task_state {
    std::string node;
    std::string type;
    std::string id;
    std::string user;
    int reads_left = 0;
    bool done = false;
    std::string exitstatus;
    std::function<std::string()> finish;  ///< runs at the end; returns the exit status
  };
  struct answer {
    answer(unsigned s = 200, nlohmann::json d = nullptr, std::string text = "", nlohmann::json errs = nullptr)
        : status(s), data(std::move(d)), message(std::move(text)), errors(std::move(errs)) {}
    unsigned status;
    nlohmann::json data;
    std::string message;
    nlohmann::json errors;
  };
  using params = std::map<std::string, std::string>;

  served_response handle(const served_request& in);
  answer route(const std::string& method, const std::vector<std::string>& path, const params& p,
               const std::string& user);
  answer qemu(const std::string& method, std::int64_t vmid, const std::vector<std::string>& rest, const params& p,
              const std::string& user);
  answer create(const params& p, const std::string& user);
  answer clone(std::int64_t source, const params& p, const std::string& user);
  answer invalid(const std::string& where, const std::map<std::string, std::string>& problems);
  std::string start_task(const std::string& type, std::int64_t vmid, const std::string& user,
                         std::function<std::string()> finish);
  void end_task(task_state& t);
  nlohmann::json status_of(std::int64_t vmid) const;
  std::string gone(std::int64_t vmid) const;
  std::int64_t free_id() const;

  options _options;
  mutable std::mutex _mutex;
  std::map<std::int64_t, vm_state> _vms;
  std::map<std::string, task_state> _tasks;
  std::set<std::string> _tickets;
  std::size_t _ticket_count = 0;
  std::uint64_t _pid = 0x1000;
  int _steal = 0;
  std::vector<fault> _faults;
  std::vector<std::string> _violations;
  std::vector<std::string> _log;
  test_server _server;  ///< last: stopped first
};

/// Format checks of the fake (PVE::JSONSchema formats), open to tests.
namespace pve_schema {
bool dns_name(const std::string& s);
bool tag_list(const std::string& s);
bool net(const std::string& s, const std::set<std::string>& bridges);
bool size(const std::string& s);
}  // namespace pve_schema

}  // namespace prov::test
