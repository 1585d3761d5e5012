#pragma once
// Small RAII owners for librdkafka handles and the configuration every client shares. Private
// to prov::kafka: no librdkafka type appears in a public header.

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <librdkafka/rdkafka.h>

#include "prov/core/error.hpp"
#include "prov/kafka/client_settings.hpp"

namespace prov::kafka::detail {

struct handle_deleter {
  void operator()(rd_kafka_t* rk) const noexcept { rd_kafka_destroy(rk); }
};
struct conf_deleter {
  void operator()(rd_kafka_conf_t* c) const noexcept { rd_kafka_conf_destroy(c); }
};
struct partition_list_deleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const noexcept { rd_kafka_topic_partition_list_destroy(l); }
};
struct message_deleter {
  void operator()(rd_kafka_message_t* m) const noexcept { rd_kafka_message_destroy(m); }
};

using handle = std::unique_ptr<rd_kafka_t, handle_deleter>;
using conf = std::unique_ptr<rd_kafka_conf_t, conf_deleter>;
using partition_list = std::unique_ptr<rd_kafka_topic_partition_list_t, partition_list_deleter>;
using message = std::unique_ptr<rd_kafka_message_t, message_deleter>;

using property = kafka_property;

/// A configuration for a client of `role`: `defaults`, then the user's properties for that role
/// (`user_properties`), then `fixed` (the properties a guarantee depends on: they win). Logs go
/// to prov::log (never message payloads). `errc::invalid_argument` names the property
/// librdkafka refused (not its value).
result<conf> make_conf(const client_settings& settings, client_role role, const std::vector<property>& defaults,
                       const std::vector<property>& fixed);

/// Creates a client of `type` from `c` (which it takes over).
result<handle> make_client(rd_kafka_type_t type, conf c);

/// The text of a librdkafka error code.
inline std::string error_text(rd_kafka_resp_err_t err) { return rd_kafka_err2str(err); }

}  // namespace prov::kafka::detail
