# bench_bundle: forensic bundle export vs tar --zstd, verification speed, and
# the hot loop during exports (with bench_halt). Not a CI test.
add_executable(bench_bundle ${CMAKE_CURRENT_LIST_DIR}/bench_bundle.c)
target_link_libraries(bench_bundle PRIVATE tl_bundle tl_io tl_core)
