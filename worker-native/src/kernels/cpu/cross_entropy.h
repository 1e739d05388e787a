// The language-model head and softmax cross-entropy, computed a chunk of tokens at a time.
//
// Why chunks: at a long context the logits [tokens × vocab] are the largest tensor of the step
// (28K tokens × 152K vocab × 4 bytes = 17 GB on one rank). Computing them for `chunk_tokens` rows
// at a time, turning each chunk straight into its loss and its gradient, and folding that into
// dhidden and dweight keeps the workspace at chunk_tokens × vocab floats.
//
// Per token t with label y (already shifted: the token that should follow t):
//   logits = hidden[t] · weightᵀ,   loss_t = logsumexp(logits) − logits[y]
//   dlogits = grad_scale · (softmax(logits) − onehot(y))
// Tokens whose label is kIgnoreIndex (−100, as in Hugging Face) add nothing to the loss, the
// count or the gradients. The loss is returned as a sum over counted tokens, so ranks holding
// parts of one sequence can add their sums and counts; grad_scale is 1/total_count for a mean.
//
// argmax_correct counts the counted tokens whose label is the argmax of the logits (greedy
// decoding would produce it), for retrieval evaluation (NIAH) without ever holding full logits.
// A tie for the maximum counts as wrong: the label's logit must be strictly above every other.
// torch.argmax would pick the lowest tied index, so a tie would score by vocabulary order; the
// strict rule depends on neither that order nor the reduction order, and a model whose head
// cannot tell tokens apart (e.g. all-zero weights) scores 0.
#pragma once

#include <cstdint>

namespace longctx::cpu {

constexpr int32_t kIgnoreIndex = -100;

struct CrossEntropyResult {
  double loss_sum;             // Σ loss_t over tokens whose label is not ignored
  int64_t count;               // how many such tokens
  int64_t argmax_correct = 0;  // how many of them have the label as their strict argmax
};

// Throws std::invalid_argument naming the first label outside [0, vocab) that is not kIgnoreIndex.
void CheckLabels(const int32_t* labels, int tokens, int vocab);
int64_t CountLabels(const int32_t* labels, int tokens);  // tokens whose label is not ignored

// Floats of workspace ChunkedCrossEntropy needs.
inline int64_t ChunkedCrossEntropyWorkspace(int chunk_tokens, int vocab) {
  return static_cast<int64_t>(chunk_tokens) * vocab;
}

// hidden [tokens, channels], weight [vocab, channels]. When dhidden and dweight are given, adds the
// gradients of grad_scale · loss_sum into them (dhidden [tokens, channels], dweight [vocab,
// channels]); when both are null, computes the loss only.
CrossEntropyResult ChunkedCrossEntropy(const float* hidden, const float* weight, const int32_t* labels,
                                       int tokens, int channels, int vocab, int chunk_tokens,
                                       float grad_scale, float* dhidden, float* dweight, float* workspace);

// The plain reference: materialises the full logits in T precision. Writes dhidden and dweight
// (when not null).
template <typename T>
CrossEntropyResult NaiveCrossEntropy(const T* hidden, const T* weight, const int32_t* labels, int tokens,
                                     int channels, int vocab, double grad_scale, T* dhidden, T* dweight);

}  // namespace longctx::cpu
