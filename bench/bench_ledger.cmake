# bench_ledger: the cost of one ledger watermark check on the hot loop at a
# lag of 10^4 records (core/ledger.h); not a CI test. Included from
# bench/CMakeLists.txt.
add_executable(bench_ledger ${CMAKE_CURRENT_LIST_DIR}/bench_ledger.c)
target_link_libraries(bench_ledger PRIVATE tl_core)
set_target_properties(bench_ledger PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
