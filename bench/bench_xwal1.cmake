# bench_xwal1.cmake: the xwal1 offline verify benchmark (not CI; run by hand:
#   build/bench/bench_xwal1 --mib 1024 --runs 7 --cpu 1 --json xwal1.json).
# Included by bench/CMakeLists.txt.
add_executable(bench_xwal1 ${CMAKE_CURRENT_LIST_DIR}/bench_xwal1.c)
target_link_libraries(bench_xwal1 PRIVATE tl_core PkgConfig::ZLIB)
target_compile_definitions(bench_xwal1 PRIVATE TL_SHARED_DIR="${TL_SHARED_DIR}")
