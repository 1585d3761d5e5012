#include "process.hpp"

#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdexcept>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace prov::test {

child_process::child_process(const std::vector<std::string>& argv, const std::string& stderr_path,
                             const std::vector<std::string>& extra_env) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  std::vector<char*> args;
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) {
    env_storage.emplace_back(*e);
  }
  for (const auto& e : extra_env) {
    env_storage.push_back(e);
  }
  std::vector<char*> env;
  for (auto& e : env_storage) {
    env.push_back(e.data());
  }
  env.push_back(nullptr);
  const int rc = posix_spawn(&_pid, args[0], &actions, nullptr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    throw std::runtime_error(std::string{"cannot start "} + argv[0] + ": " + std::strerror(rc));
  }
  _stdout = out[0];
}

child_process::~child_process() {
  if (running()) {
    signal(SIGKILL);
    wait(std::chrono::seconds{30});
  }
  if (_stdout >= 0) {
    ::close(_stdout);
  }
}

std::optional<std::string> child_process::read_line(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (const auto nl = _buffer.find('\n'); nl != std::string::npos) {
      auto line = _buffer.substr(0, nl);
      _buffer.erase(0, nl + 1);
      return line;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return std::nullopt;
    }
    pollfd p{_stdout, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready <= 0) {
      continue;
    }
    char buf[4096];
    const auto n = ::read(_stdout, buf, sizeof buf);
    if (n <= 0) {
      return std::nullopt;
    }
    _buffer.append(buf, static_cast<std::size_t>(n));
  }
}

void child_process::signal(int sig) {
  if (running()) {
    ::kill(_pid, sig);
  }
}

std::optional<int> child_process::wait(std::chrono::milliseconds timeout) {
  if (_exit) {
    return _exit;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(_pid, &status, WNOHANG);
    if (r == _pid) {
      _exit = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return _exit;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return std::nullopt;
    }
    // Reaping a child has no notification we can wait on portably here; poll at 10 ms.
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
}

}  // namespace prov::test
