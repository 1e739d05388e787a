#include "platform/shared_library.h"

#include <dlfcn.h>

#include <cstdlib>
#include <utility>

namespace longctx::platform {

namespace {

std::vector<std::string> SplitFolders(const char* list) {
  std::vector<std::string> folders;
  if (list == nullptr) return folders;
  std::string current;
  for (const char* p = list;; ++p) {
    if (*p == ':' || *p == '\0') {
      if (!current.empty()) folders.push_back(current);
      current.clear();
      if (*p == '\0') break;
    } else {
      current += *p;
    }
  }
  return folders;
}

// dlerror() once, as a string (it resets after each call).
std::string LoaderMessage() {
  const char* message = dlerror();
  return message != nullptr ? message : "unknown dlopen error";
}

}  // namespace

SharedLibrary SharedLibrary::Open(const std::vector<std::string>& file_names) {
  SharedLibrary library;
  std::vector<std::string> candidates;
  for (const std::string& folder : SplitFolders(std::getenv(kLibraryPathVariable)))
    for (const std::string& name : file_names) candidates.push_back(folder + "/" + name);
  // A bare name makes dlopen search the loader's path.
  for (const std::string& name : file_names) candidates.push_back(name);

  std::string tried;
  for (const std::string& candidate : candidates) {
    // RTLD_LOCAL: the symbols stay out of the global namespace, so a second copy (PyTorch's, in a
    // process that has both) cannot be bound by accident.
    void* handle = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle != nullptr) {
      library.handle_ = handle;
      library.path_ = candidate;
      return library;
    }
    tried += (tried.empty() ? "" : "; ") + LoaderMessage();
  }
  const char* variable = std::getenv(kLibraryPathVariable);
  library.error_ = "tried " + tried + " (" + kLibraryPathVariable + "=" +
                   (variable != nullptr ? std::string("'") + variable + "'" : std::string("unset")) +
                   "; set it to the folder that holds the library)";
  return library;
}

SharedLibrary::SharedLibrary(SharedLibrary&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)),
      path_(std::move(other.path_)),
      error_(std::move(other.error_)) {}

SharedLibrary& SharedLibrary::operator=(SharedLibrary&& other) noexcept {
  handle_ = std::exchange(other.handle_, nullptr);
  path_ = std::move(other.path_);
  error_ = std::move(other.error_);
  return *this;
}

void* SharedLibrary::Find(const char* name) const {
  if (handle_ == nullptr) return nullptr;
  return dlsym(handle_, name);
}

std::string SymbolBinder::error() const {
  if (missing_.empty()) return "";
  std::string names;
  for (const std::string& name : missing_) names += (names.empty() ? "" : ", ") + name;
  return library_.path() + " lacks " + names;
}

}  // namespace longctx::platform
