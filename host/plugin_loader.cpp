// plugin_loader.cpp: see plugin_loader.hpp.
#include "plugin_loader.hpp"

#include <dlfcn.h>

namespace xdpfw::host {

PluginLibrary::PluginLibrary(const std::string& path) : path_(path) {
  // RTLD_LOCAL: plugins do not see each other's symbols; RTLD_NOW: a missing
  // dependency fails here, not in the middle of a packet burst.
  handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle_) {
    const char* e = dlerror();
    throw PluginError("plugin " + path + ": cannot load it: " + (e ? e : "unknown error"));
  }
  dlerror();
  auto entry = reinterpret_cast<xdpfw_plugin_entry_fn>(dlsym(handle_, XDPFW_PLUGIN_ENTRY));
  if (!entry) {
    dlclose(handle_);
    throw PluginError("plugin " + path +
                      ": not an xdpfw plugin (no '" XDPFW_PLUGIN_ENTRY "' symbol)");
  }
  plugin_ = entry();
  std::string why;
  if (!plugin_) {
    why = "its entry point returned nothing";
  } else if (plugin_->abi_major != XDPFW_PLUGIN_ABI_MAJOR ||
             plugin_->abi_minor > XDPFW_PLUGIN_ABI_MINOR) {
    why = "it was built for plugin ABI " + std::to_string(plugin_->abi_major) + "." +
          std::to_string(plugin_->abi_minor) + ", this host speaks " +
          std::to_string(XDPFW_PLUGIN_ABI_MAJOR) + "." + std::to_string(XDPFW_PLUGIN_ABI_MINOR) +
          "; rebuild it against this host's xdpfw_plugin.h";
  } else if (plugin_->size < XDPFW_PLUGIN_SIZE_1_1) {
    why = "its descriptor is " + std::to_string(plugin_->size) + " bytes, ABI " +
          std::to_string(plugin_->abi_major) + "." + std::to_string(plugin_->abi_minor) +
          " needs at least " + std::to_string(XDPFW_PLUGIN_SIZE_1_1);
  } else if (!plugin_->name || !*plugin_->name || !plugin_->init || !plugin_->fini) {
    why = "its descriptor lacks a name, init or fini";
  }
  if (!why.empty()) {
    dlclose(handle_);
    throw PluginError("plugin " + path + ": refused: " + why);
  }
}

PluginLibrary::~PluginLibrary() {
  if (handle_) dlclose(handle_);
}

}  // namespace xdpfw::host
