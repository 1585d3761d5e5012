#pragma once
// Child processes for end-to-end tests: start a program, read its stdout line by line with a
// deadline, signal it, and reap it with a deadline. Nothing here can hang a test forever.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace prov::test {

class child_process {
 public:
  /// Starts `argv[0]` with `argv`; stdout is a pipe readable with `read_line`, stderr goes to
  /// `stderr_path` (appended). Throws std::runtime_error if the program cannot be started.
  child_process(const std::vector<std::string>& argv, const std::string& stderr_path,
                const std::vector<std::string>& extra_env = {});
  ~child_process();  ///< SIGKILLs and reaps a child that is still running
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  /// The next stdout line, or nullopt on EOF or when `timeout` passes.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);

  void signal(int sig);

  /// Waits for exit; returns the exit code (128 + signal if killed), or nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);

  pid_t pid() const noexcept { return _pid; }
  bool running() const noexcept { return _pid > 0 && !_exit; }

 private:
  pid_t _pid = -1;
  int _stdout = -1;
  std::string _buffer;
  std::optional<int> _exit;
};

}  // namespace prov::test
