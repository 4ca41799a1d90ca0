# `gradaccum-train --deterministic --save-weights` for different --accum / --micro-batch values
# must write .npy files with identical bytes (docs/determinism.md). Run by ctest:
#   cmake -DTRAIN=<gradaccum-train> -DWORK=<scratch dir> -DMODE=cpu|cuda -P determinism_train.cmake
# MODE cpu: every split of a batch of 256 on the CPU, and run to run.
# MODE cuda: splits of a batch of 24 on the CUDA device (real or emulated), run to run, and the
#   CPU's files equal to the device's. Prints "determinism-train: skipped" (ctest's skip pattern)
#   when there is no CUDA device.
cmake_minimum_required(VERSION 3.25)

foreach(var TRAIN WORK MODE)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "determinism_train.cmake: -D${var}=... is required")
  endif()
endforeach()

file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")

# A small MLP, momentum and weight decay, a few steps, no per-step output.
set(common --in 8 --hidden 16 --out 4 --steps 3 --momentum 0.9 --weight-decay 0.001 --seed 5
           --print-every 0 --deterministic)

# train(<name> <flags>...): runs the program, saving the weights to WORK/<name>.
function(train name)
  execute_process(COMMAND "${TRAIN}" ${common} ${ARGN} --save-weights "${WORK}/${name}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gradaccum-train ${ARGN} failed (${rc}):\n${out}${err}")
  endif()
  message(STATUS "${name}: ${ARGN}")
endfunction()

# same_bytes(<reference> <other>): every .npy of the reference run equals the other's, byte for
# byte (cmake -E compare_files: no tolerance).
function(same_bytes ref other)
  file(GLOB files RELATIVE "${WORK}/${ref}" "${WORK}/${ref}/*.npy")
  list(LENGTH files n)
  if(NOT n EQUAL 4)
    message(FATAL_ERROR "${ref}: expected 4 .npy files, found ${n}: ${files}")
  endif()
  foreach(f IN LISTS files)
    execute_process(COMMAND "${CMAKE_COMMAND}" -E compare_files "${WORK}/${ref}/${f}"
                            "${WORK}/${other}/${f}" RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "${other}/${f} differs from ${ref}/${f}")
    endif()
  endforeach()
  message(STATUS "${other} == ${ref} (${n} files, byte for byte)")
endfunction()

if(MODE STREQUAL "cpu")
  set(cpu --device cpu --batch 256)
  train(k1 ${cpu} --accum 1)
  train(k1_again ${cpu} --accum 1)
  train(k2 ${cpu} --accum 2)
  train(k4 ${cpu} --accum 4)
  train(k3 ${cpu} --accum 3)               # 86 + 85 + 85
  train(mb60 ${cpu} --micro-batch 60)      # 60 + 60 + 60 + 60 + 16
  train(mb1 ${cpu} --micro-batch 1)        # k = B = 256
  foreach(run k1_again k2 k4 k3 mb60 mb1)
    same_bytes(k1 ${run})
  endforeach()
  # A sum, Nesterov, a static loss scale: still the same bytes for every split.
  set(variant ${cpu} --reduction sum --lr 0.0001 --nesterov --loss-scale 1024)
  train(v_k1 ${variant} --accum 1)
  train(v_mb60 ${variant} --micro-batch 60)
  same_bytes(v_k1 v_mb60)
elseif(MODE STREQUAL "cuda")
  execute_process(COMMAND "${TRAIN}" --device cuda --in 1 --hidden 1 --out 1 --batch 1 --steps 1
                          --print-every 0
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    if(err MATCHES "no CUDA device|no CUDA support")
      string(STRIP "${err}" err)
      message("determinism-train: skipped (${err})")
      return()
    endif()
    message(FATAL_ERROR "gradaccum-train --device cuda failed (${rc}):\n${out}${err}")
  endif()
  set(dev --device cuda --batch 24)
  train(cuda_k1 ${dev} --accum 1)
  train(cuda_k1_again ${dev} --accum 1)
  train(cuda_k3 ${dev} --accum 3)
  train(cuda_mb5 ${dev} --micro-batch 5)   # 5 + 5 + 5 + 5 + 4
  train(cuda_mb1 ${dev} --micro-batch 1)   # k = B = 24
  train(cpu_k1 --device cpu --batch 24 --accum 1)
  train(cpu_mb7 --device cpu --batch 24 --micro-batch 7)
  foreach(run cuda_k1_again cuda_k3 cuda_mb5 cuda_mb1 cpu_k1 cpu_mb7)
    same_bytes(cuda_k1 ${run})
  endforeach()
else()
  message(FATAL_ERROR "determinism_train.cmake: MODE must be cpu or cuda, got '${MODE}'")
endif()
