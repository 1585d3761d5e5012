#include "prov/kafka/topics.hpp"

#include <set>

#include "detail/rdkafka.hpp"
#include "prov/events/lifecycle.hpp"

namespace prov::kafka {

std::vector<topic_spec> project_topics(int partitions, std::string_view event_prefix) {
  std::vector<topic_spec> out{{std::string{command_topic}, partitions}, {std::string{command_result_topic}, partitions}};
  for (auto type : events::lifecycle_types) {
    out.push_back(topic_spec{event_topic(event_prefix, type), partitions});
  }
  return out;
}

result<std::vector<std::string>> missing_topics(const client_settings& settings, std::string_view event_prefix,
                                                std::chrono::milliseconds timeout) {
  auto c = detail::make_conf(settings, client_role::producer, {}, {});
  if (!c) {
    return std::move(c).err();
  }
  auto client = detail::make_client(RD_KAFKA_PRODUCER, std::move(*c));
  if (!client) {
    return std::move(client).err();
  }
  const rd_kafka_metadata_t* md = nullptr;
  const auto err = rd_kafka_metadata(client->get(), 1, nullptr, &md, static_cast<int>(timeout.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return make_error(errc::unavailable, "kafka: could not list the topics at " + settings.brokers + ": " +
                                             detail::error_text(err));
  }
  std::set<std::string, std::less<>> present;
  for (int i = 0; i < md->topic_cnt; ++i) {
    if (md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      present.insert(md->topics[i].topic);
    }
  }
  rd_kafka_metadata_destroy(md);
  std::vector<std::string> missing;
  for (auto& t : project_topics(1, event_prefix)) {
    if (!present.contains(t.name)) {
      missing.push_back(std::move(t.name));
    }
  }
  return missing;
}

}  // namespace prov::kafka
