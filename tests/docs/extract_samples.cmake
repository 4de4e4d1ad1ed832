# Extracts the C++ samples of the Markdown documentation into source files, so that every one
# of them is compiled (and, when it has a main, run) by the test suite.
#
#   kvc_extract_samples(<markdown> <name> <out_dir> <samples_var>)
#
# <markdown> is read; <name> is how the file is named in messages and tests (README.md,
# docs/policies.md). Every ```cpp block becomes <out_dir>/<id>_<n>.cpp and every ```cuda block
# <out_dir>/<id>_<n>.cu (n counts the file's ```cpp and ```cuda blocks from 1), starting with a
# #line directive, so that the compiler's messages name the Markdown file and its line. A ```text output block is the expected standard output of
# the ```cpp block before it, which must have a main; it is written to <id>_<n>.expected.
#
# <samples_var> receives one entry per sample, "<n>|<source>|<has_main>|<expected or empty>|<line>".
#
# The rules, each a configure error naming the file and line:
# - every fenced block names its language (a block that is not C++ says so: ```text, ```sh);
# - C++ is spelled ```cpp (not c++, cxx or cc), so that nothing written in C++ escapes;
# - fences start at the beginning of their line (an indented block is not extracted).
# A file is rewritten only when its contents change, so that a reconfigure rebuilds nothing.

function(kvc_write_if_changed path content)
  if(EXISTS "${path}")
    file(READ "${path}" old)
    if(old STREQUAL content)
      return()
    endif()
  endif()
  file(WRITE "${path}" "${content}")
endfunction()

# The 1-based line of character `offset` of `text`.
function(kvc_line_at text offset out)
  string(SUBSTRING "${text}" 0 ${offset} before)
  string(REGEX REPLACE "[^\n]" "" newlines "${before}")
  string(LENGTH "${newlines}" count)
  math(EXPR line "${count} + 1")
  set(${out} ${line} PARENT_SCOPE)
endfunction()

function(kvc_extract_samples markdown name out_dir samples_var)
  file(READ "${markdown}" text)
  string(MAKE_C_IDENTIFIER "${name}" id)
  string(REGEX MATCH "\n[ \t]+```" indented "\n${text}")
  if(indented)
    string(FIND "\n${text}" "${indented}" at)
    kvc_line_at("${text}" ${at} line)
    message(FATAL_ERROR "${name}:${line}: an indented code fence; start fences at the beginning "
                        "of the line, so that the sample is compiled by tests/docs")
  endif()

  set(samples "")
  set(count 0)
  set(previous_main "")   # the last ```cpp block with a main, until another fence comes
  set(offset 0)           # where `rest` starts in `text`
  set(rest "${text}")
  while(TRUE)
    # The next opening fence: ``` at the start of a line.
    if(offset EQUAL 0 AND rest MATCHES "^```")
      set(at 0)
    else()
      string(FIND "${rest}" "\n```" at)
      if(at EQUAL -1)
        break()
      endif()
      math(EXPR at "${at} + 1")
    endif()
    math(EXPR fence_start "${offset} + ${at}")
    kvc_line_at("${text}" ${fence_start} line)
    string(SUBSTRING "${rest}" ${at} -1 rest)
    string(FIND "${rest}" "\n" eol)
    if(eol EQUAL -1)
      message(FATAL_ERROR "${name}:${line}: a code fence that is never closed")
    endif()
    math(EXPR info_length "${eol} - 3")
    string(SUBSTRING "${rest}" 3 ${info_length} info)
    string(STRIP "${info}" info)
    math(EXPR body_start "${eol} + 1")
    string(SUBSTRING "${rest}" ${body_start} -1 rest)
    math(EXPR offset "${fence_start} + ${body_start}")
    # The closing fence: ``` alone on its line.
    if(rest MATCHES "^```")
      set(close 0)
      set(body "")
    else()
      string(FIND "${rest}" "\n```" close)
      if(close EQUAL -1)
        message(FATAL_ERROR "${name}:${line}: a code fence that is never closed")
      endif()
      math(EXPR body_length "${close} + 1")
      string(SUBSTRING "${rest}" 0 ${body_length} body)
      math(EXPR close "${close} + 1")
    endif()
    string(SUBSTRING "${rest}" ${close} -1 rest)
    string(FIND "${rest}" "\n" close_eol)
    if(close_eol EQUAL -1)
      string(LENGTH "${rest}" close_eol)
    endif()
    string(SUBSTRING "${rest}" 0 ${close_eol} closing)
    string(STRIP "${closing}" closing)
    if(NOT closing STREQUAL "```")
      message(FATAL_ERROR "${name}:${line}: the block is closed by '${closing}', not by a "
                          "line of ```")
    endif()
    math(EXPR offset "${offset} + ${close}")

    if(info STREQUAL "")
      message(FATAL_ERROR "${name}:${line}: a code block without a language; C++ is ```cpp "
                          "(compiled by tests/docs), anything else names its own (```text, ```sh)")
    endif()
    string(REGEX MATCH "^[^ \t]+" language "${info}")
    string(TOLOWER "${language}" lower)
    if(lower MATCHES "^(c\\+\\+|cxx|cc|hpp|h\\+\\+)$")
      message(FATAL_ERROR "${name}:${line}: C++ is fenced as ```cpp, so that tests/docs "
                          "compiles it")
    endif()

    if(language STREQUAL "cpp" OR language STREQUAL "cuda")
      math(EXPR count "${count} + 1")
      set(extension cpp)
      if(language STREQUAL "cuda")
        set(extension cu)
      endif()
      set(source "${out_dir}/${id}_${count}.${extension}")
      math(EXPR first_line "${line} + 1")
      string(CONCAT content
        "// Extracted by tests/docs/extract_samples.cmake from ${name}; edit the Markdown.\n"
        "#line ${first_line} \"${name}\"\n${body}")
      kvc_write_if_changed("${source}" "${content}")
      set(has_main 0)
      if(body MATCHES "(^|\n)int main\\(")
        set(has_main 1)
      endif()
      list(APPEND samples "${count}|${source}|${has_main}||${line}")
      if(has_main)
        set(previous_main ${count})
      else()
        set(previous_main "")
      endif()
    elseif(info STREQUAL "text output")
      if(previous_main STREQUAL "")
        message(FATAL_ERROR "${name}:${line}: a ```text output block follows no ```cpp "
                            "or ```cuda block with a main")
      endif()
      set(expected "${out_dir}/${id}_${previous_main}.expected")
      kvc_write_if_changed("${expected}" "${body}")
      list(POP_BACK samples last)
      string(REPLACE "||" "|${expected}|" last "${last}")
      list(APPEND samples "${last}")
      set(previous_main "")
    else()
      set(previous_main "")
    endif()
  endwhile()
  # Samples of an older version of the page (a block removed since) go.
  set(written "")
  foreach(sample IN LISTS samples)
    string(REPLACE "|" ";" fields "${sample}")
    list(GET fields 1 source)
    list(GET fields 3 expected)
    list(APPEND written "${source}" "${expected}")
  endforeach()
  file(GLOB existing "${out_dir}/${id}_[0-9]*.cpp" "${out_dir}/${id}_[0-9]*.cu"
       "${out_dir}/${id}_[0-9]*.expected")
  foreach(file IN LISTS existing)
    if(NOT file IN_LIST written)
      file(REMOVE "${file}")
    endif()
  endforeach()
  set(${samples_var} "${samples}" PARENT_SCOPE)
endfunction()
