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
  // bucket_bytes > 0 (F32 sums on the CPU only): the gradients are reduced in buckets of about
  // that many bytes, each started as soon as its gradients are final (gradient_final), so that
  // the communication overlaps the rest of the last backward. 0: one reduction at the step.
  WindowReduction(std::shared_ptr<dist::ProcessGroup> pg,
                  const std::vector<autograd::Variable>& params, Sums sums,
                  std::size_t bucket_bytes = 0);
  ~WindowReduction();

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

  // ---- overlap (bucket_bytes > 0) ----
  // Buckets cover the gradients from the last parameter back, the order in which a backward
  // finishes them; every rank starts them in bucket order, whatever order its gradients became
  // final in (MPI needs the same order on every rank).
  bool overlaps() const { return !buckets_.empty(); }
  std::size_t buckets() const { return buckets_.size(); }
  // Parameter i's gradient will not change before the step: starts the buckets that are ready.
  void gradient_final(std::size_t i);
  // Starts every bucket not started yet (the end of the last backward; the step does it too).
  void start_all_buckets();
  // Whether this window's reduction has started (no gradient may change until the step).
  bool started() const { return next_bucket_ > 0; }

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
  struct Bucket {
    std::size_t first_param, last_param;  // parameters [first, last], contiguous in the buffer
    std::size_t begin_word, end_word;
    std::size_t pending;  // gradients not final yet this window
    std::unique_ptr<dist::PendingReduction> reduction;
  };
  void make_buckets(const std::vector<autograd::Variable>& params, std::size_t bucket_bytes);
  void start_ready_buckets();
  void finish_buckets();  // waits for every bucket and readies them for the next window

  void pack(const WindowState& state, const Tally& local);
  WindowCounts unpack(const WindowState& state);  // the global counts it wrote

  std::shared_ptr<dist::ProcessGroup> pg_;
  Sums sums_;
  dist::FusedBuffer buffer_;
  std::size_t counts_seg_, min_seg_, max_seg_, loss_seg_, exact_loss_seg_ = 0;
  std::vector<std::size_t> param_segs_;
  bool views_ = false;            // gradients may live in the buffer (CPU, no Kahan)
  std::vector<float> scratch_;    // a CUDA parameter's sums and compensations, before interleaving
  std::size_t header_words_ = 0;  // counts, flags and loss: reduced last, at the step
  std::vector<Bucket> buckets_;   // overlap: bucket 0 holds the last parameters
  std::vector<std::size_t> bucket_of_;  // parameter -> bucket
  std::vector<bool> final_;             // parameter -> gradient final this window
  std::size_t next_bucket_ = 0;         // buckets [0, next) are started
  double last_seconds_ = 0.0;
};

}  // namespace gradaccum::optim
