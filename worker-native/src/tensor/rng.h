// A small counter-based random number generator for deterministic initialisation.
//
// Why counter-based: value number `counter` of stream `key` is a pure function of the two, so a
// parameter initialised on one rank, on eight ranks, or resumed from a checkpoint gets the same
// numbers, and the whole state is two integers that a checkpoint can store. The mixing function
// is SplitMix64's finaliser (Steele, Lea, Flood 2014) applied to key and counter, good enough for
// initialising weights (it is not a cryptographic generator).
#pragma once

#include <cstdint>

namespace longctx {

struct RngState {
  uint64_t key;
  uint64_t counter;
};

class CounterRng {
 public:
  explicit CounterRng(uint64_t seed, uint64_t stream = 0);
  explicit CounterRng(RngState state) : state_(state) {}

  RngState state() const { return state_; }

  // The generator's output at a position, without touching the state.
  static uint64_t At(uint64_t key, uint64_t counter);

  uint64_t NextU64() { return At(state_.key, state_.counter++); }
  // Uniform in (0, 1]: never 0, so log() in Box-Muller is finite. 53 random bits.
  double NextUniform();
  // Standard normal by Box-Muller; uses two draws per value (the sine half is discarded so that
  // value i always comes from draws 2i and 2i+1).
  double NextNormal();

 private:
  RngState state_;
};

// Fills out[0..n) with normal(0, std) values: element i is value (offset + i) of stream `stream`.
void FillNormal(float* out, int64_t n, double std, uint64_t seed, uint64_t stream, uint64_t offset = 0);

}  // namespace longctx
