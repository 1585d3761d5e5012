#include "latency_tracker.hpp"

#include <algorithm>
#include <functional>

namespace prov::bench {

latency_tracker::shard& latency_tracker::shard_of(const std::string& id) noexcept {
  return _shards[std::hash<std::string>{}(id) % shard_count];
}

void latency_tracker::finish(shard& s, time_point due, time_point sent, time_point terminal_at, outcome kind) {
  if (kind == outcome::completed) {
    s.completed_ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(terminal_at - sent).count());
    s.completed_from_due_ns.push_back(
        std::chrono::duration_cast<std::chrono::nanoseconds>(terminal_at - due).count());
    _completed.fetch_add(1);
  } else {
    _rolled_back.fetch_add(1);
  }
  s.last_terminal = std::max(s.last_terminal, terminal_at);
}

void latency_tracker::on_submitted(const std::string& id, time_point due, time_point sent, time_point replied) {
  auto& s = shard_of(id);
  {
    std::lock_guard<std::mutex> guard{s.mutex};
    s.submit_ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(replied - sent).count());
    auto it = s.waiting.find(id);
    if (it != s.waiting.end() && !it->second.replied) {
      // The request reached its terminal state before its submit was answered.
      const auto e = it->second;
      s.waiting.erase(it);
      finish(s, due, sent, e.terminal_at, e.kind);
    } else {
      entry e;
      e.due = due;
      e.sent = sent;
      e.replied = true;
      s.waiting.insert_or_assign(id, e);
    }
  }
  _submitted.fetch_add(1);
}

void latency_tracker::on_terminal(const std::string& id, outcome kind, time_point at) {
  auto& s = shard_of(id);
  std::lock_guard<std::mutex> guard{s.mutex};
  auto it = s.waiting.find(id);
  if (it != s.waiting.end() && it->second.replied) {
    const auto due = it->second.due;
    const auto sent = it->second.sent;
    s.waiting.erase(it);
    finish(s, due, sent, at, kind);
    return;
  }
  // First half, or a second terminal state for an id not yet answered (keep the first).
  entry e;
  e.terminal_at = at;
  e.kind = kind;
  s.waiting.try_emplace(id, e);
}

std::vector<std::string> latency_tracker::unfinished(std::size_t max) const {
  std::vector<std::string> out;
  for (const auto& s : _shards) {
    std::lock_guard<std::mutex> guard{s.mutex};
    for (const auto& [id, e] : s.waiting) {
      if (out.size() >= max) {
        return out;
      }
      if (e.replied) {
        out.push_back(id);
      }
    }
  }
  return out;
}

std::size_t latency_tracker::orphan_terminals() const {
  std::size_t n = 0;
  for (const auto& s : _shards) {
    std::lock_guard<std::mutex> guard{s.mutex};
    n += static_cast<std::size_t>(
        std::count_if(s.waiting.begin(), s.waiting.end(), [](const auto& kv) { return !kv.second.replied; }));
  }
  return n;
}

latency_tracker::samples latency_tracker::collect() const {
  samples out;
  for (const auto& s : _shards) {
    std::lock_guard<std::mutex> guard{s.mutex};
    out.completed_ns.insert(out.completed_ns.end(), s.completed_ns.begin(), s.completed_ns.end());
    out.completed_from_due_ns.insert(out.completed_from_due_ns.end(), s.completed_from_due_ns.begin(),
                                     s.completed_from_due_ns.end());
    out.submit_ns.insert(out.submit_ns.end(), s.submit_ns.begin(), s.submit_ns.end());
    out.last_terminal = std::max(out.last_terminal, s.last_terminal);
  }
  return out;
}

}  // namespace prov::bench
