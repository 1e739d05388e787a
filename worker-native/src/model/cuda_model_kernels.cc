#ifdef LONGCTX_WITH_CUDA
#include "model/cuda_model_kernels.h"

#include "kernels/cuda/cross_entropy.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/flash_attention.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/model_ops.h"
#include "kernels/cuda/rmsnorm.h"
#include "kernels/cuda/rope.h"

namespace longctx::model {

namespace cu = longctx::cuda;
using cu::bf16;

namespace {
bf16* B(void* p) { return static_cast<bf16*>(p); }
const bf16* B(const void* p) { return static_cast<const bf16*>(p); }

cu::AttentionDims DimsOf(const AttentionShape& s) {
  return {s.tokens, s.tokens, s.heads, s.kv_heads, s.head_dim, s.scale};
}
}  // namespace

CudaModelKernels::CudaModelKernels(std::shared_ptr<Arena> arena, cudaStream_t stream,
                                   std::unique_ptr<DeviceSequenceAttention> sequence)
    : arena_(std::move(arena)), stream_(stream), sequence_(std::move(sequence)) {}

Tensor CudaModelKernels::Scratch(size_t bytes) {
  return Tensor::Empty(arena_, {static_cast<int64_t>((bytes + sizeof(float) - 1) / sizeof(float))});
}

Tensor CudaModelKernels::Upload(const int32_t* host, int n) {
  Tensor t = Tensor::Empty(arena_, {n}, DType::kI32);
  CUDA_CHECK(cudaMemcpyAsync(t.raw(), host, static_cast<size_t>(n) * sizeof(int32_t), cudaMemcpyHostToDevice,
                             stream_));
  return t;
}

void CudaModelKernels::RopeTables(float* cos, float* sin, const int32_t* positions, int tokens, int head_dim,
                                  double theta) {
  const Tensor device_positions = Upload(positions, tokens);
  cu::RopeTables(cos, sin, static_cast<const int32_t*>(device_positions.raw()), tokens, head_dim, theta,
                 stream_);
}

void CudaModelKernels::EmbeddingForward(void* out, const int32_t* ids, const void* table, int tokens,
                                        int channels) {
  const Tensor device_ids = Upload(ids, tokens);
  cu::EmbeddingForward(B(out), static_cast<const int32_t*>(device_ids.raw()), B(table), tokens, channels,
                       stream_);
}

// The float32 rows go up as they are (pageable memory, like Upload: cudaMemcpyAsync has read them
// when it returns) and are rounded to bf16 on the device, as the weights are.
void CudaModelKernels::SpliceRows(void* out, const float* values, int first, int rows, int channels) {
  const int64_t n = static_cast<int64_t>(rows) * channels;
  Tensor staged = Tensor::Empty(arena_, {n});
  CUDA_CHECK(cudaMemcpyAsync(staged.data(), values, static_cast<size_t>(n) * sizeof(float),
                             cudaMemcpyHostToDevice, stream_));
  cu::FloatToBf16(B(out) + static_cast<int64_t>(first) * channels, staged.data(), n, stream_);
}

void CudaModelKernels::EmbeddingBackward(float* dtable, const void* dout, const int32_t* ids, int tokens,
                                         int channels) {
  const Tensor device_ids = Upload(ids, tokens);
  cu::EmbeddingBackward(dtable, B(dout), static_cast<const int32_t*>(device_ids.raw()), tokens, channels,
                        stream_);
}

void CudaModelKernels::RmsNormForward(void* out, float* rstd, const void* x, const void* weight, int tokens,
                                      int channels, float eps) {
  cu::RmsNormForward(B(out), rstd, B(x), B(weight), tokens, channels, eps, stream_);
}

void CudaModelKernels::RmsNormBackward(void* dx, float* dweight, const void* dout, const void* x,
                                       const void* weight, const float* rstd, int tokens, int channels) {
  Tensor workspace = Scratch(cu::RmsNormBackwardWorkspaceBytes(tokens, channels));
  cu::RmsNormBackward(B(dx), dweight, B(dout), B(x), B(weight), rstd, tokens, channels, workspace.data(),
                      stream_);
}

// out = in · Wᵀ in float32, then + bias and one rounding to bf16.
void CudaModelKernels::LinearForward(void* out, const void* in, const void* weight, const void* bias,
                                     int tokens, int in_features, int out_features) {
  Tensor acc = Tensor::Empty(arena_, {tokens, out_features});
  cu::Gemm(false, true, tokens, out_features, in_features, 1.0f, B(in), in_features, B(weight), in_features,
           0.0f, acc.data(), out_features, stream_);
  cu::BiasRound(B(out), acc.data(), B(bias), tokens, out_features, stream_);
}

void CudaModelKernels::LinearBackward(void* din, float* dweight, float* dbias, const void* dout,
                                      const void* in, const void* weight, int tokens, int in_features,
                                      int out_features) {
  // din += dout · W;  dW += doutᵀ · in;  db += Σ_t dout.
  cu::Gemm(false, false, tokens, in_features, out_features, 1.0f, B(dout), out_features, B(weight),
           in_features, 1.0f, B(din), in_features, stream_);
  cu::Gemm(true, false, out_features, in_features, tokens, 1.0f, B(dout), out_features, B(in), in_features,
           1.0f, dweight, in_features, stream_);
  if (dbias != nullptr) cu::ColumnSumAdd(dbias, B(dout), tokens, out_features, stream_);
}

void CudaModelKernels::RopeForward(void* x, const float* cos, const float* sin, int tokens, int heads,
                                   int head_dim) {
  cu::RopeForward(B(x), cos, sin, tokens, heads, head_dim, stream_);
}

void CudaModelKernels::RopeBackward(void* dx, const float* cos, const float* sin, int tokens, int heads,
                                    int head_dim) {
  cu::RopeBackward(B(dx), cos, sin, tokens, heads, head_dim, stream_);
}

void CudaModelKernels::AddInPlace(void* acc, const void* x, int64_t n) {
  cu::AddInPlace(B(acc), B(x), n, stream_);
}

void CudaModelKernels::MlpForward(void* out, void* gate, void* up, void* act, const void* x,
                                  const MlpWeightPtrs& w, int tokens, int channels, int intermediate) {
  const int T = tokens, C = channels, I = intermediate;
  cu::Gemm(false, true, T, I, C, 1.0f, B(x), C, B(w.gate), C, 0.0f, B(gate), I, stream_);
  cu::Gemm(false, true, T, I, C, 1.0f, B(x), C, B(w.up), C, 0.0f, B(up), I, stream_);
  cu::SwiGluForward(B(act), B(gate), B(up), static_cast<int64_t>(T) * I, stream_);
  cu::Gemm(false, true, T, C, I, 1.0f, B(act), I, B(w.down), I, 0.0f, B(out), C, stream_);
}

void CudaModelKernels::MlpBackward(void* dx, const MlpGradPtrs& g, const void* dout, const void* x,
                                   const void* gate, const void* up, const void* act, const MlpWeightPtrs& w,
                                   int tokens, int channels, int intermediate) {
  const int T = tokens, C = channels, I = intermediate;
  // The CPU kernel's scratch (dact and one of dgate/dup at a time) is 2·T·I floats; here three bf16
  // tensors of T·I: 1.5× fewer bytes.
  Tensor dact = Tensor::Empty(arena_, {T, I}, DType::kBF16);
  cu::Gemm(false, false, T, I, C, 1.0f, B(dout), C, B(w.down), I, 0.0f, B(dact.raw()), I, stream_);
  cu::Gemm(true, false, C, I, T, 1.0f, B(dout), C, B(act), I, 1.0f, g.down, I, stream_);
  Tensor dgate = Tensor::Zeros(arena_, {T, I}, DType::kBF16);
  Tensor dup = Tensor::Zeros(arena_, {T, I}, DType::kBF16);
  cu::SwiGluBackward(B(dgate.raw()), B(dup.raw()), B(dact.raw()), B(gate), B(up), static_cast<int64_t>(T) * I,
                     stream_);
  dact.Release();
  cu::Gemm(true, false, I, C, T, 1.0f, B(dgate.raw()), I, B(x), C, 1.0f, g.gate, C, stream_);
  cu::Gemm(true, false, I, C, T, 1.0f, B(dup.raw()), I, B(x), C, 1.0f, g.up, C, stream_);
  cu::Gemm(false, false, T, C, I, 1.0f, B(dgate.raw()), I, B(w.gate), C, 1.0f, B(dx), C, stream_);
  cu::Gemm(false, false, T, C, I, 1.0f, B(dup.raw()), I, B(w.up), C, 1.0f, B(dx), C, stream_);
}

void CudaModelKernels::AttentionForward(const AttentionShape& shape, const void* q, const void* k,
                                        const void* v, void* o, float* lse) {
  if (sequence_) {
    sequence_->Forward(shape, q, k, v, o, lse);
    return;
  }
  cu::FlashAttentionForward(DimsOf(shape), cu::AttentionMask::kCausal, B(q), B(k), B(v), B(o), lse, stream_);
}

void CudaModelKernels::AttentionBackward(const AttentionShape& shape, const void* q, const void* k,
                                         const void* v, const void* o, const float* lse, const void* dout,
                                         void* dq, void* dk, void* dv) {
  if (sequence_) {
    sequence_->Backward(shape, q, k, v, o, lse, dout, dq, dk, dv);
    return;
  }
  // The flash backward accumulates float32 gradients; the layer's are bf16 activations.
  const int64_t nq = static_cast<int64_t>(shape.tokens) * shape.heads * shape.head_dim;
  const int64_t nkv = static_cast<int64_t>(shape.tokens) * shape.kv_heads * shape.head_dim;
  Tensor dq32 = Tensor::Zeros(arena_, {nq});
  Tensor dk32 = Tensor::Zeros(arena_, {nkv});
  Tensor dv32 = Tensor::Zeros(arena_, {nkv});
  const cu::AttentionDims dims = DimsOf(shape);
  Tensor workspace = Scratch(cu::FlashAttentionBackwardWorkspaceBytes(dims));
  cu::FlashAttentionBackward(dims, cu::AttentionMask::kCausal, B(q), B(k), B(v), B(o), lse, B(dout),
                             dq32.data(), dk32.data(), dv32.data(), workspace.raw(), stream_);
  cu::FloatToBf16(B(dq), dq32.data(), nq, stream_);
  cu::FloatToBf16(B(dk), dk32.data(), nkv, stream_);
  cu::FloatToBf16(B(dv), dv32.data(), nkv, stream_);
}

LossSum CudaModelKernels::CrossEntropy(const void* hidden, const void* weight, const int32_t* labels,
                                       int tokens, int channels, int vocab, int chunk_tokens,
                                       float grad_scale, void* dhidden, float* dweight) {
  const Tensor device_labels = Upload(labels, tokens);
  Tensor workspace = Scratch(cu::ChunkedCrossEntropyWorkspaceBytes(tokens, vocab, chunk_tokens));
  const cu::CrossEntropyResult r = cu::ChunkedCrossEntropy(
      B(hidden), B(weight), static_cast<const int32_t*>(device_labels.raw()), tokens, channels, vocab,
      chunk_tokens, grad_scale, static_cast<bf16*>(dhidden), dweight, workspace.raw(), stream_);
  return {r.loss_sum, r.count};
}

}  // namespace longctx::model
#endif  // LONGCTX_WITH_CUDA
