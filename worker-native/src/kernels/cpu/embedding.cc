#include "kernels/cpu/embedding.h"

#include <cstring>
#include <stdexcept>
#include <string>

namespace longctx::cpu {

void CheckTokenIds(const int32_t* ids, int tokens, int vocab, const char* what) {
  for (int t = 0; t < tokens; ++t) {
    if (ids[t] < 0 || ids[t] >= vocab) {
      throw std::invalid_argument(std::string(what) + "[" + std::to_string(t) +
                                  "] = " + std::to_string(ids[t]) + " is outside the vocabulary [0, " +
                                  std::to_string(vocab) + ")");
    }
  }
}

void EmbeddingForward(float* out, const int32_t* ids, const float* weight, int tokens, int channels) {
  const size_t row = static_cast<size_t>(channels);
  for (int t = 0; t < tokens; ++t) std::memcpy(out + t * row, weight + ids[t] * row, row * sizeof(float));
}

void EmbeddingBackward(float* dweight, const float* dout, const int32_t* ids, int tokens, int channels) {
  const size_t row = static_cast<size_t>(channels);
  for (int t = 0; t < tokens; ++t) {
    float* dst = dweight + ids[t] * row;
    const float* src = dout + t * row;
    for (size_t c = 0; c < row; ++c) dst[c] += src[c];
  }
}

template <typename T>
void NaiveEmbeddingForward(T* out, const int32_t* ids, const T* weight, int tokens, int channels) {
  for (int t = 0; t < tokens; ++t)
    for (int c = 0; c < channels; ++c) out[t * channels + c] = weight[ids[t] * channels + c];
}

template <typename T>
void NaiveEmbeddingBackward(T* dweight, const T* dout, const int32_t* ids, int tokens, int vocab,
                            int channels) {
  for (int i = 0; i < vocab * channels; ++i) dweight[i] = 0;
  for (int t = 0; t < tokens; ++t)
    for (int c = 0; c < channels; ++c) dweight[ids[t] * channels + c] += dout[t * channels + c];
}

template void NaiveEmbeddingForward<float>(float*, const int32_t*, const float*, int, int);
template void NaiveEmbeddingForward<double>(double*, const int32_t*, const double*, int, int);
template void NaiveEmbeddingBackward<float>(float*, const float*, const int32_t*, int, int, int);
template void NaiveEmbeddingBackward<double>(double*, const double*, const int32_t*, int, int, int);

}  // namespace longctx::cpu
