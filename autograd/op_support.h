// What every differentiable op does the same way (autograd/functions.cpp, autograd/batch_norm.cpp):
// checks its inputs, picks the tape it records on, and makes its result Variable.
#pragma once

#include <initializer_list>
#include <memory>
#include <utility>

#include "autograd/variable.h"

namespace gradaccum::autograd::detail {

// All inputs of one op: defined, one device, one dtype (null entries are skipped).
void check_inputs(const char* op,
                  std::initializer_list<std::pair<const char*, const Variable*>> in);

// Whether the op records, and on which tape (merging the inputs' tapes when two meet): null when
// no input requires grad or recording is off.
std::shared_ptr<Tape> tape_for(const char* op, std::initializer_list<const Variable*> in);

// The result Variable: recorded (non-leaf, requires grad) when `tape` is set.
Variable make_result(Tensor value, const std::shared_ptr<Tape>& tape);

}  // namespace gradaccum::autograd::detail
