#include "kernels/cpu/cross_entropy.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace longctx::cpu {

void CheckLabels(const int32_t* labels, int tokens, int vocab) {
  for (int t = 0; t < tokens; ++t) {
    if (labels[t] != kIgnoreIndex && (labels[t] < 0 || labels[t] >= vocab)) {
      throw std::invalid_argument("labels[" + std::to_string(t) + "] = " + std::to_string(labels[t]) +
                                  " is outside the vocabulary [0, " + std::to_string(vocab) +
                                  ") and is not the " + "ignore index " + std::to_string(kIgnoreIndex));
    }
  }
}

int64_t CountLabels(const int32_t* labels, int tokens) {
  int64_t count = 0;
  for (int t = 0; t < tokens; ++t) count += labels[t] != kIgnoreIndex;
  return count;
}

CrossEntropyResult ChunkedCrossEntropy(const float* hidden, const float* weight, const int32_t* labels,
                                       int tokens, int channels, int vocab, int chunk_tokens,
                                       float grad_scale, float* dhidden, float* dweight, float* workspace) {
  if (chunk_tokens <= 0) throw std::invalid_argument("chunk_tokens must be positive");
  const bool backward = dhidden != nullptr || dweight != nullptr;
  CrossEntropyResult result{0.0, 0};
  for (int start = 0; start < tokens; start += chunk_tokens) {
    const int rows = std::min(chunk_tokens, tokens - start);
    const float* h = hidden + static_cast<size_t>(start) * channels;
    float* logits = workspace;  // [rows, vocab]
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, vocab, channels, 1.0f, h, channels, weight,
                channels, 0.0f, logits, vocab);
    bool any = false;
    for (int r = 0; r < rows; ++r) {
      float* row = logits + static_cast<size_t>(r) * vocab;
      const int32_t label = labels[start + r];
      if (label == kIgnoreIndex) {
        if (backward) std::fill(row, row + vocab, 0.0f);
        continue;
      }
      any = true;
      const float max = *std::max_element(row, row + vocab);
      const float target = row[label];
      if (target == max) result.argmax_correct += std::count(row, row + vocab, max) == 1;
      // The row becomes exp(logit − max) (one exp per logit), then its own gradient:
      // grad_scale · (softmax − onehot).
      double sum = 0.0;
      for (int v = 0; v < vocab; ++v) {
        row[v] = std::exp(row[v] - max);
        sum += row[v];
      }
      result.loss_sum += static_cast<double>(max) + std::log(sum) - target;
      result.count += 1;
      if (!backward) continue;
      const float scale = static_cast<float>(grad_scale / sum);
      for (int v = 0; v < vocab; ++v) row[v] *= scale;
      row[label] -= grad_scale;
    }
    if (!backward || !any) continue;
    if (dhidden != nullptr) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, channels, vocab, 1.0f, logits, vocab,
                  weight, channels, 1.0f, dhidden + static_cast<size_t>(start) * channels, channels);
    }
    if (dweight != nullptr) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, vocab, channels, rows, 1.0f, logits, vocab, h,
                  channels, 1.0f, dweight, channels);
    }
  }
  return result;
}

template <typename T>
CrossEntropyResult NaiveCrossEntropy(const T* hidden, const T* weight, const int32_t* labels, int tokens,
                                     int channels, int vocab, double grad_scale, T* dhidden, T* dweight) {
  std::vector<T> logits(static_cast<size_t>(tokens) * vocab);
  for (int t = 0; t < tokens; ++t)
    for (int v = 0; v < vocab; ++v) {
      T sum = 0;
      for (int c = 0; c < channels; ++c) sum += hidden[t * channels + c] * weight[v * channels + c];
      logits[t * vocab + v] = sum;
    }
  CrossEntropyResult result{0.0, 0};
  std::vector<T> dlogits(logits.size(), T(0));
  for (int t = 0; t < tokens; ++t) {
    if (labels[t] == kIgnoreIndex) continue;
    const T* row = &logits[t * vocab];
    T max = row[0];
    for (int v = 1; v < vocab; ++v) max = std::max(max, row[v]);
    T sum = 0;
    for (int v = 0; v < vocab; ++v) sum += std::exp(row[v] - max);
    T lse = max + std::log(sum);
    if (row[labels[t]] == max) result.argmax_correct += std::count(row, row + vocab, max) == 1;
    result.loss_sum += static_cast<double>(lse - row[labels[t]]);
    result.count += 1;
    for (int v = 0; v < vocab; ++v)
      dlogits[t * vocab + v] =
          static_cast<T>(grad_scale) * (std::exp(row[v] - lse) - (v == labels[t] ? 1 : 0));
  }
  if (dhidden != nullptr) {
    for (int t = 0; t < tokens; ++t)
      for (int c = 0; c < channels; ++c) {
        T sum = 0;
        for (int v = 0; v < vocab; ++v) sum += dlogits[t * vocab + v] * weight[v * channels + c];
        dhidden[t * channels + c] = sum;
      }
  }
  if (dweight != nullptr) {
    for (int v = 0; v < vocab; ++v)
      for (int c = 0; c < channels; ++c) {
        T sum = 0;
        for (int t = 0; t < tokens; ++t) sum += dlogits[t * vocab + v] * hidden[t * channels + c];
        dweight[v * channels + c] = sum;
      }
  }
  return result;
}

template CrossEntropyResult NaiveCrossEntropy<float>(const float*, const float*, const int32_t*, int, int,
                                                     int, double, float*, float*);
template CrossEntropyResult NaiveCrossEntropy<double>(const double*, const double*, const int32_t*, int, int,
                                                      int, double, double*, double*);

}  // namespace longctx::cpu
