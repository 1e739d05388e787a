// The float32 CPU kernels (kernels/cpu) as a ModelKernels table. Attention goes through the
// SequenceAttention it is given: the local causal kernel, or the zigzag ring under context
// parallelism. Scratch comes from the arena.
#pragma once

#include <memory>

#include "model/model_kernels.h"
#include "model/sequence_attention.h"
#include "tensor/arena.h"

namespace longctx::model {

class CpuModelKernels final : public ModelKernels {
 public:
  // Keeps a reference to `attention`: it must outlive this.
  CpuModelKernels(std::shared_ptr<Arena> arena, SequenceAttention& attention)
      : arena_(std::move(arena)), attention_(attention) {}

  DType activation_type() const override { return DType::kF32; }
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
  std::shared_ptr<Arena> arena_;
  SequenceAttention& attention_;
};

}  // namespace longctx::model
