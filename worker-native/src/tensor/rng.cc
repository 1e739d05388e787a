#include "tensor/rng.h"

#include <cmath>

namespace longctx {

namespace {
uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
}  // namespace

CounterRng::CounterRng(uint64_t seed, uint64_t stream) : state_{Mix64(seed) ^ Mix64(~stream), 0} {}

uint64_t CounterRng::At(uint64_t key, uint64_t counter) {
  return Mix64(Mix64(key + counter * 0x9e3779b97f4a7c15ULL) ^ key);
}

double CounterRng::NextUniform() { return (static_cast<double>(NextU64() >> 11) + 1.0) * 0x1.0p-53; }

double CounterRng::NextNormal() {
  double u1 = NextUniform();
  double u2 = NextUniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

void FillNormal(float* out, int64_t n, double std, uint64_t seed, uint64_t stream, uint64_t offset) {
  CounterRng rng(seed, stream);
  RngState s = rng.state();
  CounterRng at(RngState{s.key, 2 * offset});
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(std * at.NextNormal());
}

}  // namespace longctx
