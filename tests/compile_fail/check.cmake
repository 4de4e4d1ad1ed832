# Compiles SNIPPET with every compiler in COMPILERS (g++ and clang++ where both are
# installed). Each must refuse it with exactly one error, whose text matches the snippet's
# "// expect: <regex>" line: the policy's own message, and no cascade after it.
file(STRINGS ${SNIPPET} expect_lines REGEX "^// expect: ")
if(NOT expect_lines)
  message(FATAL_ERROR "${SNIPPET}: no '// expect: <regex>' line")
endif()
list(GET expect_lines 0 expect_line)
string(REGEX REPLACE "^// expect: " "" expected "${expect_line}")
string(REPLACE "," ";" compilers "${COMPILERS}")
foreach(cxx IN LISTS compilers)
  execute_process(COMMAND ${cxx} -std=c++20 -fsyntax-only -I${INCLUDE} ${SNIPPET}
                  RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
  if(result EQUAL 0)
    message(FATAL_ERROR "${SNIPPET} compiled with ${cxx}, but it must not")
  endif()
  string(SUBSTRING "${output}" 0 3000 excerpt)
  if(NOT output MATCHES "${expected}")
    message(FATAL_ERROR "${SNIPPET} failed to compile with ${cxx}, but without the expected "
                        "message\n  expected: ${expected}\n  compiler said:\n${excerpt}")
  endif()
  string(REGEX MATCHALL "error: " errors "${output}")
  list(LENGTH errors error_count)
  if(NOT error_count EQUAL 1)
    message(FATAL_ERROR "${SNIPPET}: ${cxx} gave ${error_count} errors, not the one expected\n"
                        "  compiler said:\n${excerpt}")
  endif()
  message(STATUS "${cxx}: one error, as expected: ${expected}")
endforeach()
