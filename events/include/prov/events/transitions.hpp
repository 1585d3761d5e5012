#pragma once
/// The lifecycle transition table. Every state change the engine makes is checked
/// against it; anything not listed is refused with `errc::invalid_transition`.

#include <span>

#include "prov/events/request.hpp"

namespace prov::events {

/// True if a request may move from `from` to `to` (a different state).
bool transition_allowed(lifecycle_state from, lifecycle_state to) noexcept;

/// The states reachable from `from` in one transition.
std::span<const lifecycle_state> allowed_targets(lifecycle_state from) noexcept;

}  // namespace prov::events
