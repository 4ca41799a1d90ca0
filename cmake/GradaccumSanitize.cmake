# Whole-build sanitizers (GRADACCUM_SANITIZE): address = ASan + UBSan + LSan, thread = TSan.
if(GRADACCUM_SANITIZE STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
elseif(GRADACCUM_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
elseif(NOT GRADACCUM_SANITIZE STREQUAL "")
  message(FATAL_ERROR "GRADACCUM_SANITIZE must be empty, address or thread; got '${GRADACCUM_SANITIZE}'")
endif()
if(NOT GRADACCUM_SANITIZE STREQUAL "" AND GRADACCUM_CUDA_MODE STREQUAL "REAL")
  message(FATAL_ERROR "Host sanitizers cannot instrument real CUDA builds; use GRADACCUM_CUDA=EMU or OFF "
                      "(compute-sanitizer covers the GPU)")
endif()
