# Forensic bundles (admin/bundle.h): the unit tests that need tl_bundle (not
# among the libraries every unit test gets), and the runs against real
# processes (tests/integration/run_bundle.sh).
foreach(t test_bundle test_bundle_svc test_bundle_stream test_redact)
  if(TARGET ${t})
    target_link_libraries(${t} PRIVATE tl_bundle)
  endif()
endforeach()

find_program(BASH bash)
foreach(kind fork tamper disk_full redaction export_timeout)
  add_test(NAME it_bundle_${kind}
           COMMAND ${BASH} ${CMAKE_CURRENT_SOURCE_DIR}/integration/run_bundle.sh ${kind})
  set_tests_properties(it_bundle_${kind} PROPERTIES LABELS integration TIMEOUT 180
                       RUN_SERIAL TRUE ENVIRONMENT "TL_BUILD=${CMAKE_BINARY_DIR}")
endforeach()
