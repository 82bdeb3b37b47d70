# Install layout and the Debian package. Included at the end of the top-level CMakeLists.txt,
# after the prefix defaults to /usr (what a distribution package and the units expect).
#
#   cmake --install build                       # /usr/bin, /usr/lib/systemd/system, /etc/momentkv
#   DESTDIR=/tmp/stage cmake --install build     # the same tree under /tmp/stage
#   (cd build && cpack -G DEB)                   # momentkv_<version>-1_<arch>.deb
#
# What goes where (prefix /usr):
#   /usr/bin/momentkvd, /usr/bin/momentkv
#   /usr/lib/systemd/system/momentkvd.service, momentkvd.socket
#   /usr/lib/sysusers.d/momentkv.conf, /usr/lib/tmpfiles.d/momentkv.conf
#   /etc/momentkv/momentkvd.toml                 (a conffile in the .deb)
#   /usr/share/momentkv/configs/*.toml           (board profiles, and the default for reference)
#   /usr/share/momentkv/systemd/jetson-gpu.conf  (drop-in: the Tegra GPU's device nodes)
#   /usr/share/man/man8/momentkvd.8.gz, man1/momentkv.1.gz, /usr/share/doc/momentkv/
include(GNUInstallDirs)

set(MOMENTKV_SYSTEMD_DIR "lib/systemd/system" CACHE STRING
    "systemd system unit directory (relative: under the prefix)")
set(MOMENTKV_SYSUSERS_DIR "lib/sysusers.d" CACHE STRING "sysusers.d directory")
set(MOMENTKV_TMPFILES_DIR "lib/tmpfiles.d" CACHE STRING "tmpfiles.d directory")
set(MOMENTKV_CONFIG_DIR "${CMAKE_INSTALL_FULL_SYSCONFDIR}/momentkv")

# The service names the binary and the configuration by absolute path; systemd/momentkvd.service
# says /usr/bin and /etc. Another prefix gets a copy that names its own.
set(unit_src ${CMAKE_SOURCE_DIR}/systemd/momentkvd.service)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${unit_src})
file(READ ${unit_src} unit_text)
string(REPLACE "/usr/bin/momentkvd" "${CMAKE_INSTALL_FULL_BINDIR}/momentkvd" unit_text
               "${unit_text}")
string(REPLACE "/etc/momentkv/" "${MOMENTKV_CONFIG_DIR}/" unit_text "${unit_text}")
file(CONFIGURE OUTPUT ${CMAKE_BINARY_DIR}/systemd/momentkvd.service CONTENT "${unit_text}" @ONLY)

install(FILES ${CMAKE_BINARY_DIR}/systemd/momentkvd.service systemd/momentkvd.socket
        DESTINATION ${MOMENTKV_SYSTEMD_DIR})
install(FILES systemd/momentkv.sysusers.conf DESTINATION ${MOMENTKV_SYSUSERS_DIR}
        RENAME momentkv.conf)
install(FILES systemd/momentkv.tmpfiles.conf DESTINATION ${MOMENTKV_TMPFILES_DIR}
        RENAME momentkv.conf)
install(FILES configs/momentkvd.toml DESTINATION ${MOMENTKV_CONFIG_DIR})
file(GLOB config_profiles CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/configs/*.toml)
install(FILES ${config_profiles} DESTINATION ${CMAKE_INSTALL_DATADIR}/momentkv/configs)
install(FILES systemd/jetson-gpu.conf DESTINATION ${CMAKE_INSTALL_DATADIR}/momentkv/systemd)
install(FILES README.md docs/protocol.md DESTINATION ${CMAKE_INSTALL_DOCDIR})

# Man pages, gzipped as Debian installs them (-n: no name or time stamp, reproducible).
set(man_pages docs/man/momentkvd.8)
if(TARGET momentkv)
  list(APPEND man_pages docs/man/momentkv.1)
endif()
set(man_outputs "")
foreach(page ${man_pages})
  get_filename_component(name ${page} NAME)
  string(REGEX MATCH "[0-9]$" section "${name}")
  set(out ${CMAKE_BINARY_DIR}/man/${name}.gz)
  add_custom_command(OUTPUT ${out}
                     COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
                     COMMAND gzip -9 -n -c ${CMAKE_SOURCE_DIR}/${page} > ${out}
                     DEPENDS ${CMAKE_SOURCE_DIR}/${page} VERBATIM)
  install(FILES ${out} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
  list(APPEND man_outputs ${out})
endforeach()
add_custom_target(momentkv_man_pages ALL DEPENDS ${man_outputs})

# ---- the .deb ----
# Dependencies: dpkg-shlibdeps reads them off the binaries (libc6, libstdc++6, libgcc-s1,
# libpcre2-8-0, libsqlite3-0, …) when dpkg-dev is installed; else the list below, which is what
# it finds on Debian 12. The maintainer scripts create the user with systemd-sysusers (provided
# by systemd) or adduser.
set(CPACK_PACKAGE_NAME momentkv)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR momentkv)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "on-device LLM inference daemon with a compressed (Moment-KV) KV cache")
set(CPACK_PACKAGE_DESCRIPTION
    "momentkvd serves quantized llama/qwen2 GGUF models on the CPU to local clients over an\n\
OpenAI-compatible HTTP API on a Unix socket, under a strict memory budget kept by\n\
compressing the KV cache of generated tokens (Moment-KV). It runs as a hardened systemd\n\
service (Type=notify, socket activation, watchdog). The momentkv command runs models\n\
in-process, evaluates KV policies and talks to the daemon.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_GENERATOR DEB)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(MOMENTKV_DEB_MAINTAINER "momentkv maintainers <root@localhost>" CACHE STRING
    "Maintainer field of the .deb")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${MOMENTKV_DEB_MAINTAINER}")
if(CMAKE_CROSSCOMPILING AND MOMENTKV_ARCH STREQUAL "aarch64")
  set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE arm64)
endif()
find_program(MOMENTKV_DPKG_SHLIBDEPS dpkg-shlibdeps)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd-sysusers | adduser")
if(MOMENTKV_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)  # appended to the list above
else()
  string(APPEND CPACK_DEBIAN_PACKAGE_DEPENDS
         ", libc6 (>= 2.34), libgcc-s1 (>= 3.3.1), libstdc++6 (>= 12), libpcre2-8-0 (>= 10.32)")
  if(TARGET momentkv_telemetry)
    string(APPEND CPACK_DEBIAN_PACKAGE_DEPENDS ", libsqlite3-0 (>= 3.7.15)")
  endif()
endif()
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "sqlite3")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "${CPACK_PACKAGE_DESCRIPTION}")
# /etc/momentkv/momentkvd.toml is a conffile: an operator's edits survive upgrades.
file(CONFIGURE OUTPUT ${CMAKE_BINARY_DIR}/packaging/conffiles
     CONTENT "${MOMENTKV_CONFIG_DIR}/momentkvd.toml\n" @ONLY)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_BINARY_DIR}/packaging/conffiles ${CMAKE_SOURCE_DIR}/packaging/debian/postinst
    ${CMAKE_SOURCE_DIR}/packaging/debian/prerm ${CMAKE_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
