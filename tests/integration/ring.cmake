# tests/integration/ring.cmake: helper programs of the ring tests (shm/).
# ring_producer is the engine stand-in that test_ring_twoproc runs as a
# separate process (fork + exec) over a POSIX shm ring.
add_executable(ring_producer ${CMAKE_CURRENT_LIST_DIR}/../progs/ring_producer.c)
target_link_libraries(ring_producer PRIVATE tl_shm tl_core)
set_target_properties(ring_producer PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
if(TARGET test_ring_twoproc)
  add_dependencies(test_ring_twoproc ring_producer)
  set_tests_properties(test_ring_twoproc PROPERTIES TIMEOUT 300)
endif()
