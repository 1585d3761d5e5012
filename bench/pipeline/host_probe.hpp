#pragma once
/// How fast the host is right now, for reading a run's figures: a fixed single-threaded
/// workload, timed. On a shared machine the same binary's requests/s and CPU per request move
/// by a third with the neighbours' load; a run that reports a slower probe ran on a slower
/// host, whatever the code did. Not a benchmark of anything we own.

namespace prov::bench {

/// Walks a random cycle through 16 MiB (a cache miss per step, as in the engine's skip lists
/// and hash maps) for a fixed number of steps; returns the walk's milliseconds (building the
/// cycle is not timed). Frees its memory before returning.
double host_probe_ms();

}  // namespace prov::bench
