#pragma once
/// Errors across module lines: a stable code (its name is part of the HTTP and Kafka API)
/// plus a human message. Results are `result<T>`: a value or an `error`, never an exception.

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace prov {

/// Stable error codes. The numeric values are persisted (rejected-command events), never renumber.
enum class errc : int {
  ok = 0,
  invalid_argument = 1,      ///< malformed or out-of-range input
  not_found = 2,             ///< the addressed entity does not exist
  conflict = 3,              ///< the entity exists or is not in a state that allows this
  version_conflict = 4,      ///< optimistic concurrency: expected version did not match
  invalid_transition = 5,    ///< the lifecycle table forbids this state change
  unauthorized = 6,          ///< missing or unknown bearer token
  forbidden = 7,             ///< token known but not allowed to act on this entity
  quota_exceeded = 8,
  no_cluster_available = 9,
  provider_error = 10,       ///< the provider refused or failed a call
  io_error = 11,             ///< storage failure
  corrupt = 12,              ///< stored data could not be decoded
  unavailable = 13,          ///< shutting down or not ready
  payload_too_large = 14,
  unsupported = 15,          ///< known but not implemented here (e.g. a provider without driver)
  timeout = 16,
  internal = 17,
  overloaded = 18,           ///< too much unfinished work: back off and retry later
};

/// The stable snake_case name of a code, as used in `{"error":{"code":...}}`.
std::string_view to_string(errc code) noexcept;

struct error {
  errc code = errc::internal;
  std::string message;

  bool operator==(const error&) const = default;
};

inline error make_error(errc code, std::string message) {
  return error{code, std::move(message)};
}

/// A value or an error. Small on purpose: `ok()`, `value()`, `err()`, `operator*`, `->`.
template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : _v(std::in_place_index<0>, std::move(value)) {}
  result(error e) : _v(std::in_place_index<1>, std::move(e)) {}

  bool ok() const noexcept { return _v.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(_v); }
  const T& value() const& { assert(ok()); return std::get<0>(_v); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(_v)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  /// On a temporary, the value itself: `for (auto& x : *f())` then iterates a value the loop
  /// keeps alive, not a reference into the destroyed result.
  T operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const error& err() const& { assert(!ok()); return std::get<1>(_v); }
  error&& err() && { assert(!ok()); return std::get<1>(std::move(_v)); }

 private:
  std::variant<T, error> _v;
};

/// `result<void>`: success or an error.
template <>
class [[nodiscard]] result<void> {
 public:
  result() = default;
  result(error e) : _e(std::move(e)), _ok(false) {}

  bool ok() const noexcept { return _ok; }
  explicit operator bool() const noexcept { return _ok; }
  const error& err() const& { assert(!_ok); return _e; }
  error&& err() && { assert(!_ok); return std::move(_e); }

 private:
  error _e;
  bool _ok = true;
};

using status = result<void>;

}  // namespace prov
