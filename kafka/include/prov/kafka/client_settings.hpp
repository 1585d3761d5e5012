#pragma once
/// How provisiond reaches a Kafka cluster; shared by the outbox publisher and the command
/// consumer. Everything here maps onto librdkafka properties; the properties the delivery
/// guarantees rest on are set by each component and cannot be overridden (see KAFKA.md).

#include <string>
#include <utility>
#include <vector>

#include "prov/core/error.hpp"

namespace prov::kafka {

using kafka_property = std::pair<std::string, std::string>;

/// The two kinds of librdkafka client provisiond makes: producers (the outbox, the command
/// answers, the start's topic check) and the command topic's consumer.
enum class client_role { producer, consumer };

struct client_settings {
  std::string brokers;                  ///< `bootstrap.servers`: HOST:PORT[,...]
  std::string client_id = "provisiond"; ///< `client.id`, shown in broker logs and quotas
  /// Further librdkafka properties for every client, applied in order (TLS, SASL, timeouts...),
  /// e.g. {"security.protocol", "SASL_SSL"}. Values are never logged.
  std::vector<kafka_property> properties;
  /// Applied after `properties`, to the consumer only (`group.instance.id`, fetch sizes):
  /// a consumer property given to a producer is ignored with a warning from librdkafka.
  std::vector<kafka_property> consumer_properties;
  /// Applied after `properties`, to the producers only (`linger.ms`, batch sizes).
  std::vector<kafka_property> producer_properties;
};

/// The user's properties a client of `role` gets, in the order they are applied: `properties`,
/// then the role's own (a later one wins).
std::vector<kafka_property> user_properties(const client_settings& settings, client_role role);

/// Sets every user property on a configuration of each role, as the clients will; an error
/// (`invalid_argument`) names the first one librdkafka refuses, never its value. Nothing
/// connects.
status check_properties(const client_settings& settings);

}  // namespace prov::kafka
