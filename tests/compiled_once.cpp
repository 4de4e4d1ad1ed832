// The one translation unit of test_serving that defines kvc/backend/cpu/compiled.hpp's
// functions, as an engine's program would.
#include "kvc/backend/cpu/compiled_definitions.hpp"
