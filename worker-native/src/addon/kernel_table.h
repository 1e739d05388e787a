// Kernel bindings declared as rows of a table: a name, the arguments and what to run.
//
//   {"rmsnormForward",
//    {Dims("dims", {Positive("tokens"), Positive("channels"), PositiveNumber("eps")}),
//     F32("x", "tokens·channels"), F32("weight", "channels"), F32("out", "tokens·channels"),
//     F32("rstd", "tokens")},
//    [](const KernelCall& c) { cpu::RmsNormForward(c.F32("out"), ...); return KernelResult(); }}
//
// The generated function checks every argument's type at once (a TypeError naming it), pins the
// typed arrays and returns a Promise. On a pool thread it then checks the dims' values, runs the
// row's `validate` (dims-only checks), checks each array's length against its formula
// ("weight has 3 elements, expected channels = 96"), and runs the kernel in place on the caller's
// arrays. A formula is a product of dims fields or number arguments joined by '·' (a factor may end
// in "/2"); kSameLength means "as long as the first array".
//
// A naive reference takes Float32Array or Float64Array: its arrays are declared Real(...), the first
// one's type decides for the call, and the row's function is ByPrecision(generic lambda).
#pragma once

#include <napi.h>

#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "addon/napi_toolkit.h"

namespace longctx::addon {

// One field of a dims object; the value is checked on the pool thread unless kInt / kNumber.
struct DimField {
  enum class Kind { kInt, kPositiveInt, kNumber, kPositiveNumber } kind;
  const char* name;
  std::optional<double> fallback;  // used when the field is undefined; NaN: absent allowed (see Has)
};
inline DimField Int(const char* name, std::optional<double> fallback = std::nullopt) {
  return {DimField::Kind::kInt, name, fallback};
}
inline DimField Positive(const char* name, std::optional<double> fallback = std::nullopt) {
  return {DimField::Kind::kPositiveInt, name, fallback};
}
inline DimField Number(const char* name, std::optional<double> fallback = std::nullopt) {
  return {DimField::Kind::kNumber, name, fallback};
}
inline DimField PositiveNumber(const char* name) { return {DimField::Kind::kPositiveNumber, name, {}}; }

constexpr const char* kSameLength = "the length of the first array";

// One positional argument.
struct ArgSpec {
  enum class Kind { kDims, kArray, kNumber, kBool, kChoice } kind;
  const char* name;
  napi_typedarray_type type = napi_float32_array;  // arrays; kReal below: Float32 or Float64
  bool real = false;                               // arrays: the call's precision
  bool optional = false;                           // arrays: null or undefined allowed
  const char* length = "";                         // arrays: the length formula ("" unchecked)
  std::vector<DimField> fields;                    // dims
  std::vector<const char*> choices;                // choices
};
inline ArgSpec Dims(const char* name, std::vector<DimField> fields) {
  return {ArgSpec::Kind::kDims, name, napi_float32_array, false, false, "", std::move(fields), {}};
}
inline ArgSpec F32(const char* name, const char* length) {
  return {ArgSpec::Kind::kArray, name, napi_float32_array, false, false, length, {}, {}};
}
inline ArgSpec I32(const char* name, const char* length) {
  return {ArgSpec::Kind::kArray, name, napi_int32_array, false, false, length, {}, {}};
}
inline ArgSpec Real(const char* name, const char* length) {
  return {ArgSpec::Kind::kArray, name, napi_float32_array, true, false, length, {}, {}};
}
inline ArgSpec Optional(ArgSpec array) {
  array.optional = true;
  return array;
}
inline ArgSpec Scalar(const char* name) {
  return {ArgSpec::Kind::kNumber, name, napi_float32_array, false, false, "", {}, {}};
}
inline ArgSpec Flag(const char* name) {
  return {ArgSpec::Kind::kBool, name, napi_float32_array, false, false, "", {}, {}};
}
inline ArgSpec Choice(const char* name, std::vector<const char*> choices) {
  return {ArgSpec::Kind::kChoice, name, napi_float32_array, false, false, "", {}, std::move(choices)};
}

// What a kernel resolves with: undefined, a number, or an object of numbers.
struct KernelResult {
  enum class Kind { kUndefined, kNumber, kObject } kind = Kind::kUndefined;
  double number = 0;
  Progress fields;
  static KernelResult Of(double x) { return {Kind::kNumber, x, {}}; }
  static KernelResult Object(Progress fields) { return {Kind::kObject, 0, std::move(fields)}; }
};

// One call's arguments, read on the main thread and used on the pool thread.
class KernelCall {
 public:
  // Reads (and type-checks) the arguments; throws a TypeError naming the first bad one.
  KernelCall(const Napi::CallbackInfo& info, const std::vector<ArgSpec>& args);

  double Number(const char* name) const;  // a dims field or number argument
  int Int(const char* name) const { return static_cast<int>(Number(name)); }
  bool Has(const char* name) const;  // false for a field whose NaN fallback was taken
  bool Bool(const char* name) const { return Number(name) != 0; }
  const std::string& Choice(const char* name) const;
  bool f64() const { return f64_; }  // the Real arrays are Float64Array

  template <typename T>
  T* Data(const char* name) const {
    return static_cast<T*>(Array(name).data);
  }
  float* F32(const char* name) const { return Data<float>(name); }
  int32_t* I32(const char* name) const { return Data<int32_t>(name); }
  size_t Length(const char* name) const { return Array(name).length; }

  // The value checks: dims fields, then (after validate) every present array's length.
  void CheckFields(const std::vector<ArgSpec>& args) const;
  void CheckLengths(const std::vector<ArgSpec>& args) const;

 private:
  struct View {
    const char* name;
    void* data;
    size_t length;
  };
  const View& Array(const char* name) const;
  double Formula(const std::string& formula) const;

  std::vector<std::pair<const char*, double>> numbers_;
  std::vector<std::pair<const char*, std::string>> choices_;
  std::vector<View> arrays_;  // absent optional arrays have data == nullptr
  bool f64_ = false;
  Pins pins_;
};

using KernelRun = std::function<KernelResult(const KernelCall&)>;

struct KernelBinding {
  const char* name;
  std::vector<ArgSpec> args;
  KernelRun run;
  std::function<void(const KernelCall&)> validate = {};  // dims-only checks, before the lengths
};

// A naive reference's body for both precisions: `body(tag, call)` with tag a float or double value.
template <typename Body>
KernelRun ByPrecision(Body body) {
  return [body](const KernelCall& c) { return c.f64() ? body(double{}, c) : body(float{}, c); };
}

// Adds one function per row to `exports`. The table must outlive the addon (a static).
void RegisterKernelTable(Napi::Env env, Napi::Object exports, const std::vector<KernelBinding>& table);

}  // namespace longctx::addon
