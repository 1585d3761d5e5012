#pragma once
// A RocksDB file system for tests whose WAL syncs (and writes) can be made to fail, or to wait
// until released: shared by the journal's tests and the gateway's readiness test.

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

namespace prov::test {

/// A file system whose WAL syncs can be made to fail, or to wait until released: the journal's
/// syncer is then observed in the middle of a sync.
class wal_sync_gate final : public rocksdb::FileSystemWrapper {
 public:
  wal_sync_gate() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}

  const char* Name() const override { return "wal_sync_gate"; }

  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* file,
                                    rocksdb::IODebugContext* dbg) override {
    auto s = target()->NewWritableFile(name, options, file, dbg);
    if (s.ok() && name.size() > 4 && name.compare(name.size() - 4, 4, ".log") == 0) {
      *file = std::make_unique<gated_file>(std::move(*file), *this);
    }
    return s;
  }

  /// Later WAL syncs fail (true) or pass (false).
  void fail(bool on) {
    std::lock_guard lock(_mutex);
    _fail = on;
  }

  /// Later WAL writes fail (true) or pass (false), with an error RocksDB retries.
  void fail_appends(bool on) {
    std::lock_guard lock(_mutex);
    _fail_appends = on;
  }

  bool appends_fail() {
    std::lock_guard lock(_mutex);
    return _fail_appends;
  }

  /// Later WAL syncs wait until `release`.
  void hold() {
    std::lock_guard lock(_mutex);
    _held = true;
  }

  void release() {
    {
      std::lock_guard lock(_mutex);
      _held = false;
    }
    _cv.notify_all();
  }

  /// Waits (at most 10 s) until a sync is held; false if none came.
  bool wait_for_held_sync() {
    std::unique_lock lock(_mutex);
    return _cv.wait_for(lock, std::chrono::seconds{10}, [&] { return _waiting > 0; });
  }

 private:
  class gated_file final : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    gated_file(std::unique_ptr<rocksdb::FSWritableFile> file, wal_sync_gate& gate)
        : FSWritableFileOwnerWrapper(std::move(file)), _gate(gate) {}
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
      auto s = _gate.pass();
      return s.ok() ? target()->Sync(options, dbg) : s;
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
      auto s = _gate.pass();
      return s.ok() ? target()->Fsync(options, dbg) : s;
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
      if (_gate.appends_fail()) {
        auto e = rocksdb::IOStatus::IOError("injected WAL write failure");
        e.SetRetryable(true);
        return e;
      }
      return target()->Append(data, options, dbg);
    }

   private:
    wal_sync_gate& _gate;
  };

  rocksdb::IOStatus pass() {
    std::unique_lock lock(_mutex);
    ++_waiting;
    _cv.notify_all();
    _cv.wait(lock, [&] { return !_held; });
    --_waiting;
    return _fail ? rocksdb::IOStatus::IOError("injected WAL sync failure") : rocksdb::IOStatus::OK();
  }

  std::mutex _mutex;
  std::condition_variable _cv;
  bool _fail = false;
  bool _fail_appends = false;
  bool _held = false;
  int _waiting = 0;
};

/// A RocksDB environment over a `wal_sync_gate`.
struct gated_env {
  std::shared_ptr<wal_sync_gate> gate = std::make_shared<wal_sync_gate>();
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(gate);
};


}  // namespace prov::test
