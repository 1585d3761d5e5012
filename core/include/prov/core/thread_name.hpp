#pragma once
/// Names for the engine's own threads, so that `top -H`, `perf` and a debugger tell the
/// journal's writer from the projector or an HTTP worker.

#include <string>
#include <string_view>

namespace prov {

/// Names the calling thread `name`, cut to the 15 characters Linux keeps. Best effort: a
/// platform without thread names, or a refusal, leaves the name as it was.
void name_this_thread(std::string_view name) noexcept;

/// The calling thread's name, or empty if it cannot be read.
std::string this_thread_name();

}  // namespace prov
