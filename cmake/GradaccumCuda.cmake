# Resolves GRADACCUM_CUDA into GRADACCUM_CUDA_MODE (REAL, EMU or NONE) and provides
# gradaccum_cuda_sources(target sources...), which compiles .cu files for that mode:
#   REAL: nvcc, for CMAKE_CUDA_ARCHITECTURES (default 90, the H100; never "native", which fails
#         on a machine without a GPU), linked with the CUDA runtime and cuBLAS.
#   EMU:  the host compiler, with the emulation header force-included, linked with the emulated
#         runtime in emu/ (kernels then run on the CPU; see emu/README.md).
include(CheckLanguage)

string(TOUPPER "${GRADACCUM_CUDA}" _ga_cuda)
if(_ga_cuda STREQUAL "AUTO")
  if(NOT DEFINED CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)  # installed but not on PATH
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(_ga_cuda ON)
  else()
    set(_ga_cuda OFF)
  endif()
endif()

if(_ga_cuda STREQUAL "ON")
  set(GRADACCUM_CUDA_MODE REAL)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90)
  endif()
  if(NOT DEFINED CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  enable_language(CUDA)
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  find_package(CUDAToolkit REQUIRED)
elseif(_ga_cuda STREQUAL "EMU")
  set(GRADACCUM_CUDA_MODE EMU)
  if(NOT DEFINED CUDAToolkit_ROOT AND EXISTS /usr/local/cuda)
    set(CUDAToolkit_ROOT /usr/local/cuda)
  endif()
  find_package(CUDAToolkit REQUIRED)  # headers only: cuda_runtime_api.h, cuda_fp16.h
  find_package(Boost 1.74 REQUIRED COMPONENTS context)
elseif(_ga_cuda STREQUAL "OFF")
  set(GRADACCUM_CUDA_MODE NONE)
else()
  message(FATAL_ERROR "GRADACCUM_CUDA must be AUTO, ON, OFF or EMU; got '${GRADACCUM_CUDA}'")
endif()
message(STATUS "gradaccum: CUDA mode ${GRADACCUM_CUDA_MODE}")

set(GRADACCUM_EMU_HEADER ${CMAKE_CURRENT_LIST_DIR}/../emu/cuda_emu.h)
get_filename_component(GRADACCUM_EMU_HEADER ${GRADACCUM_EMU_HEADER} ABSOLUTE)

# Compiles the given .cu sources of `target` for the current mode and links what they need.
function(gradaccum_cuda_sources target)
  set(sources ${ARGN})
  if(GRADACCUM_CUDA_MODE STREQUAL "REAL")
    set_target_properties(${target} PROPERTIES CUDA_SEPARABLE_COMPILATION OFF)
    target_compile_options(${target} PRIVATE
      # Explicit __fmaf_rn where a fused multiply-add is meant; none left to the compiler.
      $<$<COMPILE_LANGUAGE:CUDA>:-fmad=false --expt-relaxed-constexpr>)
    target_link_libraries(${target} PUBLIC CUDA::cudart_static CUDA::cublas)
  elseif(GRADACCUM_CUDA_MODE STREQUAL "EMU")
    set_source_files_properties(${sources} TARGET_DIRECTORY ${target} PROPERTIES
      LANGUAGE CXX
      COMPILE_OPTIONS "-x;c++;-include;${GRADACCUM_EMU_HEADER};-mfma")
    if(NOT TARGET gradaccum_emu)
      message(FATAL_ERROR "EMU mode needs the gradaccum_emu target (emu/CMakeLists.txt)")
    endif()
    target_link_libraries(${target} PUBLIC gradaccum_emu)
  endif()
endfunction()

if(GRADACCUM_CUDA_MODE STREQUAL "EMU")
  add_subdirectory(${CMAKE_CURRENT_LIST_DIR}/../emu ${CMAKE_BINARY_DIR}/emu)
endif()
