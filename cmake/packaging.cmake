# Installation layout and the Debian package (docs/PACKAGING.md).
#
#   cmake -S . -B build && cmake --build build
#   cmake --install build                  # as root: /usr, /etc, /lib/systemd/system
#   DESTDIR=/tmp/root cmake --install build   # staged
#   (cd build && cpack -G DEB)             # build/xdpfw_VERSION_ARCH.deb
#
# The prefix is /usr unless given: the shipped config and unit name
# /usr/lib/xdpfw/libxdpfw.so and /usr/sbin/xdpfw-host. The targets install
# themselves (host/, ctl/, plugin/: sbin, lib/xdpfw, include/xdpfw, under
# the prefix); the rest is here. The config, the logrotate file and the unit
# have absolute destinations, /etc and /lib/systemd/system (Debian 12's
# systemdsystemunitdir), whatever the prefix (DESTDIR stages them too), as
# the unit and the config name them; the .deb is built with the prefix /usr
# whatever this build's prefix is (CPACK_PACKAGING_INSTALL_PREFIX).
if(CMAKE_INSTALL_PREFIX_INITIALIZED_TO_DEFAULT)
  set(CMAKE_INSTALL_PREFIX /usr CACHE PATH "Install prefix" FORCE)
endif()
include(GNUInstallDirs)

set(XDPFW_CONFDIR /etc/xdpfw)
set(XDPFW_LOGROTATEDIR /etc/logrotate.d)
set(XDPFW_UNITDIR /lib/systemd/system)
set(XDPFW_DOCDIR ${CMAKE_INSTALL_DATADIR}/doc/xdpfw)

# Config: the agent's file and an empty, commented rules file (conffiles in
# the package: dpkg keeps the administrator's changes across upgrades).
install(FILES conf/xdpfw.conf conf/rules.conf DESTINATION ${XDPFW_CONFDIR})
install(FILES conf/xdpfw.logrotate DESTINATION ${XDPFW_LOGROTATEDIR} RENAME xdpfw)
install(FILES conf/xdpfw.service DESTINATION ${XDPFW_UNITDIR})
install(FILES packaging/xdpfw-ctl.bash-completion
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME xdpfw-ctl)

# Documentation: README, docs/*.md, the example rules, copyright, and the
# changelog and man pages compressed as Debian wants them (gzip -9n: no
# name or time stamp in the file, so the package is reproducible).
file(GLOB xdpfw_docs ${PROJECT_SOURCE_DIR}/docs/*.md)
install(FILES README.md ${xdpfw_docs} packaging/deb/copyright DESTINATION ${XDPFW_DOCDIR})
install(FILES conf/rules.example conf/recipes/host-firewall.rules DESTINATION ${XDPFW_DOCDIR}/examples)
install(FILES conf/fail2ban/action.d/xdpfw.conf DESTINATION ${XDPFW_DOCDIR}/examples/fail2ban)

find_program(GZIP_PROGRAM gzip REQUIRED)
set(xdpfw_gz_files)
function(xdpfw_gzip source output)
  add_custom_command(OUTPUT ${output}
                     COMMAND ${GZIP_PROGRAM} -9nc ${source} > ${output}
                     DEPENDS ${source}
                     COMMENT "gzip ${source}")
  set(xdpfw_gz_files ${xdpfw_gz_files} ${output} PARENT_SCOPE)
endfunction()
set(xdpfw_pkg_out ${PROJECT_BINARY_DIR}/packaging)
file(MAKE_DIRECTORY ${xdpfw_pkg_out}/man)
xdpfw_gzip(${PROJECT_SOURCE_DIR}/packaging/deb/changelog ${xdpfw_pkg_out}/changelog.gz)
foreach(page xdpfw-host.8 xdpfw-ctl.8 xdpfw.conf.5)
  xdpfw_gzip(${PROJECT_SOURCE_DIR}/docs/man/${page} ${xdpfw_pkg_out}/man/${page}.gz)
  string(REGEX REPLACE ".*\\." "" section ${page})
  install(FILES ${xdpfw_pkg_out}/man/${page}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()
add_custom_target(xdpfw_packaging_files ALL DEPENDS ${xdpfw_gz_files})
install(FILES ${xdpfw_pkg_out}/changelog.gz DESTINATION ${XDPFW_DOCDIR})

# The .deb. Depends: from the binaries' libraries (dpkg-shlibdeps), plus
# adduser (postinst: addgroup). Maintainer scripts: packaging/deb.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME xdpfw)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "xdpfw maintainers <maintainers@users.noreply.r-seed-394faef8.example>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "XDP firewall agent with a prioritised rule set")
# (No ';' in it: CMake would take it for a list separator.)
set(CPACK_PACKAGE_DESCRIPTION
    "xdpfw filters packets in XDP, before the kernel's network stack: every\n"
    "packet is parsed (VLAN tags, IPv4 options and fragments, IPv6 extension\n"
    "headers) and classified against a prioritised rule set of CIDR prefixes,\n"
    "port ranges, protocols and ICMP types, at a cost that does not grow with\n"
    "the number of rules.\n"
    "\n"
    "The package holds the agent xdpfw-host (a systemd service), its firewall\n"
    "plugin libxdpfw.so, which attaches itself to the interfaces the\n"
    "configuration names, and the command-line client xdpfw-ctl. Rules change\n"
    "at run time. Unmatched packets are logged as JSON lines.")
string(JOIN "" CPACK_PACKAGE_DESCRIPTION ${CPACK_PACKAGE_DESCRIPTION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
# ct rules: the agent turns on connection tracking with nft (docs/DATAPATH.md)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "nftables")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/deb/conffiles
    ${PROJECT_SOURCE_DIR}/packaging/deb/postinst
    ${PROJECT_SOURCE_DIR}/packaging/deb/prerm
    ${PROJECT_SOURCE_DIR}/packaging/deb/postrm)
set(CPACK_SOURCE_GENERATOR "")
include(CPack)
