// The dependency graph of requests: edges run from a prerequisite to the request that
// waits for it. Only unsettled requests are in it; a request that completes or fails leaves
// it, and its dependents are resumed to decide for themselves from the journal (go on, keep
// waiting, or fail with `dependency_failed`). A request not submitted yet is a node named by
// its idempotency key ("key:<tenant>/<key>"); once a request's claim of that key commits
// (`claimed`), that node becomes the request's, and later references to the key go to the
// request. Not before: two submissions may race for one key, and only the one whose claim
// commits is that key's request. A request that would close a cycle is refused before
// anything is written (`cycle_probe`).

#include <cassert>
#include <map>
#include <set>
#include <vector>

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
  std::map<std::string, std::set<std::string>> claimants;  ///< key node -> who claims it (`claims` inverted)
};

/// Takes `id` out of `key_node`'s claimants (the key's entry goes with its last claimant).
void drop_claimant(graph_state& g, const std::string& key_node, const std::string& id) {
  if (auto c = g.claimants.find(key_node); c != g.claimants.end()) {
    c->second.erase(id);
    if (c->second.empty()) {
      g.claimants.erase(c);
    }
  }
}

void set_claim(graph_state& g, const std::string& id, const std::string& key_node) {
  auto [it, fresh] = g.claims.try_emplace(id, key_node);
  if (!fresh && it->second != key_node) {
    drop_claimant(g, it->second, id);
    it->second = key_node;
  }
  g.claimants[key_node].insert(id);
}

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
    drop_claimant(g, it->second, id);
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

#ifndef NDEBUG
// The check as it was made before the incremental one, on a copy of the whole graph; Debug
// builds (the test suite) assert that both agree on every add.
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

std::string whole_graph_cycle(const graph_state& g, const dependency_node& n) {
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
  return find_cycle(trial);
}
#endif

// The cycle check sees the graph as if every pending claim of a key committed (requests that
// wait for a key wait for its claimant), the new request's too. In that view a key node with
// claimants is its first claimant's (by id), and the new request's key is the new request's
// when nobody else claims it. The graph was acyclic in that view before the new request came
// (every add was checked, and forgetting, settling or a claim's commit add no edge), so a
// cycle must run through the new edges: from the new request, along who waits for whom, to
// one of its prerequisites. Only what waits (directly or not) for the new request is walked,
// usually nothing.
class cycle_probe {
 public:
  cycle_probe(const graph_state& g, const dependency_node& n) : _g{g}, _n{n} {
    _own_key = !n.key_node.empty() && g.claimants.count(n.key_node) == 0 ? n.key_node : std::string{};
  }

  /// The node `raw` stands for in that view.
  const std::string& resolved(const std::string& raw) const {
    if (const auto it = _g.claimants.find(raw); it != _g.claimants.end()) {
      return *it->second.begin();
    }
    return !_own_key.empty() && raw == _own_key ? _n.request_id : raw;
  }

  /// One cycle through the new request, in waiting order ("r -> p -> ... -> r"), or empty.
  std::string find() const {
    std::set<std::string> targets;
    for (const auto& p : _n.prerequisites) {
      targets.insert(resolved(node_of(_g, p)));
    }
    const auto& start = _n.request_id;
    if (targets.count(start) != 0) {
      return start + " -> " + start;
    }
    std::map<std::string, std::string> reached_from{{start, {}}};  ///< node -> the node it waits for
    std::vector<std::string> stack{start};
    while (!stack.empty()) {
      const auto node = stack.back();
      stack.pop_back();
      for (const auto* raw : raw_nodes(node)) {
        const auto it = _g.dependents.find(*raw);
        if (it == _g.dependents.end()) {
          continue;
        }
        for (const auto& d : it->second) {
          const auto& next = resolved(d);
          if (!reached_from.emplace(next, node).second) {
            continue;
          }
          if (targets.count(next) != 0) {
            return name(next, reached_from);
          }
          stack.push_back(next);
        }
      }
    }
    return {};
  }

 private:
  // The graph's nodes that `node` stands for: itself and a key it is the first claimant of.
  std::vector<const std::string*> raw_nodes(const std::string& node) const {
    std::vector<const std::string*> out{&node};
    if (node == _n.request_id && !_own_key.empty()) {
      out.push_back(&_own_key);
    } else if (const auto claim = _g.claims.find(node); claim != _g.claims.end()) {
      if (const auto c = _g.claimants.find(claim->second); c != _g.claimants.end() && *c->second.begin() == node) {
        out.push_back(&claim->second);
      }
    }
    return out;
  }

  // The new request waits for `target`, which waits (through the walk, backwards) for the new request.
  std::string name(const std::string& target, const std::map<std::string, std::string>& reached_from) const {
    std::string cycle = _n.request_id + " -> " + target;
    for (auto at = reached_from.at(target); at != _n.request_id; at = reached_from.at(at)) {
      cycle += " -> " + at;
    }
    return cycle + " -> " + _n.request_id;
  }

  const graph_state& _g;
  const dependency_node& _n;
  std::string _own_key;  ///< the new request's key node, when nobody else claims it
};

/// Adds `n` to the graph unless it closes a cycle (checked only with `check`).
dependency_verdict add_node(graph_state& g, const dependency_node& n, bool check) {
  for (const auto& p : n.prerequisites) {
    if (p == n.request_id || (!n.key_node.empty() && p == n.key_node)) {
      return dependency_verdict{false, n.request_id + " -> " + n.request_id};
    }
  }
  if (check) {
    auto cycle = cycle_probe{g, n}.find();
    assert(cycle.empty() == whole_graph_cycle(g, n).empty());
    if (!cycle.empty()) {
      return dependency_verdict{false, std::move(cycle)};
    }
  }
  for (const auto& p : n.prerequisites) {
    link(g, node_of(g, p), n.request_id);
  }
  if (!n.key_node.empty()) {
    set_claim(g, n.request_id, n.key_node);
  }
  return dependency_verdict{true, {}};
}

dependency_graph_actor::behavior_type graph_impl(self_ptr self, const engine_context* ctx) {
  self->state.ctx = ctx;
  return {
      [=](add_atom, const dependency_node& n, bool check) -> dependency_verdict {
        return add_node(self->state, n, check);
      },
      [=](add_atom, const dependency_node& n, const verdict_sink& sink) { sink(add_node(self->state, n, true)); },
      [=](claimed_atom, const std::string& key_node, const std::string& id) {
        auto& g = self->state;
        if (has_node(g, key_node)) {
          rename(g, key_node, id);
        }
        g.claimed[key_node] = id;
        set_claim(g, id, key_node);
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
