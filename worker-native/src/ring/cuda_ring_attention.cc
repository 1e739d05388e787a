#ifdef LONGCTX_WITH_CUDA
#include "ring/cuda_ring_attention.h"

#include <stdexcept>
#include <string>
#include <utility>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/flash_attention.h"
#include "kernels/cuda/model_ops.h"
#include "tensor/tensor.h"

namespace longctx::ring {

namespace cu = longctx::cuda;
using cu::bf16;

namespace {

// The CPU ring's tags (ring_attention.cc): the K/V stream and the dK/dV stream.
constexpr uint32_t kTagKV = 1;
constexpr uint32_t kTagGradKV = 2;

int LocalLen(const model::AttentionShape& shape) {
  if (shape.tokens <= 0 || shape.tokens % 2 != 0)
    throw std::invalid_argument(
        "ring attention: a rank holds two equal chunks, so its token count must be positive and even, got " +
        std::to_string(shape.tokens));
  return shape.tokens;
}

bf16* B(Tensor& t) { return static_cast<bf16*>(t.raw()); }
bf16* B(void* p) { return static_cast<bf16*>(p); }
const bf16* B(const void* p) { return static_cast<const bf16*>(p); }

}  // namespace

CudaRingAttention::CudaRingAttention(cuda::DeviceCollectives& collectives, int rank, int world,
                                     std::shared_ptr<Arena> arena, cudaStream_t stream)
    : collectives_(collectives), arena_(std::move(arena)), stream_(stream), rank_(rank), world_(world) {}

CudaRingAttention::Block CudaRingAttention::BlockAt(int step, int local_len) const {
  const int c = local_len / 2;
  if (step == 0) return {0, local_len, 0, local_len};
  const int source = (rank_ - step + world_) % world_;
  if (source < rank_) return {0, local_len, 0, c};  // all queries, j's first chunk
  return {c, c, 0, local_len};                      // second query chunk, all of j
}

void CudaRingAttention::Forward(const model::AttentionShape& shape, const void* q_in, const void* k_in,
                                const void* v_in, void* o_in, float* lse) {
  const bf16 *q = B(q_in), *k = B(k_in), *v = B(v_in);
  bf16* o = B(o_in);
  const int L = LocalLen(shape), H = shape.heads, KVH = shape.kv_heads, D = shape.head_dim;
  const int64_t kv = static_cast<int64_t>(L) * KVH * D, qn = static_cast<int64_t>(L) * H * D;
  const size_t block_bytes = 2 * static_cast<size_t>(kv) * sizeof(bf16);
  const int next = (rank_ + 1) % world_, prev = (rank_ - 1 + world_) % world_;

  Tensor held = Tensor::Empty(arena_, {2 * kv}, DType::kBF16);
  Tensor arriving = Tensor::Empty(arena_, {2 * kv}, DType::kBF16);
  Tensor out = Tensor::Empty(arena_, {qn});     // the running output, float32
  Tensor part_o = Tensor::Empty(arena_, {qn});  // float32: only the merged output is rounded
  Tensor part_lse = Tensor::Empty(arena_, {static_cast<int64_t>(L) * H});
  CUDA_CHECK(cudaMemcpyAsync(B(held), k, kv * sizeof(bf16), cudaMemcpyDeviceToDevice, stream_));
  CUDA_CHECK(cudaMemcpyAsync(B(held) + kv, v, kv * sizeof(bf16), cudaMemcpyDeviceToDevice, stream_));

  // The block for step 1 travels while the local causal block computes.
  collectives_.StartSendRecv(B(held), block_bytes, next, B(arriving), block_bytes, prev, kTagKV);
  cu::FlashAttentionForward({L, L, H, KVH, D, shape.scale}, cu::AttentionMask::kCausal, q, k, v, out.data(),
                            lse, stream_);
  for (int step = 1; step < world_; ++step) {
    collectives_.JoinSendRecv();
    std::swap(held, arriving);
    // `arriving` now holds the block of the step before, which the kernels issued so far may still
    // read: the exchange starts after them on the stream's order.
    if (step + 1 < world_)
      collectives_.StartSendRecv(B(held), block_bytes, next, B(arriving), block_bytes, prev, kTagKV);
    const Block b = BlockAt(step, L);
    const int64_t kv_off = static_cast<int64_t>(b.kv_begin) * KVH * D;
    const int64_t q_off = static_cast<int64_t>(b.q_begin) * H * D;
    cu::FlashAttentionForward({b.q_len, b.kv_len, H, KVH, D, shape.scale}, cu::AttentionMask::kNone,
                              q + q_off, B(held) + kv_off, B(held) + kv + kv_off, part_o.data(),
                              part_lse.data(), stream_);
    cu::MergeAttentionPartial(b.q_len * H, D, out.data() + q_off, lse + static_cast<int64_t>(b.q_begin) * H,
                              part_o.data(), part_lse.data(), stream_);
  }
  cu::FloatToBf16(o, out.data(), qn, stream_);
}

void CudaRingAttention::Backward(const model::AttentionShape& shape, const void* q_in, const void* k_in,
                                 const void* v_in, const void* o_in, const float* lse, const void* dout_in,
                                 void* dq, void* dk, void* dv) {
  const bf16 *q = B(q_in), *k = B(k_in), *v = B(v_in), *o = B(o_in), *dout = B(dout_in);
  const int L = LocalLen(shape), H = shape.heads, KVH = shape.kv_heads, D = shape.head_dim;
  const int64_t kv = static_cast<int64_t>(L) * KVH * D, qn = static_cast<int64_t>(L) * H * D;
  const size_t block_bytes = 2 * static_cast<size_t>(kv) * sizeof(bf16);
  const size_t grad_bytes = 2 * static_cast<size_t>(kv) * sizeof(float);
  const int next = (rank_ + 1) % world_, prev = (rank_ - 1 + world_) % world_;
  const cu::AttentionDims local{L, L, H, KVH, D, shape.scale};

  Tensor held = Tensor::Empty(arena_, {2 * kv}, DType::kBF16);
  Tensor arriving = Tensor::Empty(arena_, {2 * kv}, DType::kBF16);
  // dK/dV accumulators, float32: the one going on to rank+1 and the one arriving from rank-1.
  Tensor grad_out = Tensor::Zeros(arena_, {2 * kv});
  Tensor grad_in = Tensor::Empty(arena_, {2 * kv});
  Tensor dq32 = Tensor::Zeros(arena_, {qn});
  Tensor workspace = Tensor::Empty(
      arena_, {static_cast<int64_t>((cu::FlashAttentionBackwardWorkspaceBytes(local) + 3) / sizeof(float))});
  CUDA_CHECK(cudaMemcpyAsync(B(held), k, kv * sizeof(bf16), cudaMemcpyDeviceToDevice, stream_));
  CUDA_CHECK(cudaMemcpyAsync(B(held) + kv, v, kv * sizeof(bf16), cudaMemcpyDeviceToDevice, stream_));

  // Step 0: the local causal block starts the journey of this rank's own accumulator, while the
  // K/V block of step 1 travels.
  collectives_.StartSendRecv(B(held), block_bytes, next, B(arriving), block_bytes, prev, kTagKV);
  cu::FlashAttentionBackward(local, cu::AttentionMask::kCausal, q, k, v, o, lse, dout, dq32.data(),
                             grad_out.data(), grad_out.data() + kv, workspace.raw(), stream_);
  for (int step = 1; step < world_; ++step) {
    collectives_.JoinSendRecv();
    std::swap(held, arriving);
    // The accumulator of the block now held comes from rank-1, which computed on it last step.
    collectives_.StartSendRecv(grad_out.data(), grad_bytes, next, grad_in.data(), grad_bytes, prev,
                               kTagGradKV);
    collectives_.JoinSendRecv();
    if (step + 1 < world_)
      collectives_.StartSendRecv(B(held), block_bytes, next, B(arriving), block_bytes, prev, kTagKV);
    const Block b = BlockAt(step, L);
    const int64_t kv_off = static_cast<int64_t>(b.kv_begin) * KVH * D;
    const int64_t q_off = static_cast<int64_t>(b.q_begin) * H * D;
    const int64_t lse_off = static_cast<int64_t>(b.q_begin) * H;
    cu::FlashAttentionBackward({b.q_len, b.kv_len, H, KVH, D, shape.scale}, cu::AttentionMask::kNone,
                               q + q_off, B(held) + kv_off, B(held) + kv + kv_off, o + q_off, lse + lse_off,
                               dout + q_off, dq32.data() + q_off, grad_in.data() + kv_off,
                               grad_in.data() + kv + kv_off, workspace.raw(), stream_);
    std::swap(grad_in, grad_out);
  }
  // The last hop brings this rank's own accumulator home, complete.
  collectives_.StartSendRecv(grad_out.data(), grad_bytes, next, grad_in.data(), grad_bytes, prev, kTagGradKV);
  collectives_.JoinSendRecv();
  cu::FloatToBf16(B(dq), dq32.data(), qn, stream_);
  cu::FloatToBf16(B(dk), grad_in.data(), kv, stream_);
  cu::FloatToBf16(B(dv), grad_in.data() + kv, kv, stream_);
}

}  // namespace longctx::ring
#endif  // LONGCTX_WITH_CUDA
