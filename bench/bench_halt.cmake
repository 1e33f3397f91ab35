# bench_halt: detect-to-halt latency with real processes (not a CI test).
add_executable(bench_halt ${CMAKE_CURRENT_LIST_DIR}/bench_halt.c)
target_link_libraries(bench_halt PRIVATE tl_admin tl_shm tl_core)
