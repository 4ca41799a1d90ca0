# ctest's install_consumer (see tests/CMakeLists.txt):
#   cmake -DGA_BINARY_DIR=<build> -DGA_CONSUMER_SOURCE=<tests/consumer> -DGA_GENERATOR=<gen>
#         -DGA_CUDA_MODE=<REAL|EMU|NONE> -P run_consumer_test.cmake
# Installs the build tree into <build>/consumer-test/prefix, then configures the consumer
# project against that prefix (CMAKE_PREFIX_PATH), builds it and runs it; it must print OK.
# Any failing step fails the test with that step's captured output.
cmake_minimum_required(VERSION 3.25)

foreach(var IN ITEMS GA_BINARY_DIR GA_CONSUMER_SOURCE GA_GENERATOR GA_CUDA_MODE)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer_test.cmake needs -D${var}=...")
  endif()
endforeach()

set(work "${GA_BINARY_DIR}/consumer-test")
set(prefix "${work}/prefix")
set(consumer_build "${work}/build")
file(REMOVE_RECURSE "${work}")
file(MAKE_DIRECTORY "${work}")

# Runs one step; on failure stops with everything it printed.
function(ga_step name)
  execute_process(COMMAND ${ARGN}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "consumer test: ${name} failed (exit ${rc})\n"
                        "command: ${cmd}\n--- stdout ---\n${out}\n--- stderr ---\n${err}")
  endif()
  set(ga_step_output "${out}${err}" PARENT_SCOPE)
endfunction()

# Build the consumer the way the package was built: same compilers and build type, and the same
# sanitizer flags (a sanitized static library needs a sanitized link).
load_cache("${GA_BINARY_DIR}" READ_WITH_PREFIX ga_
           CMAKE_CXX_COMPILER CMAKE_BUILD_TYPE GRADACCUM_SANITIZE CMAKE_MAKE_PROGRAM)
set(config_args "-DCMAKE_PREFIX_PATH=${prefix}" "-DGA_CUDA_MODE=${GA_CUDA_MODE}")
if(ga_CMAKE_CXX_COMPILER)
  list(APPEND config_args "-DCMAKE_CXX_COMPILER=${ga_CMAKE_CXX_COMPILER}")
endif()
if(ga_CMAKE_MAKE_PROGRAM)
  list(APPEND config_args "-DCMAKE_MAKE_PROGRAM=${ga_CMAKE_MAKE_PROGRAM}")
endif()
if(ga_CMAKE_BUILD_TYPE)
  list(APPEND config_args "-DCMAKE_BUILD_TYPE=${ga_CMAKE_BUILD_TYPE}")
  set(config_opt --config "${ga_CMAKE_BUILD_TYPE}")
else()
  set(config_opt --config Release)
endif()
if(ga_GRADACCUM_SANITIZE STREQUAL "address")
  list(APPEND config_args "-DCMAKE_CXX_FLAGS=-fsanitize=address,undefined"
       "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined")
elseif(ga_GRADACCUM_SANITIZE STREQUAL "thread")
  list(APPEND config_args "-DCMAKE_CXX_FLAGS=-fsanitize=thread"
       "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread")
endif()

ga_step(install "${CMAKE_COMMAND}" --install "${GA_BINARY_DIR}" --prefix "${prefix}" ${config_opt})
ga_step(configure "${CMAKE_COMMAND}" -S "${GA_CONSUMER_SOURCE}" -B "${consumer_build}"
        -G "${GA_GENERATOR}" ${config_args})
ga_step(build "${CMAKE_COMMAND}" --build "${consumer_build}" ${config_opt})

# The executable: at the top of the build tree, or in a per-configuration folder.
set(exe "")
foreach(candidate IN ITEMS "${consumer_build}/consumer" "${consumer_build}/${ga_CMAKE_BUILD_TYPE}/consumer"
                           "${consumer_build}/Release/consumer" "${consumer_build}/Debug/consumer")
  if(NOT exe AND EXISTS "${candidate}")
    set(exe "${candidate}")
  endif()
endforeach()
if(NOT exe)
  message(FATAL_ERROR "consumer test: the build produced no consumer executable under ${consumer_build}")
endif()
ga_step(run "${exe}" "${work}/consumer.npy")
if(NOT ga_step_output MATCHES "(^|\n)OK\n")
  message(FATAL_ERROR "consumer test: the consumer did not print OK:\n${ga_step_output}")
endif()
message(STATUS "consumer test (${GA_CUDA_MODE}): ${ga_step_output}")
