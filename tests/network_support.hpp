#pragma once
// Helpers shared by the tests of trained networks (training and distillation).
#include <ATen/ATen.h>

#include "networks/network.hpp"

namespace sdekit::test {

/// Whether two networks hold bit-identical parameters (same count, shapes and values).
inline bool same_parameters(const Network& a, const Network& b) {
  const auto pa = a.parameters(), pb = b.parameters();
  if (pa.size() != pb.size()) return false;
  for (size_t i = 0; i < pa.size(); ++i)
    if (!at::equal(pa[i], pb[i])) return false;
  return true;
}

}  // namespace sdekit::test
