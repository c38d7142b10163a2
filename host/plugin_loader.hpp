// plugin_loader.hpp: opens a plugin file and checks its ABI before anything
// of it runs. Every failure is a PluginError naming the file.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

#include "xdpfw_plugin.h"

namespace xdpfw::host {

class PluginError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A dlopen()ed plugin library; dlclose() on destruction.
class PluginLibrary {
 public:
  explicit PluginLibrary(const std::string& path);  // throws PluginError
  ~PluginLibrary();
  PluginLibrary(const PluginLibrary&) = delete;
  PluginLibrary& operator=(const PluginLibrary&) = delete;

  const xdpfw_plugin& plugin() const { return *plugin_; }
  // ABI 1.2's apply_config, or null for a plugin built before it.
  decltype(xdpfw_plugin::apply_config) apply_config() const {
    bool covered =
        plugin_->abi_minor >= 2 &&
        plugin_->size >= offsetof(xdpfw_plugin, apply_config) + sizeof(plugin_->apply_config);
    return covered ? plugin_->apply_config : nullptr;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  void* handle_ = nullptr;
  const xdpfw_plugin* plugin_ = nullptr;
};

}  // namespace xdpfw::host
