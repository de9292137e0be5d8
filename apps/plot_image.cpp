// Image grids written directly as PNG with stb_image_write (apps/plot.hpp).
#include <stb/stb_image_write.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "apps/plot_detail.hpp"

namespace sdekit {

using namespace plot_detail;

// ------------------------------------------------------------------------------------------

void write_image_grid_png(const std::string& png_path, const at::Tensor& images, int columns,
                          int padding, double lo, double hi) {
  const bool shape_ok = images.defined() && images.dim() == 4 && images.size(0) >= 1 &&
                        (images.size(1) == 1 || images.size(1) == 3) && images.size(2) >= 1 &&
                        images.size(3) >= 1;
  if (!shape_ok)
    throw std::invalid_argument(
        "write_image_grid_png: images must have shape [n, C, H, W] with n, H, W >= 1 and C = 1 "
        "or 3, got " +
        (images.defined() ? shape_str(images.sizes()) : std::string("an undefined tensor")));
  if (images.is_complex())
    throw std::invalid_argument("write_image_grid_png: images must be real, got complex");
  if (columns < 0 || padding < 0)
    throw std::invalid_argument("write_image_grid_png: columns and padding must be >= 0, got " +
                                std::to_string(columns) + " and " + std::to_string(padding));
  if (!std::isfinite(lo) || !std::isfinite(hi) || !(lo < hi))
    throw std::invalid_argument("write_image_grid_png: need finite lo < hi, got " + num(lo) + ", " +
                                num(hi));

  const at::Tensor img = images.detach().to(at::kCPU, at::kDouble).contiguous();
  if (at::isnan(img).any().item<bool>())
    throw std::invalid_argument("write_image_grid_png: images contain NaN");
  const int64_t n = img.size(0), C = img.size(1), H = img.size(2), W = img.size(3);
  int64_t cols =
      columns == 0 ? static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n)))) : columns;
  cols = std::clamp<int64_t>(cols, 1, n);
  const int64_t rows = (n + cols - 1) / cols;
  const int64_t width = cols * W + (cols - 1) * padding;
  const int64_t height = rows * H + (rows - 1) * padding;
  if (width > INT_MAX / C || height > INT_MAX / (width * C))
    throw std::invalid_argument("write_image_grid_png: a " + std::to_string(width) + " x " +
                                std::to_string(height) + " image is too large");

  std::vector<unsigned char> pixels(static_cast<size_t>(width * height * C), 255);
  const double* v = img.data_ptr<double>();
  const double scale = 255.0 / (hi - lo);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t top = (k / cols) * (H + padding), left = (k % cols) * (W + padding);
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) {
          const double t = std::floor((v[((k * C + c) * H + y) * W + x] - lo) * scale + 0.5);
          pixels[static_cast<size_t>(((top + y) * width + left + x) * C + c)] =
              static_cast<unsigned char>(std::clamp(t, 0.0, 255.0));
        }
  }

  const fs::path path(png_path);
  if (png_path.empty()) throw std::invalid_argument("write_image_grid_png: the path is empty");
  if (path.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    if (ec) throw std::runtime_error("cannot write " + png_path + ": " + ec.message());
  }
  const int ok = stbi_write_png(png_path.c_str(), static_cast<int>(width), static_cast<int>(height),
                                static_cast<int>(C), pixels.data(), static_cast<int>(width * C));
  if (!ok) throw std::runtime_error("cannot write " + png_path);
}

void write_image_grid_png(const std::string& png_path, const at::Tensor& rows,
                          const std::vector<int64_t>& image_shape, int columns, int padding,
                          double lo, double hi) {
  const bool shape_ok =
      (image_shape.size() == 2 || image_shape.size() == 3) &&
      std::all_of(image_shape.begin(), image_shape.end(), [](int64_t d) { return d >= 1; }) &&
      (image_shape.size() == 2 || image_shape[0] == 1 || image_shape[0] == 3);
  if (!shape_ok)
    throw std::invalid_argument(
        "write_image_grid_png: image_shape must be {C, H, W} with C = 1 or 3, or {H, W}, got " +
        shape_str(image_shape));
  int64_t size = 1;
  for (int64_t d : image_shape) size *= d;
  if (!rows.defined() || rows.dim() != 2 || rows.size(0) < 1 || rows.size(1) != size)
    throw std::invalid_argument(
        "write_image_grid_png: rows must have shape [n, " + std::to_string(size) +
        "] for image_shape " + shape_str(image_shape) + ", got " +
        (rows.defined() ? shape_str(rows.sizes()) : std::string("an undefined tensor")));
  std::vector<int64_t> shape{rows.size(0)};
  if (image_shape.size() == 2) shape.push_back(1);
  shape.insert(shape.end(), image_shape.begin(), image_shape.end());
  write_image_grid_png(png_path, rows.reshape(shape), columns, padding, lo, hi);
}

}  // namespace sdekit
