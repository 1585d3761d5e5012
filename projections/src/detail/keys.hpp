#pragma once
/// The key layout of the `projections` column family (layout 5, documented in `views.hpp`),
/// shared by the projector (writer) and the views (readers). Builders append to a caller's
/// buffer so the projector can reuse one string for every key of a batch.

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "prov/core/be64.hpp"
#include "prov/events/request.hpp"

namespace prov::projections::detail {

inline constexpr std::string_view position_key = "m/position";
/// The key layout the projections were written in. A store with another one (or, with a
/// position, none: layout 1 predates the key) is rebuilt from the journal when opened.
/// Layout 1 indexed each state under its own byte and kept a live set ("x/live/<id>"); layout
/// 2 had one bucket for the step states; layout 3 finds the live requests in the state index;
/// layout 4 puts `queued` in the step states' bucket; layout 5 drops the indexes of every
/// request ("x/a/") and of a tenant's ("x/t/"): those lists merge the state buckets.
inline constexpr std::string_view layout_key = "m/layout";
inline constexpr std::string_view layout_version = "5";
inline constexpr std::string_view request_prefix = "r/";
inline constexpr std::string_view state_index_prefix = "x/s/";
inline constexpr std::string_view tenant_state_index_prefix = "x/u/";
inline constexpr std::string_view cluster_prefix = "c/";
inline constexpr std::string_view tenant_prefix = "t/";
inline constexpr std::string_view token_prefix = "k/";
inline constexpr std::string_view rule_prefix = "ar/";
inline constexpr std::string_view tenant_usage_prefix = "u/";
inline constexpr std::string_view cluster_usage_prefix = "cu/";
inline constexpr std::string_view webhook_prefix = "wh/";
inline constexpr std::string_view webhook_delivery_prefix = "wd/";
/// Delivery records kept per webhook (the newest ones).
inline constexpr std::uint64_t webhook_deliveries_kept = 100;

/// Bytes of the inverted creation time that starts every index suffix.
inline constexpr std::size_t inv_size = 8;

using prov::append_be64;
using prov::read_be64;

/// UINT64_MAX - createdAt microseconds (times before the epoch count as the epoch), so that
/// ascending key order is newest first.
inline std::uint64_t inverted_time(timestamp created) {
  const auto us = std::max<std::int64_t>(created.time_since_epoch().count(), 0);
  return std::numeric_limits<std::uint64_t>::max() - static_cast<std::uint64_t>(us);
}

/// The byte of the state indexes ("x/s/", "x/u/") that stands for the active states: `queued`
/// and the four step states (allocating .. verifying), above every state's own byte. Nearly
/// every request runs through these five quickly, so one entry covers them: its index entries
/// change once on the way through the pipeline (to `completed` or `failed`) instead of six
/// times; a list by one of these states filters the bucket's entries by view.
inline constexpr char active_bucket = static_cast<char>(0x80);

inline constexpr bool in_active_bucket(events::lifecycle_state s) noexcept {
  return s == events::lifecycle_state::queued || s == events::lifecycle_state::allocating ||
         s == events::lifecycle_state::configuring || s == events::lifecycle_state::activating ||
         s == events::lifecycle_state::verifying;
}

/// The state indexes' byte for `s`: its own value, or `active_bucket`.
inline constexpr char index_bucket(events::lifecycle_state s) noexcept {
  return in_active_bucket(s) ? active_bucket : static_cast<char>(s);
}

/// One state of each bucket of the state indexes, in state order (the active states share
/// one: `queued` stands for it).
inline std::vector<events::lifecycle_state> index_buckets() {
  std::vector<events::lifecycle_state> out;
  for (std::size_t i = 0; i < events::lifecycle_state_count; ++i) {
    const auto s = static_cast<events::lifecycle_state>(i);
    if (std::none_of(out.begin(), out.end(), [&](events::lifecycle_state t) { return index_bucket(t) == index_bucket(s); })) {
      out.push_back(s);
    }
  }
  return out;
}

/// `<inv><id>`: the part of every request index key after its prefix. `id` is the request's
/// stream key, the same as in "r/<id>".
inline void append_index_suffix(std::string& out, const events::request_state& s, std::string_view id) {
  append_be64(out, inverted_time(s.created_at));
  out.append(id);
}

/// The index prefix of the entries in `state`'s bucket: "x/s/<bucket>", or of one tenant's
/// "x/u/<tenant>\0<bucket>" (`index_bucket` of the state).
inline void append_index_prefix(std::string& out, const std::optional<std::string_view>& tenant,
                                events::lifecycle_state state) {
  if (tenant) {
    out.append(tenant_state_index_prefix).append(*tenant).push_back('\0');
  } else {
    out.append(state_index_prefix);
  }
  out.push_back(index_bucket(state));
}

/// Overwrites `out` with `prefix` + `id` (the shape of "r/<id>", "c/<id>", "k/<hash>", ...).
inline const std::string& make_key(std::string& out, std::string_view prefix, std::string_view id) {
  out.assign(prefix);
  out.append(id);
  return out;
}

/// "wd/<webhook id>\0": the prefix of one webhook's delivery records.
inline std::string webhook_delivery_key_prefix(std::string_view webhook_id) {
  std::string out{webhook_delivery_prefix};
  out.append(webhook_id).push_back('\0');
  return out;
}

/// "wd/<webhook id>\0<8-byte BE record number>": one delivery record (1-based, in order).
inline std::string webhook_delivery_key(std::string_view webhook_id, std::uint64_t number) {
  auto out = webhook_delivery_key_prefix(webhook_id);
  append_be64(out, number);
  return out;
}

/// The smallest key greater than every key starting with `prefix` (an iterator upper bound).
/// Our prefixes never end in 0xff.
inline std::string prefix_successor(std::string_view prefix) {
  std::string out{prefix};
  out.back() = static_cast<char>(static_cast<unsigned char>(out.back()) + 1);
  return out;
}

}  // namespace prov::projections::detail
