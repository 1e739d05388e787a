// The bookkeeping of a device arena: which byte ranges of one region are in use.
//
// A GPU arena is one cudaMalloc'd region that the worker carves up itself, so allocation never
// calls into the driver (cudaMalloc synchronises the device and is slow) and every byte the job
// holds on the device is counted in one place, against the same budget the planner predicted.
// This class is that carving, kept free of CUDA so it can be tested on any machine: it hands out
// offsets into [0, budget) and counts current, peak and live blocks exactly like the CPU arena
// (tensor/arena.h): blocks are counted at their size rounded up to the alignment, and a request
// past the budget fails with an error naming the request, the bytes in use and the budget.
//
// Placement is first fit by lowest offset, and a freed block merges with free neighbours, so a
// job that allocates and frees in the same order every step gets the same offsets every step.
// A region can still fragment: then a request that fits the budget finds no free range large
// enough, and the error says so and names the largest free block.
//
// Not thread-safe: one device thread owns a device's arena.
#pragma once

#include <cstddef>
#include <map>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "tensor/arena.h"

namespace longctx::cuda {

// The CPU arena's error, counters and size format (tensor/arena.h): a GPU device's memory is
// reported exactly like an emulated one's. The error is also thrown when the region is too
// fragmented for a request, or the driver refuses the region itself.
using DeviceOutOfMemoryError = longctx::OutOfMemoryError;
using DeviceArenaStats = longctx::ArenaStats;
using longctx::FormatBytes;

class ArenaLedger {
 public:
  // 256 bytes: what cudaMalloc guarantees, enough for any vector load or cp.async of a kernel.
  static constexpr size_t kAlignment = 256;

  ArenaLedger(std::string label, size_t budget_bytes);

  static size_t RoundUp(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

  // Returns the offset of a free range of RoundUp(bytes) bytes; throws DeviceOutOfMemoryError
  // past the budget or when no free range is large enough, std::invalid_argument for 0 bytes.
  size_t Allocate(size_t bytes);
  // Returns a block to the free ranges; throws std::logic_error for an offset not handed out.
  void Free(size_t offset);

  const std::string& label() const { return label_; }
  size_t current() const { return current_; }
  size_t peak() const { return peak_; }
  size_t budget() const { return budget_; }
  size_t largest_free() const;
  DeviceArenaStats stats() const { return {current_, peak_, budget_, live_.size()}; }
  void ResetPeak() { peak_ = current_; }

 private:
  std::string label_;
  size_t budget_;
  size_t current_ = 0;
  size_t peak_ = 0;
  std::map<size_t, size_t> free_;            // offset → size of each free range, no two adjacent
  std::unordered_map<size_t, size_t> live_;  // offset → counted size of each live block
};

}  // namespace longctx::cuda
