# prov_library(<folder> DEPS <targets...>): one library target per top folder, exported as
# prov::<folder>, with public headers under <folder>/include and sources under <folder>/src.
function(prov_library name)
  cmake_parse_arguments(ARG "" "" "DEPS;PRIVATE_DEPS" ${ARGN})
  file(GLOB_RECURSE sources CONFIGURE_DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/src/*.cpp")
  add_library(prov_${name} STATIC ${sources})
  add_library(prov::${name} ALIAS prov_${name})
  target_include_directories(prov_${name}
    PUBLIC "${CMAKE_CURRENT_SOURCE_DIR}/include"
    PRIVATE "${CMAKE_CURRENT_SOURCE_DIR}/src")
  target_link_libraries(prov_${name} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  prov_warnings(prov_${name})
endfunction()

function(prov_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter)
endfunction()

# prov_allocator(<target>): links the chosen allocator into an executable (see
# ProvDependencies.cmake). Libraries never pick an allocator; executables do.
function(prov_allocator target)
  if(TARGET PkgConfig::JEMALLOC)
    target_link_libraries(${target} PRIVATE PkgConfig::JEMALLOC)
    target_compile_definitions(${target} PRIVATE PROV_ALLOCATOR="jemalloc" PROV_JEMALLOC=1)
  else()
    target_compile_definitions(${target} PRIVATE PROV_ALLOCATOR="system" PROV_JEMALLOC=0)
  endif()
endfunction()
