// gradaccum: one include for the whole public API.
#pragma once

#include "core/cuda_device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/half.h"
#include "core/npy.h"
#include "core/random.h"
#include "core/shape.h"
#include "core/tensor.h"
