#include <algorithm>
#include <memory>
#include <string_view>

#include <rocksdb/slice_transform.h>

#include "detail/keys.hpp"
#include "prov/projections/projector.hpp"

namespace prov::projections {

namespace {

/// A memtable keeps, per hint prefix, where the last insert with that prefix went, and starts
/// the next one there. Index entries of one tenant are adjacent (newest first), but 100
/// tenants' entries interleave in time: with one hint for all of "x/u/", each insert started
/// from another tenant's place and searched the skip list from high up.
class projections_hint final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "prov.ProjectionsInsertHint"; }

  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    const std::string_view k{key.data(), key.size()};
    return {key.data(), prefix_size(k)};
  }

  bool InDomain(const rocksdb::Slice& key) const override { return key.size() >= fixed; }

 private:
  static constexpr std::size_t fixed = 4;

  /// "x/u/<tenant>\0<bucket>", "x/s/<bucket>", else the first 4 bytes.
  static std::size_t prefix_size(std::string_view k) {
    if (k.starts_with(detail::tenant_state_index_prefix)) {
      const auto end = k.find('\0', fixed);
      if (end == std::string_view::npos) {
        return k.size();
      }
      return std::min(k.size(), end + 2);
    }
    if (k.starts_with(detail::state_index_prefix)) {
      return std::min(k.size(), fixed + 1);
    }
    return fixed;
  }
};

}  // namespace

std::shared_ptr<const rocksdb::SliceTransform> insert_hint() { return std::make_shared<projections_hint>(); }

}  // namespace prov::projections
