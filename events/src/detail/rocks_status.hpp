#pragma once
/// RocksDB `Status` -> `prov::error`: the one place storage errors are converted.

#include <string>
#include <string_view>

#include <rocksdb/status.h>

#include "prov/core/error.hpp"

namespace prov::events::detail {

/// An `errc::io_error` (or `errc::corrupt` for RocksDB's Corruption) naming what failed.
inline error to_error(const rocksdb::Status& s, std::string_view what) {
  const auto code = s.IsCorruption() ? errc::corrupt : errc::io_error;
  return make_error(code, std::string(what) + ": " + s.ToString());
}

/// `status` of a RocksDB call.
inline status to_status(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) {
    return {};
  }
  return to_error(s, what);
}

}  // namespace prov::events::detail
