#include "prov/events/memory_journal.hpp"

#include <algorithm>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "detail/journal_validation.hpp"
#include "prov/core/string_hash.hpp"
#include "prov/events/catalog.hpp"

namespace prov::events {

namespace {

/// Events copied per lock by `read_all`, so a visitor runs without the lock held.
constexpr std::size_t read_chunk = 256;

}  // namespace

struct memory_journal::impl {
  explicit impl(const clock& c) : clk(c), listeners(std::make_shared<const std::vector<commit_listener>>()) {}

  /// What `commit` did: the handler's result and, if something was written, who to tell.
  struct commit_outcome {
    result<append_receipt> receipt;
    std::uint64_t head = 0;
    std::shared_ptr<const std::vector<commit_listener>> listeners;
  };

  const clock& clk;
  mutable std::mutex mutex;
  std::vector<stored_event> log;  ///< log[i] has position i + 1
  /// Stream id -> indexes into `log` of its events, in sequence order.
  std::unordered_map<std::string, std::vector<std::size_t>, string_hash, std::equal_to<>> streams;
  /// Replaced (copy on write) on registration, so they can be called without the lock.
  std::shared_ptr<const std::vector<commit_listener>> listeners;
  std::function<bool(const std::vector<stream_append>&)> crash_hook;

  /// Version of `stream` (caller holds the lock).
  std::uint64_t version(std::string_view stream) const {
    const auto found = streams.find(stream);
    return found == streams.end() ? 0 : found->second.size();
  }

  /// Checks and applies a validated batch under the lock.
  commit_outcome commit(std::vector<stream_append>& batch) {
    std::lock_guard lock(mutex);
    // Check every stream first (a stream named twice continues from its earlier entry).
    std::vector<std::uint64_t> new_versions;
    new_versions.reserve(batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const auto& append = batch[i];
      std::uint64_t current = 0;
      bool chained = false;
      for (std::size_t k = i; k-- > 0;) {
        if (batch[k].stream == append.stream) {
          current = new_versions[k];
          chained = true;
          break;
        }
      }
      if (!chained) {
        current = version(append.stream);
      }
      if (append.expected_version != any_version && append.expected_version != current) {
        return {detail::version_conflict(append.stream, append.expected_version, current), 0, nullptr};
      }
      new_versions.push_back(current + append.events.size());
    }

    append_receipt receipt;
    // Never before the last event's time, as the RocksDB journal (a wall clock set back).
    receipt.time = log.empty() ? clk.now() : std::max(clk.now(), log.back().time);
    receipt.first_position = log.size() + 1;
    receipt.versions = std::move(new_versions);
    for (auto& append : batch) {
      auto& index = streams[append.stream];
      for (auto& event : append.events) {
        index.push_back(log.size());
        log.push_back(stored_event{log.size() + 1, append.stream, index.size(), receipt.time, event.type_id,
                                   event.version, std::move(event.payload)});
      }
    }
    receipt.last_position = log.size();
    const auto head = receipt.last_position;
    return {std::move(receipt), head, listeners};
  }
};

memory_journal::memory_journal(const clock& clk) : _impl(std::make_unique<impl>(clk)) {}

memory_journal::~memory_journal() = default;

void memory_journal::append(std::vector<stream_append> batch, append_handler done) {
  std::function<bool(const std::vector<stream_append>&)> hook;
  {
    std::lock_guard lock(_impl->mutex);
    hook = _impl->crash_hook;
  }
  if (hook && !hook(batch)) {
    return;  // simulated crash: nothing written, nobody answered
  }
  if (auto valid = detail::validate_batch(batch); !valid) {
    if (done) {
      done(std::move(valid).err());
    }
    return;
  }
  auto outcome = _impl->commit(batch);
  // Handlers and listeners run unlocked: they may read or append to the journal.
  if (done) {
    done(std::move(outcome.receipt));
  }
  if (outcome.listeners) {
    for (const auto& listener : *outcome.listeners) {
      listener(outcome.head);
    }
  }
}

result<std::vector<stored_event>> memory_journal::read_stream(std::string_view stream, std::uint64_t from_sequence,
                                                              std::uint64_t max) const {
  if (auto valid = detail::validate_stream_id(stream); !valid) {
    return std::move(valid).err();
  }
  std::vector<stored_event> out;
  from_sequence = std::max<std::uint64_t>(from_sequence, 1);
  std::lock_guard lock(_impl->mutex);
  const auto found = _impl->streams.find(stream);
  if (found == _impl->streams.end()) {
    return out;
  }
  const auto& index = found->second;
  for (auto i = from_sequence - 1; i < index.size() && out.size() < max; ++i) {
    out.push_back(_impl->log[index[i]]);
  }
  return out;
}

result<std::uint64_t> memory_journal::stream_version(std::string_view stream) const {
  if (auto valid = detail::validate_stream_id(stream); !valid) {
    return std::move(valid).err();
  }
  std::lock_guard lock(_impl->mutex);
  return _impl->version(stream);
}

result<std::size_t> memory_journal::read_all(std::uint64_t from_position, std::size_t max,
                                             const std::function<void(const stored_event&)>& visit) const {
  from_position = std::max<std::uint64_t>(from_position, 1);
  std::uint64_t head = 0;
  {
    std::lock_guard lock(_impl->mutex);
    head = _impl->log.size();
  }
  std::size_t visited = 0;
  std::vector<stored_event> chunk;
  auto next = from_position;
  while (visited < max && next <= head) {
    chunk.clear();
    {
      std::lock_guard lock(_impl->mutex);
      for (; chunk.size() < read_chunk && visited + chunk.size() < max && next <= head; ++next) {
        chunk.push_back(_impl->log[next - 1]);
      }
    }
    for (const auto& event : chunk) {
      visit(event);
    }
    visited += chunk.size();
  }
  return visited;
}

std::uint64_t memory_journal::head() const {
  std::lock_guard lock(_impl->mutex);
  return _impl->log.size();
}

std::uint64_t memory_journal::last_position_in(std::string_view category) const {
  std::lock_guard lock(_impl->mutex);
  for (auto e = _impl->log.rbegin(); e != _impl->log.rend(); ++e) {
    if (stream_category(e->stream) == category) {
      return e->position;
    }
  }
  return 0;
}

void memory_journal::on_commit(commit_listener listener) {
  std::lock_guard lock(_impl->mutex);
  auto next = std::make_shared<std::vector<commit_listener>>(*_impl->listeners);
  next->push_back(std::move(listener));
  _impl->listeners = std::move(next);
}

void memory_journal::set_crash_hook(std::function<bool(const std::vector<stream_append>&)> hook) {
  std::lock_guard lock(_impl->mutex);
  _impl->crash_hook = std::move(hook);
}

std::vector<stored_event> memory_journal::events() const {
  std::lock_guard lock(_impl->mutex);
  return _impl->log;
}

std::unique_ptr<memory_journal> memory_journal::clone() const {
  auto copy = std::make_unique<memory_journal>(_impl->clk);
  std::lock_guard lock(_impl->mutex);
  copy->_impl->log = _impl->log;
  copy->_impl->streams = _impl->streams;
  return copy;
}

}  // namespace prov::events
