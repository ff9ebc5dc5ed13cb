// `culvert image build` end to end, as a user would: Culvert installed into a prefix
// (`cmake --install`), flows built against that installed SDK outside the repository,
// images built by the installed `culvert image build` on bases the project did not make,
// and runs through a real server and Docker agent (artifacts on s3rver) to Success.
// Neither base has a time-zone database, and both flows have a cron schedule in
// Europe/Berlin; neither sets CULVERT_ARTIFACT_CACHE.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>

#include "agent/docker/docker_client.hpp"
#include "harness.hpp"

namespace culvert::e2e {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Installed once for the suite: the prefix and the user's flows built against it.
struct Installed {
  Sandbox sandbox;
  fs::path prefix;
  fs::path flows;
  std::string error;
};
Installed* g_installed = nullptr;

class ImageE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_installed = new Installed;
    Installed& in = *g_installed;
    in.prefix = in.sandbox.dir() / "prefix";
    in.flows = in.sandbox.dir() / "flows-build";
    auto inst = in.sandbox.run({"/usr/bin/cmake", "--install", CULVERT_BINARY_DIR, "--prefix", in.prefix.string(), "--strip"},
                               {}, 600s);
    if (inst.exit_code != 0) {
      in.error = "cmake --install: " + inst.out + inst.err;
      return;
    }
    auto conf = in.sandbox.run({"/usr/bin/cmake", "-S", std::string(CULVERT_SOURCE_DIR) + "/tests/image/project", "-B",
                                in.flows.string(), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                                "-DCMAKE_PREFIX_PATH=" + in.prefix.string()},
                               {}, 600s);
    if (conf.exit_code != 0) {
      in.error = "configure: " + conf.out + conf.err;
      return;
    }
    auto build = in.sandbox.run({"/usr/bin/cmake", "--build", in.flows.string(), "-j2"}, {}, 900s);
    if (build.exit_code != 0) in.error = "build: " + build.out + build.err;
  }
  static void TearDownTestSuite() {
    delete g_installed;
    g_installed = nullptr;
  }

  void SetUp() override {
    ASSERT_TRUE(g_installed->error.empty()) << g_installed->error;
    std::string dockerd_dir = std::getenv("CULVERT_DOCKERD_DIR") ? std::getenv("CULVERT_DOCKERD_DIR") : "";
    std::string s3_dir = std::getenv("CULVERT_S3RVER_DIR") ? std::getenv("CULVERT_S3RVER_DIR") : "";
    ASSERT_FALSE(dockerd_dir.empty() || s3_dir.empty()) << "run through ctest (dockerd and s3rver fixtures)";
    socket_ = trim(read_file(fs::path(dockerd_dir) / "socket"));
    s3_endpoint_ = "http://127.0.0.1:" + trim(read_file(fs::path(s3_dir) / "port"));
    docker_ = std::make_unique<docker::DockerClient>(docker::DockerClient::Options{.host = socket_});
    ASSERT_TRUE(docker_->ping().is_ok());
    server_ = std::make_unique<TestServer>(sandbox_, std::vector<std::string>{"--heartbeat-interval", "1s"});
    ASSERT_TRUE(server_->ok()) << read_file(sandbox_.dir() / "server.log");
    bucket_uri_ = "s3://culvert-e2e/image-" + sandbox_.dir().filename().string();
  }
  void TearDown() override {
    if (docker_)
      for (const auto& t : built_) (void)docker_->remove_image(t);
  }

  std::string installed_culvert() const { return (g_installed->prefix / "bin" / "culvert").string(); }

  // The base's tag, made by tests/image/bases.sh (cached across runs).
  std::string base(const std::string& kind) {
    const char* cache = std::getenv("CULVERT_IMAGE_BASES_CACHE");
    auto r = sandbox_.run({std::string(CULVERT_SOURCE_DIR) + "/tests/image/bases.sh", kind, socket_,
                           cache ? cache : (sandbox_.dir() / "bases").string()},
                          {}, 900s);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return trim(r.out);
  }

  // `culvert image build` with the installed culvert, as docs/IMAGES.md gives it.
  CommandResult image_build(const std::string& base_tag, const std::string& tag) {
    built_.push_back(tag);
    return sandbox_.run({installed_culvert(), "image", "build", "--base", base_tag, "--tag", tag, "--docker-host",
                         "unix://" + socket_},
                        {}, 600s);
  }

  std::map<std::string, std::string> env() const {
    return {{"CULVERT_API_URL", server_->url()}, {"CULVERT_API_TOKEN", server_->admin_token()},
            {"CULVERT_S3_ENDPOINT", s3_endpoint_}, {"AWS_ACCESS_KEY_ID", "S3RVER"},
            {"AWS_SECRET_ACCESS_KEY", "S3RVER"}, {"AWS_REGION", "us-east-1"},
            {"AWS_EC2_METADATA_DISABLED", "true"}};
  }

  // Registers FLOW (built against the installed SDK) with a docker run config on IMAGE,
  // runs it through a Docker agent, and returns the run's logs after Success.
  std::string run_in_image(const std::string& flow, const std::string& image, const json& extra_env) {
    json rc = {{"type", "docker"}, {"image", image}, {"network_mode", "host"}, {"memory", "512m"}};
    if (!extra_env.empty()) rc["env"] = extra_env;
    auto reg = sandbox_.culvert({"flow", "register", (g_installed->flows / flow).string(), "--project", "img",
                                 "--storage", bucket_uri_ + "/flows", "--run-config", rc.dump()},
                                env());
    EXPECT_EQ(reg.exit_code, 0) << reg.out << reg.err;
    std::vector<std::string> agent_argv = {installed_culvert(), "agent", "start", "--type", "docker", "--name",
                                           "img-" + flow, "--docker-host", socket_};
    for (const auto& [k, v] : env())
      if (k.rfind("CULVERT_API", 0) != 0) agent_argv.insert(agent_argv.end(), {"--env", k + "=" + v});
    Process agent(agent_argv, sandbox_.env(env()), sandbox_.dir() / ("agent-" + flow + ".log"));
    auto run = sandbox_.culvert({"run", flow, "--project", "img", "--watch", "--output", "json"}, env(), 300s);
    EXPECT_EQ(run.exit_code, 0) << run.out << run.err << "\nagent:\n" << agent.output();
    auto fin = json::parse(run.out, nullptr, false);
    if (fin.is_discarded()) return "";
    const json& fr = fin.contains("flow_run") ? fin["flow_run"] : fin;
    EXPECT_EQ(fr.value("state", ""), "Success") << run.out << "\nagent:\n" << agent.output();
    auto logs = sandbox_.culvert({"get", "logs", fr.value("id", "")}, env());
    return logs.out;
  }

  Sandbox sandbox_;
  std::string socket_, s3_endpoint_, bucket_uri_;
  std::vector<std::string> built_;
  std::unique_ptr<docker::DockerClient> docker_;
  std::unique_ptr<TestServer> server_;
};

// FROM scratch with busybox-static only: no libc, no /tmp, no time-zone database. HOME
// points where nothing can be created, so the artifact cache falls back to /tmp.
TEST_F(ImageE2E, AFlowRunsOnABusyboxScratchBase) {
  std::string base_tag = base("busybox");
  ASSERT_FALSE(base_tag.empty());
  auto built = image_build(base_tag, "culvert-e2e/busybox-flows:test");
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  EXPECT_NE(built.out.find("added /opt/culvert"), std::string::npos) << built.out;
  std::string logs = run_in_image("report", "culvert-e2e/busybox-flows:test", {{"HOME", "/proc/no-home"}});
  EXPECT_NE(logs.find("sum of squares: 91"), std::string::npos) << logs;
  EXPECT_NE(logs.find("shell says 42 from Linux"), std::string::npos) << logs;
}

// A Debian 12 minbase root filesystem (debootstrap) with python3: the flow's command
// task runs the image's own Python (the image's glibc), the flow binary the layer's.
TEST_F(ImageE2E, AFlowRunsPythonOnADebootstrapBase) {
  std::string base_tag = base("bookworm");
  ASSERT_FALSE(base_tag.empty());
  auto built = image_build(base_tag, "culvert-e2e/bookworm-flows:test");
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  std::string logs = run_in_image("pyreport", "culvert-e2e/bookworm-flows:test", json::object());
  EXPECT_NE(logs.find("preparing the report in C++"), std::string::npos) << logs;
  EXPECT_NE(logs.find("python 3.11"), std::string::npos) << logs;
  EXPECT_NE(logs.find("{\"rows\": [1, 2, 3]}"), std::string::npos) << logs;
}

// An agent can itself run from the layer (as the ECS agent does when it runs as an ECS
// service): a local agent inside the busybox image starts each run as the layer's
// `culvert execute` (not the loader it runs under), and a flow binary it has cached is
// still started through the layer's loader (the busybox base has no other), run after run.
TEST_F(ImageE2E, ALocalAgentRunsFlowsInsideALayeredImage) {
  std::string base_tag = base("busybox");
  ASSERT_FALSE(base_tag.empty());
  const std::string tag = "culvert-e2e/busybox-agent:test";
  auto built = image_build(base_tag, tag);
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  auto reg = sandbox_.culvert({"flow", "register", (g_installed->flows / "report").string(), "--project", "inside",
                               "--storage", bucket_uri_ + "/flows", "--label", "in-image"},
                              env());
  ASSERT_EQ(reg.exit_code, 0) << reg.out << reg.err;
  const std::string name = "culvert-e2e-agent-" + sandbox_.dir().filename().string();
  std::vector<std::string> argv = {"/usr/bin/docker", "-H", "unix://" + socket_, "run", "-d", "--name", name,
                                   "--network", "host"};
  for (const auto& [k, v] : env()) argv.insert(argv.end(), {"-e", k + "=" + v});
  argv.insert(argv.end(), {tag, "culvert", "agent", "start", "--type", "local", "--name", "in-image", "--label",
                           "in-image", "--heartbeat-seconds", "1"});
  auto started = sandbox_.run(argv);
  ASSERT_EQ(started.exit_code, 0) << started.out << started.err;
  auto logs_of_agent = [&] {
    auto r = sandbox_.run({"/usr/bin/docker", "-H", "unix://" + socket_, "logs", name});
    return r.out + r.err;
  };
  for (int i = 0; i < 3; ++i) {
    auto run = sandbox_.culvert({"run", "report", "--project", "inside", "--watch"}, env(), 180s);
    EXPECT_EQ(run.exit_code, 0) << "run " << i << ": " << run.out << run.err << "\nagent:\n" << logs_of_agent();
    EXPECT_NE(run.out.find("Success"), std::string::npos) << run.out;
  }
  EXPECT_NE(logs_of_agent().find("/opt/culvert/bin/culvert"), std::string::npos) << logs_of_agent();
  (void)sandbox_.run({"/usr/bin/docker", "-H", "unix://" + socket_, "rm", "-f", name});
}

// The CI way of docs/IMAGES.md, as written there: `culvert image layer culvert-layer`
// into a build context, the documented Dockerfile lines, `docker build`; then culvert
// runs in the image (on the busybox base: no libc but the layer's).
TEST_F(ImageE2E, TheDocumentedDockerfileAddsTheLayer) {
  std::string base_tag = base("busybox");
  ASSERT_FALSE(base_tag.empty());
  fs::path ctx = sandbox_.dir() / "context";
  fs::create_directories(ctx);
  auto layer = sandbox_.run({"/bin/sh", "-c", "cd " + ctx.string() + " && " + installed_culvert() +
                                                   " image layer culvert-layer"});
  ASSERT_EQ(layer.exit_code, 0) << layer.out << layer.err;
  {
    std::ofstream df(ctx / "Dockerfile");
    df << "FROM " << base_tag << "\n"
       << "COPY culvert-layer/ /\n"
       << "ENV PATH=/opt/culvert/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n";
  }
  const std::string tag = "culvert-e2e/dockerfile-layer:test";
  built_.push_back(tag);
  auto build = sandbox_.run({"/usr/bin/docker", "-H", "unix://" + socket_, "build", "-q", "-t", tag, ctx.string()},
                            {}, 300s);
  ASSERT_EQ(build.exit_code, 0) << build.out << build.err;
  auto version = sandbox_.run({"/usr/bin/docker", "-H", "unix://" + socket_, "run", "--rm", tag, "culvert", "version"});
  EXPECT_EQ(version.exit_code, 0) << version.out << version.err;
  EXPECT_NE(version.out.find("culvert "), std::string::npos) << version.out;
  auto tmp = sandbox_.run({"/usr/bin/docker", "-H", "unix://" + socket_, "run", "--rm", tag, "sh", "-c",
                           "stat -c %a /tmp && test ! -e /lib/x86_64-linux-gnu/libc.so.6 && echo no-libc"});
  EXPECT_EQ(tmp.exit_code, 0) << tmp.out << tmp.err;
  EXPECT_NE(tmp.out.find("1777"), std::string::npos) << tmp.out;
  EXPECT_NE(tmp.out.find("no-libc"), std::string::npos) << tmp.out;
}

// What goes wrong is said plainly: no such base, another platform, no daemon.
TEST_F(ImageE2E, ImageBuildErrorsNameWhatIsWrong) {
  auto missing = image_build("culvert-test/no-such-base:1", "culvert-e2e/never:test");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("base image 'culvert-test/no-such-base:1' is not on the Docker daemon"),
            std::string::npos) << missing.err;

  auto unreachable = sandbox_.run({installed_culvert(), "image", "build", "--base", "x", "--tag", "y",
                                   "--docker-host", "unix:///nonexistent/docker.sock"});
  EXPECT_EQ(unreachable.exit_code, 1);
  EXPECT_NE(unreachable.err.find("unix:///nonexistent/docker.sock is unreachable"), std::string::npos)
      << unreachable.err;

  // An arm64 base (an empty image loaded with that platform).
  std::string arm = base("arm64-empty");
  ASSERT_FALSE(arm.empty());
  auto other = image_build(arm, "culvert-e2e/never:test");
  EXPECT_EQ(other.exit_code, 2);
  EXPECT_NE(other.err.find("base image '" + arm + "' is linux/arm64: the Culvert layer is for linux/amd64"),
            std::string::npos) << other.err;
}

}  // namespace
}  // namespace culvert::e2e
