# Compiles SNIPPET, which must fail, with a message matching its "// expect: <regex>" line.
file(STRINGS ${SNIPPET} expect_lines REGEX "^// expect: ")
if(NOT expect_lines)
  message(FATAL_ERROR "${SNIPPET}: no '// expect: <regex>' line")
endif()
list(GET expect_lines 0 expect_line)
string(REGEX REPLACE "^// expect: " "" expected "${expect_line}")
execute_process(COMMAND ${CXX} -std=c++20 -fsyntax-only -I${INCLUDE} ${SNIPPET}
                RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
if(result EQUAL 0)
  message(FATAL_ERROR "${SNIPPET} compiled, but it must not")
endif()
if(NOT output MATCHES "${expected}")
  string(SUBSTRING "${output}" 0 3000 excerpt)
  message(FATAL_ERROR "${SNIPPET} failed to compile, but without the expected message\n"
                      "  expected: ${expected}\n  compiler said:\n${excerpt}")
endif()
message(STATUS "failed to compile, as expected: ${expected}")
