# Cross-compiling for aarch64 Linux (Jetson Orin's Cortex-A78AE) with Debian's
# g++-aarch64-linux-gnu.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# Two roots: the cross toolchain's sysroot, and / for the arm64 packages Debian multiarch installs
# under /usr/lib/aarch64-linux-gnu (libgtest-dev:arm64's GTestConfig.cmake). The library
# architecture keeps the amd64 copies in /usr/lib/x86_64-linux-gnu out of every search.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# pkg-config must find the arm64 libraries (Debian multiarch: libpcre2-dev:arm64).
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
# ctest runs the aarch64 test programs under user-mode emulation (Debian qemu-user). qemu's
# default CPU ("max") has the fp16 and dotprod extensions the NEON kernels are built for.
# The loader and libc must come from one glibc build: with Debian's arm64 libc6 installed
# (multiarch, a dependency of libpcre2-dev:arm64) qemu runs the program as is, because
# `-L /usr/aarch64-linux-gnu` would pair the cross sysroot's ld.so with the multiarch libc.so.6
# (found first through ld.so.cache) and threaded programs then hang in pthread_create.
find_program(MOMENTKV_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
if(MOMENTKV_QEMU_AARCH64)
  if(EXISTS /lib/ld-linux-aarch64.so.1)
    set(CMAKE_CROSSCOMPILING_EMULATOR ${MOMENTKV_QEMU_AARCH64})
  else()
    set(CMAKE_CROSSCOMPILING_EMULATOR ${MOMENTKV_QEMU_AARCH64} -L /usr/aarch64-linux-gnu)
  endif()
endif()
