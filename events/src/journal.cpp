#include "prov/events/journal.hpp"

namespace prov::events {

namespace {
thread_local bool journal_thread = false;
}  // namespace

bool on_journal_thread() noexcept { return journal_thread; }

void detail::mark_journal_thread() noexcept { journal_thread = true; }

}  // namespace prov::events
