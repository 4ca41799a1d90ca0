// The autograd layer in one include: Variables and ops, and the nn modules.
#pragma once

#include "autograd/batch_norm_module.h"
#include "autograd/functions.h"
#include "autograd/l1_loss_module.h"
#include "autograd/linear_module.h"
#include "autograd/module.h"
#include "autograd/relu_module.h"
#include "autograd/sequential.h"
#include "autograd/variable.h"
