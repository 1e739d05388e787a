// Zigzag sharding for context parallelism (ARCHITECTURE.md): a sequence of S tokens on N ranks is
// cut into 2N equal chunks c_0 … c_{2N-1}; rank r holds c_r and c_{2N-1-r}, so that under a causal
// mask every rank has the same amount of attention work (an early chunk is cheap, its mirror late
// chunk is expensive). The data reader uses this map to give each rank its tokens, and ring
// attention uses it to know which global positions a rank's queries and keys sit at.
//
// This mirrors worker-native/zigzag.ts exactly (same numbers, same error messages); a test checks
// that the two agree.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace longctx::ring {

struct ZigzagShard {
  int rank;
  int chunks[2];         // the two chunk indices, in the order the rank stores them
  int64_t starts[2];     // global position of each chunk's first token
  int64_t chunk_tokens;  // S / 2N
  int64_t tokens() const { return 2 * chunk_tokens; }
  // Global position of the rank's local token i (0 <= i < tokens()).
  int64_t Position(int64_t i) const {
    return i < chunk_tokens ? starts[0] + i : starts[1] + (i - chunk_tokens);
  }
};

// Throws std::invalid_argument naming the numbers when S cannot be split into 2N equal chunks.
inline void CheckZigzag(int64_t seq_len, int world_size) {
  if (world_size < 1) {
    throw std::invalid_argument("world size must be a positive integer, got " + std::to_string(world_size));
  }
  if (seq_len < 1) {
    throw std::invalid_argument("seq_len must be a positive integer, got " + std::to_string(seq_len));
  }
  const int64_t parts = 2 * static_cast<int64_t>(world_size);
  if (seq_len % parts != 0) {
    throw std::invalid_argument("seq_len " + std::to_string(seq_len) + " is not divisible by 2 × " +
                                std::to_string(world_size) + " ranks = " + std::to_string(parts) +
                                " (zigzag needs " + std::to_string(parts) + " equal chunks)");
  }
}

inline ZigzagShard Zigzag(int64_t seq_len, int world_size, int rank) {
  CheckZigzag(seq_len, world_size);
  if (rank < 0 || rank >= world_size) {
    throw std::invalid_argument("rank " + std::to_string(rank) + " is outside 0.." +
                                std::to_string(world_size - 1));
  }
  ZigzagShard shard;
  shard.rank = rank;
  shard.chunk_tokens = seq_len / (2 * static_cast<int64_t>(world_size));
  shard.chunks[0] = rank;
  shard.chunks[1] = 2 * world_size - 1 - rank;
  shard.starts[0] = shard.chunks[0] * shard.chunk_tokens;
  shard.starts[1] = shard.chunks[1] * shard.chunk_tokens;
  return shard;
}

inline std::vector<ZigzagShard> ZigzagPlan(int64_t seq_len, int world_size) {
  CheckZigzag(seq_len, world_size);
  std::vector<ZigzagShard> plan;
  plan.reserve(world_size);
  for (int r = 0; r < world_size; ++r) plan.push_back(Zigzag(seq_len, world_size, r));
  return plan;
}

}  // namespace longctx::ring
