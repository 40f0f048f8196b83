# Writes OUT, a one-line C header defining LCSM_BENCH_COMMIT: FIXED when given,
# else `git describe` of SRC (with -dirty), else "unknown". Run at every build
# (bench/CMakeLists.txt) and rewritten only when the text changes, so a commit
# refreshes what lcsm-bench reports without re-running CMake, and an unchanged
# one rebuilds nothing.
set(commit "${FIXED}")
if(NOT commit AND GIT)
  execute_process(COMMAND ${GIT} describe --always --dirty --abbrev=12 WORKING_DIRECTORY ${SRC}
                  OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    set(commit "")
  endif()
endif()
if(NOT commit)
  set(commit "unknown")
endif()
set(text "#define LCSM_BENCH_COMMIT \"${commit}\"\n")
set(old "")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT old STREQUAL text)
  file(WRITE ${OUT} "${text}")
endif()
