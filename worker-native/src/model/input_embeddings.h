// Input embeddings for marked spans: rows of hidden-size vectors that take the place of the token
// embedding lookup at exactly those tokens of a forward pass. This is how a sequence mixes text
// with precomputed embeddings (LongVA's visual tokens: 144 per video frame, V-NIAH's haystack):
// the ids at a spliced token are looked up as usual and then overwritten, so they may be anything
// in the vocabulary.
//
// Spans index this call's tokens (a rank's zigzag shard in its local order), not global positions:
// the caller gives each rank the rows of its own chunks (eval/vniah-embeddings.ts, shardSpans).
#pragma once

#include <cstdint>
#include <vector>

namespace longctx::model {

struct EmbeddingSpan {
  int first = 0;                  // the span's first token (index into this call's tokens)
  int64_t values_length = 0;      // floats in `values`: rows × hidden_size
  const float* values = nullptr;  // host float32 [rows, hidden_size], row-major
  int rows(int hidden_size) const { return static_cast<int>(values_length / hidden_size); }
};

// Throws std::invalid_argument naming embeddings[i] for a span that is empty, is not whole rows of
// hidden_size, reaches outside [0, tokens) or overlaps another span.
void CheckEmbeddingSpans(const std::vector<EmbeddingSpan>& spans, int tokens, int hidden_size);

}  // namespace longctx::model
