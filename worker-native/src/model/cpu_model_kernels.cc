#include "model/cpu_model_kernels.h"

#include <cstring>

#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/mlp.h"
#include "kernels/cpu/residual.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"

namespace longctx::model {

namespace {
float* F(void* p) { return static_cast<float*>(p); }
const float* F(const void* p) { return static_cast<const float*>(p); }
}  // namespace

void CpuModelKernels::RopeTables(float* cos, float* sin, const int32_t* positions, int tokens, int head_dim,
                                 double theta) {
  cpu::RopeTables(cos, sin, positions, tokens, head_dim, theta);
}

void CpuModelKernels::EmbeddingForward(void* out, const int32_t* ids, const void* table, int tokens,
                                       int channels) {
  cpu::EmbeddingForward(F(out), ids, F(table), tokens, channels);
}

void CpuModelKernels::SpliceRows(void* out, const float* values, int first, int rows, int channels) {
  const int64_t n = static_cast<int64_t>(rows) * channels;
  std::memcpy(F(out) + static_cast<int64_t>(first) * channels, values,
              static_cast<size_t>(n) * sizeof(float));
}

void CpuModelKernels::EmbeddingBackward(float* dtable, const void* dout, const int32_t* ids, int tokens,
                                        int channels) {
  cpu::EmbeddingBackward(dtable, F(dout), ids, tokens, channels);
}

void CpuModelKernels::RmsNormForward(void* out, float* rstd, const void* x, const void* weight, int tokens,
                                     int channels, float eps) {
  cpu::RmsNormForward(F(out), rstd, F(x), F(weight), tokens, channels, eps);
}

void CpuModelKernels::RmsNormBackward(void* dx, float* dweight, const void* dout, const void* x,
                                      const void* weight, const float* rstd, int tokens, int channels) {
  cpu::RmsNormBackward(F(dx), dweight, F(dout), F(x), F(weight), rstd, tokens, channels);
}

void CpuModelKernels::LinearForward(void* out, const void* in, const void* weight, const void* bias,
                                    int tokens, int in_features, int out_features) {
  cpu::LinearForward(F(out), F(in), F(weight), F(bias), tokens, in_features, out_features);
}

void CpuModelKernels::LinearBackward(void* din, float* dweight, float* dbias, const void* dout,
                                     const void* in, const void* weight, int tokens, int in_features,
                                     int out_features) {
  cpu::LinearBackward(F(din), dweight, dbias, F(dout), F(in), F(weight), tokens, in_features, out_features);
}

void CpuModelKernels::RopeForward(void* x, const float* cos, const float* sin, int tokens, int heads,
                                  int head_dim) {
  cpu::RopeForward(F(x), cos, sin, tokens, heads, head_dim);
}

void CpuModelKernels::RopeBackward(void* dx, const float* cos, const float* sin, int tokens, int heads,
                                   int head_dim) {
  cpu::RopeBackward(F(dx), cos, sin, tokens, heads, head_dim);
}

void CpuModelKernels::AddInPlace(void* acc, const void* x, int64_t n) { cpu::AddInPlace(F(acc), F(x), n); }

void CpuModelKernels::MlpForward(void* out, void* gate, void* up, void* act, const void* x,
                                 const MlpWeightPtrs& w, int tokens, int channels, int intermediate) {
  cpu::SwiGluMlpForward(F(out), F(gate), F(up), F(act), F(x), {F(w.gate), F(w.up), F(w.down)}, tokens,
                        channels, intermediate);
}

void CpuModelKernels::MlpBackward(void* dx, const MlpGradPtrs& g, const void* dout, const void* x,
                                  const void* gate, const void* up, const void* act, const MlpWeightPtrs& w,
                                  int tokens, int channels, int intermediate) {
  Tensor scratch = Tensor::Empty(arena_, {cpu::SwiGluMlpBackwardScratch(tokens, intermediate)});
  cpu::SwiGluMlpBackward(F(dx), {g.gate, g.up, g.down}, F(dout), F(x), F(gate), F(up), F(act),
                         {F(w.gate), F(w.up), F(w.down)}, tokens, channels, intermediate, scratch.data());
}

void CpuModelKernels::AttentionForward(const AttentionShape& shape, const void* q, const void* k,
                                       const void* v, void* o, float* lse) {
  attention_.Forward(shape, F(q), F(k), F(v), F(o), lse);
}

void CpuModelKernels::AttentionBackward(const AttentionShape& shape, const void* q, const void* k,
                                        const void* v, const void* o, const float* lse, const void* dout,
                                        void* dq, void* dk, void* dv) {
  attention_.Backward(shape, F(q), F(k), F(v), F(o), lse, F(dout), F(dq), F(dk), F(dv));
}

LossSum CpuModelKernels::CrossEntropy(const void* hidden, const void* weight, const int32_t* labels,
                                      int tokens, int channels, int vocab, int chunk_tokens, float grad_scale,
                                      void* dhidden, float* dweight) {
  Tensor workspace = Tensor::Empty(arena_, {cpu::ChunkedCrossEntropyWorkspace(chunk_tokens, vocab)});
  const cpu::CrossEntropyResult r =
      cpu::ChunkedCrossEntropy(F(hidden), F(weight), labels, tokens, channels, vocab, chunk_tokens,
                               grad_scale, F(dhidden), dweight, workspace.data());
  return {r.loss_sum, r.count, r.argmax_correct};
}

}  // namespace longctx::model
