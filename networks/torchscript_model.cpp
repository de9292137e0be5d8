#include "networks/torchscript_model.hpp"

#include "networks/module_check.hpp"

#include <torch/script.h>

#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace sdekit {

namespace {

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::invalid_argument("TorchScript model '" + path + "': " + what);
}

at::Device parse_device(const std::string& path, const std::string& device) {
  at::Device d = at::kCPU;
  try {
    d = at::Device(device);
  } catch (const std::exception&) {
    fail(path, "unknown device '" + device + "'; valid: cpu, cuda, cuda:K");
  }
  if (d.is_cpu()) return d;
  if (!d.is_cuda()) fail(path, "unsupported device '" + device + "'; valid: cpu, cuda, cuda:K");
  if (!at::hasCUDA()) fail(path, "device '" + device + "' requested, but CUDA is not available");
  return d;
}

// The dtype of the module's first floating-point parameter or buffer; float32 if none.
at::ScalarType module_dtype(const torch::jit::Module& m) {
  for (const at::Tensor& p : m.parameters())
    if (p.is_floating_point()) return p.scalar_type();
  for (const at::Tensor& b : m.buffers())
    if (b.is_floating_point()) return b.scalar_type();
  return at::kFloat;
}

}  // namespace

struct TorchScriptModel::Impl {
  torch::jit::Module module;
};

TorchScriptModel::TorchScriptModel(std::string path, Param param, std::unique_ptr<Impl> impl)
    : path_(std::move(path)), param_(param), impl_(std::move(impl)) {}

TorchScriptModel::~TorchScriptModel() = default;

std::shared_ptr<TorchScriptModel> TorchScriptModel::load(const std::string& path, Param param,
                                                         const std::string& device,
                                                         int64_t num_classes) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) fail(path, "no such file");
  const at::Device dev = parse_device(path, device);

  auto impl = std::make_unique<Impl>();
  try {
    impl->module = torch::jit::load(path, dev);
  } catch (const std::exception& e) {
    fail(path, "cannot load a TorchScript module (" + brief_error(e) +
                   "; the file is truncated or corrupt, or not a TorchScript module)");
  }
  torch::jit::Module& m = impl->module;
  check_module_tensors(m, path, "TorchScript model '" + path + "'");
  m.eval();

  if (!m.find_method("forward"))
    fail(path, "expected a method forward(x, t) or forward(x, t, y), found none");
  const auto& args = m.get_method("forward").function().getSchema().arguments();
  std::vector<std::string> names;
  std::string got;
  bool all_tensors = true;
  for (size_t i = 1; i < args.size(); ++i) {
    names.push_back(args[i].name());
    if (!got.empty()) got += ", ";
    got += args[i].name();
    if (!args[i].type()->isSubtypeOf(*c10::OptionalType::ofTensor())) {
      all_tensors = false;
      got += ": " + args[i].type()->annotation_str();
    }
  }
  if (args.empty() || (names.size() != 2 && names.size() != 3) || !all_tensors)
    fail(path, "expected forward(x, t) or forward(x, t, y) with tensor arguments, got forward(" +
                   got + ")");

  const int arity = static_cast<int>(names.size());
  int64_t classes = -1;
  if (arity == 3) {
    if (m.hasattr("num_classes")) {
      const c10::IValue attr = m.attr("num_classes");
      if (!attr.isInt())
        fail(path, "expected the attribute num_classes to be an int, got " + attr.tagKind());
      classes = attr.toInt();
      if (num_classes >= 0 && num_classes != classes)
        fail(path, "num_classes " + std::to_string(num_classes) +
                       " given, but the module's attribute num_classes is " +
                       std::to_string(classes));
    } else if (num_classes < 0) {
      fail(path, "forward(" + got +
                     ") takes class labels: give the number of classes (num_classes) or "
                     "export the module with an int attribute num_classes");
    } else {
      classes = num_classes;
    }
    if (classes < 1) fail(path, "num_classes must be >= 1, got " + std::to_string(classes));
  } else if (num_classes >= 0) {
    fail(path, "num_classes " + std::to_string(num_classes) +
                   " given for an unconditional forward(" + got + ")");
  }

  const at::ScalarType dtype = module_dtype(m);
  std::shared_ptr<TorchScriptModel> model(new TorchScriptModel(path, param, std::move(impl)));
  model->arity_ = arity;
  model->arg_names_ = std::move(names);
  model->num_classes_ = classes;
  model->device_ = dev;
  model->dtype_ = dtype;
  return model;
}

int64_t TorchScriptModel::num_classes() const {
  if (!conditional())
    fail(path_, "forward(" + arg_names_[0] + ", " + arg_names_[1] +
                    ") is unconditional: it has no classes and takes no labels");
  return num_classes_;
}

at::Tensor TorchScriptModel::predict(const at::Tensor& x, const at::Tensor& t) {
  if (!conditional()) return call(x, t, nullptr);
  if (x.dim() < 1) fail(path_, "expected x [n, ...], got " + shape_str(x.sizes()));
  const at::Tensor null = at::full({x.size(0)}, num_classes_, x.options().dtype(at::kLong));
  return call(x, t, &null);
}

at::Tensor TorchScriptModel::predict(const at::Tensor& x, const at::Tensor& t,
                                     const at::Tensor& y) {
  num_classes();  // throws for an unconditional module
  return call(x, t, &y);
}

at::Tensor TorchScriptModel::predict_grad(const at::Tensor& x, const at::Tensor& t) {
  if (!conditional()) return call(x, t, nullptr, true);
  const at::Tensor null = at::full({x.size(0)}, num_classes_, x.options().dtype(at::kLong));
  return call(x, t, &null, true);
}

at::Tensor TorchScriptModel::predict_grad(const at::Tensor& x, const at::Tensor& t,
                                          const at::Tensor& y) {
  num_classes();
  return call(x, t, &y, true);
}

at::Tensor TorchScriptModel::call(const at::Tensor& x, const at::Tensor& t, const at::Tensor* y,
                                  bool grad) {
  if (x.dim() < 1 || x.size(0) < 1)
    fail(path_, "expected x [n, ...] with n >= 1, got " + shape_str(x.sizes()));
  if (!x.is_floating_point())
    fail(path_, std::string("expected floating-point x, got ") + at::toString(x.scalar_type()));
  const int64_t n = x.size(0);
  if (!(t.dim() == 1 && t.size(0) == n) && t.numel() != 1)
    fail(path_,
         "expected t [" + std::to_string(n) + "], one time per row, got " + shape_str(t.sizes()));
  if (y && !(y->dim() == 1 && y->size(0) == n))
    fail(path_, "expected labels y [" + std::to_string(n) + "], got " + shape_str(y->sizes()));

  c10::IValue out;
  {
    c10::InferenceMode guard(!grad);
    std::vector<c10::IValue> inputs;
    inputs.reserve(3);
    inputs.emplace_back(x.to(device_, dtype_));
    inputs.emplace_back(t.to(device_, dtype_).reshape({-1}).expand({n}));
    if (y) inputs.emplace_back(y->to(device_, at::kLong));
    try {
      out = impl_->module.forward(std::move(inputs));
    } catch (const std::exception& e) {
      fail(path_, "forward failed on x " + shape_str(x.sizes()) + " (" + brief_error(e) + ")");
    }
  }
  if (!out.isTensor())
    fail(path_, "expected forward to return a tensor shaped like x " + shape_str(x.sizes()) +
                    ", got " + out.tagKind());
  const at::Tensor pred = out.toTensor();
  if (pred.sizes() != x.sizes())
    fail(path_, "expected output shaped like x " + shape_str(x.sizes()) + ", got " +
                    shape_str(pred.sizes()));
  if (grad) return pred.to(x.device(), x.scalar_type());
  // Outside InferenceMode, so the copy is an ordinary tensor.
  return pred.to(x.device(), x.scalar_type(), /*non_blocking=*/false, /*copy=*/true);
}

}  // namespace sdekit
