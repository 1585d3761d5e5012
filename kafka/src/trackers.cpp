#include <algorithm>

#include "prov/kafka/offset_tracker.hpp"
#include "prov/kafka/position_tracker.hpp"

namespace prov::kafka {

// -- position_tracker ------------------------------------------------------------------------

void position_tracker::add(std::uint64_t position, std::size_t messages) {
  _last_added = position;
  if (messages > 0) {
    _pending.emplace_back(position, messages);
    _in_flight += messages;
  }
}

void position_tracker::ack(std::uint64_t position) noexcept {
  auto it = std::lower_bound(_pending.begin(), _pending.end(), position,
                             [](const auto& entry, std::uint64_t p) { return entry.first < p; });
  if (it == _pending.end() || it->first != position || it->second == 0) {
    return;
  }
  --it->second;
  --_in_flight;
  while (!_pending.empty() && _pending.front().second == 0) {
    _pending.pop_front();
  }
}

std::uint64_t position_tracker::done_through() const noexcept {
  return _pending.empty() ? _last_added : _pending.front().first - 1;
}

void position_tracker::reset(std::uint64_t done_through) noexcept {
  _pending.clear();
  _in_flight = 0;
  _last_added = done_through;
}

// -- offset_tracker --------------------------------------------------------------------------

void offset_tracker::begin(std::int32_t partition, std::int64_t offset) {
  auto& l = _lanes[partition];
  l.unfinished.insert(offset);
  l.next = std::max(l.next, offset + 1);
}

void offset_tracker::finish(std::int32_t partition, std::int64_t offset) {
  auto it = _lanes.find(partition);
  if (it != _lanes.end()) {
    it->second.unfinished.erase(offset);
  }
}

std::size_t offset_tracker::unfinished() const noexcept {
  std::size_t n = 0;
  for (const auto& [p, l] : _lanes) {
    n += l.unfinished.size();
  }
  return n;
}

std::size_t offset_tracker::unfinished(std::int32_t partition) const noexcept {
  const auto it = _lanes.find(partition);
  return it == _lanes.end() ? 0 : it->second.unfinished.size();
}

std::int64_t offset_tracker::point(const lane& l) noexcept {
  return l.unfinished.empty() ? l.next : *l.unfinished.begin();
}

std::map<std::int32_t, std::int64_t> offset_tracker::take_commits() {
  std::map<std::int32_t, std::int64_t> out;
  for (auto& [p, l] : _lanes) {
    const auto at = point(l);
    if (at > l.committed && at >= 0) {
      l.committed = at;
      out.emplace(p, at);
    }
  }
  return out;
}

std::optional<std::int64_t> offset_tracker::commit_point(std::int32_t partition) const {
  const auto it = _lanes.find(partition);
  if (it == _lanes.end() || it->second.next < 0) {
    return std::nullopt;
  }
  return point(it->second);
}

void offset_tracker::forget(std::int32_t partition) { _lanes.erase(partition); }

}  // namespace prov::kafka
