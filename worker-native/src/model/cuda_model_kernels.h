// The CUDA kernels (kernels/cuda) as a ModelKernels table: bf16 activations and compute weights,
// float32 accumulation in every GEMM and reduction, float32 weight gradients. Every kernel is
// enqueued on one stream, in the order the model calls them; scratch comes from the device arena
// (stream order makes a block freed after its last kernel safe to reuse by the next).
//
// Attention is the local causal flash kernel when one rank holds the whole sequence, or the
// DeviceSequenceAttention it is given when several ranks share it (the zigzag ring,
// ring/cuda_ring_attention.h, made by the backend).
//
// Compiled only in a build with CUDA (LONGCTX_WITH_CUDA).
#pragma once

#ifdef LONGCTX_WITH_CUDA
#include <cuda_runtime_api.h>

#include <memory>

#include "model/model_kernels.h"
#include "model/sequence_attention.h"
#include "tensor/arena.h"

namespace longctx::model {

// SequenceAttention on device memory in the CUDA kernels' precision: q, k, v, o, dout, dq, dk, dv
// bf16 (void* here), lse float32. Backward writes dq, dk and dv.
class DeviceSequenceAttention {
 public:
  virtual ~DeviceSequenceAttention() = default;
  virtual void Forward(const AttentionShape& shape, const void* q, const void* k, const void* v, void* o,
                       float* lse) = 0;
  virtual void Backward(const AttentionShape& shape, const void* q, const void* k, const void* v,
                        const void* o, const float* lse, const void* dout, void* dq, void* dk, void* dv) = 0;
};

class CudaModelKernels final : public ModelKernels {
 public:
  // Without `sequence` the attention is local (one rank holds the whole sequence).
  CudaModelKernels(std::shared_ptr<Arena> arena, cudaStream_t stream,
                   std::unique_ptr<DeviceSequenceAttention> sequence = nullptr);

  DType activation_type() const override { return DType::kBF16; }
  void RopeTables(float* cos, float* sin, const int32_t* positions, int tokens, int head_dim,
                  double theta) override;
  void EmbeddingForward(void* out, const int32_t* ids, const void* table, int tokens, int channels) override;
  void SpliceRows(void* out, const float* values, int first, int rows, int channels) override;
  void EmbeddingBackward(float* dtable, const void* dout, const int32_t* ids, int tokens,
                         int channels) override;
  void RmsNormForward(void* out, float* rstd, const void* x, const void* weight, int tokens, int channels,
                      float eps) override;
  void RmsNormBackward(void* dx, float* dweight, const void* dout, const void* x, const void* weight,
                       const float* rstd, int tokens, int channels) override;
  void LinearForward(void* out, const void* in, const void* weight, const void* bias, int tokens,
                     int in_features, int out_features) override;
  void LinearBackward(void* din, float* dweight, float* dbias, const void* dout, const void* in,
                      const void* weight, int tokens, int in_features, int out_features) override;
  void RopeForward(void* x, const float* cos, const float* sin, int tokens, int heads, int head_dim) override;
  void RopeBackward(void* dx, const float* cos, const float* sin, int tokens, int heads,
                    int head_dim) override;
  void AddInPlace(void* acc, const void* x, int64_t n) override;
  void MlpForward(void* out, void* gate, void* up, void* act, const void* x, const MlpWeightPtrs& w,
                  int tokens, int channels, int intermediate) override;
  void MlpBackward(void* dx, const MlpGradPtrs& g, const void* dout, const void* x, const void* gate,
                   const void* up, const void* act, const MlpWeightPtrs& w, int tokens, int channels,
                   int intermediate) override;
  void AttentionForward(const AttentionShape& shape, const void* q, const void* k, const void* v, void* o,
                        float* lse) override;
  void AttentionBackward(const AttentionShape& shape, const void* q, const void* k, const void* v,
                         const void* o, const float* lse, const void* dout, void* dq, void* dk,
                         void* dv) override;
  LossSum CrossEntropy(const void* hidden, const void* weight, const int32_t* labels, int tokens,
                       int channels, int vocab, int chunk_tokens, float grad_scale, void* dhidden,
                       float* dweight) override;

 private:
  // Device scratch of at least `bytes` bytes, and host ints copied to the device.
  Tensor Scratch(size_t bytes);
  Tensor Upload(const int32_t* host, int n);

  std::shared_ptr<Arena> arena_;
  cudaStream_t stream_;
  std::unique_ptr<DeviceSequenceAttention> sequence_;  // several ranks
};

}  // namespace longctx::model
#endif  // LONGCTX_WITH_CUDA
