#include "addon/kernel_table.h"

#include <cmath>
#include <stdexcept>

namespace longctx::addon {

KernelCall::KernelCall(const Napi::CallbackInfo& info, const std::vector<ArgSpec>& args) {
  Napi::Env env = info.Env();
  // The first Real array decides the precision of all of them.
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i].kind == ArgSpec::Kind::kArray && args[i].real) {
      f64_ = IsFloat64Arg(info, i);
      break;
    }
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const ArgSpec& a = args[i];
    switch (a.kind) {
      case ArgSpec::Kind::kDims: {
        Napi::Object o = ObjectArg(info, i, a.name);
        for (const DimField& f : a.fields) {
          const bool integer = f.kind == DimField::Kind::kInt || f.kind == DimField::Kind::kPositiveInt;
          numbers_.emplace_back(f.name, integer ? IntField(o, a.name, f.name, f.fallback)
                                                : NumberField(o, a.name, f.name, f.fallback));
        }
        break;
      }
      case ArgSpec::Kind::kArray: {
        const napi_typedarray_type type = a.real && f64_ ? napi_float64_array : a.type;
        if (a.optional && IsAbsent(info, i)) {
          arrays_.push_back({a.name, nullptr, 0});
          break;
        }
        if (info.Length() <= i || !IsTypedArrayOf(info[i], type))
          ThrowTypeError(
              env, ArgName(i, a.name) + " must be " + TypedArrayName(type) + (a.optional ? " or null" : ""));
        auto array = info[i].As<Napi::TypedArray>();
        pins_.Add(array);
        arrays_.push_back({a.name, static_cast<uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset(),
                           array.ElementLength()});
        break;
      }
      case ArgSpec::Kind::kNumber:
        numbers_.emplace_back(a.name, NumberArg(info, i, a.name));
        break;
      case ArgSpec::Kind::kBool:
        numbers_.emplace_back(a.name, BoolArg(info, i, a.name) ? 1.0 : 0.0);
        break;
      case ArgSpec::Kind::kChoice: {
        const std::string value = StringArg(info, i, a.name);
        std::string allowed;
        for (size_t c = 0; c < a.choices.size(); ++c) {
          if (value == a.choices[c]) choices_.emplace_back(a.name, value);
          allowed += (c == 0                      ? ""
                      : c + 1 == a.choices.size() ? " or "
                                                  : ", ") +
                     std::string("'") + a.choices[c] + "'";
        }
        if (choices_.empty() || choices_.back().first != a.name)
          ThrowTypeError(env, ArgName(i, a.name) + " must be " + allowed + ", got '" + value + "'");
        break;
      }
    }
  }
}

double KernelCall::Number(const char* name) const {
  for (const auto& [n, value] : numbers_)
    if (std::string(n) == name) return value;
  throw std::logic_error(std::string("kernel table: no number named ") + name);
}

bool KernelCall::Has(const char* name) const { return !std::isnan(Number(name)); }

const std::string& KernelCall::Choice(const char* name) const {
  for (const auto& [n, value] : choices_)
    if (std::string(n) == name) return value;
  throw std::logic_error(std::string("kernel table: no choice named ") + name);
}

const KernelCall::View& KernelCall::Array(const char* name) const {
  for (const View& v : arrays_)
    if (std::string(v.name) == name) return v;
  throw std::logic_error(std::string("kernel table: no array named ") + name);
}

// "tokens·heads·headDim", "tokens·headDim/2"
double KernelCall::Formula(const std::string& formula) const {
  static const std::string kDot = "·";
  double product = 1;
  size_t start = 0;
  while (true) {
    const size_t end = formula.find(kDot, start);
    std::string factor = formula.substr(start, end == std::string::npos ? std::string::npos : end - start);
    const bool halved = factor.size() > 2 && factor.compare(factor.size() - 2, 2, "/2") == 0;
    if (halved) factor.resize(factor.size() - 2);
    const double value = Number(factor.c_str());
    product *= halved ? std::floor(value / 2) : value;
    if (end == std::string::npos) return product;
    start = end + kDot.size();
  }
}

void KernelCall::CheckFields(const std::vector<ArgSpec>& args) const {
  for (const ArgSpec& a : args) {
    for (const DimField& f : a.fields) {
      const double x = Number(f.name);
      const std::string name = std::string(a.name) + "." + f.name;
      if (f.kind == DimField::Kind::kPositiveInt && !(x > 0))
        throw std::invalid_argument(name + " must be positive, got " + std::to_string(static_cast<int>(x)));
      if (f.kind == DimField::Kind::kPositiveNumber && !(x > 0))
        throw std::invalid_argument(name + " must be positive, got " + std::to_string(x));
    }
  }
}

void KernelCall::CheckLengths(const std::vector<ArgSpec>& args) const {
  const View* first = nullptr;
  for (const View& v : arrays_) {
    const ArgSpec* spec = nullptr;
    for (const ArgSpec& a : args)
      if (a.kind == ArgSpec::Kind::kArray && std::string(a.name) == v.name) spec = &a;
    if (first == nullptr) first = &v;
    if (v.data == nullptr || spec == nullptr || spec->length[0] == '\0') continue;
    const bool same = std::string(spec->length) == kSameLength;
    const double expected = same ? static_cast<double>(first->length) : Formula(spec->length);
    if (static_cast<double>(v.length) != expected)
      throw std::invalid_argument(std::string(v.name) + " has " + std::to_string(v.length) +
                                  " elements, expected " + spec->length + " = " +
                                  std::to_string(static_cast<int64_t>(expected)));
  }
}

namespace {

Napi::Value ResultToJs(Napi::Env env, KernelResult& r) {
  switch (r.kind) {
    case KernelResult::Kind::kNumber:
      return Napi::Number::New(env, r.number);
    case KernelResult::Kind::kObject: {
      Napi::Object out = Napi::Object::New(env);
      for (auto& [name, value] : r.fields) out.Set(name, value);
      return out;
    }
    default:
      return env.Undefined();
  }
}

Napi::Value CallRow(const Napi::CallbackInfo& info, const KernelBinding& row) {
  auto call = std::make_shared<KernelCall>(info, row.args);
  return RunAsync<KernelResult>(
      info.Env(),
      [call, &row](const ReportProgress&) {
        call->CheckFields(row.args);
        if (row.validate) row.validate(*call);
        call->CheckLengths(row.args);
        return row.run(*call);
      },
      // The call (and its pins) goes with the worker, on the main thread.
      [call](Napi::Env env, KernelResult& r) { return ResultToJs(env, r); });
}

}  // namespace

void RegisterKernelTable(Napi::Env env, Napi::Object exports, const std::vector<KernelBinding>& table) {
  for (const KernelBinding& row : table) {
    exports.Set(row.name,
                Napi::Function::New(
                    env, [&row](const Napi::CallbackInfo& info) { return CallRow(info, row); }, row.name));
  }
}

}  // namespace longctx::addon
