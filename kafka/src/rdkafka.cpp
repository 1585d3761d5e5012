#include "detail/rdkafka.hpp"

#include "prov/core/log.hpp"

namespace prov::kafka::detail {

namespace {

// librdkafka's syslog levels: 0-3 errors, 4 warnings, 5-7 notices and debug. Connection
// failures during an outage come as level 3 and are retried by the client: warnings for us.
void log_line(const rd_kafka_t* rk, int level, const char* facility, const char* text) {
  nlohmann::json fields{{"client", rd_kafka_name(rk)}, {"facility", facility}, {"text", text}};
  if (level <= 4) {
    log::warn("kafka_client", fields);
  } else if (level <= 6) {
    log::info("kafka_client", fields);
  } else {
    log::debug("kafka_client", fields);
  }
}

status set(rd_kafka_conf_t* c, const std::string& name, const std::string& value) {
  char errstr[512];
  if (rd_kafka_conf_set(c, name.c_str(), value.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
    // errstr may quote the value (a password): name the property only.
    return make_error(errc::invalid_argument, "kafka property '" + name + "' was refused by librdkafka");
  }
  return {};
}

}  // namespace

result<conf> make_conf(const client_settings& settings, client_role role, const std::vector<property>& defaults,
                       const std::vector<property>& fixed) {
  if (settings.brokers.empty()) {
    return make_error(errc::invalid_argument, "kafka brokers are required (HOST:PORT[,...])");
  }
  conf c{rd_kafka_conf_new()};
  std::vector<property> all{{"bootstrap.servers", settings.brokers}, {"client.id", settings.client_id}};
  all.insert(all.end(), defaults.begin(), defaults.end());
  const auto user = user_properties(settings, role);
  all.insert(all.end(), user.begin(), user.end());
  all.insert(all.end(), fixed.begin(), fixed.end());
  for (const auto& [name, value] : all) {
    if (auto st = set(c.get(), name, value); !st) {
      return std::move(st).err();
    }
  }
  rd_kafka_conf_set_log_cb(c.get(), log_line);
  return c;
}

result<handle> make_client(rd_kafka_type_t type, conf c) {
  char errstr[512];
  rd_kafka_t* rk = rd_kafka_new(type, c.get(), errstr, sizeof errstr);
  if (rk == nullptr) {
    return make_error(errc::invalid_argument, std::string{"kafka client: "} + errstr);
  }
  c.release();  // rd_kafka_new owns it now
  return handle{rk};
}

}  // namespace prov::kafka::detail

namespace prov::kafka {

std::vector<kafka_property> user_properties(const client_settings& settings, client_role role) {
  const auto& own = role == client_role::consumer ? settings.consumer_properties : settings.producer_properties;
  std::vector<kafka_property> out;
  out.reserve(settings.properties.size() + own.size());
  out.insert(out.end(), settings.properties.begin(), settings.properties.end());
  out.insert(out.end(), own.begin(), own.end());
  return out;
}

status check_properties(const client_settings& settings) {
  for (const auto role : {client_role::producer, client_role::consumer}) {
    if (auto c = detail::make_conf(settings, role, {}, {}); !c) {
      return std::move(c).err();
    }
  }
  return {};
}

}  // namespace prov::kafka
