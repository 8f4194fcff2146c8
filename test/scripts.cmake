# The installed package works for a program outside the tree (find_package shared and static, and pkg-config).
add_test(NAME package_consumer
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/package/run.sh ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR} ${CMAKE_CXX_COMPILER})
set_tests_properties(package_consumer PROPERTIES LABELS package TIMEOUT 300)

# The official openai Python client (scripts/install-deps installs it) against the swarm_gateway sample.
find_program(SWARM_PYTHON3 NAMES python3.11 python3)
if(SWARM_BUILD_SAMPLES AND SWARM_PYTHON3)
  add_test(NAME dispatch_gateway_openai_client
    COMMAND ${SWARM_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/dispatch_gateway/openai_client_test.py
            $<TARGET_FILE:swarm_gateway>)
  set_tests_properties(dispatch_gateway_openai_client PROPERTIES LABELS dispatch_gateway TIMEOUT 120)
endif()
