// The optim layer in one include: accumulation windows, their BatchNorm replay, the captured
// micro-step, SGD and AdamW.
#pragma once

#include "optim/accumulation_window.h"
#include "optim/adamw.h"
#include "optim/batch_norm_replay.h"
#include "optim/micro_step_graph.h"
#include "optim/optimizer.h"
#include "optim/sgd.h"
