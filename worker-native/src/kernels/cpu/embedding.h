// Token embedding: row ids[t] of the table [vocab, channels] becomes row t of the output.
// Backward scatter-adds each output-gradient row into the table row it came from; a token that
// appears several times accumulates, in token order (deterministic).
#pragma once

#include <cstdint>

namespace longctx::cpu {

// Throws std::invalid_argument naming `what` and the first id outside [0, vocab).
void CheckTokenIds(const int32_t* ids, int tokens, int vocab, const char* what);

// out [tokens, channels] = weight[ids[t]]
void EmbeddingForward(float* out, const int32_t* ids, const float* weight, int tokens, int channels);
// dweight[ids[t]] += dout[t] (adds)
void EmbeddingBackward(float* dweight, const float* dout, const int32_t* ids, int tokens, int channels);

// Plain references (write, do not add).
template <typename T>
void NaiveEmbeddingForward(T* out, const int32_t* ids, const T* weight, int tokens, int channels);
template <typename T>
void NaiveEmbeddingBackward(T* dweight, const T* dout, const int32_t* ids, int tokens, int vocab,
                            int channels);

}  // namespace longctx::cpu
