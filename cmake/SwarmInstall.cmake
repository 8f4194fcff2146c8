include(CMakePackageConfigHelpers)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/swarm DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS swarm_static swarm_shared EXPORT swarmTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT swarmTargets NAMESPACE swarm:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/swarm)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/swarmConfig.cmake.in
  ${PROJECT_BINARY_DIR}/swarmConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/swarm)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/swarmConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/swarmConfig.cmake ${PROJECT_BINARY_DIR}/swarmConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/swarm)

# pkg-config has no install prefix of its own: ${pcfiledir} keeps the file relocatable.
string(JOIN " " SWARM_PC_SANITIZER ${SWARM_SANITIZER_LINK_OPTIONS})
file(RELATIVE_PATH SWARM_PC_PREFIX_FROM_PCDIR
  ${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
configure_file(${PROJECT_SOURCE_DIR}/cmake/swarm.pc.in ${PROJECT_BINARY_DIR}/swarm.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/swarm.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
