# The installed package works for a program outside the tree (find_package shared and static, and pkg-config).
add_test(NAME package_consumer
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/package/run.sh ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR} ${CMAKE_CXX_COMPILER})
set_tests_properties(package_consumer PROPERTIES LABELS package TIMEOUT 300)

# A real llama.cpp backend (test/llama: node-llama-cpp on CPU and a tiny model generated at test time) driven by
# the official openai Python client, directly and through samples/gateway's swarm_gateway when it is built.
# Exits 77 (skipped) when node 20+, test/llama/node_modules or the openai package is missing (scripts/install-deps).
find_program(SWARM_PYTHON3 python3)
if(SWARM_PYTHON3)
  add_test(NAME llama_backend
    COMMAND ${SWARM_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/llama/test_llama.py --work-dir ${CMAKE_CURRENT_BINARY_DIR}/llama
            --gateway ${PROJECT_BINARY_DIR}/samples/swarm_gateway -v)
  set_tests_properties(llama_backend PROPERTIES LABELS llama TIMEOUT 300 SKIP_RETURN_CODE 77)
endif()

# The dispatch side-by-side benchmark's stub backend and load generator (bench/dispatch_stub, bench/dispatch_load):
# they serve and measure on loopback, and refuse bad command lines.
if(SWARM_BUILD_BENCH AND SWARM_PYTHON3)
  add_test(NAME dispatch_bench_tools
    COMMAND ${SWARM_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/dispatch_tools/test_tools.py
            $<TARGET_FILE:swarm_bench_dispatch_stub> $<TARGET_FILE:swarm_bench_dispatch_load>)
  set_tests_properties(dispatch_bench_tools PROPERTIES LABELS dispatch TIMEOUT 120)
endif()

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

# The official openai Python client (scripts/install-deps installs it) against the swarm_gateway sample.
if(SWARM_BUILD_SAMPLES AND SWARM_PYTHON3)
  add_test(NAME dispatch_gateway_openai_client
    COMMAND ${SWARM_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/dispatch_gateway/openai_client_test.py
            $<TARGET_FILE:swarm_gateway>)
  set_tests_properties(dispatch_gateway_openai_client PROPERTIES LABELS dispatch_gateway TIMEOUT 120)
endif()
