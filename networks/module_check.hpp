#pragma once
// Checks that the tensors of a loaded TorchScript module or torch::save archive fit the data
// their file holds. LibTorch's unpickler gives each storage the size the file's pickle declares
// and each tensor the sizes and strides it declares, without comparing them with the bytes the
// tensor records actually hold, so a file whose tensor data was cut short loads without complaint
// and is then read out of bounds by the first forward (or copy). Every loader of a user's file
// calls one of these before using what it loaded.
#include <exception>
#include <string>

namespace torch::jit {
struct Module;
}  // namespace torch::jit

namespace sdekit {

/// Every tensor reachable from `module`, loaded from the file `path`: its attributes (parameters,
/// buffers, tensor attributes) recursively, and the tensor constants in the code of its methods
/// and of its submodules'. Each must lie inside its storage, and each storage must be matched by
/// one tensor record of the file of exactly its declared size (the loader trusts the declared
/// size and copies only the bytes the record holds). Throws std::invalid_argument("WHAT: tensor
/// NAME ... (the file is truncated or corrupt)") for the first that does not hold, or for a
/// tensor in a layout other than strided.
void check_module_tensors(const torch::jit::Module& module, const std::string& path,
                          const std::string& what);

/// Loads the archive at `path` (a torch::save / OutputArchive file is a TorchScript module
/// underneath) on the CPU and checks it as above, before the caller reads it with
/// torch::serialize::InputArchive. Throws std::invalid_argument naming `what` when the file cannot
/// be loaded or a tensor does not fit.
void check_archive_file(const std::string& path, const std::string& what);

/// The cause of a LibTorch exception in one line: its message without the C++ backtrace, and of
/// an error raised inside TorchScript code the underlying error (the traceback's last line)
/// rather than the interpreter's banner.
std::string brief_error(const std::exception& e);

}  // namespace sdekit
