#include "cli/image_cmds.hpp"

#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "agent/docker/docker_client.hpp"
#include "cli/command.hpp"
#include "image/layer.hpp"
#include "image/python_part.hpp"

#include <gnu/libc-version.h>

namespace culvert::cli {
namespace {

struct ImageFlags {
  std::string base;
  std::string tag;
  std::string docker_host;
  std::string output = "table";
  std::string dir;
  bool python = false;
};

int exit_code_for(const Status& s) { return s.code() == StatusCode::kInvalidArgument ? 2 : 1; }

image::EnvLookup env_of(CliContext& ctx) {
  return [&ctx](const std::string& k) { return ctx.env(k); };
}

int image_build(CliContext& ctx, const ImageFlags& f) {
  std::ostream& out = ctx.out ? *ctx.out : std::cout;
  std::ostream& err = ctx.err ? *ctx.err : std::cerr;
  auto sources = image::sources_of_this_process(env_of(ctx), CULVERT_VERSION);
  if (!sources) {
    err << "culvert image build: " << sources.status().message() << "\n";
    return 1;
  }
  std::string host = f.docker_host;
  if (host.empty()) host = ctx.env("DOCKER_HOST").value_or("unix:///var/run/docker.sock");
  if (!host.starts_with("unix://") && !host.starts_with("/")) {
    err << "culvert image build: --docker-host " << host << ": only a unix socket (unix:///PATH) is supported\n";
    return 2;
  }
  docker::DockerClient docker(docker::DockerClient::Options{.host = host});
  image::LayerExtras extras;
  if (f.python) {
    // The culvert Python package too, when the base's own python3 can load it.
    auto package = image::find_python_package(env_of(ctx), sources->program);
    if (!package) {
      err << "culvert image build: " << package.status().message() << "\n";
      return 1;
    }
    auto info = docker.inspect_image(f.base);
    if (!info) {
      err << "culvert image build: base image '" << f.base << "': " << info.status().message() << "\n";
      return 1;
    }
    auto python = image::probe_base_python(docker, info->id, f.base);
    Status abi = python ? image::check_python_abi(f.base, *python, *package, gnu_get_libc_version()) : python.status();
    if (!abi) {
      err << "culvert image build: --python: " << abi.message() << "\n";
      return exit_code_for(abi);
    }
    std::string pythonpath;
    for (const auto& kv : info->env)
      if (kv.starts_with("PYTHONPATH=")) pythonpath = kv.substr(11);
    extras = image::python_extras(*package, pythonpath);
  }
  auto built = image::build_image(docker, f.base, f.tag, *sources, extras);
  if (!built) {
    err << "culvert image build: " << built.status().message() << "\n";
    return exit_code_for(built.status());
  }
  if (f.output == "json") {
    out << nlohmann::json{{"tag", f.tag},           {"image_id", built->image_id}, {"base", f.base},
                          {"layer", image::kLayerRoot}, {"files", built->files},     {"bytes", built->bytes},
                          {"path", built->path_env}}
               .dump()
        << "\n";
  } else {
    out << fmt::format("built {} ({}) from {}: added {} ({} files, {:.1f} MB)\n", f.tag, built->image_id, f.base,
                       image::kLayerRoot, built->files, static_cast<double>(built->bytes) / 1e6);
  }
  return 0;
}

int image_layer(CliContext& ctx, const ImageFlags& f) {
  std::ostream& out = ctx.out ? *ctx.out : std::cout;
  std::ostream& err = ctx.err ? *ctx.err : std::cerr;
  auto sources = image::sources_of_this_process(env_of(ctx), CULVERT_VERSION);
  if (!sources) {
    err << "culvert image layer: " << sources.status().message() << "\n";
    return 1;
  }
  auto entries = image::layer_entries(*sources);
  if (!entries) {
    err << "culvert image layer: " << entries.status().message() << "\n";
    return 1;
  }
  if (Status st = image::write_layer(*entries, f.dir); !st) {
    err << "culvert image layer: " << st.message() << "\n";
    return 1;
  }
  out << "wrote the Culvert layer to " << f.dir << " (" << f.dir << image::kLayerRoot << ", " << f.dir
      << "/tmp); in a Dockerfile:\n"
      << "  COPY " << f.dir << "/ /\n"
      << "  ENV PATH=" << image::kLayerRoot << "/bin:" << image::kDefaultPath << "\n";
  return 0;
}

}  // namespace

void add_image_commands(CLI::App& app, CliContext& ctx) {
  auto* image_cmd = app.add_subcommand("image", "Add Culvert to a container image (any Linux x86-64 base)");
  image_cmd->require_subcommand(1);
  image_cmd->fallthrough();

  auto bf = std::make_shared<ImageFlags>();
  auto* build = image_cmd->add_subcommand(
      "build", "Build TAG: the base image plus /opt/culvert (culvert, its own loader and libraries), through the Docker Engine API");
  build->fallthrough();
  build->add_option("--base", bf->base, "the base image, already on the Docker daemon (linux/amd64)")->required();
  build->add_option("--tag,-t", bf->tag, "the new image's name:tag")->required();
  build->add_option("--docker-host", bf->docker_host,
                    "the Docker daemon's socket (default $DOCKER_HOST, else unix:///var/run/docker.sock)");
  build->add_flag("--python", bf->python,
                  "also add the culvert Python package (/opt/culvert/python, on PYTHONPATH) for the base's own "
                  "python3; refused when that Python cannot load it");
  add_output_option(build, bf->output);
  build->callback([&ctx, bf] { ctx.exit_code = image_build(ctx, *bf); });

  auto lf = std::make_shared<ImageFlags>();
  auto* layer = image_cmd->add_subcommand(
      "layer", "Write the layer to DIR (DIR/opt/culvert, DIR/tmp), for a Dockerfile's `COPY DIR/ /`");
  layer->fallthrough();
  layer->add_option("DIR", lf->dir, "the folder to write (created)")->required();
  layer->callback([&ctx, lf] { ctx.exit_code = image_layer(ctx, *lf); });
}

}  // namespace culvert::cli
