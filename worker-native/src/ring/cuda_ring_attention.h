// Zigzag ring attention on a CUDA device: the same schedule as the CPU ring (ring_attention.h),
// with the flash kernels of kernels/cuda and the transfers through the rank's DeviceCollectives
// (kernels/cuda/device_collectives.h): NCCL, or gloo host staging where there is no NCCL or
// several ranks share one GPU.
//
// Precision: q, k, v, o and the K/V blocks that travel are bf16; the running output, the
// log-sum-exp, dq and the travelling dK/dV accumulators are float32, rounded to bf16 once at the
// end (the merge through the log-sum-exp is ARCHITECTURE.md's, in float32).
//
// Overlap: the K/V block of step s+1 is on its way while step s computes (started before the
// kernels, joined after them), as in the CPU ring. Over NCCL the transfer runs on its own stream
// beside the kernels; with host staging it completes before the kernels start, so nothing overlaps.
// In the backward the dK/dV accumulator travels only once the step that adds to it is done.
//
// Compiled only in a build with CUDA (LONGCTX_WITH_CUDA).
#pragma once

#ifdef LONGCTX_WITH_CUDA
#include <cuda_runtime_api.h>

#include <memory>

#include "kernels/cuda/bf16.h"
#include "kernels/cuda/device_collectives.h"
#include "model/cuda_model_kernels.h"
#include "model/sequence_attention.h"
#include "tensor/arena.h"

namespace longctx::ring {

class CudaRingAttention final : public model::DeviceSequenceAttention {
 public:
  // Keeps a reference to `collectives` (ordered on `stream`); scratch comes from `arena` (device
  // memory), work goes on `stream`.
  CudaRingAttention(cuda::DeviceCollectives& collectives, int rank, int world, std::shared_ptr<Arena> arena,
                    cudaStream_t stream);

  // This rank's shape.tokens tokens (its two zigzag chunks, in local order), bf16. Writes o and lse.
  void Forward(const model::AttentionShape& shape, const void* q, const void* k, const void* v, void* o,
               float* lse) override;
  // o and lse are Forward's. Writes dq, dk, dv.
  void Backward(const model::AttentionShape& shape, const void* q, const void* k, const void* v,
                const void* o, const float* lse, const void* dout, void* dq, void* dk, void* dv) override;

 private:
  // Which query rows attend to which rows of the K/V block held at ring step `step` (zigzag).
  struct Block {
    int q_begin, q_len, kv_begin, kv_len;
  };
  Block BlockAt(int step, int local_len) const;

  cuda::DeviceCollectives& collectives_;
  std::shared_ptr<Arena> arena_;
  cudaStream_t stream_;
  int rank_;
  int world_;
};

}  // namespace longctx::ring
#endif  // LONGCTX_WITH_CUDA
