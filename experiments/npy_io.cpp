#include "experiments/npy_io.hpp"

#include <fstream>
#include <stdexcept>
#include <xtensor/xadapt.hpp>
#include <xtensor/xnpy.hpp>

namespace sdekit {

at::Tensor read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument("cannot open .npy file '" + path + "'");
  // (npy_file is built directly: a default-constructed one frees an uninitialised pointer.)
  auto load = [&]() {
    try {
      return xt::detail::load_npy_file(in);
    } catch (const std::exception& e) {
      throw std::invalid_argument("'" + path + "' is not a valid .npy file: " + e.what());
    }
  };
  xt::detail::npy_file file = load();
  if (!in)
    throw std::invalid_argument("'" + path + "' is truncated: the header promises " +
                                std::to_string(file.m_n_bytes) + " bytes of data");
  at::ScalarType dtype;
  if (file.m_typestring == "<f8") {
    dtype = at::kDouble;
  } else if (file.m_typestring == "<f4") {
    dtype = at::kFloat;
  } else {
    throw std::invalid_argument("'" + path +
                                "': expected dtype float32 or float64 ('<f4' or '<f8'), got '" +
                                file.m_typestring + "'");
  }
  if (file.m_fortran_order)
    throw std::invalid_argument("'" + path +
                                "': Fortran-ordered arrays are not supported; save with "
                                "numpy.ascontiguousarray");
  std::vector<int64_t> shape(file.m_shape.begin(), file.m_shape.end());
  return at::from_blob(file.ptr(), shape, dtype).clone();
}

void write_npy(const std::string& path, const at::Tensor& x) {
  const at::Tensor c = x.detach().to(at::kCPU).contiguous();
  std::vector<size_t> shape(c.sizes().begin(), c.sizes().end());
  try {
    if (c.scalar_type() == at::kDouble) {
      xt::dump_npy(path, xt::adapt(c.data_ptr<double>(), static_cast<size_t>(c.numel()),
                                   xt::no_ownership(), shape));
    } else if (c.scalar_type() == at::kFloat) {
      xt::dump_npy(path, xt::adapt(c.data_ptr<float>(), static_cast<size_t>(c.numel()),
                                   xt::no_ownership(), shape));
    } else {
      throw std::invalid_argument("write_npy: only float32 and float64 tensors are written");
    }
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("cannot write .npy file '" + path + "': " + e.what());
  }
}

}  // namespace sdekit
