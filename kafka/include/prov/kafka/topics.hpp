#pragma once
/// The project's Kafka topics. Names are part of the public contract: consumers
/// subscribe to them by name, so they never change. One source of truth for provisiond and the
/// dev broker (which creates exactly these).
///
/// - `provisioning.commands`        commands in (key = tenant id), see `command.hpp`
/// - `provisioning.command-results` one answer per command (key = the command's key)
/// - one topic per lifecycle type (`events::lifecycle_types`), key = request id, value =
///   CloudEvents 1.0 JSON; an optional prefix (e.g. "staging.") is prepended to each

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "prov/core/error.hpp"
#include "prov/kafka/client_settings.hpp"

namespace prov::kafka {

inline constexpr std::string_view command_topic = "provisioning.commands";
inline constexpr std::string_view command_result_topic = "provisioning.command-results";

/// The topic a lifecycle event of `type` goes to: `prefix` + `type`.
inline std::string event_topic(std::string_view prefix, std::string_view type) {
  std::string t{prefix};
  t += type;
  return t;
}

/// A topic to create on a fresh cluster, with its partition count.
struct topic_spec {
  std::string name;
  int partitions = 6;
};

/// Every topic of the project: commands, results, and one per lifecycle type.
std::vector<topic_spec> project_topics(int partitions = 6, std::string_view event_prefix = {});

/// The project's topics (lifecycle topics with `event_prefix`) that the cluster at `settings`
/// does not show this client, in `project_topics` order: missing, or not authorized (a client
/// allowed to read or write a topic may describe it). One metadata request for every topic,
/// which creates none (a request naming a topic may, on a broker that creates topics on first
/// use). `errc::unavailable` if no broker answered within `timeout`.
result<std::vector<std::string>> missing_topics(const client_settings& settings, std::string_view event_prefix,
                                                std::chrono::milliseconds timeout);

}  // namespace prov::kafka
