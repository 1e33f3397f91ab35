# Integration tests: tallyd against the engine simulator, separate processes
# over real shared memory, sockets and files (tests/integration/*.sh).
find_program(BASH bash)
foreach(kind fork fence_regress fence_unannounced gap reorder parent flip dup)
  add_test(NAME it_fault_${kind}
           COMMAND ${BASH} ${CMAKE_CURRENT_SOURCE_DIR}/integration/run_fault.sh ${kind})
  set_tests_properties(it_fault_${kind} PROPERTIES LABELS integration TIMEOUT 120
                       RUN_SERIAL TRUE ENVIRONMENT "TL_BUILD=${CMAKE_BINARY_DIR}")
endforeach()
foreach(kind clean crash lapped)
  add_test(NAME it_benign_${kind}
           COMMAND ${BASH} ${CMAKE_CURRENT_SOURCE_DIR}/integration/run_benign.sh ${kind})
  set_tests_properties(it_benign_${kind} PROPERTIES LABELS integration TIMEOUT 300
                       RUN_SERIAL TRUE ENVIRONMENT "TL_BUILD=${CMAKE_BINARY_DIR}")
endforeach()
