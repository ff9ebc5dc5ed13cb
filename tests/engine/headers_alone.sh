#!/usr/bin/env bash
# Every header that `cmake --install` installs (include/culvert) compiles on its own.
#   headers_alone.sh CXX INCLUDE_DIR
set -u
CXX=$1
INC=$2
failed=0
for h in "$INC"/culvert/*.hpp "$INC"/culvert/detail/*.hpp; do
  name=${h#"$INC"/}
  if ! echo "#include <$name>" | "$CXX" -std=c++20 -fsyntax-only -I"$INC" -x c++ - 2>/tmp/headers_alone.$$; then
    echo "FAIL $name does not compile on its own:"; head -5 /tmp/headers_alone.$$; failed=1
  else
    echo "ok   $name"
  fi
done
# Every type RunOptions names is complete from the installed headers alone: a flow's own
# test can give a run a seeded jitter source and a fake process launcher.
cat >/tmp/headers_alone.$$.cpp <<'CPP'
#include <culvert/executor.hpp>
struct NoProcesses final : culvert::ProcessLauncher {
  culvert::Result<std::unique_ptr<culvert::Process>> spawn(const culvert::ProcessSpec&) override {
    return culvert::Status(culvert::StatusCode::kUnavailable, "no processes in this test");
  }
};
void options() {
  culvert::SeededRandom random(7);
  NoProcesses launcher;
  culvert::RunOptions o;
  o.random = &random;
  o.process_launcher = &launcher;
}
CPP
if ! "$CXX" -std=c++20 -fsyntax-only -I"$INC" /tmp/headers_alone.$$.cpp 2>/tmp/headers_alone.$$; then
  echo "FAIL RunOptions names a type that the installed headers do not define:"; head -5 /tmp/headers_alone.$$; failed=1
else
  echo "ok   RunOptions' types come from installed headers"
fi
rm -f /tmp/headers_alone.$$ /tmp/headers_alone.$$.cpp
exit $failed
