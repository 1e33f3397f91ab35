# tally-enginesim: the reference matching engine on libtally_engine (the
# admin/ target tally_engine), with its order books in enginesim_book.c.
# Included from bench/CMakeLists.txt.
add_executable(tally-enginesim
  ${CMAKE_CURRENT_LIST_DIR}/enginesim.c
  ${CMAKE_CURRENT_LIST_DIR}/enginesim_book.c
  ${CMAKE_CURRENT_LIST_DIR}/enginesim_standby.c
  ${CMAKE_CURRENT_LIST_DIR}/enginesim_lease.c)
# The standby (--standby) uses the writer, the ring producer and the admin
# server directly (libtally_engine has no standby API): the library exports
# them, so it still links this one library.
target_link_libraries(tally-enginesim PRIVATE tally_engine m Threads::Threads)
# --etcd (enginesim_lease.c): blocking libcurl and cJSON of its own.
target_link_libraries(tally-enginesim PRIVATE PkgConfig::CURL PkgConfig::CJSON)
set_target_properties(tally-enginesim PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)

# The unit tests of the library and of the simulator (tests/unit/test_engine*.c)
# are globbed by tests/CMakeLists.txt, which links only the tl_* floors and is
# processed after bench/. Once every directory is done, give them the
# library's sources (compiled in, so each symbol exists once: no second copy
# from the shared library next to the static floors) and the simulator,
# which they run as a process.
function(tl_engine_wire_tests)
  get_property(tests DIRECTORY ${CMAKE_SOURCE_DIR}/tests PROPERTY BUILDSYSTEM_TARGETS)
  foreach(t ${tests})
    if(t MATCHES "^test_engine")
      target_sources(${t} PRIVATE
        ${CMAKE_SOURCE_DIR}/admin/engine.c
        ${CMAKE_SOURCE_DIR}/admin/engine_fault.c
        ${CMAKE_SOURCE_DIR}/bench/enginesim_book.c)
      target_include_directories(${t} PRIVATE ${CMAKE_SOURCE_DIR}/bench)
      target_link_libraries(${t} PRIVATE m)
      add_dependencies(${t} tally-enginesim)
    endif()
  endforeach()
endfunction()
cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL tl_engine_wire_tests)
