#include "prov/events/transitions.hpp"

#include <array>
#include <vector>

namespace prov::events {

namespace {

using ls = lifecycle_state;

// The table. One row per source state; a state never transitions to itself.
//   queued           -> pending_approval (a rule matched), allocating (step 1), failed
//   pending_approval -> queued (approved), failed (rejected, cancelled)
//   allocating       -> configuring, failed       (and likewise for the next two steps)
//   verifying        -> completed, failed
//   completed        -> suspended, rolling_back (deprovision)
//   suspended        -> completed (reactivate), rolling_back (deprovision)
//   failed           -> rolling_back
//   rolling_back     -> rolled_back
//   rolled_back      -> (terminal)
const std::array<std::vector<ls>, lifecycle_state_count> table{{
    {ls::pending_approval, ls::allocating, ls::failed},  // queued
    {ls::queued, ls::failed},                            // pending_approval
    {ls::configuring, ls::failed},                       // allocating
    {ls::activating, ls::failed},                        // configuring
    {ls::verifying, ls::failed},                         // activating
    {ls::completed, ls::failed},                         // verifying
    {ls::suspended, ls::rolling_back},                   // completed
    {ls::completed, ls::rolling_back},                   // suspended
    {ls::rolling_back},                                  // failed
    {ls::rolled_back},                                   // rolling_back
    {},                                                  // rolled_back
}};

}  // namespace

bool transition_allowed(lifecycle_state from, lifecycle_state to) noexcept {
  for (auto s : allowed_targets(from)) {
    if (s == to) {
      return true;
    }
  }
  return false;
}

std::span<const lifecycle_state> allowed_targets(lifecycle_state from) noexcept {
  const auto i = static_cast<std::size_t>(from);
  if (i >= table.size()) {
    return {};
  }
  return table[i];
}

}  // namespace prov::events
