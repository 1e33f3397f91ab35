# Peer datagrams (peer.md): the DPDK unit test needs the DPDK library (only
# io/peer_dpdk.c is built with DPDK's flags), and the integration tests run a
# leader and a standby engine, each with its own tallyd, exchanging datagrams
# over UDP on 127.0.0.1 (tests/integration/run_peer.sh).
if(TARGET test_peer_dpdk)
  target_link_libraries(test_peer_dpdk PRIVATE tl_dpdk)
  # It creates network namespaces and a veth pair: not in parallel with
  # itself, and it needs root (it says SKIP otherwise).
  set_tests_properties(test_peer_dpdk PROPERTIES RUN_SERIAL TRUE)
endif()

find_program(BASH bash)
foreach(kind clean nondeterministic promote inject restart)
  add_test(NAME it_peer_${kind}
           COMMAND ${BASH} ${CMAKE_CURRENT_SOURCE_DIR}/integration/run_peer.sh ${kind})
  set_tests_properties(it_peer_${kind} PROPERTIES LABELS integration TIMEOUT 120
                       RUN_SERIAL TRUE ENVIRONMENT "TL_BUILD=${CMAKE_BINARY_DIR}")
endforeach()
