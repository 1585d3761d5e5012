// The runtime cluster set, cluster selection and capacity.
//
// Selection: clusters of the request's provider type (or the one it pinned) that are enabled,
// healthy and have room for the request's cpu, memory, storage and (for VMs) a VM slot. In
// the request's region first; if none fits, the nearest region by the distance table. Among
// equals, the region's default cluster, else the first by id. The choice reserves the
// capacity at once: this actor is the only one that decides, so two requests can never both
// take the last slot. A request that is rolled back gives its capacity back (`leave`).

#include <map>
#include <optional>

#include <caf/all.hpp>

#include "prov/actors/spawn.hpp"
#include "prov/events/codec.hpp"

namespace prov::actors {

namespace {

struct registered {
  events::cluster_state state;
  cluster_actor handle;
  projections::usage_totals used;  ///< held by requests not rolled back
};

struct reservation {
  std::string cluster;
  events::resource_spec spec;
  events::service_type type = events::service_type::vps;
};

struct cluster_registry_state {
  static inline const char* name = "cluster_registry";
  const engine_context* ctx = nullptr;
  std::map<std::string, registered> clusters;            ///< by id: a stable order for "first"
  std::map<std::string, reservation> reservations;       ///< made by this process, by request
};

using self_ptr = cluster_registry_actor::stateful_pointer<cluster_registry_state>;

cluster_choice refuse(std::string code, std::string message) {
  cluster_choice c;
  c.code = std::move(code);
  c.message = std::move(message);
  return c;
}

std::string cores(std::int64_t millis) {
  if (millis % 1000 == 0) {
    return std::to_string(millis / 1000);
  }
  return std::to_string(millis / 1000) + "." + std::to_string((millis % 1000) / 100);
}

// Why the cluster cannot take `q` (capacity only), or nothing if it can.
std::optional<std::string> lacks_room(const registered& c, const selection_query& q) {
  const auto& cap = c.state.capacity;
  const auto& used = c.used;
  if (cap.cpu_millis > 0 && used.cpu_millis + q.spec.cpu_millis > cap.cpu_millis) {
    return "not enough cpu (" + cores(cap.cpu_millis - used.cpu_millis) + " of " + cores(cap.cpu_millis) +
           " cores free, " + cores(q.spec.cpu_millis) + " asked)";
  }
  if (cap.memory_mb > 0 && used.memory_mb + q.spec.memory_mb > cap.memory_mb) {
    return "not enough memory (" + std::to_string(cap.memory_mb - used.memory_mb) + " of " +
           std::to_string(cap.memory_mb) + " MiB free, " + std::to_string(q.spec.memory_mb) + " asked)";
  }
  if (cap.storage_gb > 0 && used.storage_gb + q.spec.storage_gb > cap.storage_gb) {
    return "not enough storage (" + std::to_string(cap.storage_gb - used.storage_gb) + " of " +
           std::to_string(cap.storage_gb) + " GB free, " + std::to_string(q.spec.storage_gb) + " asked)";
  }
  if (cap.vm_slots > 0 && q.type == events::service_type::vps) {
    const auto it = used.instances_by_type.find("vps");
    const auto vms = it == used.instances_by_type.end() ? 0 : it->second;
    if (vms + 1 > cap.vm_slots) {
      return "no free VM slot (" + std::to_string(vms) + " of " + std::to_string(cap.vm_slots) + " used)";
    }
  }
  return std::nullopt;
}

std::optional<int> distance(const region_distances& table, const std::string& a, const std::string& b) {
  if (a == b) {
    return 0;
  }
  for (const auto& [from, to] : {std::pair{a, b}, std::pair{b, a}}) {
    if (auto row = table.find(from); row != table.end()) {
      if (auto d = row->second.find(to); d != row->second.end()) {
        return d->second;
      }
    }
  }
  return std::nullopt;
}

events::request_state as_request(const events::resource_spec& spec, events::service_type type) {
  events::request_state r;
  r.spec = spec;
  r.type = type;
  return r;
}

cluster_choice select(self_ptr self, const selection_query& q) {
  auto& st = self->state;
  // A request that already holds a reservation (a repeated selection) gives it back first.
  if (auto held = st.reservations.find(q.request_id); held != st.reservations.end()) {
    if (auto c = st.clusters.find(held->second.cluster); c != st.clusters.end()) {
      c->second.used.add(as_request(held->second.spec, held->second.type), -1);
    }
    st.reservations.erase(held);
  }
  registered* best = nullptr;
  int best_distance = 0;
  std::string skipped;
  auto skip = [&](const events::cluster_state& c, std::string_view why) {
    skipped += (skipped.empty() ? "" : "; ") + c.id + ": " + std::string{why};
  };
  for (auto& [id, entry] : st.clusters) {
    const auto& c = entry.state;
    if (!q.requested_cluster.empty() && id != q.requested_cluster) {
      continue;
    }
    if (c.type != q.provider) {
      continue;  // other providers' clusters are not candidates at all
    }
    std::optional<int> d = 0;
    if (!q.region.empty()) {
      d = distance(st.ctx->distances, q.region, c.region);
      if (!d) {
        skip(c, "region " + c.region + " is not " + q.region + " nor near it");
        continue;
      }
    }
    if (!c.enabled) {
      skip(c, "provisioning disabled");
      continue;
    }
    if (c.health != events::cluster_health::healthy) {
      skip(c, std::string{events::enum_name(c.health)});
      continue;
    }
    if (auto why = lacks_room(entry, q)) {
      skip(c, *why);
      continue;
    }
    const bool better = best == nullptr || *d < best_distance ||
                        (*d == best_distance && c.is_default && !best->state.is_default);
    if (better) {
      best = &entry;
      best_distance = *d;
    }
  }
  if (best == nullptr) {
    std::string what = "no " + std::string{events::enum_name(q.provider)} + " cluster";
    if (!q.requested_cluster.empty()) {
      what += " named " + q.requested_cluster;
    }
    if (!q.region.empty()) {
      what += " in or near region " + q.region;
    }
    what += " can take the request";
    if (!skipped.empty()) {
      what += " (" + skipped + ")";
    }
    return refuse("no_cluster_available", what);
  }
  best->used.add(as_request(q.spec, q.type), +1);
  st.reservations[q.request_id] = reservation{best->state.id, q.spec, q.type};
  cluster_choice c;
  c.ok = true;
  c.cluster_id = best->state.id;
  c.handle = best->handle;
  return c;
}

cluster_registry_actor::behavior_type cluster_registry_impl(self_ptr self, const engine_context* ctx) {
  self->state.ctx = ctx;
  return {
      [=](select_atom, const selection_query& q) { return select(self, q); },
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
          self->state.clusters.emplace(cluster.id, registered{cluster, handle, {}});
        } else if (it->second.state.version < cluster.version) {
          it->second.state = cluster;
          self->send(it->second.handle, update_atom::value, cluster);
        }
      },
      [=](usage_atom, const capacity_map& usage) {
        for (const auto& [id, used] : usage) {
          if (auto it = self->state.clusters.find(id); it != self->state.clusters.end()) {
            it->second.used = used;
          }
        }
      },
      [=](leave_atom, const std::string& request, const std::string& cluster, const events::resource_spec& spec,
          events::service_type type) {
        auto& st = self->state;
        if (auto held = st.reservations.find(request); held != st.reservations.end()) {
          if (auto c = st.clusters.find(held->second.cluster); c != st.clusters.end()) {
            c->second.used.add(as_request(held->second.spec, held->second.type), -1);
          }
          st.reservations.erase(held);
        } else if (auto c = st.clusters.find(cluster); c != st.clusters.end()) {
          c->second.used.add(as_request(spec, type), -1);  // reserved before this process started
        }
      },
      [=](settled_atom, const std::string& request) { self->state.reservations.erase(request); },
      [=](usage_atom, const std::string& cluster) {
        auto it = self->state.clusters.find(cluster);
        return it == self->state.clusters.end() ? projections::usage_totals{} : it->second.used;
      },
      [=](clusters_atom) {
        std::vector<cluster_choice> out;
        out.reserve(self->state.clusters.size());
        for (const auto& [id, c] : self->state.clusters) {
          cluster_choice choice;
          choice.ok = true;
          choice.cluster_id = id;
          choice.handle = c.handle;
          out.push_back(std::move(choice));
        }
        return out;
      },
  };
}

}  // namespace

cluster_registry_actor spawn_cluster_registry(caf::actor_system& sys, const engine_context& ctx) {
  return sys.spawn(cluster_registry_impl, &ctx);
}

}  // namespace prov::actors
