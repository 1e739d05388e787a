// What the CUDA backend can see. Compiled only when nvcc is found (LONGCTX_WITH_CUDA).
#pragma once

#include <cstddef>
#include <string>

namespace longctx::cuda {

// Number of CUDA devices visible to this process; 0 when there is no driver or no GPU.
int DeviceCount();
// Name of device `index`, or an empty string when it does not exist.
std::string DeviceName(int index);
// Total memory of device `index` in bytes, or 0 when it does not exist.
size_t DeviceMemoryBytes(int index);

}  // namespace longctx::cuda
