# bench_peer: the peer datagram paths (verify, kernel UDP, DPDK net_pcap) and
# the divergent-CHECKPOINT-to-HARD_HALT latency (not a CI test). Included
# from bench/CMakeLists.txt. Run: build/bench/bench_peer [--runs N]
add_executable(bench_peer ${CMAKE_CURRENT_LIST_DIR}/bench_peer.c)
target_link_libraries(bench_peer PRIVATE tl_dpdk tl_net tl_core Threads::Threads)
set_target_properties(bench_peer PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
