#include "prov/core/thread_name.hpp"

#include <pthread.h>

#include <algorithm>
#include <array>

namespace prov {

namespace {
// Linux keeps 16 bytes of a thread's name, the terminating NUL included.
constexpr std::size_t max_thread_name = 15;
}  // namespace

void name_this_thread(std::string_view name) noexcept {
  std::array<char, max_thread_name + 1> buffer{};
  const auto n = std::min(name.size(), max_thread_name);
  std::copy_n(name.data(), n, buffer.data());
  pthread_setname_np(pthread_self(), buffer.data());
}

std::string this_thread_name() {
  std::array<char, max_thread_name + 1> buffer{};
  if (pthread_getname_np(pthread_self(), buffer.data(), buffer.size()) != 0) {
    return {};
  }
  return buffer.data();
}

}  // namespace prov
