#include "prov/actors/progress_board.hpp"

#include <algorithm>
#include <tuple>
#include <vector>

namespace prov::actors {

namespace {

bool watched(events::lifecycle_state s) {
  return events::step_of(s).has_value() || s == events::lifecycle_state::rolling_back;
}

}  // namespace

void progress_board::note(std::string_view id, events::lifecycle_state state, timestamp at, bool waits_for_person,
                          clock_reading now) {
  auto& s = shard_of(id);
  std::lock_guard lock(s.mutex);
  auto found = s.requests.find(id);
  if (!watched(state) || waits_for_person) {
    if (found != s.requests.end()) {
      s.requests.erase(found);
    }
    return;
  }
  if (found == s.requests.end()) {
    found = s.requests.emplace(std::string{id}, entry{}).first;
  }
  found->second.state = state;
  // The event's age now, by the wall clock (never negative: a clock set back since), carried
  // over to the elapsed reading, on which it then ages.
  found->second.last_progress = std::max(found->second.last_progress, std::min(now.elapsed_at(at), now.elapsed));
}

void progress_board::scan(
    std::chrono::microseconds now, std::chrono::microseconds limit,
    const std::function<void(const std::string&, events::lifecycle_state, std::chrono::microseconds)>& stuck) {
  std::vector<std::tuple<std::string, events::lifecycle_state, std::chrono::microseconds>> found;
  for (auto& s : _shards) {
    std::lock_guard lock(s.mutex);
    for (auto& [id, r] : s.requests) {
      if (now - r.last_progress > limit && now - std::max(r.reported, r.last_progress) > limit) {
        r.reported = now;
        found.emplace_back(id, r.state, now - r.last_progress);
      }
    }
  }
  for (const auto& [id, state, idle] : found) {
    stuck(id, state, idle);
  }
}

std::optional<std::chrono::microseconds> progress_board::idle(std::string_view id, std::chrono::microseconds now) const {
  const auto& s = shard_of(id);
  std::lock_guard lock(s.mutex);
  const auto found = s.requests.find(id);
  if (found == s.requests.end()) {
    return std::nullopt;
  }
  return now - found->second.last_progress;
}

std::size_t progress_board::size() const {
  std::size_t n = 0;
  for (const auto& s : _shards) {
    std::lock_guard lock(s.mutex);
    n += s.requests.size();
  }
  return n;
}

}  // namespace prov::actors
