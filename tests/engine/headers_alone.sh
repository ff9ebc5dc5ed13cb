#!/usr/bin/env bash
# Every header that `cmake --install` installs (include/culvert) compiles on its own.
#   headers_alone.sh CXX INCLUDE_DIR
set -u
CXX=$1
INC=$2
failed=0
for h in "$INC"/culvert/*.hpp; do
  name=culvert/$(basename "$h")
  if ! echo "#include <$name>" | "$CXX" -std=c++20 -fsyntax-only -I"$INC" -x c++ - 2>/tmp/headers_alone.$$; then
    echo "FAIL $name does not compile on its own:"; head -5 /tmp/headers_alone.$$; failed=1
  else
    echo "ok   $name"
  fi
done
rm -f /tmp/headers_alone.$$
exit $failed
