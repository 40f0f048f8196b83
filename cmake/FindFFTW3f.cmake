# FindFFTW3f: single-precision FFTW3 and its threads library.
# Debian's fftw3f.pc lacks the threads library and there is no CMake config, so:
# pkg-config (when present) for hints, then find_path/find_library.
# Defines FFTW3f_FOUND, FFTW3f_VERSION, and imported targets
#   FFTW3f::fftw3f          the library
#   FFTW3f::fftw3f_threads  its pthreads companion (when found)
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_FFTW3f QUIET fftw3f)
endif()
find_path(FFTW3f_INCLUDE_DIR fftw3.h HINTS ${PC_FFTW3f_INCLUDE_DIRS})
find_library(FFTW3f_LIBRARY NAMES fftw3f HINTS ${PC_FFTW3f_LIBRARY_DIRS})
find_library(FFTW3f_THREADS_LIBRARY NAMES fftw3f_threads HINTS ${PC_FFTW3f_LIBRARY_DIRS})
set(FFTW3f_VERSION "${PC_FFTW3f_VERSION}")
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(FFTW3f REQUIRED_VARS FFTW3f_LIBRARY FFTW3f_INCLUDE_DIR
                                  VERSION_VAR FFTW3f_VERSION)
if(FFTW3f_FOUND AND NOT TARGET FFTW3f::fftw3f)
  add_library(FFTW3f::fftw3f UNKNOWN IMPORTED)
  set_target_properties(FFTW3f::fftw3f PROPERTIES IMPORTED_LOCATION "${FFTW3f_LIBRARY}"
                        INTERFACE_INCLUDE_DIRECTORIES "${FFTW3f_INCLUDE_DIR}")
  if(FFTW3f_THREADS_LIBRARY)
    add_library(FFTW3f::fftw3f_threads UNKNOWN IMPORTED)
    set_target_properties(FFTW3f::fftw3f_threads PROPERTIES IMPORTED_LOCATION "${FFTW3f_THREADS_LIBRARY}"
                          INTERFACE_LINK_LIBRARIES FFTW3f::fftw3f)
  endif()
endif()
mark_as_advanced(FFTW3f_INCLUDE_DIR FFTW3f_LIBRARY FFTW3f_THREADS_LIBRARY)
