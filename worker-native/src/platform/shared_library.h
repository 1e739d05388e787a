// Optional shared libraries, opened at run time: one build of the addon runs on hosts with and
// without them (cuBLASLt and NCCL exist only on GPU hosts, and often only inside PyTorch's
// nvidia-* Python packages, off the loader's search path).
//
// Where a library is looked for, in order:
//   1. each folder of the environment variable LONGCTX_CUDA_LIBRARY_PATH (':'-separated),
//   2. the dynamic loader's own search (LD_LIBRARY_PATH, the ld.so cache, RUNPATH),
// trying each of the given file names (e.g. libcublasLt.so.13, then .so.12) at each place.
// What was tried and why each failed is kept, so "not found" can say where it looked.
#pragma once

#include <string>
#include <vector>

namespace longctx::platform {

inline constexpr const char* kLibraryPathVariable = "LONGCTX_CUDA_LIBRARY_PATH";

class SharedLibrary {
 public:
  // Never throws: a library that cannot be opened leaves loaded() false and error() saying why.
  static SharedLibrary Open(const std::vector<std::string>& file_names);

  SharedLibrary(SharedLibrary&& other) noexcept;
  SharedLibrary& operator=(SharedLibrary&& other) noexcept;
  SharedLibrary(const SharedLibrary&) = delete;
  SharedLibrary& operator=(const SharedLibrary&) = delete;
  // Keeps the library open: code that resolved symbols from it may still run at process exit.
  ~SharedLibrary() = default;

  bool loaded() const { return handle_ != nullptr; }
  // The path it was opened from, as given to dlopen.
  const std::string& path() const { return path_; }
  // Why it is not loaded: every place tried, with the loader's message.
  const std::string& error() const { return error_; }

  // The address of `name`, or nullptr when the library lacks it.
  void* Find(const char* name) const;

 private:
  SharedLibrary() = default;
  void* handle_ = nullptr;
  std::string path_;
  std::string error_;
};

// Resolves a table of function pointers from a library: every name or none. Missing names are
// collected so the error lists them all.
class SymbolBinder {
 public:
  explicit SymbolBinder(const SharedLibrary& library) : library_(library) {}
  template <typename Fn>
  void Bind(Fn*& slot, const char* name) {
    slot = reinterpret_cast<Fn*>(library_.Find(name));
    if (slot == nullptr) missing_.push_back(name);
  }
  // Empty when every symbol was found; else "<path> lacks a, b".
  std::string error() const;

 private:
  const SharedLibrary& library_;
  std::vector<std::string> missing_;
};

}  // namespace longctx::platform
