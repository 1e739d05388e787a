#include "model/input_embeddings.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace longctx::model {

namespace {
std::string Name(size_t i) { return "embeddings[" + std::to_string(i) + "]"; }
}  // namespace

void CheckEmbeddingSpans(const std::vector<EmbeddingSpan>& spans, int tokens, int hidden_size) {
  for (size_t i = 0; i < spans.size(); ++i) {
    const EmbeddingSpan& s = spans[i];
    if (s.values_length <= 0 || s.values_length % hidden_size != 0)
      throw std::invalid_argument(Name(i) + ".rows has " + std::to_string(s.values_length) +
                                  " values, not a positive multiple of hidden_size " +
                                  std::to_string(hidden_size));
    const int64_t end = static_cast<int64_t>(s.first) + s.values_length / hidden_size;
    if (s.first < 0 || end > tokens)
      throw std::invalid_argument(Name(i) + " covers tokens " + std::to_string(s.first) + ".." +
                                  std::to_string(end - 1) + ", outside this call's " +
                                  std::to_string(tokens) + " tokens");
  }
  // Overlaps: sorted by first token, each span must end before the next begins.
  std::vector<size_t> order(spans.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return spans[a].first < spans[b].first; });
  for (size_t k = 1; k < order.size(); ++k) {
    const EmbeddingSpan& prev = spans[order[k - 1]];
    const EmbeddingSpan& next = spans[order[k]];
    const int64_t prev_end = prev.first + prev.values_length / hidden_size;
    if (next.first < prev_end) {
      const auto range = [&](const EmbeddingSpan& s) {
        return std::to_string(s.first) + ".." + std::to_string(s.first + s.values_length / hidden_size - 1);
      };
      throw std::invalid_argument(Name(order[k]) + " (tokens " + range(next) + ") overlaps " +
                                  Name(order[k - 1]) + " (tokens " + range(prev) + ")");
    }
  }
}

}  // namespace longctx::model
