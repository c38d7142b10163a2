# xdpfw_bpf_skeleton(<target> <file.bpf.c>): compiles a BPF program with clang
# and generates its libbpf skeleton <name>.skel.h (struct <name>_bpf) with bpftool. <target> is an
# INTERFACE library that puts the skeleton on the include path.
find_program(BPF_CLANG NAMES clang clang-14 REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)

function(xdpfw_bpf_skeleton target source)
  get_filename_component(abs ${source} ABSOLUTE)
  get_filename_component(stem ${source} NAME_WE)  # xdpfw.bpf.c -> xdpfw
  get_filename_component(dir ${abs} DIRECTORY)
  set(obj ${CMAKE_CURRENT_BINARY_DIR}/${stem}.bpf.o)
  set(skel ${CMAKE_CURRENT_BINARY_DIR}/${stem}.skel.h)
  file(GLOB headers ${dir}/*.h ${PROJECT_SOURCE_DIR}/bpf/*.h)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${BPF_CLANG} -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_x86
            -I${dir} -I${PROJECT_SOURCE_DIR}/bpf
            -idirafter /usr/include/${CMAKE_LIBRARY_ARCHITECTURE}
            -c ${abs} -o ${obj}
    DEPENDS ${abs} ${headers}
    COMMENT "BPF ${source}")
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${stem}_bpf > ${skel}
    DEPENDS ${obj}
    COMMENT "skeleton ${stem}.skel.h")
  add_custom_target(${target}_gen DEPENDS ${skel})
  add_library(${target} INTERFACE)
  add_dependencies(${target} ${target}_gen)
  target_include_directories(${target} INTERFACE ${CMAKE_CURRENT_BINARY_DIR} ${PROJECT_SOURCE_DIR}/bpf)
  target_link_libraries(${target} INTERFACE PkgConfig::LIBBPF)
endfunction()
