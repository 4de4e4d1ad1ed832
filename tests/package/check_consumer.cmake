# Builds and runs the consumer project (tests/package/consumer) the way MODE says, in WORK:
#   find_package      cmake --install the kvc build tree BUILD into WORK/prefix, then
#                     find_package(kvc) against it (checking what was installed)
#   add_subdirectory  add_subdirectory(SOURCE)
#   fetchcontent      FetchContent from the git checkout SOURCE, at its HEAD commit
#   pkg-config        install as for find_package, then CXX $(pkg-config --cflags kvc)
# CUDA=ON also builds the CUDA consumer (find_package(kvc COMPONENTS cuda)); the emulated
# CUDA consumer (kvc::cuda_emulated) is built and run in every CMake mode. VERSION is the
# version the consumer must report.
set(consumer ${SOURCE}/tests/package/consumer)
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE output
                  ERROR_VARIABLE output)
  if(NOT result EQUAL 0)
    string(JOIN " " command ${ARGN})
    message(FATAL_ERROR "failed (${result}): ${command}\n${output}")
  endif()
  set(output "${output}" PARENT_SCOPE)
endfunction()

function(expect_output program)
  run(${program})
  if(NOT output MATCHES "kvc consumer: llama3_8b 131072 bytes per token, 1 sequence\\(s\\); kvc ${VERSION}\n")
    message(FATAL_ERROR "${program} printed something else (kvc ${VERSION} expected):\n${output}")
  endif()
  message(STATUS "${program}: ${output}")
endfunction()

set(prefix ${WORK}/prefix)
if(MODE STREQUAL "find_package" OR MODE STREQUAL "pkg-config")
  run(${CMAKE_COMMAND} --install ${BUILD} --prefix ${prefix})
  foreach(installed include/kvc/kvc.hpp include/kvc/cache/kv_cache.hpp
                    include/kvc/backend/simt/cuda_runtime/cuda_runtime.h
                    share/cmake/kvc/kvcConfig.cmake share/cmake/kvc/kvcConfigVersion.cmake
                    share/cmake/kvc/kvcTargets.cmake share/pkgconfig/kvc.pc)
    if(NOT EXISTS ${prefix}/${installed})
      message(FATAL_ERROR "cmake --install did not install ${installed}")
    endif()
  endforeach()
endif()

if(MODE STREQUAL "pkg-config")
  set(ENV{PKG_CONFIG_PATH} ${prefix}/share/pkgconfig)
  run(${PKG_CONFIG} --cflags kvc)
  string(STRIP "${output}" cflags)
  separate_arguments(cflags UNIX_COMMAND "${cflags}")
  run(${CXX} ${cflags} ${consumer}/consumer.cpp -o ${WORK}/consumer)
  expect_output(${WORK}/consumer)
  return()
endif()

set(configure_args -S ${consumer} -B ${WORK}/build -DCMAKE_CXX_COMPILER=${CXX}
                   -DCMAKE_BUILD_TYPE=Release -DKVC_CONSUME=${MODE})
if(MODE STREQUAL "find_package")
  list(APPEND configure_args -DCMAKE_PREFIX_PATH=${prefix})
elseif(MODE STREQUAL "add_subdirectory")
  list(APPEND configure_args -DKVC_SOURCE=${SOURCE})
elseif(MODE STREQUAL "fetchcontent")
  execute_process(COMMAND git -C ${SOURCE} rev-parse HEAD RESULT_VARIABLE result
                  OUTPUT_VARIABLE head OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(NOT result EQUAL 0)
    message(STATUS "SKIPPED: ${SOURCE} is not a git checkout")
    return()
  endif()
  list(APPEND configure_args -DKVC_SOURCE=${SOURCE} -DKVC_GIT_TAG=${head})
endif()
if(CUDA)
  list(APPEND configure_args -DKVC_WITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=80)
endif()
run(${CMAKE_COMMAND} ${configure_args})
run(${CMAKE_COMMAND} --build ${WORK}/build -j2)
expect_output(${WORK}/build/consumer)
run(${WORK}/build/emulated_cuda_consumer)
if(NOT output MATCHES "kvc cuda consumer: a device cache, sequence of 0 tokens")
  message(FATAL_ERROR "the emulated CUDA consumer printed something else:\n${output}")
endif()
message(STATUS "emulated_cuda_consumer: ${output}")
if(CUDA)
  run(${WORK}/build/cuda_consumer)
  if(NOT output MATCHES "kvc cuda consumer: ")
    message(FATAL_ERROR "the CUDA consumer printed something else:\n${output}")
  endif()
  message(STATUS "cuda_consumer: ${output}")
endif()
