# bench/bench_ring.cmake: the ring benchmark (not run by CI). Included from
# bench/CMakeLists.txt. Only this target gets DPDK's cflags (they contain
# -march=corei7); the ring code it measures is built with the project's.
add_executable(bench_ring ${CMAKE_CURRENT_LIST_DIR}/bench_ring.c)
target_include_directories(bench_ring SYSTEM PRIVATE ${DPDK_INCLUDE_DIRS})
target_compile_options(bench_ring PRIVATE ${DPDK_CFLAGS_OTHER})
target_link_libraries(bench_ring PRIVATE tl_shm tl_core rte_ring rte_eal)
