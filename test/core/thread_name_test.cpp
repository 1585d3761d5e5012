#include <catch2/catch.hpp>

#include <string>
#include <thread>

#include "prov/core/thread_name.hpp"

TEST_CASE("a thread's name is set, and cut to what Linux keeps", "[core][thread_name]") {
  std::string named;
  std::string cut;
  std::thread t{[&] {
    prov::name_this_thread("prov.journal");
    named = prov::this_thread_name();
    prov::name_this_thread("prov.a-name-far-too-long-for-linux");
    cut = prov::this_thread_name();
  }};
  t.join();
  CHECK(named == "prov.journal");
  CHECK(cut == "prov.a-name-far");
  CHECK(cut.size() == 15);
}
