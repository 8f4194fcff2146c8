# The installed package works for a program outside the tree (find_package shared and static, and pkg-config).
add_test(NAME package_consumer
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/package/run.sh ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR} ${CMAKE_CXX_COMPILER})
set_tests_properties(package_consumer PROPERTIES LABELS package TIMEOUT 300)
