// The webhooks' SSRF guard and the signature helper.

#include <catch2/catch.hpp>

#include "prov/actors/webhook_guard.hpp"
#include "prov/actors/webhook_signature.hpp"

using namespace prov;
using namespace prov::actors;

TEST_CASE("webhook guard: address classes", "[webhooks][guard]") {
  CHECK(classify_address("8.8.8.8") == address_class::public_address);
  CHECK(classify_address("169.254.169.254") == address_class::link_local);
  CHECK(classify_address("169.254.0.1") == address_class::link_local);
  CHECK(classify_address("100.100.100.200") == address_class::metadata);
  CHECK(classify_address("127.0.0.1") == address_class::loopback);
  CHECK(classify_address("127.8.9.10") == address_class::loopback);
  CHECK(classify_address("10.1.2.3") == address_class::private_address);
  CHECK(classify_address("172.31.255.255") == address_class::private_address);
  CHECK(classify_address("172.32.0.1") == address_class::public_address);
  CHECK(classify_address("192.168.1.1") == address_class::private_address);
  CHECK(classify_address("0.0.0.0") == address_class::unspecified);
  CHECK(classify_address("224.0.0.1") == address_class::reserved);
  CHECK(classify_address("255.255.255.255") == address_class::reserved);
  CHECK(classify_address("::1") == address_class::loopback);
  CHECK(classify_address("::") == address_class::unspecified);
  CHECK(classify_address("fe80::1") == address_class::link_local);
  CHECK(classify_address("febf::1") == address_class::link_local);
  CHECK(classify_address("fd00:ec2::254") == address_class::metadata);
  CHECK(classify_address("fd12::1") == address_class::private_address);
  CHECK(classify_address("::ffff:169.254.169.254") == address_class::link_local);
  CHECK(classify_address("::ffff:127.0.0.1") == address_class::loopback);
  CHECK(classify_address("64:ff9b::a9fe:a9fe") == address_class::link_local);
  CHECK(classify_address("2001:db8::1") == address_class::public_address);
  CHECK_FALSE(classify_address("example.com").has_value());
  CHECK_FALSE(classify_address("").has_value());
}

TEST_CASE("webhook guard: registration refuses metadata and link-local targets by default", "[webhooks][guard]") {
  const webhook_address_policy defaults;
  CHECK(check_webhook_url("https://hooks.example.com/x", defaults));
  CHECK(check_webhook_url("http://8.8.8.8:8080/hook?a=1", defaults));
  for (const auto* url : {"http://169.254.169.254/latest/meta-data", "http://[fe80::1]/", "http://127.0.0.1:9/",
                          "http://10.0.0.1/", "http://[::ffff:169.254.169.254]/", "http://metadata.google.internal/",
                          "http://2130706433/", "http://0x7f.1/", "http://0.0.0.0/", "ftp://example.com/",
                          "http://user:pw@example.com/", "http://example.com/#frag", "http://exa mple.com/",
                          "http://example.com:0/", "http://example.com:70000/", "http://[::1/", "http:///x",
                          "http://localhost:8080/", "http://api.LOCALHOST/"}) {
    INFO(url);
    auto st = check_webhook_url(url, defaults);
    REQUIRE_FALSE(st);
    CHECK(st.err().code == errc::invalid_argument);
  }
}

TEST_CASE("webhook guard: loopback and private targets only when the policy allows them", "[webhooks][guard]") {
  webhook_address_policy p;
  p.allow_loopback = true;
  CHECK(check_webhook_url("http://127.0.0.1:8080/hook", p));
  CHECK(check_webhook_url("http://[::1]:8080/hook", p));
  CHECK(check_webhook_url("http://localhost:8080/hook", p));
  CHECK_FALSE(check_webhook_url("http://10.0.0.1/", p));
  CHECK_FALSE(check_webhook_url("http://169.254.169.254/", p));
  p.allow_private = true;
  CHECK(check_webhook_url("http://10.0.0.1/", p));
  CHECK_FALSE(check_webhook_url("http://169.254.169.254/", p));
  p.allow_link_local = true;
  CHECK(check_webhook_url("http://169.254.169.254/", p));
  CHECK_FALSE(check_webhook_url("http://224.0.0.1/", p));  // never
}

TEST_CASE("webhook guard: a name resolving to a refused address is refused at delivery", "[webhooks][guard]") {
  const webhook_address_policy defaults;
  CHECK(check_resolved("hooks.example.com", {"93.184.216.34"}, defaults));
  auto st = check_resolved("evil.example.com", {"93.184.216.34", "169.254.169.254"}, defaults);
  REQUIRE_FALSE(st);
  CHECK(st.err().code == errc::forbidden);
  CHECK(st.err().message.find("169.254.169.254") != std::string::npos);
  CHECK_FALSE(check_resolved("nothing.example.com", {}, defaults));
}

TEST_CASE("webhook guard: URLs are taken apart", "[webhooks][guard]") {
  auto t = parse_webhook_url("HTTPS://Hooks.Example.com:8443?x=1");
  REQUIRE(t);
  CHECK(t->tls);
  CHECK(t->host == "Hooks.Example.com");
  CHECK(t->port == "8443");
  CHECK(t->target == "/?x=1");
  auto v6 = parse_webhook_url("http://[2001:db8::1]/a/b");
  REQUIRE(v6);
  CHECK(v6->host == "2001:db8::1");
  CHECK(v6->port == "80");
  CHECK(v6->host_is_ip);
}

TEST_CASE("webhook signature: known HMAC-SHA256 vector", "[webhooks][signature]") {
  // RFC 4231 test case 2.
  CHECK(hmac_sha256_hex("Jefe", "what do ya want for nothing?") ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  CHECK(webhook_signature("Jefe", 12, "x") == "sha256=" + hmac_sha256_hex("Jefe", "12.x"));
}
