#include "tensor/tensor.h"

#include <cstring>
#include <stdexcept>
#include <utility>

namespace longctx {

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0)
      throw std::invalid_argument("tensor shape " + ShapeString(shape) + " has a negative dimension");
    n *= d;
  }
  return n;
}

std::string ShapeString(const Shape& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

Tensor Tensor::Empty(std::shared_ptr<Arena> arena, Shape shape, DType type) {
  int64_t numel = NumElements(shape);
  ArenaBlock block(std::move(arena), static_cast<size_t>(numel) * ElementBytes(type));
  return Tensor(std::move(block), std::move(shape), numel, type);
}

Tensor Tensor::Zeros(std::shared_ptr<Arena> arena, Shape shape, DType type) {
  Tensor t = Empty(std::move(arena), std::move(shape), type);
  t.Zero();
  return t;
}

void Tensor::Zero() {
  if (numel_ > 0) block_.arena()->Zero(block_.data(), bytes());
}

void Tensor::Release() {
  block_.Release();
  shape_.clear();
  numel_ = 0;
}

}  // namespace longctx
