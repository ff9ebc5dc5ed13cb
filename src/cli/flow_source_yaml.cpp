// The yaml flow source: a YAML flow file of command tasks (docs/FORMATS.md). The file is
// read once; its description is parsed from those bytes in-process, and those very
// bytes are the artifact (so the registered description is the file's that was uploaded).
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include "cli/flow_sources.hpp"
#include "yamlflow/yaml_flow.hpp"

namespace culvert::cli {

FlowSource yaml_flow_source() {
  return FlowSource{
      .kind = "yaml",
      .description = "a YAML flow file of command tasks (*.yaml, *.yml)",
      .flags = {},
      .recognises = [](const FlowSourceRequest& r) { return yamlflow::is_yaml_flow_path(r.path); },
      .prepare = [](const FlowSourceRequest& r) -> Result<PreparedFlow> {
        std::ifstream in(r.path, std::ios::binary);
        if (!in) return invalid_argument("cannot read the YAML flow file '" + r.path + "': " + std::strerror(errno));
        std::string text(yamlflow::kMaxFileBytes + 1, '\0');
        in.read(text.data(), static_cast<std::streamsize>(text.size()));
        text.resize(static_cast<size_t>(in.gcount()));
        if (in.bad()) return invalid_argument("cannot read the YAML flow file '" + r.path + "'");
        auto flow = yamlflow::parse_yaml_flow(text, r.path);
        if (!flow) return flow.status();
        const char* tmpdir = std::getenv("TMPDIR");
        std::string tmpl = std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/culvert-flow-XXXXXX";
        int fd = ::mkstemp(tmpl.data());
        if (fd < 0) return unavailable("cannot create a temporary file in " + tmpl + ": " + std::strerror(errno));
        size_t off = 0;
        while (off < text.size()) {
          ssize_t n = ::write(fd, text.data() + off, text.size() - off);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) {
            int e = errno;
            ::close(fd);
            ::unlink(tmpl.c_str());
            return unavailable("cannot write " + tmpl + ": " + std::strerror(e));
          }
          off += static_cast<size_t>(n);
        }
        ::close(fd);
        return PreparedFlow{.description_json = flow->describe_json(), .artifact_path = tmpl,
                            .temporary_files = {tmpl}};
      }};
}

}  // namespace culvert::cli
