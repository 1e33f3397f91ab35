# tally-ledgersim: the reference settlement ledger (ledger.md) over the
# engine's WAL, served with libmicrohttpd (HTTP or HTTPS). Included from
# bench/CMakeLists.txt.
add_executable(tally-ledgersim ${CMAKE_CURRENT_LIST_DIR}/ledgersim.c)
target_link_libraries(tally-ledgersim PRIVATE tl_io tl_shm tl_core PkgConfig::MHD Threads::Threads)
set_target_properties(tally-ledgersim PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
