# install(): the static library, its headers, and a package config so that consumers write
#   find_package(gradaccum) + target_link_libraries(app gradaccum::gradaccum).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(_ga_targets gradaccum)
if(TARGET gradaccum_emu)
  list(APPEND _ga_targets gradaccum_emu)
endif()
install(TARGETS ${_ga_targets} EXPORT gradaccumTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/gradaccum)
foreach(layer IN LISTS GA_LAYERS)
  install(DIRECTORY ${layer}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/gradaccum/${layer}
          FILES_MATCHING PATTERN "*.h")
endforeach()
install(FILES gradaccum.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/gradaccum)
install(EXPORT gradaccumTargets NAMESPACE gradaccum:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/gradaccum)

set(GRADACCUM_CONFIG_CUDA_MODE ${GRADACCUM_CUDA_MODE})
# The toolkit this build used: the package's first guess when a consumer names none (nvcc is
# often not on PATH, and FindCUDAToolkit would otherwise only try /usr/local/cuda).
set(GRADACCUM_CONFIG_CUDA_ROOT "")
if(CUDAToolkit_BIN_DIR)
  get_filename_component(GRADACCUM_CONFIG_CUDA_ROOT "${CUDAToolkit_BIN_DIR}" DIRECTORY)
endif()
configure_package_config_file(cmake/gradaccumConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/gradaccumConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/gradaccum)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/gradaccumConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/gradaccumConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/gradaccumConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/gradaccum)
