// The Python part of the image layer: the probe's parsing, the ABI rule, the package's
// discovery and its entries.
#include "image/python_part.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace culvert::image {
namespace {
namespace fs = std::filesystem;

PythonPackage package_311() { return {"/pkg", "3.11", {"__init__.py", "_culvert.cpython-311-x86_64-linux-gnu.so"}}; }

TEST(PythonPart, ParsesTheProbe) {
  auto p = parse_python_probe("3.11\nglibc 2.36\n");
  ASSERT_TRUE(p) << p.status().message();
  EXPECT_EQ(p->version, "3.11");
  EXPECT_EQ(p->libc, "glibc");
  EXPECT_EQ(p->libc_version, "2.36");
  auto musl = parse_python_probe("3.11\n \n");
  ASSERT_TRUE(musl);
  EXPECT_EQ(musl->libc, "");
  EXPECT_FALSE(parse_python_probe("Traceback (most recent call last)"));
  EXPECT_FALSE(parse_python_probe(""));
}

TEST(PythonPart, TheBasesPythonMustLoadTheExtension) {
  EXPECT_TRUE(check_python_abi("b", {"3.11", "glibc", "2.36"}, package_311(), "2.36").is_ok());
  EXPECT_TRUE(check_python_abi("b", {"3.11", "glibc", "2.40"}, package_311(), "2.36").is_ok());
  Status other = check_python_abi("acme:1", {"3.9", "glibc", "2.31"}, package_311(), "2.36");
  EXPECT_EQ(other.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(other.message().find("base image 'acme:1' has Python 3.9"), std::string::npos) << other.message();
  EXPECT_NE(other.message().find("built for Python 3.11"), std::string::npos) << other.message();
  Status old = check_python_abi("b", {"3.11", "glibc", "2.31"}, package_311(), "2.36");
  EXPECT_NE(old.message().find("has glibc 2.31"), std::string::npos) << old.message();
  Status older_minor = check_python_abi("b", {"3.11", "glibc", "2.4"}, package_311(), "2.36");
  EXPECT_FALSE(older_minor.is_ok());
  Status musl = check_python_abi("alpine", {"3.11", "", ""}, package_311(), "2.36");
  EXPECT_NE(musl.message().find("other than glibc"), std::string::npos) << musl.message();
}

TEST(PythonPart, FindsThePackageAndItsPythonVersion) {
  fs::path dir = fs::temp_directory_path() / ("culvert-pypart-" + std::to_string(::getpid()));
  fs::create_directories(dir / "python" / "culvert");
  std::ofstream(dir / "python" / "culvert" / "__init__.py") << "";
  std::ofstream(dir / "python" / "culvert" / "_flow.py") << "";
  auto env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  auto missing = find_python_package(env, (dir / "culvert").string());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  std::ofstream(dir / "python" / "culvert" / "_culvert.cpython-311-x86_64-linux-gnu.so") << "elf";
  auto found = find_python_package(env, (dir / "culvert").string());
  ASSERT_TRUE(found) << found.status().message();
  EXPECT_EQ(found->python_version, "3.11");
  EXPECT_EQ(found->files.size(), 3u);
  auto extras = python_extras(*found, "/app");
  ASSERT_EQ(extras.env.size(), 1u);
  EXPECT_EQ(extras.env[0].first, "PYTHONPATH");
  EXPECT_EQ(extras.env[0].second, "/opt/culvert/python:/app");
  bool has_so = false;
  for (const auto& e : extras.entries)
    if (e.path == "opt/culvert/python/culvert/_culvert.cpython-311-x86_64-linux-gnu.so") has_so = e.mode == 0755;
  EXPECT_TRUE(has_so);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace culvert::image
