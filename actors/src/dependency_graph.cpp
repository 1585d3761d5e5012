// The dependency graph of requests: edges run from a prerequisite to the request that
// waits for it. Only unsettled requests are in it; a request that completes or fails leaves
// it, and its dependents are resumed to decide for themselves from the journal (go on, keep
// waiting, or fail with `dependency_failed`). A request not submitted yet is a node named by
// its idempotency key ("key:<tenant>/<key>"); once a request's claim of that key commits
// (`claimed`), that node becomes the request's, and later references to the key go to the
// request. Not before: two submissions may race for one key, and only the one whose claim
// commits is that key's request. Cycles are found with Kahn's algorithm and refused before
// anything is written.

#include <map>
#include <set>

#include <caf/all.hpp>

#include "prov/actors/spawn.hpp"

namespace prov::actors {

namespace {

struct graph_state {
  static inline const char* name = "dependency_graph";
  const engine_context* ctx = nullptr;
  std::map<std::string, std::set<std::string>> prerequisites;  ///< node -> what it waits for
  std::map<std::string, std::set<std::string>> dependents;     ///< node -> who waits for it
  std::map<std::string, std::string> claimed;                  ///< key node -> its unsettled request
  /// Request -> the key node it claims, whether the claim has committed (`claimed` names it
  /// back) or not yet: the cycle check counts both as the key's owners, so that two
  /// submissions racing through each other's keys cannot both pass it.
  std::map<std::string, std::string> claims;
};

/// The node a prerequisite reference stands for: a claimed key is its request.
const std::string& node_of(const graph_state& g, const std::string& ref) {
  const auto it = g.claimed.find(ref);
  return it == g.claimed.end() ? ref : it->second;
}

/// Forgets `id`'s claim of a key, pending or committed, if it had one.
void drop_claim(graph_state& g, const std::string& id) {
  if (auto it = g.claims.find(id); it != g.claims.end()) {
    if (auto owner = g.claimed.find(it->second); owner != g.claimed.end() && owner->second == id) {
      g.claimed.erase(owner);
    }
    g.claims.erase(it);
  }
}

bool has_node(const graph_state& g, const std::string& node) {
  return g.prerequisites.count(node) != 0 || g.dependents.count(node) != 0;
}

using self_ptr = dependency_graph_actor::stateful_pointer<graph_state>;

void link(graph_state& g, const std::string& prerequisite, const std::string& dependent) {
  g.prerequisites[dependent].insert(prerequisite);
  g.dependents[prerequisite].insert(dependent);
}

void remove(graph_state& g, const std::string& node) {
  if (auto it = g.prerequisites.find(node); it != g.prerequisites.end()) {
    for (const auto& p : it->second) {
      if (auto d = g.dependents.find(p); d != g.dependents.end()) {
        d->second.erase(node);
        if (d->second.empty()) {
          g.dependents.erase(d);
        }
      }
    }
    g.prerequisites.erase(it);
  }
  if (auto it = g.dependents.find(node); it != g.dependents.end()) {
    for (const auto& d : it->second) {
      if (auto p = g.prerequisites.find(d); p != g.prerequisites.end()) {
        p->second.erase(node);
      }
    }
    g.dependents.erase(it);
  }
}

// Renames a node (a key that became a request), keeping its edges.
void rename(graph_state& g, const std::string& from, const std::string& to) {
  std::vector<std::string> before;
  std::vector<std::string> after;
  if (auto it = g.prerequisites.find(from); it != g.prerequisites.end()) {
    before.assign(it->second.begin(), it->second.end());
  }
  if (auto it = g.dependents.find(from); it != g.dependents.end()) {
    after.assign(it->second.begin(), it->second.end());
  }
  remove(g, from);
  for (const auto& p : before) {
    link(g, p, to);
  }
  for (const auto& d : after) {
    link(g, to, d);
  }
}

// Kahn's algorithm: repeatedly take nodes with no unresolved prerequisite. What remains lies on
// or behind a cycle; one cycle is then walked out of it to name it.
std::string find_cycle(const graph_state& g) {
  std::map<std::string, std::size_t> indegree;
  for (const auto& [node, pres] : g.prerequisites) {
    indegree[node] += pres.size();
    for (const auto& p : pres) {
      indegree.emplace(p, 0);
    }
  }
  std::vector<std::string> ready;
  for (const auto& [node, n] : indegree) {
    if (n == 0) {
      ready.push_back(node);
    }
  }
  std::size_t done = 0;
  while (!ready.empty()) {
    const auto node = ready.back();
    ready.pop_back();
    ++done;
    if (auto it = g.dependents.find(node); it != g.dependents.end()) {
      for (const auto& d : it->second) {
        if (--indegree[d] == 0) {
          ready.push_back(d);
        }
      }
    }
  }
  if (done == indegree.size()) {
    return {};
  }
  // Every remaining node has a remaining prerequisite: follow them until a node repeats.
  std::string start;
  for (const auto& [node, n] : indegree) {
    if (n > 0) {
      start = node;
      break;
    }
  }
  std::vector<std::string> path;
  std::map<std::string, std::size_t> seen;
  auto node = start;
  while (seen.find(node) == seen.end()) {
    seen[node] = path.size();
    path.push_back(node);
    const auto& pres = g.prerequisites.at(node);
    for (const auto& p : pres) {
      if (indegree[p] > 0) {
        node = p;
        break;
      }
    }
  }
  // path[seen[node]..] is the cycle, each waiting for the next; name it in waiting order.
  std::string cycle;
  for (auto i = seen[node]; i < path.size(); ++i) {
    cycle += path[i] + " -> ";
  }
  return cycle + node;
}

/// Adds `n` to the graph unless it closes a cycle (checked only with `check`).
dependency_verdict add_node(graph_state& g, const dependency_node& n, bool check) {
  for (const auto& p : n.prerequisites) {
    if (p == n.request_id || (!n.key_node.empty() && p == n.key_node)) {
      return dependency_verdict{false, n.request_id + " -> " + n.request_id};
    }
  }
  if (check) {
    // Checked as if every pending claim of a key commits, this request's too: requests
    // that wait for a key wait for its claimant. (A committed claim's key has no node
    // left: it was renamed, and later references go to the request.)
    auto trial = g;
    for (const auto& p : n.prerequisites) {
      link(trial, node_of(g, p), n.request_id);
    }
    for (const auto& [claimant, key] : g.claims) {
      if (has_node(trial, key)) {
        rename(trial, key, claimant);
      }
    }
    if (!n.key_node.empty() && has_node(trial, n.key_node)) {
      rename(trial, n.key_node, n.request_id);
    }
    if (auto cycle = find_cycle(trial); !cycle.empty()) {
      return dependency_verdict{false, cycle};
    }
  }
  for (const auto& p : n.prerequisites) {
    link(g, node_of(g, p), n.request_id);
  }
  if (!n.key_node.empty()) {
    g.claims[n.request_id] = n.key_node;
  }
  return dependency_verdict{true, {}};
}

dependency_graph_actor::behavior_type graph_impl(self_ptr self, const engine_context* ctx) {
  self->state.ctx = ctx;
  return {
      [=](add_atom, const dependency_node& n, bool check) -> dependency_verdict {
        return add_node(self->state, n, check);
      },
      [=](add_atom, const dependency_node& n, const verdict_sink& sink) { sink.deliver(add_node(self->state, n, true)); },
      [=](claimed_atom, const std::string& key_node, const std::string& id) {
        auto& g = self->state;
        if (has_node(g, key_node)) {
          rename(g, key_node, id);
        }
        g.claimed[key_node] = id;
        g.claims[id] = key_node;
      },
      [=](forget_atom, const std::string& id) {
        remove(self->state, id);
        drop_claim(self->state, id);
      },
      [=](settled_atom, const std::string& id) {
        auto& g = self->state;
        if (auto it = g.dependents.find(id); it != g.dependents.end()) {
          for (const auto& d : it->second) {
            self->send(g.ctx->supervisor, start_atom::value, d);
          }
        }
        remove(g, id);
        drop_claim(g, id);
      },
  };
}

}  // namespace

dependency_graph_actor spawn_dependency_graph(caf::actor_system& sys, const engine_context& ctx) {
  return sys.spawn(graph_impl, &ctx);
}

}  // namespace prov::actors
