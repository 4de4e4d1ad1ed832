# Runs one documentation sample (SAMPLE) and, when the Markdown shows its output (EXPECTED,
# from a ```text output block), compares standard output with it exactly.
execute_process(COMMAND ${SAMPLE} OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NAME} exited with ${rc}\n--- stdout\n${out}--- stderr\n${err}")
endif()
if(EXPECTED)
  file(READ ${EXPECTED} want)
  if(NOT out STREQUAL want)
    message(FATAL_ERROR "${NAME} printed what its ```text output block does not show\n"
                        "--- the Markdown shows\n${want}--- the sample printed\n${out}")
  endif()
endif()
