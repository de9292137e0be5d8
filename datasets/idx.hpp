#pragma once
// IDX files (the MNIST container format) and Fashion-MNIST (Xiao, Rasul and Vollgraf 2017) as
// installed by Debian's package dataset-fashion-mnist.
//
// An IDX file is a big-endian header followed by the raw elements in row-major order:
//   bytes 0-1: zero; byte 2: element type (0x08 = uint8); byte 3: number of dimensions d;
//   then d uint32 sizes; then prod(sizes) elements.
// Fashion-MNIST uses magic 0x00000803 for images [n, 28, 28] and 0x00000801 for labels [n].
// Files may be gzip-compressed (detected from the gzip signature 1f 8b, not the file name; a
// sequence of gzip members is read as one stream) or stored uncompressed.
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sdekit {

/// Reads a uint8 IDX file (magic 0x000008dd, 1 <= dd <= 8 dimensions) into a uint8 CPU tensor
/// with the file's shape. Throws std::invalid_argument naming the file and the problem: missing
/// or unreadable file, a name ending in ".gz" without the gzip signature, a corrupt or truncated
/// gzip stream, a bad magic number (expected vs got, in hex), a short header, or a data size that
/// differs from the header's (expected N bytes, got M).
at::Tensor read_idx(const std::string& path);
/// As above, and the magic number must equal `expected_magic` (e.g. 0x00000803).
at::Tensor read_idx(const std::string& path, uint32_t expected_magic);

/// Images and their class labels.
struct ImageDataset {
  at::Tensor images;  ///< [n, 1, rows, cols] float32 in [-1, 1]: byte / 127.5 - 1
  at::Tensor labels;  ///< [n] int64 class indices
};

/// $SDEKIT_FASHION_MNIST_DIR if set and non-empty, else /usr/share/datasets/fashion-mnist.
std::string default_fashion_mnist_dir();

/// The ten class names, indexed by label: T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal,
/// Shirt, Sneaker, Bag, Ankle boot.
const std::vector<std::string>& fashion_mnist_class_names();

/// Loads split "train" (60000 images) or "test" (10000) from `dir`, which holds
/// {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz (or the same names without ".gz"). Images are
/// [n, 1, 28, 28] float32 in [-1, 1], labels [n] int64 in 0..9. Throws std::invalid_argument for
/// an unknown split, missing files (naming the Debian package dataset-fashion-mnist), any error of
/// read_idx, images that are not 28 x 28, labels outside 0..9, or image and label counts that
/// differ.
ImageDataset load_fashion_mnist(const std::string& split,
                                const std::string& dir = default_fashion_mnist_dir());

}  // namespace sdekit
