# Integration tests of the lease authority (ledger.md "Lease authority: etcd
# v3"): Debian's etcd, tally-enginesim electing itself through it, a
# standby, and tallyd(s) as separate processes (run_lease.sh).
find_program(BASH bash)
find_program(ETCD etcd)
if(ETCD)
  foreach(kind stale unknown unreachable failover failover_race stale_standby)
    add_test(NAME it_lease_${kind}
             COMMAND ${BASH} ${CMAKE_CURRENT_SOURCE_DIR}/integration/run_lease.sh ${kind})
    set_tests_properties(it_lease_${kind} PROPERTIES LABELS integration TIMEOUT 90
                         RUN_SERIAL TRUE ENVIRONMENT "TL_BUILD=${CMAKE_BINARY_DIR}")
  endforeach()
endif()
