// A tensor whose storage comes from a device (or host) Arena and goes back to it when the tensor is
// destroyed. float32 unless made with another DType: the CUDA backend keeps activations and compute
// weights in bf16 (train/backend.h); data() is the float32 view, raw() the untyped one. Row-major,
// contiguous; the shape is only bookkeeping for the kernels, which take raw pointers and sizes (llm.c style)
// so they can also run on views of one flat buffer (the parameters, the gradients).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "tensor/arena.h"

namespace longctx {

using Shape = std::vector<int64_t>;

// Element types: float32 (master weights, gradients, every CPU tensor), bfloat16 (GPU activations
// and compute weights), int32 (token ids on a device).
enum class DType { kF32, kBF16, kI32 };
inline size_t ElementBytes(DType type) { return type == DType::kBF16 ? 2 : 4; }

// Number of elements of a shape; throws std::invalid_argument for a negative dimension.
int64_t NumElements(const Shape& shape);
std::string ShapeString(const Shape& shape);  // "[24, 4, 8]"

class Tensor {
 public:
  Tensor() = default;
  // Uninitialised storage: kernels that write every element do not pay for zeroing.
  static Tensor Empty(std::shared_ptr<Arena> arena, Shape shape, DType type = DType::kF32);
  static Tensor Zeros(std::shared_ptr<Arena> arena, Shape shape, DType type = DType::kF32);

  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;

  float* data() { return static_cast<float*>(block_.data()); }
  const float* data() const { return static_cast<const float*>(block_.data()); }
  void* raw() { return block_.data(); }
  const void* raw() const { return block_.data(); }
  DType type() const { return type_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_.at(static_cast<size_t>(i)); }
  int64_t numel() const { return numel_; }
  size_t bytes() const { return static_cast<size_t>(numel_) * ElementBytes(type_); }
  bool empty() const { return numel_ == 0; }

  void Zero();
  // Returns the memory to the arena now; the tensor becomes empty.
  void Release();

 private:
  Tensor(ArenaBlock block, Shape shape, int64_t numel, DType type)
      : block_(std::move(block)), shape_(std::move(shape)), numel_(numel), type_(type) {}
  ArenaBlock block_;
  Shape shape_;
  int64_t numel_ = 0;
  DType type_ = DType::kF32;
};

}  // namespace longctx
