# tests/integration/xwal1.cmake: tallyd following a live xwal1 log (the quanta
# trading core's WAL dialect) with no ring, against xwal1_append, a stand-in
# engine that writes upstream's fixture frames one by one (fsync each) and
# serves the engine admin socket. The findings must be the offline ones
# (tallyctl wal verify --dialect xwal1 --json), and stale_leader's HARD_HALT
# must reach the admin socket on BTC-KRW.
add_executable(xwal1_append ${CMAKE_CURRENT_LIST_DIR}/../progs/xwal1_append.c)
target_link_libraries(xwal1_append PRIVATE tl_admin tl_core)
set_target_properties(xwal1_append PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
find_program(BASH bash)
# segment_gap, torn_append: corrupted copies of basic; tallyd_restart:
# stale_leader, then tallyd restarted over it (no action sent again).
foreach(scenario stale_leader basic restart tiny_segments segment_gap torn_append tallyd_restart)
  add_test(NAME it_xwal1_${scenario}
           COMMAND ${BASH} ${CMAKE_CURRENT_SOURCE_DIR}/integration/run_xwal1.sh ${scenario})
  set_tests_properties(it_xwal1_${scenario} PROPERTIES LABELS integration TIMEOUT 120
                       RUN_SERIAL TRUE
                       ENVIRONMENT "TL_BUILD=${CMAKE_BINARY_DIR};TL_SHARED_DIR=${TL_SHARED_DIR}")
endforeach()
# test_xwal1_restart renders /metrics (tl_api is not among the libraries
# every unit test gets).
if(TARGET test_xwal1_restart)
  target_link_libraries(test_xwal1_restart PRIVATE tl_api)
endif()
