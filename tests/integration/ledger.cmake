# Integration tests of the settlement ledger (ledger.md): tallyd, the engine
# simulator and tally-ledgersim as separate processes (run_ledger.sh).
find_program(BASH bash)
foreach(kind clean lag double_post miss_post ahead rewind fork https badmac)
  add_test(NAME it_ledger_${kind}
           COMMAND ${BASH} ${CMAKE_CURRENT_SOURCE_DIR}/integration/run_ledger.sh ${kind})
  set_tests_properties(it_ledger_${kind} PROPERTIES LABELS integration TIMEOUT 120
                       RUN_SERIAL TRUE ENVIRONMENT "TL_BUILD=${CMAKE_BINARY_DIR}")
endforeach()
