#pragma once
/// How provisiond reaches a Kafka cluster; shared by the outbox publisher and the command
/// consumer. Everything here maps onto librdkafka properties; the properties the delivery
/// guarantees rest on are set by each component and cannot be overridden (see KAFKA.md).

#include <string>
#include <utility>
#include <vector>

namespace prov::kafka {

struct client_settings {
  std::string brokers;                  ///< `bootstrap.servers`: HOST:PORT[,...]
  std::string client_id = "provisiond"; ///< `client.id`, shown in broker logs and quotas
  /// Further librdkafka properties, applied in order (TLS, SASL, timeouts...), e.g.
  /// {"security.protocol", "SASL_SSL"}. Values are never logged.
  std::vector<std::pair<std::string, std::string>> properties;
};

}  // namespace prov::kafka
