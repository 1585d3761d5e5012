#include <catch2/catch.hpp>

#include <filesystem>

#include "prov/core/secret_box.hpp"

using namespace prov;

TEST_CASE("sealed secrets open with the same key only", "[core][secrets]") {
  auto box = secret_box::from_key(std::string(32, 'k'));
  REQUIRE(box.ok());
  const std::string secret = "ssh-ed25519 AAAA... password=hunter2";
  const auto sealed = box->seal(secret);
  CHECK(secret_box::looks_sealed(sealed));
  CHECK(sealed.find("hunter2") == std::string::npos);
  CHECK(box->seal(secret) != sealed);  // fresh nonce each time
  auto opened = box->open(sealed);
  REQUIRE(opened.ok());
  CHECK(*opened == secret);

  auto other = secret_box::from_key(std::string(32, 'x'));
  CHECK_FALSE(other->open(sealed).ok());
  auto tampered = sealed;
  tampered[10] = tampered[10] == 'A' ? 'B' : 'A';
  CHECK_FALSE(box->open(tampered).ok());
  CHECK_FALSE(box->open("plain text").ok());
  CHECK(box->open(box->seal("")).value().empty());
}

TEST_CASE("boxes with different keys seal alternately on one thread, each with its own key",
          "[core][secrets]") {
  // A thread keeps the cipher of the box it sealed with last: switching boxes must switch keys.
  auto a = secret_box::from_key(std::string(32, 'a'));
  auto b = secret_box::from_key(std::string(32, 'b'));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  for (int i = 0; i < 3; ++i) {
    const auto by_a = a->seal("for a");
    const auto by_b = b->seal("for b");
    CHECK(a->open(by_a).value() == "for a");
    CHECK(b->open(by_b).value() == "for b");
    CHECK_FALSE(a->open(by_b).ok());
    CHECK_FALSE(b->open(by_a).ok());
  }
  // A box made after another is gone (maybe at the same address) uses its own key.
  std::string sealed_by_later;
  {
    auto first = secret_box::from_key(std::string(32, 'c'));
    REQUIRE(first.ok());
    (void)first->seal("warm");
  }
  {
    auto later = secret_box::from_key(std::string(32, 'd'));
    REQUIRE(later.ok());
    sealed_by_later = later->seal("later");
  }
  CHECK(secret_box::from_key(std::string(32, 'd'))->open(sealed_by_later).value() == "later");
  CHECK_FALSE(secret_box::from_key(std::string(32, 'c'))->open(sealed_by_later).ok());
}

TEST_CASE("the key file is created once, private, and reused", "[core][secrets]") {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("prov-key-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  std::filesystem::create_directories(dir);
  const auto path = (dir / "secret.key").string();
  auto first = secret_box::open_or_create(path, nullptr);
  REQUIRE(first.ok());
  CHECK(std::filesystem::file_size(path) == 32);
  const auto perms = std::filesystem::status(path).permissions();
  CHECK((perms & std::filesystem::perms::group_all) == std::filesystem::perms::none);
  CHECK((perms & std::filesystem::perms::others_all) == std::filesystem::perms::none);
  auto second = secret_box::open_or_create(path, nullptr);
  REQUIRE(second.ok());
  CHECK(*second->open(first->seal("x")) == "x");
  std::filesystem::remove_all(dir);
}

TEST_CASE("base64 round trips", "[core][secrets]") {
  for (std::string s : {"", "a", "ab", "abc", "abcd", "\x00\xff\x10"}) {
    CHECK(base64_decode(base64_encode(s)).value() == s);
  }
  CHECK_FALSE(base64_decode("abc").ok());
}
