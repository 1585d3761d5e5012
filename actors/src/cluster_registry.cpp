// The runtime cluster set and cluster selection: type match, then region, healthy
// and enabled only, the region's default preferred, else the first by id.

#include <map>

#include <caf/all.hpp>

#include "prov/actors/spawn.hpp"
#include "prov/events/codec.hpp"

namespace prov::actors {

namespace {

struct registered {
  events::cluster_state state;
  cluster_actor handle;
};

struct cluster_registry_state {
  static inline const char* name = "cluster_registry";
  std::map<std::string, registered> clusters;  ///< by id: a stable order for "first"
};

using self_ptr = cluster_registry_actor::stateful_pointer<cluster_registry_state>;

cluster_choice refuse(std::string code, std::string message) {
  cluster_choice c;
  c.code = std::move(code);
  c.message = std::move(message);
  return c;
}

cluster_choice select(const cluster_registry_state& st, const selection_query& q) {
  const registered* best = nullptr;
  std::string skipped;
  auto skip = [&](const events::cluster_state& c, std::string_view why) {
    skipped += (skipped.empty() ? "" : "; ") + c.id + ": " + std::string{why};
  };
  for (const auto& [id, entry] : st.clusters) {
    const auto& c = entry.state;
    if (!q.requested_cluster.empty() && id != q.requested_cluster) {
      continue;
    }
    if (c.type != q.provider) {
      continue;  // other providers' clusters are not candidates at all
    }
    if (!q.region.empty() && c.region != q.region) {
      skip(c, "region " + c.region + " is not " + q.region);
      continue;
    }
    if (!c.enabled) {
      skip(c, "provisioning disabled");
      continue;
    }
    if (c.health != events::cluster_health::healthy) {
      skip(c, std::string{events::enum_name(c.health)});
      continue;
    }
    if (best == nullptr || (c.is_default && !best->state.is_default)) {
      best = &entry;
    }
  }
  if (best == nullptr) {
    std::string what = "no " + std::string{events::enum_name(q.provider)} + " cluster";
    if (!q.requested_cluster.empty()) {
      what += " named " + q.requested_cluster;
    }
    if (!q.region.empty()) {
      what += " in region " + q.region;
    }
    what += " can take the request";
    if (!skipped.empty()) {
      what += " (" + skipped + ")";
    }
    return refuse("no_cluster_available", what);
  }
  cluster_choice c;
  c.ok = true;
  c.cluster_id = best->state.id;
  c.handle = best->handle;
  return c;
}

cluster_registry_actor::behavior_type cluster_registry_impl(self_ptr self, const engine_context* ctx) {
  return {
      [=](select_atom, const selection_query& q) { return select(self->state, q); },
      [=](lookup_atom, const std::string& id) {
        auto it = self->state.clusters.find(id);
        if (it == self->state.clusters.end()) {
          return refuse("not_found", "cluster " + id + " is not registered");
        }
        cluster_choice c;
        c.ok = true;
        c.cluster_id = id;
        c.handle = it->second.handle;
        return c;
      },
      [=](update_atom, const events::cluster_state& cluster) {
        auto it = self->state.clusters.find(cluster.id);
        if (it == self->state.clusters.end()) {
          auto handle = spawn_cluster_actor(self->system(), *ctx, cluster);
          self->link_to(handle);
          self->state.clusters.emplace(cluster.id, registered{cluster, handle});
        } else if (it->second.state.version < cluster.version) {
          it->second.state = cluster;
          self->send(it->second.handle, update_atom::value, cluster);
        }
      },
  };
}

}  // namespace

cluster_registry_actor spawn_cluster_registry(caf::actor_system& sys, const engine_context& ctx) {
  return sys.spawn(cluster_registry_impl, &ctx);
}

}  // namespace prov::actors
