#include "kernels/cuda/arena_ledger.h"

#include <cstdio>
#include <iterator>
#include <utility>

namespace longctx::cuda {

ArenaLedger::ArenaLedger(std::string label, size_t budget_bytes)
    : label_(std::move(label)), budget_(budget_bytes) {
  // Blocks are multiples of the alignment carved from aligned offsets, so a tail shorter than the
  // alignment never holds one; the budget check keeps the sum of blocks within budget_.
  if (budget_ > 0) free_.emplace(0, budget_);
}

size_t ArenaLedger::largest_free() const {
  size_t largest = 0;
  for (const auto& [offset, size] : free_) largest = size > largest ? size : largest;
  return largest;
}

size_t ArenaLedger::Allocate(size_t bytes) {
  if (bytes == 0) throw std::invalid_argument(label_ + ": a device block must have at least one byte");
  const size_t counted = RoundUp(bytes);
  auto fail = [&](const std::string& why) {
    return DeviceOutOfMemoryError(
        label_ + " out of memory: requested " + FormatBytes(bytes) + " with " + FormatBytes(current_) +
            " of " + FormatBytes(budget_) + " in use (" + std::to_string(counted) + " bytes requested, " +
            std::to_string(current_) + " of " + std::to_string(budget_) + " bytes in use)" + why,
        counted, current_, budget_);
  };
  if (counted < bytes || counted > budget_ - current_) throw fail("");
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second < counted) continue;
    const size_t offset = it->first;
    const size_t rest = it->second - counted;
    free_.erase(it);
    if (rest > 0) free_.emplace(offset + counted, rest);
    live_.emplace(offset, counted);
    current_ += counted;
    if (current_ > peak_) peak_ = current_;
    return offset;
  }
  throw fail("; no free range is that large (largest free block " + std::to_string(largest_free()) +
             " bytes): the arena is fragmented");
}

void ArenaLedger::Free(size_t offset) {
  auto live = live_.find(offset);
  if (live == live_.end())
    throw std::logic_error(label_ + ": freeing offset " + std::to_string(offset) +
                           ", which is not a live block");
  size_t start = offset;
  size_t size = live->second;
  current_ -= size;
  live_.erase(live);
  // Merge with the free range that follows and the one that precedes, keeping ranges maximal.
  auto next = free_.lower_bound(start);
  if (next != free_.end() && next->first == start + size) {
    size += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == start) {
      start = prev->first;
      size += prev->second;
      free_.erase(prev);
    }
  }
  free_.emplace(start, size);
}

}  // namespace longctx::cuda
