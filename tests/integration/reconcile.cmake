# POST /reconcile's ledger and peer comparisons (admin/reconcile.c): the
# unit test needs tl_api (not among the libraries every unit test gets). The
# end-to-end runs are in run_ledger.sh (clean, double_post: tallyctl
# reconcile against a real tally-ledgersim) and run_peer.sh (clean,
# nondeterministic: a real standby's state hashes), registered by
# ledger.cmake and peer.cmake.
if(TARGET test_reconcile_side)
  target_link_libraries(test_reconcile_side PRIVATE tl_api)
endif()
