# Integration tests of the alert webhooks (behavior.md "Action table", issue
# 4.6): a real fault, tallyd, and HTTP receivers in their own processes
# (run_webhook.sh, hook_receiver.py).
find_program(BASH bash)
foreach(kind tally alertmanager)
  add_test(NAME it_webhook_${kind}
           COMMAND ${BASH} ${CMAKE_CURRENT_SOURCE_DIR}/integration/run_webhook.sh ${kind})
  set_tests_properties(it_webhook_${kind} PROPERTIES LABELS integration TIMEOUT 90
                       RUN_SERIAL TRUE ENVIRONMENT "TL_BUILD=${CMAKE_BINARY_DIR}")
endforeach()

# Unit tests of the control thread's pollers and alerts (admin/alerts.c,
# admin/lease_poll.c live in tl_daemon, not among every unit test's
# libraries).
foreach(t test_webhook test_lease_etcd test_lease_slow)
  if(TARGET ${t})
    target_link_libraries(${t} PRIVATE tl_daemon)
  endif()
endforeach()
