// The one translation unit that compiles kvc's CPU decode and extend kernels for a program
// whose other units include kvc/backend/cpu/compiled.hpp.
#include "kvc/backend/cpu/compiled_definitions.hpp"
