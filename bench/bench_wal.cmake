# bench_wal: native WAL writer throughput and verified replay vs raw pread
# (not a CI test). Included from bench/CMakeLists.txt:
#   include(${CMAKE_CURRENT_SOURCE_DIR}/bench_wal.cmake)
add_executable(bench_wal ${CMAKE_CURRENT_LIST_DIR}/bench_wal.c)
target_link_libraries(bench_wal PRIVATE tl_io tl_core)
