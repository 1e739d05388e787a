// The memory of one device, counted against a byte budget.
//
// A device (a GPU, or an emulated CPU device) has a fixed amount of memory; the planner predicts
// how much a job needs and the worker must report what it really used. So everything the worker
// keeps on a device is allocated through that device's Arena, which counts the bytes in use and
// the peak, and refuses an allocation past the budget with an error that names the request, the
// bytes in use and the budget. Host memory (parameter and optimizer offload) is a second Arena
// with its own budget.
//
// Blocks are 64-byte aligned (a cache line; an AVX-512 vector) and counted at their size rounded
// up to 64 bytes, which is exactly what the arena reserves for them: peak() is the true high-water
// mark of reserved bytes. The counting sits on the system allocator: on a CPU there is no
// separate device heap to carve up, and the budget check happens before any memory is touched.
//
// The counting is the same for every kind of memory; where the bytes come from is a MemorySource:
// the system allocator by default (an emulated CPU device, host memory), a cudaMalloc'd region for
// a GPU or pinned host memory (train/cuda_backend.h). So a GPU's device arena reports exactly like
// an emulated one's, and the planner is checked the same way on both.
//
// Thread safety: an Arena is used by one device thread at a time (one rank = one process = one
// core); the counters are not atomic.
#pragma once

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>

namespace longctx {

// Thrown when an allocation would exceed the arena's budget (or the system refuses the memory).
class OutOfMemoryError : public std::runtime_error {
 public:
  OutOfMemoryError(const std::string& message, size_t requested, size_t in_use, size_t budget)
      : std::runtime_error(message), requested(requested), in_use(in_use), budget(budget) {}
  const size_t requested;
  const size_t in_use;
  const size_t budget;
};

struct ArenaStats {
  size_t current;  // bytes reserved now
  size_t peak;     // most bytes ever reserved at once (since construction or ResetPeak)
  size_t budget;
  size_t live_blocks;
};

// Where an Arena's bytes come from. Blocks are counted at their size rounded up to alignment().
class MemorySource {
 public:
  virtual ~MemorySource() = default;
  virtual size_t alignment() const = 0;
  // `bytes` (already a multiple of alignment()) of memory, or nullptr when refused.
  virtual void* Reserve(size_t bytes) = 0;
  virtual void Return(void* ptr) = 0;
  // Sets `bytes` bytes at ptr to zero (device memory cannot be memset from the host).
  virtual void Zero(void* ptr, size_t bytes) = 0;
  // Ends an out-of-memory message when Reserve refused ("the system allocator refused the memory").
  virtual std::string refusal() const = 0;
};

class Arena {
 public:
  static constexpr size_t kAlignment = 64;  // of the default source (system memory)

  // `label` names the memory in errors, e.g. "device cpu:3" or "host". Without a source the
  // memory is the system allocator's.
  Arena(std::string label, size_t budget_bytes, std::unique_ptr<MemorySource> source = nullptr);
  // Frees whatever is still allocated (a leak in the caller is still a leak, but not a crash).
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // The size a request of `bytes` is counted at.
  size_t RoundUp(size_t bytes) const { return (bytes + alignment_ - 1) / alignment_ * alignment_; }

  // Returns 64-byte aligned, uninitialised memory; throws OutOfMemoryError past the budget.
  // A zero-byte request returns nullptr and counts nothing.
  void* Allocate(size_t bytes);
  // Releases a block from Allocate; throws std::logic_error for a pointer this arena did not give.
  void Free(void* ptr);
  // Zeroes `bytes` bytes of a block (through the source: device memory is not host-writable).
  void Zero(void* ptr, size_t bytes) { source_->Zero(ptr, bytes); }

  const std::string& label() const { return label_; }
  size_t current() const { return current_; }
  size_t peak() const { return peak_; }
  size_t budget() const { return budget_; }
  size_t available() const { return budget_ - current_; }
  ArenaStats stats() const { return {current_, peak_, budget_, blocks_.size()}; }
  // Starts a new high-water mark at the current usage (e.g. to measure one training step).
  void ResetPeak() { peak_ = current_; }

 private:
  std::string label_;
  size_t budget_;
  std::unique_ptr<MemorySource> source_;
  size_t alignment_;
  size_t current_ = 0;
  size_t peak_ = 0;
  std::unordered_map<void*, size_t> blocks_;  // live block → counted size
};

// "4.0 MiB", "512 B": how the error messages print sizes.
std::string FormatBytes(size_t bytes);

// One block of arena memory, released when this goes away (RAII). Move-only.
class ArenaBlock {
 public:
  ArenaBlock() = default;
  ArenaBlock(std::shared_ptr<Arena> arena, size_t bytes);
  ~ArenaBlock() { Release(); }
  ArenaBlock(ArenaBlock&& other) noexcept;
  ArenaBlock& operator=(ArenaBlock&& other) noexcept;
  ArenaBlock(const ArenaBlock&) = delete;
  ArenaBlock& operator=(const ArenaBlock&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }  // as requested (the arena counts RoundUp(bytes))
  Arena* arena() const { return arena_.get(); }
  void Release();

 private:
  std::shared_ptr<Arena> arena_;
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace longctx
