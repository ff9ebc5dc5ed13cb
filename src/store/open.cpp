#include "store/store.hpp"

namespace culvert::store {

Result<std::unique_ptr<Store>> open_store(std::string_view url, const StoreOptions& /*options*/) {
  return unavailable("store backend for '" + std::string(url) + "' is not built yet");
}

}  // namespace culvert::store
