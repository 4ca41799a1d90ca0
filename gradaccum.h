// gradaccum: one include for the whole public API.
#pragma once

#include "autograd/nn.h"
#include "core/cuda_device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/half.h"
#include "core/npy.h"
#include "core/random.h"
#include "core/shape.h"
#include "core/tensor.h"
#include "kernels/accumulate.h"
#include "kernels/gemm_config.h"
#include "kernels/l1_loss.h"
#include "kernels/linear.h"
#include "kernels/relu.h"
#include "kernels/sgd.h"
#include "optim/optim.h"
