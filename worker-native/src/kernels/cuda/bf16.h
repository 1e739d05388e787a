// bfloat16 on the host: the storage type of activations and compute weights on a GPU.
//
// bf16 keeps float32's 8 exponent bits and 7 of its 23 mantissa bits, so a float converts by
// rounding away the low 16 bits. The rounding is to nearest, ties to even — the same rule as
// __float2bfloat16_rn on the device and torch's .to(torch.bfloat16) — so a tensor uploaded from
// the host holds exactly the values a device-side conversion would give. NaN stays NaN (a quiet
// NaN, never rounded into infinity).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>
#include <cstring>

namespace longctx::cuda {

using bf16 = __nv_bfloat16;

inline uint16_t FloatToBf16Bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // NaN
  const uint32_t lsb = (bits >> 16) & 1u;
  bits += 0x7fffu + lsb;  // round half to even; carries into the exponent (up to infinity) correctly
  return static_cast<uint16_t>(bits >> 16);
}

inline float Bf16BitsToFloat(uint16_t bits) {
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &wide, sizeof(value));
  return value;
}

inline float RoundToBf16(float value) { return Bf16BitsToFloat(FloatToBf16Bits(value)); }

}  // namespace longctx::cuda
