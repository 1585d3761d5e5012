#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <thread>
#include <vector>

#include "prov/core/ids.hpp"

using namespace prov;

TEST_CASE("uuid v7 is canonical, versioned and time ordered", "[core][ids]") {
  const timestamp t1{std::chrono::milliseconds{1'000}};
  const timestamp t2{std::chrono::milliseconds{2'000}};
  const auto a = make_uuid_v7(t1);
  const auto b = make_uuid_v7(t2);
  REQUIRE(a.size() == 36);
  CHECK(a[14] == '7');
  CHECK(a.substr(0, 13) == "00000000-03e8");  // the milliseconds, big-endian
  for (std::size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      CHECK(a[i] == '-');
    } else {
      CHECK(((a[i] >= '0' && a[i] <= '9') || (a[i] >= 'a' && a[i] <= 'f')));
    }
  }
  CHECK(std::string{"89ab"}.find(a[19]) != std::string::npos);  // the variant
  CHECK(make_uuid_v4()[14] == '4');
  CHECK(a < b);
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    seen.insert(make_uuid_v7(t1));
  }
  CHECK(seen.size() == 1000);
}

TEST_CASE("random bytes are never handed out twice, across threads and sizes", "[core][ids]") {
  // Ids draw from a per-thread block of CSPRNG bytes: no two draws may overlap.
  std::vector<std::vector<std::string>> drawn(4);
  std::vector<std::thread> threads;
  for (auto& out : drawn) {
    threads.emplace_back([&out] {
      for (int i = 0; i < 5000; ++i) {
        out.push_back(random_hex(i % 2 == 0 ? 8 : 13));  // sizes that do not divide the block
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  std::set<std::string> seen;
  for (const auto& out : drawn) {
    seen.insert(out.begin(), out.end());
  }
  CHECK(seen.size() == 20000);
  const auto big = random_hex(1000);  // more than a block
  CHECK(big.size() == 2000);
  CHECK(big.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(big != random_hex(1000));
}

TEST_CASE("a forked child does not repeat its parent's random bytes", "[core][ids]") {
  (void)random_hex(4);  // this thread's block is filled before the fork
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    const auto mine = random_hex(16);
    const auto written = write(fds[1], mine.data(), mine.size());
    _exit(written == static_cast<ssize_t>(mine.size()) ? 0 : 1);
  }
  close(fds[1]);
  const auto parent = random_hex(16);
  std::string from_child(32, '\0');
  size_t got = 0;
  while (got < from_child.size()) {
    const auto n = read(fds[0], from_child.data() + got, from_child.size() - got);
    if (n <= 0) {
      break;
    }
    got += static_cast<size_t>(n);
  }
  close(fds[0]);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  REQUIRE(got == 32);
  CHECK(from_child != parent);
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
