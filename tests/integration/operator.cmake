# The operator surface (admin/api*, metrics, incidents, reconcile, tallyctl,
# deploy/): unit tests that need tl_api (not among the libraries every unit
# test gets), the integration runs against real processes, and the alert
# rules checked by promtool.
foreach(t test_api test_metrics test_tallyctl test_canary_loop)
  if(TARGET ${t})
    target_link_libraries(${t} PRIVATE tl_api)
  endif()
endforeach()
if(TARGET test_tallyctl)
  add_dependencies(test_tallyctl tallyctl)
endif()

find_program(BASH bash)
foreach(kind killswitch canary_rollback canary_pass metrics tallyctl auto_resume)
  add_test(NAME it_operator_${kind}
           COMMAND ${BASH} ${CMAKE_CURRENT_SOURCE_DIR}/integration/run_operator.sh ${kind})
  set_tests_properties(it_operator_${kind} PROPERTIES LABELS integration TIMEOUT 180
                       RUN_SERIAL TRUE ENVIRONMENT "TL_BUILD=${CMAKE_BINARY_DIR}")
endforeach()

find_program(PROMTOOL promtool)
if(PROMTOOL)
  add_test(NAME promtool_check_rules
           COMMAND ${PROMTOOL} check rules ${CMAKE_SOURCE_DIR}/deploy/tally-alerts.yml)
  add_test(NAME promtool_test_rules
           COMMAND ${PROMTOOL} test rules ${CMAKE_CURRENT_SOURCE_DIR}/integration/tally-alerts.test.yml)
  set_tests_properties(promtool_check_rules promtool_test_rules PROPERTIES LABELS lint)
endif()
