#pragma once
/// An in-memory journal for tests: same contract as the RocksDB one, but every append
/// completes inline (the handler runs before `append` returns), so actor tests under CAF's
/// test coordinator stay deterministic. Crash simulation: a hook may swallow an append
/// (nothing is written and the handler is never called), as if the process died mid-append.

#include <functional>
#include <memory>
#include <vector>

#include "prov/core/clock.hpp"
#include "prov/events/journal.hpp"

namespace prov::events {

class memory_journal final : public journal {
 public:
  explicit memory_journal(const clock& clk);
  ~memory_journal() override;

  void append(std::vector<stream_append> batch, append_handler done) override;
  result<std::vector<stored_event>> read_stream(std::string_view stream, std::uint64_t from_sequence,
                                                std::uint64_t max) const override;
  result<std::uint64_t> stream_version(std::string_view stream) const override;
  result<std::size_t> read_all(std::uint64_t from_position, std::size_t max,
                               const std::function<void(const stored_event&)>& visit) const override;
  std::uint64_t head() const override;
  std::uint64_t last_position_in(std::string_view category) const override;
  void on_commit(commit_listener listener) override;
  void drain() override {}

  /// Called before each append; returning false swallows it (simulated crash).
  void set_crash_hook(std::function<bool(const std::vector<stream_append>&)> hook);

  /// Every committed event, in log order (for assertions and for "restarting" from a copy).
  std::vector<stored_event> events() const;

  /// A new journal holding a copy of this one's committed events (a restart after a crash).
  std::unique_ptr<memory_journal> clone() const;

 private:
  struct impl;
  std::unique_ptr<impl> _impl;
};

}  // namespace prov::events
