#!/usr/bin/env bash
# Installs Culvert from a build tree into a temporary prefix and runs a Python flow file
# written outside the repository against the installed package, with PYTHONPATH as the
# only setting (docs/PYTHON.md).
#   python_install_test.sh BUILD_DIR PYTHON PYTHON_INSTALL_DIR
set -euo pipefail
BUILD="$1"
PY="$2"
PYDIR="$3"
WORK="$(mktemp -d /tmp/culvert-pyinstall-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
cmake --install "$BUILD" --prefix "$WORK/prefix" >/dev/null
test -f "$WORK/prefix/$PYDIR/culvert/__init__.py"
ls "$WORK/prefix/$PYDIR/culvert/"_culvert*.so >/dev/null
mkdir -p "$WORK/user"
cat >"$WORK/user/hello.py" <<'PYEOF'
import culvert
from culvert import task, Flow, Parameter

@task(retries=1)
def greet(who: str):
    print(f"hello {who}")
    return [who, who.upper()]

@task
def shout(word):
    return word + "!"

with Flow("hello") as flow:
    who = Parameter("who", default="world")
    shout.map(greet(who))

if __name__ == "__main__":
    culvert.main(flow)
PYEOF
cd "$WORK/user"
export PYTHONPATH="$WORK/prefix/$PYDIR"
out="$("$PY" hello.py run --param who=culvert --output json 2>"$WORK/err")"
echo "$out"
echo "$out" | grep -q '"flow":"hello"'
echo "$out" | grep -q '"state":"Success"'
echo "$out" | grep -q '"task":"shout","map_index":1,"state":"Success"'
grep -q 'hello culvert' "$WORK/err"
desc="$("$PY" hello.py describe)"
echo "$desc" | grep -q '"artifact_kind": "python"'
# The package is the installed one, not the build tree's.
"$PY" -c 'import culvert, sys; assert culvert.__file__.startswith(sys.argv[1]), culvert.__file__' "$WORK/prefix"
echo "python install test: ok"
