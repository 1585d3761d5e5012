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

/// Moves request `to`'s spec from where the store counts it (`from`) to where `to` counts it:
/// in its tenant's record if its bucket changes, out of `from`'s cluster and into `to`'s if
/// its bucket or cluster does. `tenant_record()` and `cluster_record(id)` give the records to
/// change (null: not this one).
template <class TenantRecord, class ClusterRecord>
void move_request_usage(const stored_image& from, const events::request_state& to, TenantRecord tenant_record,
                        ClusterRecord cluster_record) {
  const auto after = bucket_of(to);
  if (from.bucket != after) {
    if (tenant_usage* u = tenant_record()) {
      move_usage(*u, to, from.bucket, after);
    }
  }
  if (from.bucket == after && from.cluster == to.cluster) {
    return;
  }
  if (!from.cluster.empty()) {
    if (cluster_usage* u = cluster_record(from.cluster)) {
      move_usage(*u, to, from.bucket, usage_bucket::none);
    }
  }
  if (!to.cluster.empty()) {
    if (cluster_usage* u = cluster_record(to.cluster)) {
      move_usage(*u, to, usage_bucket::none, after);
    }
  }
}

}  // namespace prov::projections::detail
