# The installed package works for a program outside the tree (find_package shared and static, and pkg-config).
add_test(NAME package_consumer
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/package/run.sh ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR} ${CMAKE_CXX_COMPILER})
set_tests_properties(package_consumer PROPERTIES LABELS package TIMEOUT 300)

# GPU telemetry tests load a fake NVML library (a test double for libnvidia-ml.so.1) instead of NVIDIA's.
if(TARGET swarm_gpu_telemetry_tests)
  add_library(swarm_test_fake_nvml SHARED gpu_telemetry/fake_nvml.c)
  set_target_properties(swarm_test_fake_nvml PROPERTIES OUTPUT_NAME swarm-test-fake-nvml C_STANDARD 11
                                                        C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
  target_compile_options(swarm_test_fake_nvml PRIVATE -Wall -Wextra -Wpedantic -Wshadow
                                                      $<$<BOOL:${SWARM_WERROR}>:-Werror>)
  add_dependencies(swarm_gpu_telemetry_tests swarm_test_fake_nvml)
  target_compile_definitions(swarm_gpu_telemetry_tests PRIVATE
                             SWARM_FAKE_NVML="$<TARGET_FILE:swarm_test_fake_nvml>")
endif()
