// Force-included before every test source: LibTorch pulls in glog, whose CHECK macro aborts
// the process. Including it first and dropping that macro lets Catch2 define CHECK.
#pragma once
#include <ATen/ATen.h>
#undef CHECK
