// The memory of one GPU, counted against a byte budget: one cudaMalloc'd region carved by an
// ArenaLedger (see arena_ledger.h for why one region, and for the accounting rules).
#pragma once

#include <cstddef>
#include <string>

#include "kernels/cuda/arena_ledger.h"

namespace longctx::cuda {

class DeviceArena {
 public:
  // Reserves budget_bytes on the current device at once. Throws DeviceOutOfMemoryError, naming the
  // budget and CUDA's reason, when the driver refuses the region.
  DeviceArena(std::string label, size_t budget_bytes);
  ~DeviceArena();
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;

  // 256-byte aligned, uninitialised device memory; nullptr (and nothing counted) for 0 bytes.
  void* Allocate(size_t bytes);
  template <typename T>
  T* Allocate(size_t count) {
    if (count > static_cast<size_t>(-1) / sizeof(T))
      throw DeviceOutOfMemoryError(ledger_.label() + ": element count overflows", count, current(), budget());
    return static_cast<T*>(Allocate(count * sizeof(T)));
  }
  // Returns a block; nullptr is ignored; throws std::logic_error for memory not from this arena.
  void Free(void* ptr);

  const std::string& label() const { return ledger_.label(); }
  int device() const { return device_; }
  size_t current() const { return ledger_.current(); }
  size_t peak() const { return ledger_.peak(); }
  size_t budget() const { return ledger_.budget(); }
  DeviceArenaStats stats() const { return ledger_.stats(); }
  void ResetPeak() { ledger_.ResetPeak(); }

 private:
  ArenaLedger ledger_;
  char* base_ = nullptr;
  int device_ = -1;
};

}  // namespace longctx::cuda
