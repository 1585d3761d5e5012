#pragma once
/// How a request's change moves its spec between usage records (R-4.1 quota usage, R-4.3
/// capacity): shared by the projector, which writes the records, and `views`, which adds the
/// moves of unwritten changes to them.

#include <string>

#include "prov/events/request.hpp"
#include "prov/projections/views.hpp"

namespace prov::projections::detail {

/// Takes `r`'s spec out of bucket `from` of `u` and adds it to bucket `to` (a request's spec
/// never changes, so one state serves both sides).
template <class Usage>
void move_usage(Usage& u, const events::request_state& r, usage_bucket from, usage_bucket to) {
  auto bucket = [&](usage_bucket k) -> usage_totals* {
    return k == usage_bucket::used ? &u.used : k == usage_bucket::reserved ? &u.reserved : nullptr;
  };
  if (auto* t = bucket(from)) {
    t->add(r, -1);
  }
  if (auto* t = bucket(to)) {
    t->add(r, +1);
  }
}

/// Whether the change from `from` (bucket, cluster) to `to` changes the tenant's record ...
inline bool moves_tenant_usage(usage_bucket from, usage_bucket to) { return from != to; }

/// ... and the clusters' records.
inline bool moves_cluster_usage(usage_bucket from, const std::string& from_cluster, usage_bucket to,
                                const std::string& to_cluster) {
  return from != to || from_cluster != to_cluster;
}

}  // namespace prov::projections::detail
