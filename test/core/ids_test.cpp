#include <catch2/catch.hpp>

#include <set>

#include "prov/core/ids.hpp"

using namespace prov;

TEST_CASE("uuid v7 is canonical, versioned and time ordered", "[core][ids]") {
  const timestamp t1{std::chrono::milliseconds{1'000}};
  const timestamp t2{std::chrono::milliseconds{2'000}};
  const auto a = make_uuid_v7(t1);
  const auto b = make_uuid_v7(t2);
  REQUIRE(a.size() == 36);
  CHECK(a[14] == '7');
  CHECK(a[8] == '-');
  CHECK(a < b);
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    seen.insert(make_uuid_v7(t1));
  }
  CHECK(seen.size() == 1000);
}

TEST_CASE("sha256 matches a known vector", "[core][ids]") {
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("stable hash is deterministic and seed dependent", "[core][ids]") {
  CHECK(stable_hash64("key") == stable_hash64("key"));
  CHECK(stable_hash64("key", 1) != stable_hash64("key", 2));
  CHECK(random_hex(16).size() == 32);
}

TEST_CASE("id validation", "[core][ids]") {
  CHECK(is_valid_id("tenant-a_1.x"));
  CHECK_FALSE(is_valid_id(""));
  CHECK_FALSE(is_valid_id("a b"));
  CHECK_FALSE(is_valid_id("a/b"));
  CHECK_FALSE(is_valid_id(std::string(129, 'a')));
}
