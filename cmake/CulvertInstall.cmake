# The installed SDK: headers under include/culvert and the static libraries that
# components put into the global property CULVERT_SDK_TARGETS (core, storage, engine,
# client, runtime), behind one interface target Culvert::culvert.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

get_property(_sdk_targets GLOBAL PROPERTY CULVERT_SDK_TARGETS)
add_library(culvert INTERFACE)
add_library(Culvert::culvert ALIAS culvert)
target_link_libraries(culvert INTERFACE ${_sdk_targets})
target_include_directories(culvert INTERFACE
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)

install(DIRECTORY include/culvert DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS culvert ${_sdk_targets}
  EXPORT CulvertTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT CulvertTargets NAMESPACE Culvert:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/Culvert)
configure_package_config_file(cmake/CulvertConfig.cmake.in
  ${PROJECT_BINARY_DIR}/CulvertConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/Culvert)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/CulvertConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/CulvertConfig.cmake ${PROJECT_BINARY_DIR}/CulvertConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/Culvert)
