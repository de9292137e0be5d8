#include <catch2/catch.hpp>

#include "schedules/registry.hpp"

TEST_CASE("placeholder") { REQUIRE(sdekit::schedule_registry().size() == 6); }
