# bench_check: records checked per second on one core, ring + WAL cross-check
# through the real consumer, tailer and loop (issue 3; not a CI test).
add_executable(bench_check ${CMAKE_CURRENT_LIST_DIR}/bench_check.c)
target_link_libraries(bench_check PRIVATE tl_io tl_shm tl_core Threads::Threads)
