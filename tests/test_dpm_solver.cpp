#include <catch2/catch.hpp>
// PLACEHOLDER: replaced by the real tests before this lands.
