// The optim layer in one include: accumulation windows and SGD.
#pragma once

#include "optim/accumulation_window.h"
#include "optim/sgd.h"
