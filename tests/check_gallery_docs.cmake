# docs/gallery.md and docs/gallery.svg must be what kv_gallery prints now.
execute_process(COMMAND ${GALLERY} --markdown OUTPUT_FILE ${WORK}/gallery.md RESULT_VARIABLE md)
execute_process(COMMAND ${GALLERY} --svg ${WORK}/gallery.svg RESULT_VARIABLE svg)
if(NOT md EQUAL 0 OR NOT svg EQUAL 0)
  message(FATAL_ERROR "kv_gallery failed")
endif()
foreach(file gallery.md gallery.svg)
  execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${WORK}/${file} ${DOCS}/${file}
                  RESULT_VARIABLE differ)
  if(differ)
    message(FATAL_ERROR "docs/${file} is stale: regenerate it with\n"
                        "  build/examples/kv_gallery --markdown > docs/gallery.md\n"
                        "  build/examples/kv_gallery --svg docs/gallery.svg")
  endif()
endforeach()
