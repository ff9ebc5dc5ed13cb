# The Debian package, built with CPack: culvert_<version>_amd64.deb with the stripped
# `culvert` and its image launcher, the SDK (headers, static libraries, CMake package),
# and the systemd units of the server and the agent (docs/OPERATIONS.md).
#   cmake --build build --target package-deb     (or scripts/package.sh)
# writes build/package/culvert_<version>_amd64.deb.
install(FILES packaging/systemd/culvert-server.service packaging/systemd/culvert-agent.service
  DESTINATION lib/systemd/system COMPONENT systemd EXCLUDE_FROM_ALL)
install(FILES packaging/systemd/agent.env.example
  DESTINATION share/doc/culvert COMPONENT systemd EXCLUDE_FROM_ALL)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME culvert)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "The Culvert project")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "workflow orchestrator: server, agents and C++ SDK")
set(CPACK_PACKAGE_DESCRIPTION
  "Culvert keeps flow metadata on its server; agents launch flow runs on local processes,\n Docker, ECS or Slurm; flows are C++ programs built against the SDK (headers, static\n libraries and CMake package included). Includes systemd units for the server and an agent.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_DIRECTORY ${PROJECT_BINARY_DIR}/package)
# The binaries and libraries of the default install, plus the systemd units (kept out of
# a plain `cmake --install`, whose prefix need not be /usr), in one package.
set(CPACK_COMPONENTS_ALL Unspecified systemd)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_GROUPING ALL_COMPONENTS_IN_ONE)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The shared libraries culvert links (dpkg-shlibdeps), and the files it reads at run time.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "tzdata, ca-certificates, passwd")
# Building flows against the SDK: a compiler, CMake and the headers of the SDK's
# dependencies (find_dependency in CulvertConfig.cmake).
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS
  "g++, cmake, nlohmann-json3-dev, libfmt-dev, libhowardhinnant-date-dev, libssl-dev, libcurl4-openssl-dev, libpugixml-dev, libtomlplusplus-dev")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  "${PROJECT_SOURCE_DIR}/packaging/debian/postinst;${PROJECT_SOURCE_DIR}/packaging/debian/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)

add_custom_target(package-deb
  COMMAND ${CMAKE_CPACK_COMMAND} --config ${PROJECT_BINARY_DIR}/CPackConfig.cmake
  WORKING_DIRECTORY ${PROJECT_BINARY_DIR}
  COMMENT "Building the Debian package in ${PROJECT_BINARY_DIR}/package"
  VERBATIM)
add_dependencies(package-deb culvert_cli culvert_launch)

# A stripped install (the package, `cmake --install --strip`) also drops the debug
# information of the SDK's static libraries (`strip --strip-debug` keeps their symbols).
install(CODE "set(_culvert_libdir \"${CMAKE_INSTALL_LIBDIR}\")")
install(CODE [[
  if(CMAKE_INSTALL_DO_STRIP)
    file(GLOB _culvert_archives "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/${_culvert_libdir}/libculvert_*.a")
    foreach(_a IN LISTS _culvert_archives)
      execute_process(COMMAND strip --strip-debug "${_a}" RESULT_VARIABLE _rc)
      if(NOT _rc EQUAL 0)
        message(FATAL_ERROR "strip --strip-debug ${_a} failed")
      endif()
    endforeach()
  endif()
]])
