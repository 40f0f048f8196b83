# Turns the OpenCL sources into one C array (cmake -P; OUT and SOURCES set by the
# caller), so the library carries its kernels and needs no files at run time.
# Bytes, not a string literal: no escaping, no compiler limit on literal length.
set(all "")
foreach(src ${SOURCES})
  file(READ "${src}" text HEX)
  string(APPEND all "${text}")
  string(APPEND all "0a") # newline between files
endforeach()
string(LENGTH "${all}" hexlen)
math(EXPR n "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${all}")
string(REGEX REPLACE "((0x..,){24})" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}.tmp" "/* Generated from the .cl files of cl/ by cmake/embed_cl.cmake; do not edit. */\n#include <stddef.h>\n"
     "const char lcsm_cl_kernels[] = {\n${bytes}0x00};\nconst size_t lcsm_cl_kernels_len = ${n};\n")
file(RENAME "${OUT}.tmp" "${OUT}")
