#pragma once
// The executables' shutdown signals, shared by provisiond and kafka-dev-broker.

#include <pthread.h>

#include <csignal>

namespace prov::app {

/// Blocks SIGTERM and SIGINT in the calling thread, so every thread started later inherits the
/// mask and the signals are taken synchronously with `sigwait` on the returned set; ignores
/// SIGPIPE (a peer closing a socket is an error to handle, not a reason to die).
inline sigset_t block_stop_signals() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  return stop_signals;
}

}  // namespace prov::app
