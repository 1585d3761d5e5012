// Faults for end-to-end tests, loaded into provisiond with LD_PRELOAD, for the files under the
// directory PROV_FAIL_SYNC_DIR whose names end in PROV_FAIL_SUFFIX (by default `.log`: RocksDB's
// write-ahead logs; `.sst`: the tables a memtable flush writes):
// - while the file named by PROV_FAIL_SYNC_FLAG exists, fsync and fdatasync fail with EIO, as
//   a failing disk's would;
// - while the file named by PROV_FAIL_WRITE_FLAG exists, write fails with ENOSPC, as on a
//   full disk.
// Every other call goes to the C library. Nothing of this is in the production binaries.

#include <dlfcn.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

using sync_call = int (*)(int);
using write_call = ssize_t (*)(int, const void*, size_t);

bool failing(int fd, const char* flag_variable) {
  const char* flag = std::getenv(flag_variable);
  const char* dir = std::getenv("PROV_FAIL_SYNC_DIR");
  if (flag == nullptr || dir == nullptr || ::access(flag, F_OK) != 0) {
    return false;
  }
  char link[64];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  char path[PATH_MAX];
  const auto n = ::readlink(link, path, sizeof path - 1);
  if (n <= 0) {
    return false;
  }
  path[n] = '\0';
  const char* suffix = std::getenv("PROV_FAIL_SUFFIX");
  suffix = suffix == nullptr ? ".log" : suffix;
  const auto length = static_cast<std::size_t>(n);
  const auto suffix_length = std::strlen(suffix);
  return std::strncmp(path, dir, std::strlen(dir)) == 0 && length > suffix_length &&
         std::strcmp(path + length - suffix_length, suffix) == 0;
}

template <class Call>
Call next(const char* name) {
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): dlsym's result is a function
  return reinterpret_cast<Call>(::dlsym(RTLD_NEXT, name));
}

/// A sync of `fd` by `real`, or EIO while the sync fault is on for it.
int sync_or_fail(sync_call real, int fd) {
  if (failing(fd, "PROV_FAIL_SYNC_FLAG")) {
    errno = EIO;
    return -1;
  }
  return real(fd);
}

}  // namespace

extern "C" int fdatasync(int fd) {
  static const sync_call real = next<sync_call>("fdatasync");
  return sync_or_fail(real, fd);
}

extern "C" int fsync(int fd) {
  static const sync_call real = next<sync_call>("fsync");
  return sync_or_fail(real, fd);
}

extern "C" ssize_t write(int fd, const void* data, size_t size) {
  static const write_call real = next<write_call>("write");
  if (fd > STDERR_FILENO && failing(fd, "PROV_FAIL_WRITE_FLAG")) {
    errno = ENOSPC;
    return -1;
  }
  return real(fd, data, size);
}
