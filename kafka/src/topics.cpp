#include "prov/kafka/topics.hpp"

#include "prov/events/lifecycle.hpp"

namespace prov::kafka {

std::vector<topic_spec> project_topics(int partitions, std::string_view event_prefix) {
  std::vector<topic_spec> out{{std::string{command_topic}, partitions}, {std::string{command_result_topic}, partitions}};
  for (auto type : events::lifecycle_types) {
    out.push_back(topic_spec{event_topic(event_prefix, type), partitions});
  }
  return out;
}

}  // namespace prov::kafka
