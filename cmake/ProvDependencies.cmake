# Every dependency comes from Debian 12's packages; nothing is vendored or fetched.
find_package(Threads REQUIRED)
find_package(OpenSSL 3 REQUIRED)
find_package(RocksDB REQUIRED CONFIG)
find_package(nlohmann_json 3.11 REQUIRED CONFIG)
find_package(Boost 1.74 REQUIRED COMPONENTS program_options)

# Debian's libcaf-dev (0.17) ships no CMake package: locate headers and libraries by hand.
find_path(CAF_INCLUDE_DIR caf/all.hpp REQUIRED)
find_library(CAF_CORE_LIBRARY caf_core REQUIRED)
if(NOT TARGET caf::core)
  add_library(caf::core UNKNOWN IMPORTED)
  set_target_properties(caf::core PROPERTIES
    IMPORTED_LOCATION "${CAF_CORE_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES Threads::Threads)
endif()

# librdkafka (Debian: librdkafka-dev) ships pkg-config files only.
find_package(PkgConfig REQUIRED)
pkg_check_modules(RDKAFKA REQUIRED IMPORTED_TARGET rdkafka)

# The allocator of the executables: jemalloc (libjemalloc-dev) when installed. The hot path
# allocates small, short-lived objects from several threads (actor messages, event batches,
# RocksDB write batches); with glibc's malloc they cost ~15% of the CPU (docs/PERFORMANCE.md).
# -DPROV_ALLOCATOR=system keeps glibc's malloc.
set(PROV_ALLOCATOR "jemalloc" CACHE STRING "malloc of the executables: jemalloc or system")
set_property(CACHE PROV_ALLOCATOR PROPERTY STRINGS jemalloc system)
if(PROV_ALLOCATOR STREQUAL "jemalloc")
  pkg_check_modules(JEMALLOC IMPORTED_TARGET jemalloc)
  if(NOT JEMALLOC_FOUND)
    message(WARNING "jemalloc not found (apt-get install libjemalloc-dev): using the system malloc")
  endif()
endif()
