#include <catch2/catch.hpp>

#include "prov/kafka/client_settings.hpp"

using namespace prov::kafka;

namespace {

client_settings three_kinds() {
  client_settings s;
  s.brokers = "127.0.0.1:9092";
  s.properties = {{"security.protocol", "plaintext"}, {"socket.timeout.ms", "30000"}};
  s.consumer_properties = {{"group.instance.id", "provisiond-1"}, {"socket.timeout.ms", "20000"}};
  s.producer_properties = {{"linger.ms", "1"}};
  return s;
}

}  // namespace

TEST_CASE("kafka client properties: each role gets the shared ones, then its own", "[unit][kafka]") {
  const auto s = three_kinds();
  const std::vector<kafka_property> consumer{{"security.protocol", "plaintext"},
                                             {"socket.timeout.ms", "30000"},
                                             {"group.instance.id", "provisiond-1"},
                                             {"socket.timeout.ms", "20000"}};  // later: the consumer's wins
  const std::vector<kafka_property> producer{
      {"security.protocol", "plaintext"}, {"socket.timeout.ms", "30000"}, {"linger.ms", "1"}};
  CHECK(user_properties(s, client_role::consumer) == consumer);
  CHECK(user_properties(s, client_role::producer) == producer);
  CHECK(check_properties(s).ok());
}

TEST_CASE("kafka client properties: a refused one is named, for either role, and its value is not shown",
          "[unit][kafka]") {
  auto consumer_only = three_kinds();
  consumer_only.consumer_properties.emplace_back("no.such.property", "hunter2-secret");
  auto producer_only = three_kinds();
  producer_only.producer_properties.emplace_back("linger.ms", "not-a-number-hunter2");
  const std::pair<client_settings, std::string> cases[] = {{consumer_only, "no.such.property"},
                                                           {producer_only, "linger.ms"}};
  for (const auto& [s, refused] : cases) {
    INFO(refused);
    const auto checked = check_properties(s);
    REQUIRE_FALSE(checked.ok());
    CHECK(checked.err().code == prov::errc::invalid_argument);
    CHECK(checked.err().message.find(refused) != std::string::npos);
    CHECK(checked.err().message.find("hunter2") == std::string::npos);
  }
  auto no_brokers = three_kinds();
  no_brokers.brokers.clear();
  CHECK(check_properties(no_brokers).err().code == prov::errc::invalid_argument);
}
