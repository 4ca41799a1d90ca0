// The data-parallel part of an accumulation window's step (WindowOptions::process_group): this
// rank's gradient sums (with their Kahan compensations), counts, non-finite flag and loss sum
// go into one FusedBuffer, which is reduced across the ranks once, and the global values are
// written back. The rest of the step (gradient scale from the global true count, skip decision,
// update, loss-scale rule) then runs unchanged, with the same numbers on every rank.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "autograd/variable.h"
#include "dist/fused_buffer.h"
#include "dist/process_group.h"
#include "kernels/exact_sum.h"
#include "kernels/l1_loss.h"
#include "kernels/nonfinite_flag.h"
#include "kernels/window_scalars.h"

namespace gradaccum::optim {

class WindowReduction {
 public:
  // What each parameter's segment holds: f32 sums, Kahan pairs, or exact limbs (reduced as
  // integers: their sum is exact whatever the order).
  enum class Sums { F32, Kahan, Exact };
  WindowReduction(std::shared_ptr<dist::ProcessGroup> pg,
                  const std::vector<autograd::Variable>& params, Sums sums);

  // What this rank's host knows of its window, and what the group's holds together.
  struct Tally {
    std::uint64_t submitted = 0;  // micro-batches submitted (dropped ones included)
    bool has_reduction = false;
    Reduction reduction = Reduction::Mean;
  };
  struct Totals {
    WindowCounts counts;
    Tally tally;
  };

  // The one reduction of the step; the device state it reads and writes is the window's. Throws,
  // the same dist::GroupError on every rank and before anything is written back, when no rank
  // submitted a micro-batch or ranks mixed mean and sum.
  struct WindowState {
    std::vector<autograd::Variable>* params;
    Storage* counts;
    NonFiniteFlag* skip;
    Tensor* loss_sum;
    Tensor* loss_sum_comp;
    std::vector<ExactSum>* exact = nullptr;  // Sums::Exact: per parameter, and the loss's
    ExactSum* exact_loss = nullptr;
  };
  Totals reduce(const WindowState& state, const Tally& local);

  // CPU windows without Kahan keep their gradient sums in the buffer itself (as DDP's
  // gradient_as_bucket_view): parameter i's gradient is a tensor over gradient_memory(i), so
  // that nothing is copied in or out. Null where the buffer's layout cannot hold it (Kahan pairs
  // are interleaved; CUDA gradients live on the device).
  float* gradient_memory(std::size_t i);
  // Whether `p` lies in this buffer (a gradient the window gave a view of it).
  bool holds(const void* p) const;

  dist::ProcessGroup& group() const { return *pg_; }
  std::size_t bytes() const { return buffer_.bytes(); }
  // The last reduction's wall time: packing, the collective (waiting for the slowest rank
  // included) and unpacking.
  double last_seconds() const { return last_seconds_; }

 private:
  void pack(const WindowState& state, const Tally& local);
  WindowCounts unpack(const WindowState& state);  // the global counts it wrote

  std::shared_ptr<dist::ProcessGroup> pg_;
  Sums sums_;
  dist::FusedBuffer buffer_;
  std::size_t counts_seg_, min_seg_, max_seg_, loss_seg_, exact_loss_seg_ = 0;
  std::vector<std::size_t> param_segs_;
  bool views_ = false;          // gradients may live in the buffer (CPU, no Kahan)
  std::vector<float> scratch_;  // a CUDA parameter's sums and compensations, before interleaving
  double last_seconds_ = 0.0;
};

}  // namespace gradaccum::optim
